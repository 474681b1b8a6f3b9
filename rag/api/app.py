"""`create_app`: the FastAPI app over the one Assistant — routers, error handlers, middleware, chat page."""

from __future__ import annotations

import contextlib
import logging
import os
import time

import threading

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..config import Settings
from ..ingest import max_upload_bytes
from ..metrics import Metrics, MetricsMiddleware
from ..query_batch import BatchingQueryEmbedder
from ..security import KeyConfig
from .dependencies import require_key
from .errors import error_responses, install_error_handlers
from .middleware import AccessLog, BodyLimit, SameOriginWrites, SecurityHeaders, TrustedHost, access_log_mode
from .routers import documents, openai, ops, questions
from .service import ApiService

log = logging.getLogger("rag.api")

DESCRIPTION = (
    "Cited answers from Chinese integrated-circuit industry plans.\n\n"
    "Every answer cites the clauses it rests on (document, clause id, section path, text). "
    "With API keys configured (RAG_API_KEYS, RAG_ADMIN_KEYS), `/v1` calls need "
    "`Authorization: Bearer <key>`; uploads and deletes need an admin key. "
    "Errors are `{\"error\": {\"code\", \"message\", \"type\"}}` with a 4xx status.")
TAGS = [
    {"name": "questions", "description": "Ask and search"},
    {"name": "documents", "description": "The plans: list, outline, clause in context, upload, delete"},
    {"name": "openai", "description": "OpenAI-compatible chat completions"},
    {"name": "ops", "description": "Liveness, readiness and metrics"},
]


def create_app(assistant=None, settings: Settings | None = None, keys: KeyConfig | None = None,
               with_ui: bool = True, metrics: Metrics | None = None, batch_queries: bool = True,
               allowed_hosts: list[str] | None = None, metrics_public: bool | None = None,
               answer_cache: int = 0, warm_answers: bool = False) -> FastAPI:
    """The HTTP app over `assistant` (built from `settings` when not given).

    `keys` defaults to RAG_API_KEYS / RAG_ADMIN_KEYS; `with_ui` mounts the chat
    page at `/` when `ui.app` is importable; `batch_queries` wraps the
    assistant's embedder so concurrent requests share model calls (rag/query_batch.py).
    `allowed_hosts` (`rag serve` passes `rag.security.allowed_hosts`) are the Host header values
    answered, others get 400; None checks no Host.  `metrics_public` (default RAG_METRICS_PUBLIC=1)
    leaves /metrics open when keys are configured.  `answer_cache` and `warm_answers`: see
    rag/api/service.py (`rag serve` turns both on).
    """
    if assistant is None:
        from ..service import Assistant

        assistant = Assistant(settings or Settings())
    if batch_queries and hasattr(assistant, "embedder") and not isinstance(assistant.embedder, BatchingQueryEmbedder):
        assistant.embedder = BatchingQueryEmbedder(assistant.embedder)
    keys = keys if keys is not None else KeyConfig.from_env()
    metrics = metrics or Metrics()
    if isinstance(getattr(assistant, "embedder", None), BatchingQueryEmbedder):
        metrics.track_embedder(assistant.embedder)
    if metrics_public is None:
        metrics_public = os.environ.get("RAG_METRICS_PUBLIC", "").strip().lower() in ("1", "true", "yes")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # Readiness (/readyz): one embedding in the background warms the model; no request waits for it.
        threading.Thread(target=service.warm_up, name="warm-up", daemon=True).start()
        jobs = getattr(assistant, "jobs", None)
        if jobs is not None:  # upload jobs a crash or restart interrupted run again (rag/jobs.py)
            await run_in_threadpool(jobs.resume)
        yield
        if jobs is not None:  # a running job stops at its next batch and runs again at the next start
            await run_in_threadpool(jobs.shutdown, 10.0)

    service = ApiService(assistant, metrics, answer_cache=answer_cache, warm_answers=warm_answers)
    metrics.track_answer_cache(service)
    # /docs is served below from the swagger-ui-bundle-v2 package's files: it works without internet.
    app = FastAPI(lifespan=lifespan, title="政策问答 API", version="1.0", description=DESCRIPTION,
                  openapi_tags=TAGS, docs_url=None, redoc_url=None)
    app.state.assistant = assistant
    app.state.metrics = metrics
    app.state.keys = keys
    app.state.service = service
    app.state.metrics_public = metrics_public
    install_error_handlers(app)

    v1 = dict(dependencies=[Depends(require_key)], responses=error_responses(401, 422))
    v1_routers = [questions.router, documents.router, openai.router]
    for router in v1_routers:
        app.include_router(router, **v1)
    app.state.v1_routes = [r for router in v1_routers for r in router.routes]
    app.include_router(ops.v1_fallback, **v1)
    app.include_router(ops.router)
    add_docs(app)
    if hasattr(assistant, "jobs"):
        assistant.jobs.listeners.append(service.job_finished)

    app.state.started = time.time()
    app.add_middleware(BodyLimit, upload_limit=max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SameOriginWrites)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHost, allowed_hosts=allowed_hosts)
    app.add_middleware(SecurityHeaders)  # every answer carries them, rejections included
    mode = access_log_mode()
    if mode != "off":
        app.add_middleware(AccessLog, mode=mode)  # outermost: every request is logged, rejections included
    if with_ui:
        mount_ui(app, assistant, keys)
    return app


DOCS_ASSETS = "/docs/assets"


def add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its JavaScript, CSS and icon served from the installed
    swagger-ui-bundle-v2 package (Swagger UI 5, for OpenAPI 3.1) instead of a CDN."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    oauth2_url = app.swagger_ui_oauth2_redirect_url

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request):
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=root + app.openapi_url, title=f"{app.title} - Swagger UI",
                                   oauth2_redirect_url=root + oauth2_url,
                                   swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png")

    @app.get(oauth2_url, include_in_schema=False)
    async def swagger_ui_redirect():
        return get_swagger_ui_oauth2_redirect_html()


def mount_ui(app: FastAPI, assistant, keys: KeyConfig) -> bool:
    """Mount the chat page at '/' when the UI package is there; the API works without it."""
    try:
        import ui.app as ui_app
    except ImportError as exc:
        log.info("chat page not mounted (ui.app not importable: %s)", exc)
        return False
    import gradio as gr

    try:
        blocks = ui_app.build_ui(assistant)
    except Exception:  # a broken chat page must not take the API down with it
        log.exception("chat page not mounted: ui.app.build_ui failed; the API runs without it")
        return False
    auth_dependency = None
    if keys.enabled:
        # With keys configured the page is not open either: the page's own login (rag/api/login.py)
        # takes an API key; the session's role is the page's user name ("admin" may upload).
        from .login import install_login

        auth_dependency = install_login(app, keys)
    gr.mount_gradio_app(app, blocks, path="/", auth_dependency=auth_dependency,
                        footer_links=getattr(ui_app, "FOOTER_LINKS", None))
    app.state.ui_mounted = True
    return True
