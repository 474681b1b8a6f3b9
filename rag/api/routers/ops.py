"""Operations: GET /healthz (liveness), GET /readyz (readiness), GET /metrics; and the /v1 fallback (unknown paths and methods)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ...generate import backend_status
from ..dependencies import get_service, metrics_access
from ..errors import ApiError, error_responses
from ..schemas import HealthResponse, ReadyResponse
from ..service import ApiService

router = APIRouter(tags=["ops"])


def _workers() -> int:
    """Server processes answering on this address (`rag serve --workers`, which sets RAG_SERVE_WORKERS)."""
    try:
        return max(1, int(os.environ.get("RAG_SERVE_WORKERS", "") or 1))
    except ValueError:
        return 1


@router.get("/healthz", response_model=HealthResponse, summary="Liveness and index state")
async def healthz(request: Request, service: ApiService = Depends(get_service)):
    assistant = service.assistant
    index = assistant.index
    m = index.manifest
    health = assistant.health() if hasattr(assistant, "health") else {"status": "ok"}
    return {**health, "index_loaded": len(index) > 0, "index_status": assistant.index_status,
            "model": assistant.settings.embed_model, "documents": len(index.doc_ids),
            "uploads": len(index.uploads.entries), "clauses": int(m.get("clause_count", 0)),
            "chunks": len(index), "built_at": m.get("built_at"),
            "auth": "api_keys" if request.app.state.keys.enabled else "open_loopback_only",
            "worker": {"pid": os.getpid(), "workers": _workers()},
            **({"jobs": assistant.jobs.counts()} if hasattr(assistant, "jobs") else {}),
            "backends": {name: {"available": why is None, **({"detail": why} if why else {})}
                         for name, why in backend_status().items()}}


@router.get("/readyz", response_model=ReadyResponse, summary="Readiness: index loaded and model warm",
            responses={503: {"model": ReadyResponse, "description": "Not ready yet (or the index is empty)"}})
async def readyz(service: ApiService = Depends(get_service)):
    """200 when the index is loaded and the embedding model has answered its warm-up call (made in the
    background at start-up), else 503 with `detail`.  Liveness is `/healthz`: it answers as soon as the
    process serves HTTP.  No key needed, like /healthz."""
    state = service.readiness()
    return JSONResponse(state, status_code=200 if state["ready"] else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            dependencies=[Depends(metrics_access)],
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **error_responses(401)})
async def prometheus_metrics(service: ApiService = Depends(get_service)):
    body, content_type = service.metrics.render(service.assistant)
    return Response(body, media_type=content_type)


# Included last under /v1: without it, unknown /v1 paths would fall through to the chat page at "/".
v1_fallback = APIRouter(prefix="/v1")


@v1_fallback.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown_v1(request: Request, rest: str):
    # A path one of the /v1 routes has, with another method, is a 405.
    scope = {"type": "http", "path": request.url.path, "root_path": "", "method": "__none__"}
    v1_routes = [r for r in request.app.state.v1_routes if hasattr(r, "methods")]
    for route in v1_routes:
        match, _ = route.matches(scope)
        if match.name == "PARTIAL":
            allowed = sorted(m for r in v1_routes if r.path == route.path for m in (r.methods or ()))
            raise ApiError(405, "method_not_allowed",
                           f"{request.method} is not allowed on {request.url.path} (allowed: {', '.join(allowed)})",
                           headers={"Allow": ", ".join(allowed)},
                           zh=f"{request.url.path} 不支持 {request.method}（可用：{', '.join(allowed)}）")
    raise ApiError(404, "not_found", f"no endpoint {request.url.path}", zh=f"没有这个接口：{request.url.path}")
