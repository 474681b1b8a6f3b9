"""OpenAI-compatible: POST /v1/chat/completions (non-streaming and streaming) and GET /v1/models."""

from __future__ import annotations

import re
import time
import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..dependencies import get_service
from ..errors import ApiError, error_responses
from ..json_body import StrictJSONRoute
from ..schemas import MAX_HISTORY, MAX_MESSAGE_CHARS, MODEL_ID, ChatMessage, ChatRequest, ChatResponse, ModelList
from ..service import ApiService
from ..streaming import SSE_HEADERS, sse, sse_event_schema

router = APIRouter(prefix="/v1", tags=["openai"], route_class=StrictJSONRoute)

_ASCII = re.compile(r"^[\x00-\x7f\s]*$")


def references_block(answer: dict) -> str:
    """The cited clauses as text, appended to chat answers so they survive any client."""
    cites = answer.get("citations") or []
    if not cites:
        return ""
    english = bool(_ASCII.match(answer.get("question", "")))
    if answer.get("refused"):
        header = "Closest clauses:" if english else "最接近的条款："
    else:
        header = "References:" if english else "参考条款："
    lines = [header]
    for c in cites:
        lines.append(f"[{c['n']}] 《{c['doc_title']}》 {c['chunk_id']}（{c['section']}）：{c['text']}")
    return "\n".join(lines)


def message_text(msg: ChatMessage) -> str:
    if msg.content is None:
        return ""
    if isinstance(msg.content, str):
        return msg.content
    parts = []
    for part in msg.content:
        if part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            raise ApiError(422, "unsupported_content", f"only text content is supported, got a {part.get('type')!r} part",
                           param="messages")
    return "".join(parts)


_REFERENCE_HEADERS = ("\n\n参考条款：", "\n\n最接近的条款：", "\n\nReferences:", "\n\nClosest clauses:")


def chat_to_question(req: ChatRequest) -> tuple[str, list[dict]]:
    """Last user message = the question; earlier user/assistant turns = history (our references stripped)."""
    turns = [(m.role, message_text(m)) for m in req.messages if m.role in ("user", "assistant")]
    if not turns or req.messages[-1].role != "user":
        raise ApiError(422, "invalid_messages", "the last message must be a user message holding the question",
                       param="messages")
    history = []
    for role, text in turns[:-1]:
        for marker in _REFERENCE_HEADERS:
            text = text.split(marker, 1)[0]
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS]
        history.append({"role": role, "content": text})
    return turns[-1][1], history[-MAX_HISTORY:]


@router.get("/models", response_model=ModelList, summary="OpenAI-compatible model list")
async def list_models(request: Request):
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": int(request.app.state.started),
                                        "owned_by": "zhengce-rag"}]}


@router.post("/chat/completions", response_model=ChatResponse,
             summary="OpenAI-compatible chat completions (non-streaming and streaming)",
             responses={**error_responses(400, 413, 415), 200: {
                 "description": "A chat.completion, or with `stream: true` chat.completion.chunk events",
                 "content": {"text/event-stream": {"schema": sse_event_schema(
                     "JSON `chat.completion.chunk` objects (the last one with `citations`), then the literal "
                     "`[DONE]`")}}}})
async def chat_completions(req: ChatRequest, service: ApiService = Depends(get_service)):
    """The last user message is the question, earlier messages the history.

    The message content holds the answer and a references block; the extra
    top-level `citations` field has the cited clauses as structured data
    (also on the last streamed chunk).
    """
    question, history = chat_to_question(req)
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if req.stream:  # validation errors raise here, before the 200 of the stream
        pieces = await service.answer_pieces(question, req.k, req.documents, history, "hybrid", req.backend)
        return StreamingResponse(_chat_events(req, pieces, cid, created),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    answer = await service.ask(question, req.k, req.documents, history, "hybrid", req.backend)
    refs = references_block(answer)
    content = answer["answer"] + ("\n\n" + refs if refs else "")
    return {"id": cid, "object": "chat.completion", "created": created, "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}], **_chat_extras(answer)}


def _chat_extras(answer: dict) -> dict:
    extras = {"citations": answer["citations"], "refused": answer["refused"]}
    for key in ("backend", "verified", "fallback_reason"):
        if answer.get(key) is not None:
            extras[key] = answer[key]
    return extras


async def _chat_events(req: ChatRequest, pieces, cid: str, created: int):
    """A streamed chat completion: the answer's pieces (a model's verified sentences as they come),
    then the references.  If a generated answer falls back, the extractive answer follows a
    separator (a chat client cannot retract streamed text)."""

    def chunk(delta: dict, finish: str | None = None, **more) -> str:
        return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more})

    yield chunk({"role": "assistant", "content": ""})
    streamed = ""
    async for item in pieces:
        if isinstance(item, str):
            streamed += item
            yield chunk({"content": item})
            continue
        if item["answer"] != streamed:
            yield chunk({"content": ("\n\n---\n" if streamed else "") + item["answer"]})
        refs = references_block(item)
        if refs:
            yield chunk({"content": "\n\n" + refs})
        yield chunk({}, "stop", **_chat_extras(item))
    yield sse("[DONE]")
