"""POST /v1/ask and POST /v1/search."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from ..dependencies import get_service
from ..errors import error_responses
from ..json_body import StrictJSONRoute
from ..schemas import AskRequest, AskResponse, SearchRequest, SearchResponse
from ..service import ApiService
from ..streaming import SSE_HEADERS, sse, sse_event_schema

router = APIRouter(prefix="/v1", tags=["questions"], route_class=StrictJSONRoute)


@router.post("/ask", response_model=AskResponse, response_model_exclude_none=True,
             summary="Answer a question with cited clauses",
             responses={**error_responses(400, 413, 415), 200: {
                 "description": "The answer; with `stream: true`, Server-Sent Events",
                 "content": {"text/event-stream": {
                     "schema": sse_event_schema(
                         'JSON `{"type": "delta", "text"}`, then one '
                         '`{"type": "citations", "citations", "refused", ...}`, '
                         'then the literal `[DONE]`'),
                     "example": 'data: {"type": "delta", "text": "到2025年，"}\n\n'
                                'data: {"type": "citations", "citations": []}\n\n'
                                "data: [DONE]\n\n"}}}})
async def ask(req: AskRequest, service: ApiService = Depends(get_service)):
    """Same object as `rag ask --json`.

    With `stream: true` the answer arrives as Server-Sent Events: `{"type": "delta", "text"}`
    pieces of the answer, then one `{"type": "citations", "citations", "refused", ...}` event,
    then `data: [DONE]`.
    """
    history = [h.model_dump() for h in req.history or []]
    if not req.stream:
        return await service.ask(req.question, req.k, req.documents, history, req.mode, req.backend)
    pieces = await service.answer_pieces(req.question, req.k, req.documents, history, req.mode, req.backend)

    async def events():
        streamed = ""
        async for item in pieces:
            if isinstance(item, str):
                streamed += item
                yield sse({"type": "delta", "text": item})
                continue
            if item["answer"] != streamed:  # a generated answer fell back: the client shows this instead
                yield sse({"type": "replace", "text": item["answer"]})
            rest = {k: v for k, v in item.items() if k != "answer"}
            yield sse({"type": "citations", **rest})
        yield sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/search", response_model=SearchResponse, summary="Rank clauses for a query",
             responses=error_responses(400, 413, 415))
async def search_clauses(req: SearchRequest, service: ApiService = Depends(get_service)):
    started = time.perf_counter()
    result = await service.search(req.query, req.k, req.documents, req.mode)
    ms = (time.perf_counter() - started) * 1000
    service.metrics.stage.labels("search").observe(ms / 1000)
    return {"query": req.query,
            "results": [{"rank": i, **h.to_dict()} for i, h in enumerate(result.hits, 1)],
            "searched_documents": result.searched_documents,
            "routed_documents": list(result.route.documents),
            "timings_ms": {"total": round(ms, 2)}}
