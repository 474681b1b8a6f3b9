"""HTTP API (FastAPI) over the one `Assistant`: ask, search, documents, OpenAI-compatible chat.

`create_app()` builds the app; `rag serve` runs it with uvicorn.  Every route
under `/v1` answers JSON (or Server-Sent Events when streaming); every bad
input gets a 4xx `{"error": {"code", "message", ...}}` naming the problem.
The chat page (`ui.app.build_ui`, when present) is mounted at `/`, after the
API routes, so `/v1`, `/healthz`, `/metrics` and `/docs` keep precedence.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from urllib.parse import urlsplit
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi import params as fastapi_params
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette._utils import parse_host_header
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .config import MAX_QUESTION_CHARS, Settings
from .generate import backend_status
from .ingest import MAX_FIELD_CHARS, MAX_TITLE_CHARS, DocumentError, check_doc_id, max_upload_bytes
from .metrics import Metrics, MetricsMiddleware
from .query_batch import BatchingQueryEmbedder
from .security import ADMIN, KeyConfig
from .service import MAX_K, QuestionError

log = logging.getLogger(__name__)

MODEL_ID = "zhengce-rag"
MAX_HISTORY = 50
MAX_MESSAGE_CHARS = 20000
MAX_DOC_FILTER = 20
JSON_BODY_LIMIT = 4 * 1024 * 1024
EXAMPLE_QUESTION = "深圳到2025年集成电路产业营收目标是多少？"
EXAMPLE_CITATION = {
    "n": 1, "doc_id": "shenzhen-2022", "doc_title": "深圳市培育发展半导体与集成电路产业集群行动计划（2022-2025年）",
    "clause_id": "二.(一)", "chunk_id": "二.(一)", "section": "二、工作目标 > (一)产业规模持续增长",
    "text": "(一) 产业规模持续增长。到2025年，产业营收突破2500亿元，……", "score": 0.032787,
}


# -- errors ----------------------------------------------------------------------------

class ApiError(Exception):
    """A 4xx (or 5xx) answer with our JSON error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.param = status, code, message, headers, param


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error",
                413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
                429: "rate_limit_error"}


def error_body(status: int, code: str, message: str, param: str | None = None, details: list | None = None) -> dict:
    """Our error shape; also valid for OpenAI SDK clients (`error.message`, `error.type`, `error.code`)."""
    err: dict[str, Any] = {"code": code, "message": message, "type": _ERROR_TYPES.get(status, "server_error")}
    if param:
        err["param"] = param
    if details:
        err["details"] = details
    return {"error": err}


def _json_error(status: int, code: str, message: str, headers: dict | None = None, **kw) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, **kw), status_code=status, headers=headers)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_question"])
    message: str = Field(examples=["问题为空 (empty question)"])
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = None
    details: list[dict] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _errors(*codes: int) -> dict:
    return {c: {"model": ErrorResponse, "description": _STATUS_TEXT.get(c, "Error")} for c in codes}


_STATUS_TEXT = {400: "Bad input", 401: "Missing or invalid API key", 403: "Not allowed",
                404: "Unknown document or clause", 409: "Duplicate document", 413: "File or body too large",
                415: "Unsupported media type", 422: "Invalid request", 429: "Busy: retry after `Retry-After` seconds"}


# -- reading JSON bodies --------------------------------------------------------------------
# One rule for bad requests: 400 when the body cannot be read as JSON at all, 422 when it is JSON but a
# value fails validation (types are strict: `k` must be a JSON integer, not "5", 5.0 or true).

MAX_JSON_DEPTH = 32  # our bodies nest 5 levels deep at most (RFC 8259 section 9 lets a parser limit it)


def _not_json_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]}… is too large")
    return value


def _depth(value) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_JSON_DEPTH:
                stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def parse_json_body(raw: bytes):
    """The request body as JSON, or ApiError 400 `invalid_json` saying why it cannot be read: not UTF-8,
    a syntax error, NaN/Infinity, a number too large to represent, nesting deeper than MAX_JSON_DEPTH."""
    def bad(why: str) -> ApiError:
        return ApiError(400, "invalid_json", f"the request body is not valid JSON: {why}")

    if not raw.strip():
        raise bad("it is empty (send a JSON object)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_not_json_constant, parse_float=_finite_float)
    except RecursionError:
        raise bad(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise bad(f"{exc.msg} at character {exc.pos}") from None
    except ValueError as exc:  # a constant, a float out of range, an integer of more than 4300 digits
        why = str(exc)
        raise bad("an integer of more than 4300 digits" if "integer string conversion" in why else why[:200]) \
            from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise bad(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _json_content(content_type: str | None) -> bool:
    """What FastAPI reads as JSON: no Content-Type, or application/json and application/*+json."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class StrictJSONRoute(APIRoute):
    """Reads a JSON body with `parse_json_body` before FastAPI does: a body that is not JSON is a 400,
    whatever the reason (FastAPI alone answers a syntax error with 422, bad UTF-8 or deep nesting with 400);
    a body declared as something else (form, text) is a 415."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, fastapi_params.Form):
            return handler  # no body, or a form (uploads: multipart, checked by _BodyLimit)

        async def read_json_first(request: Request):
            if not _json_content(request.headers.get("content-type")):
                # Never read as JSON (a cross-site form post cannot pass as an API call): say what to send.
                raise ApiError(415, "unsupported_media_type", "send the request body as JSON "
                               "(Content-Type: application/json)")
            request._json = parse_json_body(await request.body())  # FastAPI's request.json() returns it
            return await handler(request)

        return read_json_first


# -- request / response models -----------------------------------------------------------

Backend = Literal["extractive", "openai", "llamacpp"]
BACKEND_HELP = ("Who writes the answer: `extractive` (quoted sentences, no model), `llamacpp` (the local GGUF "
                "model) or `openai` (the configured OpenAI-compatible endpoint); default: the server's "
                "RAG_BACKEND, else extractive.  A generated answer is verified against the cited clauses; "
                "when it fails, the extractive answer is returned with `verified: false` and a `fallback_reason`.")


class HistoryMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"question": EXAMPLE_QUESTION},
        {"question": "那苏州工业园区呢？", "history": [{"role": "user", "content": EXAMPLE_QUESTION},
                                                 {"role": "assistant", "content": "到2025年，产业营收突破2500亿元[1]。"}]},
        {"question": "有哪些人才政策？", "documents": ["suzhou-sip-2022"], "k": 5, "stream": True},
    ]})
    question: str = Field(description=f"The question, 1-{MAX_QUESTION_CHARS} characters (Chinese or English)",
                          max_length=MAX_QUESTION_CHARS * 4, examples=[EXAMPLE_QUESTION])
    k: int | None = Field(None, ge=1, le=MAX_K, description="How many clauses to retrieve (default: server setting)")
    documents: list[str] | None = Field(None, max_length=MAX_DOC_FILTER,
                                        description="Restrict to these doc_ids (see GET /v1/documents)")
    history: list[HistoryMessage] | None = Field(None, max_length=MAX_HISTORY,
                                                 description="Earlier turns, oldest first: follow-ups are rewritten")
    mode: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Retrieval mode")
    backend: Backend | None = Field(None, description=BACKEND_HELP)
    stream: bool = Field(False, description="Answer as Server-Sent Events: text deltas, citations, [DONE]")


class Citation(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE_CITATION]})
    n: int
    doc_id: str
    doc_title: str
    clause_id: str
    chunk_id: str
    section: str
    text: str
    score: float


class AskResponse(BaseModel):
    """Same object as `rag ask --json`."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "question": EXAMPLE_QUESTION, "answer": "根据《深圳市培育发展半导体与集成电路产业集群行动计划（2022-2025年）》："
        "到2025年，产业营收突破2500亿元，……[1]。", "refused": False, "citations": [EXAMPLE_CITATION],
        "timings_ms": {"rewrite": 0.01, "retrieve": 9.8, "answer": 3.1, "total": 12.9}, "backend": "extractive"}]})
    question: str
    answer: str
    refused: bool
    citations: list[Citation]
    timings_ms: dict[str, float]
    backend: str
    reason: str | None = Field(None, description="Why the question was refused (refusals only)")
    rewritten_question: str | None = Field(None, description="Standalone form of a follow-up question")
    verified: bool | None = Field(None, description="Generative backends: true = the model's answer passed "
                                  "verification; false = this is the extractive fallback")
    fallback_reason: str | None = Field(None, description="Why a generated answer was replaced by the extractive one")
    dropped_sentences: int | None = Field(None, description="Unsupported generated sentences that were removed")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"query": "第三代半导体", "k": 5}, {"query": "人才", "documents": ["qingpu-2023"], "mode": "bm25"}]})
    query: str = Field(description=f"Search text, 1-{MAX_QUESTION_CHARS} characters", max_length=MAX_QUESTION_CHARS * 4)
    k: int = Field(10, ge=1, le=MAX_K)
    documents: list[str] | None = Field(None, max_length=MAX_DOC_FILTER)
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="allow")
    rank: int
    doc_id: str
    doc_title: str
    clause_id: str
    chunk_id: str
    section: str
    text: str
    score: float


class SearchResponse(BaseModel):
    query: str
    results: list[SearchHit]
    searched_documents: list[str] | None = Field(description="Documents searched (null = all)")
    routed_documents: list[str] = Field(description="Documents the query names (used unless `documents` is given)")
    timings_ms: dict[str, float]


class UploadInfo(BaseModel):
    filename: str
    kind: str
    media_type: str
    bytes: int
    sha256: str
    text_sha256: str
    uploaded_at: str


class DocumentOut(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "doc_id": "shenzhen-2022", "title": "深圳市培育发展半导体与集成电路产业集群行动计划（2022-2025年）",
        "short_title": "深圳半导体与集成电路行动计划", "issuer": "深圳市", "doc_number": None, "date": "2022",
        "region": "广东省深圳市", "aliases": ["深圳", "Shenzhen"], "weak_aliases": [], "note": None,
        "file": "001_b119eaaaf552dd72.txt", "source": "seed", "clause_count": 61, "chunk_count": 64, "upload": None}]})
    doc_id: str
    title: str
    short_title: str
    issuer: str
    doc_number: str | None
    date: str
    region: str
    aliases: list[str]
    weak_aliases: list[str]
    note: str | None
    file: str
    source: Literal["seed", "upload"] = Field(description="Seed documents ship with the project and cannot be deleted")
    clause_count: int
    chunk_count: int
    upload: UploadInfo | None = Field(None, description="Where an uploaded document came from")


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class OutlineHeading(BaseModel):
    id: str = Field(examples=["二.(一)"])
    marker: str
    title: str
    level: float
    path: list[str]
    clause_ids: list[str] = Field(description="Clauses directly under this heading")


class ClauseSummary(BaseModel):
    clause_id: str
    section: str
    preview: str
    chars: int
    line_start: int
    line_end: int


class DocumentDetail(DocumentOut):
    outline: list[OutlineHeading]
    clauses: list[ClauseSummary]


class ClauseOut(BaseModel):
    clause_id: str
    section: str
    section_path: list[str]
    text: str
    line_start: int
    line_end: int
    responsible: str | None = None
    chunk_ids: list[str]


class ClauseContext(BaseModel):
    doc_id: str
    doc_title: str
    clause: ClauseOut
    before: list[ClauseOut] = Field(description="Up to `context` preceding clauses, in document order")
    after: list[ClauseOut] = Field(description="Up to `context` following clauses, in document order")


class JobProgress(BaseModel):
    chunks_embedded: int
    chunks_total: int
    sentences_embedded: int
    sentences_total: int
    percent: float


class JobError(BaseModel):
    status: int = Field(description="The HTTP status a synchronous upload would have had")
    code: str
    message: str


class JobOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "4f1c2b8e9a7d4e0f8b6a5c3d2e1f0a9b", "status": "running", "doc_id": "guangzhou-2026",
        "title": "广州市集成电路产业行动计划", "filename": "广州计划.pdf", "created_at": "2026-03-01T10:00:00+0800",
        "started_at": "2026-03-01T10:00:00+0800", "finished_at": None, "attempts": 1,
        "progress": {"chunks_embedded": 420, "chunks_total": 1500, "sentences_embedded": 0,
                     "sentences_total": 2100, "percent": 11.7}, "error": None, "document": None}]})
    id: str
    status: Literal["queued", "running", "done", "failed"]
    doc_id: str
    title: str
    filename: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int = Field(description="Runs so far: more than 1 after the server was restarted during the job")
    progress: JobProgress
    error: JobError | None = Field(description="Why the job failed (failed only)")
    document: DocumentOut | None = Field(None, description="The uploaded document, when done")


class JobResponse(BaseModel):
    job: JobOut


class JobList(BaseModel):
    jobs: list[JobOut]


class DeleteResponse(BaseModel):
    deleted: str
    documents: int = Field(description="Documents left in the index")


class HealthResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["ok", "degraded"] = Field(description="`degraded`: damage was found and repaired at start-up "
                                              "(see `reason`); stays until an operator runs `rag index build`")
    reason: str | None = Field(None, description="What was damaged and what was done about it (degraded only)")
    index_loaded: bool
    index_status: str
    model: str
    documents: int
    uploads: int
    clauses: int
    chunks: int
    built_at: str | None = None
    auth: Literal["api_keys", "open_loopback_only"]
    backends: dict[str, dict[str, Any]] = Field(
        description="Answer backends and whether each can answer now (`detail` says why not)")
    jobs: dict[str, int] | None = Field(None, description="Upload jobs by status (queued, running, done, failed)")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """OpenAI chat-completions request; sampling parameters are accepted and ignored (answers are extractive)."""

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra={"examples": [
        {"model": MODEL_ID, "messages": [{"role": "user", "content": EXAMPLE_QUESTION}]},
        {"model": MODEL_ID, "stream": True, "messages": [
            {"role": "user", "content": EXAMPLE_QUESTION}, {"role": "assistant", "content": "……"},
            {"role": "user", "content": "那苏州工业园区呢？"}]}]})
    model: str = Field(MODEL_ID, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_HISTORY * 2 + 10)
    stream: bool = False
    k: int | None = Field(None, ge=1, le=MAX_K, description="Extension: clauses to retrieve")
    documents: list[str] | None = Field(None, max_length=MAX_DOC_FILTER, description="Extension: doc_id filter")
    backend: Backend | None = Field(None, description="Extension: " + BACKEND_HELP)


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatChoiceMessage
    finish_reason: str


class ChatResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    citations: list[Citation] = Field(description="Extension: the cited clauses, structured")
    refused: bool = Field(description="Extension: true when the plans do not answer the question")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


# -- formatting -------------------------------------------------------------------------

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


_PIECE = re.compile(r".+?(?:\[\d+\][。；！？.;]?|[，。；！？：、,.;!?:\n]|$)", re.S)


def text_pieces(text: str, max_chars: int = 24) -> list[str]:
    """Split an answer into small deltas at punctuation and citation marks (the stream's pieces)."""
    pieces = []
    for m in _PIECE.finditer(text):
        piece = m.group(0)
        while len(piece) > max_chars:
            pieces.append(piece[:max_chars])
            piece = piece[max_chars:]
        if piece:
            pieces.append(piece)
    assert "".join(pieces) == text
    return pieces


def sse_event_schema(data_description: str) -> dict:
    """OpenAPI 3.1 schema of one Server-Sent Event (the `schema` of a text/event-stream entry)."""
    return {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "string", "description": data_description},
        "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer", "minimum": 0}}}


def _sse(data: Any) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _message_text(msg: ChatMessage) -> str:
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
    turns = [(m.role, _message_text(m)) for m in req.messages if m.role in ("user", "assistant")]
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


# -- the app ----------------------------------------------------------------------------------

class BodyTooLarge(StarletteHTTPException):
    """A body (without Content-Length) grew past the limit while it was read."""

    def __init__(self, message: str):
        super().__init__(status_code=413, detail=message)


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", b"frame-ancestors 'none'")]


class _SecurityHeaders:
    """nosniff, no framing (clickjacking), on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _TrustedHost(TrustedHostMiddleware):
    """Starlette's Host check (DNS rebinding: a page whose name now points at 127.0.0.1), our error body."""

    async def __call__(self, scope, receive, send):
        if self.allow_any or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        parsed = parse_host_header(Headers(scope=scope).get("host"))
        host = parsed.host.strip("[]").lower() if parsed else ""
        if host and any(host == p or (p.startswith("*") and host.endswith(p[1:])) for p in self.allowed_hosts):
            await self.app(scope, receive, send)
            return
        await _json_error(400, "invalid_host", f"unknown Host header {host or '(none)'!r}: this server answers "
                          f"{', '.join(self.allowed_hosts)} (add names with RAG_ALLOWED_HOSTS)")(scope, receive, send)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(origin: str, host_header: str | None) -> bool:
    """Does the browser's `Origin` name the host:port this request was sent to (its Host header)?"""
    try:
        o = urlsplit(origin)
        if o.scheme not in _DEFAULT_PORTS or not o.hostname:
            return False  # "null" (sandboxed frames, file: pages) and other schemes are never same-origin
        o_port = o.port or _DEFAULT_PORTS[o.scheme]
    except ValueError:
        return False
    parsed = parse_host_header(host_header)
    if parsed is None:
        return False
    try:
        port = int(parsed.port) if parsed.port else _DEFAULT_PORTS[o.scheme]
    except ValueError:
        return False
    return parsed.host.strip("[]").lower() == o.hostname.lower() and port == o_port


class _SameOriginWrites:
    """Refuses cross-site writes (403): a web page open in a browser on this machine must not upload
    or delete through an open (keyless, loopback) server.  Requests without an `Origin` (curl, SDKs,
    the CLI) are not from a browser page and pass; so do the chat page's own same-origin calls."""

    WRITES = ("POST", "PUT", "PATCH", "DELETE")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in self.WRITES:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin, fetch_site = headers.get("origin"), (headers.get("sec-fetch-site") or "").lower()
        if fetch_site == "cross-site" or (origin is not None and not _same_origin(origin, headers.get("host"))):
            await _json_error(403, "cross_origin_write",
                              f"{scope['method']} from another site refused (Origin {origin or '(none)'}, "
                              f"Sec-Fetch-Site {fetch_site or '(none)'})")(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _BodyLimit:
    """Rejects over-large bodies before they are parsed (413), and non-multipart uploads (415)."""

    def __init__(self, app, upload_limit):
        self.app = app
        self.upload_limit = upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        is_upload = path.rstrip("/") == "/v1/documents"
        limit = self.upload_limit() + 1024 * 1024 if is_upload else JSON_BODY_LIMIT
        what = "file" if is_upload else "request body"
        if is_upload and not headers.get("content-type", "").lower().startswith("multipart/form-data"):
            await _json_error(415, "unsupported_media_type",
                              "upload a file as multipart/form-data (field `file`)")(scope, receive, send)
            return
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            await _json_error(413, "file_too_large" if is_upload else "body_too_large",
                              f"{what} too large: {declared / 1048576:.1f} MB, limit {limit / 1048576:g} MB"
                              )(scope, receive, send)
            return
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"{what} larger than {limit / 1048576:g} MB")
            return message

        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except BodyTooLarge:  # raised outside FastAPI's handlers; inside, they answer 413 themselves
            if not started:
                await _json_error(413, "body_too_large", f"{what} larger than {limit / 1048576:g} MB"
                                  )(scope, receive, send)


def create_app(assistant=None, settings: Settings | None = None, keys: KeyConfig | None = None,
               with_ui: bool = True, metrics: Metrics | None = None, batch_queries: bool = True,
               allowed_hosts: list[str] | None = None, metrics_public: bool | None = None) -> FastAPI:
    """The HTTP app over `assistant` (built from `settings` when not given).

    `keys` defaults to RAG_API_KEYS / RAG_ADMIN_KEYS; `with_ui` mounts the chat
    page at `/` when `ui.app` is importable; `batch_queries` wraps the
    assistant's embedder so concurrent requests share model calls (rag/query_batch.py).
    `allowed_hosts` (`rag serve` passes `rag.security.allowed_hosts`) are the Host header values
    answered, others get 400; None checks no Host.  `metrics_public` (default RAG_METRICS_PUBLIC=1)
    leaves /metrics open when keys are configured.
    """
    if assistant is None:
        from .service import Assistant

        assistant = Assistant(settings or Settings())
    if batch_queries and hasattr(assistant, "embedder") and not isinstance(assistant.embedder, BatchingQueryEmbedder):
        assistant.embedder = BatchingQueryEmbedder(assistant.embedder)
    keys = keys if keys is not None else KeyConfig.from_env()
    metrics = metrics or Metrics()
    if isinstance(getattr(assistant, "embedder", None), BatchingQueryEmbedder):
        metrics.track_embedder(assistant.embedder)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        jobs = getattr(assistant, "jobs", None)
        if jobs is not None:  # upload jobs a crash or restart interrupted run again (rag/jobs.py)
            await run_in_threadpool(jobs.resume)
        yield
        if jobs is not None:  # a running job stops at its next batch and runs again at the next start
            await run_in_threadpool(jobs.shutdown, 10.0)

    app = FastAPI(
        lifespan=lifespan,
        title="政策问答 API",
        version="1.0",
        description=(
            "Cited answers from Chinese integrated-circuit industry plans.\n\n"
            "Every answer cites the clauses it rests on (document, clause id, section path, text). "
            "With API keys configured (RAG_API_KEYS, RAG_ADMIN_KEYS), `/v1` calls need "
            "`Authorization: Bearer <key>`; uploads and deletes need an admin key. "
            "Errors are `{\"error\": {\"code\", \"message\", \"type\"}}` with a 4xx status."),
        openapi_tags=[
            {"name": "questions", "description": "Ask and search"},
            {"name": "documents", "description": "The plans: list, outline, clause in context, upload, delete"},
            {"name": "openai", "description": "OpenAI-compatible chat completions"},
            {"name": "ops", "description": "Health and metrics"},
        ],
    )
    app.state.assistant = assistant
    app.state.metrics = metrics
    app.state.keys = keys

    # -- error handlers: every failure becomes our JSON error body --
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _json_error(exc.status, exc.code, exc.message, headers=exc.headers, param=exc.param)

    @app.exception_handler(QuestionError)
    async def _question_error(request: Request, exc: QuestionError):
        return _json_error(422, "invalid_question", str(exc))

    @app.exception_handler(DocumentError)
    async def _document_error(request: Request, exc: DocumentError):
        headers = {"Retry-After": str(exc.retry_after)} if getattr(exc, "retry_after", None) else None
        return _json_error(exc.status, exc.code, str(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        if any(e.get("type") == "json_invalid" for e in exc.errors()):  # routes outside /v1 (none read JSON now)
            return _json_error(400, "invalid_json", "the request body is not valid JSON")
        details = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ()) if x not in ("body",)]
            details.append({"loc": ".".join(loc), "message": e.get("msg", ""), "type": e.get("type", "")})
        summary = "; ".join(f"{d['loc'] or 'body'}: {d['message']}" for d in details[:5]) or "invalid request"
        return _json_error(422, "invalid_request", summary, details=details,
                           param=details[0]["loc"] if details else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed",
                413: "body_too_large"}.get(exc.status_code, "http_error")
        return _json_error(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _json_error(500, "internal_error", "internal error; the server log has the details")

    # -- auth --
    bearer = HTTPBearer(auto_error=False, description="API key (RAG_API_KEYS or RAG_ADMIN_KEYS)")

    def _role(credentials: HTTPAuthorizationCredentials | None) -> str:
        if not keys.enabled:
            return ADMIN  # open server, bound to loopback only (see rag.security)
        if credentials is None:
            raise ApiError(401, "missing_api_key", "missing API key: send `Authorization: Bearer <key>`",
                           headers={"WWW-Authenticate": "Bearer"})
        role = keys.role(credentials.credentials)
        if role is None:
            raise ApiError(401, "invalid_api_key", "invalid API key", headers={"WWW-Authenticate": "Bearer"})
        return role

    # async: FastAPI would run plain `def` dependencies in the thread pool, a thread hop per request.
    async def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        return _role(credentials)

    async def require_admin(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        role = _role(credentials)
        if role != ADMIN:
            raise ApiError(403, "admin_key_required", "uploads, deletes and upload jobs need an admin key"
                           + ("" if keys.admin_keys else " (none is configured: set RAG_ADMIN_KEYS)"))
        return role

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=_errors(401, 422),
                   route_class=StrictJSONRoute)
    # The CPU-bound Python part of a query (retrieval, answer) runs in at most RAG_API_CONCURRENCY
    # (default: the core count, at most 4) threads at once; the rest queue here in order.  More threads
    # only fight over the GIL and the event loop, which stretches the latency tail.  Query embeddings
    # are fetched before a slot is taken, so any number of queries still share the model's batches.
    default_slots = min(4, os.cpu_count() or 2)
    work_slots = anyio.Semaphore(max(1, int(os.environ.get("RAG_API_CONCURRENCY", "") or default_slots)))

    # -- questions --
    @v1.post("/ask", tags=["questions"], response_model=AskResponse, response_model_exclude_none=True,
             summary="Answer a question with cited clauses",
             responses={**_errors(400, 413, 415), 200: {"description": "The answer; with `stream: true`, Server-Sent Events",
                                                   "content": {"text/event-stream": {
                                                       "schema": sse_event_schema(
                                                           'JSON `{"type": "delta", "text"}`, then one '
                                                           '`{"type": "citations", "citations", "refused", ...}`, '
                                                           'then the literal `[DONE]`'),
                                                       "example": 'data: {"type": "delta", "text": "到2025年，"}\n\n'
                                                                  'data: {"type": "citations", "citations": []}\n\n'
                                                                  "data: [DONE]\n\n"}}}})
    async def ask(req: AskRequest):
        """Same object as `rag ask --json`.

        With `stream: true` the answer arrives as Server-Sent Events: `{"type": "delta", "text"}`
        pieces of the answer, then one `{"type": "citations", "citations", "refused", ...}` event,
        then `data: [DONE]`.
        """
        history = [h.model_dump() for h in req.history or []]
        if not req.stream:
            return await _ask(req.question, req.k, req.documents, history, req.mode, req.backend)
        pieces = await _answer_pieces(req.question, req.k, req.documents, history, req.mode, req.backend)

        async def events():
            streamed = ""
            async for item in pieces:
                if isinstance(item, str):
                    streamed += item
                    yield _sse({"type": "delta", "text": item})
                    continue
                if item["answer"] != streamed:  # a generated answer fell back: the client shows this instead
                    yield _sse({"type": "replace", "text": item["answer"]})
                rest = {k: v for k, v in item.items() if k != "answer"}
                yield _sse({"type": "citations", **rest})
            yield _sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def prefetch_query_vector(text, mode: str, history=None) -> None:
        """Embed the query before taking a CPU slot (see rag/query_batch.py); a follow-up is rewritten
        by the chain first, so its standalone text is not known here and it is embedded in the slot."""
        emb = getattr(assistant, "embedder", None)
        if mode == "bm25" or history or not isinstance(emb, BatchingQueryEmbedder) or not isinstance(text, str):
            return
        text = text.strip()
        if text and len(text) <= MAX_QUESTION_CHARS and not emb.is_cached(text):
            await run_in_threadpool(emb.prefetch, text)

    async def _ask(question, k, documents, history, mode, backend=None) -> dict:
        if not _generative(backend):
            return await _extractive_answer(question, k, documents, history, mode)
        answer = None
        async for item in await _answer_pieces(question, k, documents, history, mode, backend):
            if isinstance(item, dict):
                answer = item
        return answer

    async def _extractive_answer(question, k, documents, history, mode) -> dict:
        await prefetch_query_vector(question, mode, history)
        async with work_slots:
            result = await run_in_threadpool(assistant.ask, question, k=k, documents=documents, history=history,
                                             mode=mode)
        answer = result.to_dict()
        metrics.observe_answer(answer)
        return answer

    def _generative(backend) -> bool:
        resolve = getattr(assistant, "resolve_backend", None)
        return resolve is not None and resolve(backend) != "extractive"

    async def _answer_pieces(question, k, documents, history, mode, backend=None):
        """Text deltas, then the final answer dict, as an async iterator.  Validation errors raise here.

        Extractive answers are computed at once and cut into pieces.  A generative
        backend streams the model's verified sentences as they come: retrieval
        takes a CPU slot, generation does not (llama.cpp and HTTP clients release
        the GIL, and one local model runs one generation at a time anyway).
        """
        if not _generative(backend):
            answer = await _extractive_answer(question, k, documents, history, mode)

            async def extractive():
                for piece in text_pieces(answer["answer"]):
                    yield piece
                yield answer
            return extractive()
        await prefetch_query_vector(question, mode, history)
        async with work_slots:
            gen = await run_in_threadpool(assistant.ask_stream, question, k=k, documents=documents,
                                          history=history, mode=mode, backend=backend)

        async def generated():
            try:
                async for item in iterate_in_threadpool(gen):
                    if isinstance(item, str):
                        yield item
                    else:
                        answer = item.to_dict()
                        metrics.observe_answer(answer)
                        yield answer
            finally:
                try:
                    gen.close()  # the client left: stop the model at its next token
                except ValueError:  # still running in its worker thread; it ends at max_tokens
                    pass
        return generated()

    @v1.post("/search", tags=["questions"], response_model=SearchResponse, summary="Rank clauses for a query",
             responses=_errors(400, 413, 415))
    async def search_clauses(req: SearchRequest):
        started = time.perf_counter()
        await prefetch_query_vector(req.query, req.mode)
        async with work_slots:
            result = await run_in_threadpool(assistant.search, req.query, k=req.k, documents=req.documents,
                                             mode=req.mode)
        ms = (time.perf_counter() - started) * 1000
        metrics.stage.labels("search").observe(ms / 1000)
        return {"query": req.query,
                "results": [{"rank": i, **h.to_dict()} for i, h in enumerate(result.hits, 1)],
                "searched_documents": result.searched_documents,
                "routed_documents": list(result.route.documents),
                "timings_ms": {"total": round(ms, 2)}}

    # -- documents --
    def _document_out(doc_id: str, snap=None) -> dict:
        snap = snap or assistant.snapshot
        snap_corpus, index = snap.corpus, snap.index
        try:
            info = snap_corpus.document(doc_id)
        except KeyError:
            raise ApiError(404, "unknown_document", f"unknown doc_id {doc_id!r}", param="doc_id") from None
        rows = index.doc_rows.get(doc_id)
        parsed = snap_corpus.parsed.get(doc_id)
        return {**info.to_dict(), "source": "upload" if snap_corpus.is_upload(doc_id) else "seed",
                "clause_count": len(parsed.clauses) if parsed else 0,
                "chunk_count": 0 if rows is None else len(rows),
                "upload": _upload_details(index, doc_id)}

    def _checked_id(doc_id: str) -> str:
        """Known ids pass as they are; an unknown one must at least look like an id (422 if path-like)."""
        if any(d.doc_id == doc_id for d in assistant.corpus.documents):
            return doc_id
        try:
            return check_doc_id(doc_id)
        except DocumentError as exc:
            raise ApiError(exc.status, exc.code, str(exc), param="doc_id") from None

    @v1.get("/documents", tags=["documents"], response_model=DocumentList, summary="List the documents")
    async def list_documents():
        snap = assistant.snapshot
        return {"documents": [_document_out(d.doc_id, snap) for d in snap.corpus.documents]}

    def doc_id_path():  # a fresh Param per route: FastAPI binds each to its parameter
        return Path(description="Document id, e.g. `shenzhen-2022`", examples=["shenzhen-2022"], max_length=200)

    @v1.get("/documents/{doc_id}", tags=["documents"], response_model=DocumentDetail,
            summary="A document's catalog entry and clause outline", responses=_errors(404))
    async def get_document(doc_id: str = doc_id_path()):
        snap = assistant.snapshot
        out = _document_out(_checked_id(doc_id), snap)
        parsed = snap.corpus.parsed[doc_id]
        outline = []
        for h in parsed.headings:
            ids = [c.clause_id for c in parsed.clauses
                   if c.clause_id == h.id or re.fullmatch(re.escape(h.id) + r"\.p\d+", c.clause_id)]
            outline.append({"id": h.id, "marker": h.marker, "title": h.title, "level": h.level,
                            "path": list(h.path), "clause_ids": ids})
        clauses = [{"clause_id": c.clause_id, "section": c.section_path, "preview": c.text[:80],
                    "chars": len(c.text), "line_start": c.line_start, "line_end": c.line_end}
                   for c in parsed.clauses]
        return {**out, "outline": outline, "clauses": clauses}

    @v1.get("/documents/{doc_id}/clauses/{clause_id}", tags=["documents"], response_model=ClauseContext,
            summary="A clause with its neighbours (for 'show in context')", responses=_errors(404))
    async def get_clause(doc_id: str = doc_id_path(),
                         clause_id: str = Path(description="Clause id (or chunk id `id#n`), e.g. `二.(一)`",
                                               examples=["二.(一)"], max_length=200),
                         context: int = Query(2, ge=0, le=20, description="Neighbours on each side")):
        _checked_id(doc_id)
        snap = assistant.snapshot
        corpus, index = snap.corpus, snap.index
        try:
            info = corpus.document(doc_id)
        except KeyError:
            raise ApiError(404, "unknown_document", f"unknown doc_id {doc_id!r}", param="doc_id") from None
        clauses = corpus.parsed[doc_id].clauses
        wanted = clause_id.split("#", 1)[0]
        pos = next((i for i, c in enumerate(clauses) if c.clause_id == wanted), None)
        if pos is None:
            raise ApiError(404, "unknown_clause", f"document {doc_id!r} has no clause {clause_id!r}",
                           param="clause_id")
        chunk_ids: dict[str, list[str]] = {}
        for row in index.doc_rows.get(doc_id, []):
            ch = index.chunks[int(row)]
            chunk_ids.setdefault(ch.clause_id, []).append(ch.chunk_id)

        def out(c):
            return {"clause_id": c.clause_id, "section": c.section_path, "section_path": list(c.section),
                    "text": c.text, "line_start": c.line_start, "line_end": c.line_end,
                    "responsible": c.responsible, "chunk_ids": chunk_ids.get(c.clause_id, [])}

        return {"doc_id": doc_id, "doc_title": info.title, "clause": out(clauses[pos]),
                "before": [out(c) for c in clauses[max(0, pos - context):pos]],
                "after": [out(c) for c in clauses[pos + 1:pos + 1 + context]]}

    @v1.post("/documents", tags=["documents"], status_code=201, response_model=DocumentOut,
             summary="Upload a plan (.txt, .pdf or .docx); admin key", dependencies=[Depends(require_admin)],
             responses={**_errors(400, 403, 409, 413, 415, 429), 202: {
                 "model": JobResponse, "description": "Accepted as a job (large uploads, `wait=false` or "
                 "`Prefer: respond-async`): poll the `Location` (`GET /v1/jobs/{id}`)"}})
    async def upload_document(
        request: Request,
        file: UploadFile = File(description="The plan: .txt (UTF-8 or GB18030), .pdf with a text layer, or .docx"),
        title: str | None = Form(None, description="Document title (default: the file name)",
                                 max_length=MAX_TITLE_CHARS),
        issuer: str = Form("", description="Issuing body, e.g. 广州市人民政府", max_length=MAX_FIELD_CHARS),
        date: str = Form("", description="YYYY, YYYY-MM or YYYY-MM-DD", max_length=MAX_FIELD_CHARS),
        region: str = Form("", description="Region, e.g. 广东省广州市", max_length=MAX_FIELD_CHARS),
        doc_id: str | None = Form(None, description="Id to use (default: from the file name)", max_length=200),
        aliases: str = Form("", description="Comma-separated names that route questions here, e.g. 广州,Guangzhou",
                            max_length=2000),
        wait: bool | None = Query(None, description="`true`: answer when indexed (201) whatever the size; "
                                  "`false`: answer at once with a job (202).  Default: a job when the document "
                                  "has more than RAG_ASYNC_UPLOAD_CHUNKS (200) chunks"),
    ):
        """Parsed into clauses, embedded and added to both indexes; persisted atomically, searchable when done.

        Small documents are indexed before the answer (201, the document).  Large ones (more chunks than
        RAG_ASYNC_UPLOAD_CHUNKS, default 200), or any with `wait=false` or `Prefer: respond-async`, are
        accepted as a job: 202 with `{"job": …}` and `Location: /v1/jobs/{id}`, once the text is durable
        in the document store.  Errors: 409 duplicate (same id, title or text), 413 too large
        (RAG_MAX_UPLOAD_MB, default 20), 415 wrong type or content not matching the extension, 422 a bad
        field or an unreadable file, 429 busy (another upload, delete or job holds the writer).
        A failed upload changes nothing.
        """
        limit = max_upload_bytes()
        content = await file.read(limit + 1)
        filename = file.filename or ""
        started = time.perf_counter()
        try:
            prepared = await run_in_threadpool(
                assistant.prepare_upload, filename, content,
                title if title not in (None, "") else _default_title(filename),
                issuer=issuer, date=date, region=region, doc_id=doc_id or None, aliases=aliases)
            if wait is None:
                prefer = request.headers.get("prefer", "").lower()
                wait = not ("respond-async" in prefer or len(prepared.chunks) > async_upload_chunks())
            if not wait:
                job = await run_in_threadpool(assistant.jobs.submit, prepared)
                metrics.documents.labels("upload", "accepted").inc()
                return JSONResponse({"job": _job_out(job)}, status_code=202,
                                    headers={"Location": f"/v1/jobs/{job.id}"})
            info = await run_in_threadpool(assistant.add_prepared, prepared)
        except DocumentError as exc:
            metrics.documents.labels("upload", exc.code).inc()
            raise
        metrics.documents.labels("upload", "ok").inc()
        metrics.stage.labels("upload").observe(time.perf_counter() - started)
        return _document_out(info.doc_id)

    def _job_out(job) -> dict:
        out = job.public()
        if job.status == "done":
            try:
                out["document"] = _document_out(job.doc_id)
            except ApiError:  # deleted since
                out["document"] = None
        return out

    def job_finished(job) -> None:  # the jobs' worker thread: count the outcome as a synchronous upload would
        metrics.documents.labels("upload", "ok" if job.status == "done" else job.error["code"]).inc()
        if job.status == "done" and job.finished and job.created:
            metrics.stage.labels("upload").observe(max(0.0, job.finished - job.created))

    if hasattr(assistant, "jobs"):
        assistant.jobs.listeners.append(job_finished)

    @v1.get("/jobs/{job_id}", tags=["documents"], response_model=JobResponse, response_model_exclude_none=False,
            summary="An upload job: status, progress, the document when done; admin key",
            dependencies=[Depends(require_admin)], responses=_errors(403, 404))
    async def get_job(job_id: str = Path(description="The id from the upload's 202 answer", max_length=64)):
        """`queued` → `running` (with progress) → `done` (with the document) or `failed` (with the error).
        Jobs interrupted by a restart are run again when the server starts (`attempts` counts the runs)."""
        job = assistant.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "unknown_job", f"no upload job {job_id!r} (finished jobs are kept for "
                           "RAG_JOB_KEEP_DAYS days)", param="job_id")
        return {"job": _job_out(job)}

    @v1.get("/jobs", tags=["documents"], response_model=JobList, summary="Upload jobs, newest first; admin key",
            dependencies=[Depends(require_admin)], responses=_errors(403))
    async def list_jobs():
        return {"jobs": [_job_out(j) for j in assistant.jobs.list()]}

    @v1.delete("/documents/{doc_id}", tags=["documents"], response_model=DeleteResponse,
               summary="Remove an uploaded document; admin key", dependencies=[Depends(require_admin)],
               responses=_errors(403, 404, 429))
    async def delete_document(doc_id: str = doc_id_path()):
        """Removes the document from both indexes, atomically. Seed documents cannot be deleted (403)."""
        _checked_id(doc_id)
        started = time.perf_counter()
        try:
            await run_in_threadpool(assistant.remove_document, doc_id)
        except DocumentError as exc:
            metrics.documents.labels("delete", exc.code).inc()
            raise
        metrics.documents.labels("delete", "ok").inc()
        metrics.stage.labels("delete").observe(time.perf_counter() - started)
        return {"deleted": doc_id, "documents": len(assistant.corpus.documents)}

    # -- OpenAI-compatible --
    @v1.get("/models", tags=["openai"], response_model=ModelList, summary="OpenAI-compatible model list")
    async def list_models():
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": int(app.state.started),
                                            "owned_by": "zhengce-rag"}]}

    @v1.post("/chat/completions", tags=["openai"], response_model=ChatResponse,
             summary="OpenAI-compatible chat completions (non-streaming and streaming)",
             responses={**_errors(400, 413, 415), 200: {
                 "description": "A chat.completion, or with `stream: true` chat.completion.chunk events",
                 "content": {"text/event-stream": {"schema": sse_event_schema(
                     "JSON `chat.completion.chunk` objects (the last one with `citations`), then the literal "
                     "`[DONE]`")}}}})
    async def chat_completions(req: ChatRequest):
        """The last user message is the question, earlier messages the history.

        The message content holds the answer and a references block; the extra
        top-level `citations` field has the cited clauses as structured data
        (also on the last streamed chunk).
        """
        question, history = chat_to_question(req)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:  # validation errors raise here, before the 200 of the stream
            pieces = await _answer_pieces(question, req.k, req.documents, history, "hybrid", req.backend)
            return StreamingResponse(_chat_events(req, pieces, cid, created),
                                     media_type="text/event-stream", headers=_SSE_HEADERS)
        answer = await _ask(question, req.k, req.documents, history, "hybrid", req.backend)
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
            return _sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
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
        yield _sse("[DONE]")

    @v1.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def unknown_v1(request: Request, rest: str):
        # Without this, unknown /v1 paths would fall through to the chat page mounted at "/".
        scope = {"type": "http", "path": request.url.path, "root_path": "", "method": "__none__"}
        for route in v1.routes:
            if getattr(route, "path", None) != "/v1/{rest:path}" and hasattr(route, "methods"):
                match, _ = route.matches(scope)
                if match.name == "PARTIAL":
                    allowed = sorted(m for r in v1.routes if getattr(r, "path", None) == route.path
                                     for m in (r.methods or ()))
                    raise ApiError(405, "method_not_allowed",
                                   f"{request.method} is not allowed on {request.url.path} (allowed: {', '.join(allowed)})",
                                   headers={"Allow": ", ".join(allowed)})
        raise ApiError(404, "not_found", f"no endpoint {request.url.path}")

    app.include_router(v1)

    # -- ops --
    @app.get("/healthz", tags=["ops"], response_model=HealthResponse, summary="Liveness and index state")
    async def healthz():
        index = assistant.index
        m = index.manifest
        health = assistant.health() if hasattr(assistant, "health") else {"status": "ok"}
        return {**health, "index_loaded": len(index) > 0, "index_status": assistant.index_status,
                "model": assistant.settings.embed_model, "documents": len(index.doc_ids),
                "uploads": len(index.uploads.entries), "clauses": int(m.get("clause_count", 0)),
                "chunks": len(index), "built_at": m.get("built_at"),
                "auth": "api_keys" if keys.enabled else "open_loopback_only",
                **({"jobs": assistant.jobs.counts()} if hasattr(assistant, "jobs") else {}),
                "backends": {name: {"available": why is None, **({"detail": why} if why else {})}
                             for name, why in backend_status().items()}}

    if metrics_public is None:
        metrics_public = os.environ.get("RAG_METRICS_PUBLIC", "").strip().lower() in ("1", "true", "yes")

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response,
             dependencies=[] if metrics_public else [Depends(require_key)],
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **_errors(401)})
    async def prometheus_metrics():
        body, content_type = metrics.render(assistant)
        return Response(body, media_type=content_type)

    app.state.started = time.time()
    app.add_middleware(_BodyLimit, upload_limit=max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(_SameOriginWrites)
    if allowed_hosts is not None:
        app.add_middleware(_TrustedHost, allowed_hosts=allowed_hosts)
    app.add_middleware(_SecurityHeaders)  # outermost: every answer carries them, rejections included
    if with_ui:
        _mount_ui(app, assistant, keys)
    return app


def _upload_details(index, doc_id: str) -> dict | None:
    for entry in index.uploads.entries:
        if entry["doc_id"] == doc_id:
            return dict(entry.get("upload") or {})
    return None


def async_upload_chunks() -> int:
    """RAG_ASYNC_UPLOAD_CHUNKS (default 200): uploads with more chunks are answered with a job (202)."""
    try:
        return max(0, int(os.environ.get("RAG_ASYNC_UPLOAD_CHUNKS", "") or 200))
    except ValueError:
        return 200


def _default_title(filename: str) -> str:
    return os.path.splitext(os.path.basename(filename or ""))[0].strip() or "未命名文档"


def _mount_ui(app: FastAPI, assistant, keys: KeyConfig) -> bool:
    """Mount the chat page at '/' when the UI package is there; the API works without it."""
    try:
        from ui.app import build_ui
    except ImportError as exc:
        log.info("chat page not mounted (ui.app not importable: %s)", exc)
        return False
    import gradio as gr

    try:
        blocks = build_ui(assistant)
    except Exception:  # a broken chat page must not take the API down with it
        log.exception("chat page not mounted: ui.app.build_ui failed; the API runs without it")
        return False
    auth = None
    if keys.enabled:
        # With keys configured the page is not open either: log in with any name and an API key as password.
        auth = lambda _user, password: keys.role(password) is not None  # noqa: E731
    gr.mount_gradio_app(app, blocks, path="/", auth=auth,
                        auth_message="输入任意用户名，密码填 API key (any user name; an API key as password)"
                        if auth else None)
    app.state.ui_mounted = True
    return True
