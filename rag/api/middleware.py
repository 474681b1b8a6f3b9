"""ASGI middleware of the API: security headers, Host check, same-origin writes, body limits, access log."""

from __future__ import annotations

import json
import logging
import os
import time
from urllib.parse import urlsplit

from starlette._utils import parse_host_header
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .errors import json_error, scope_language
from .json_body import JSON_BODY_LIMIT


class BodyTooLarge(StarletteHTTPException):
    """A body (without Content-Length) grew past the limit while it was read."""

    def __init__(self, message: str):
        super().__init__(status_code=413, detail=message)


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", b"frame-ancestors 'none'")]


class SecurityHeaders:
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


class TrustedHost(TrustedHostMiddleware):
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
        zh = scope_language(scope) == "zh"
        message = (f"未知的 Host 头 {host or '(无)'!r}：本服务只响应 {', '.join(self.allowed_hosts)}"
                   "（用 RAG_ALLOWED_HOSTS 添加名称）") if zh else (
            f"unknown Host header {host or '(none)'!r}: this server answers "
            f"{', '.join(self.allowed_hosts)} (add names with RAG_ALLOWED_HOSTS)")
        await json_error(400, "invalid_host", message)(scope, receive, send)


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


class SameOriginWrites:
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
            where = f"Origin {origin or '(none)'}, Sec-Fetch-Site {fetch_site or '(none)'}"
            message = (f"拒绝来自其他网站的 {scope['method']}（{where}）" if scope_language(scope) == "zh"
                       else f"{scope['method']} from another site refused ({where})")
            await json_error(403, "cross_origin_write", message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimit:
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
            await json_error(415, "unsupported_media_type", "请以 multipart/form-data 上传文件（字段 `file`）"
                             if scope_language(scope) == "zh" else
                             "upload a file as multipart/form-data (field `file`)")(scope, receive, send)
            return
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            message = (f"{'文件' if is_upload else '请求体'}过大：{declared / 1048576:.1f} MB，上限 {limit / 1048576:g} MB"
                       if scope_language(scope) == "zh" else
                       f"{what} too large: {declared / 1048576:.1f} MB, limit {limit / 1048576:g} MB")
            await json_error(413, "file_too_large" if is_upload else "body_too_large", message)(scope, receive, send)
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
                message = (f"{'文件' if is_upload else '请求体'}超过 {limit / 1048576:g} MB"
                           if scope_language(scope) == "zh" else f"{what} larger than {limit / 1048576:g} MB")
                await json_error(413, "body_too_large", message)(scope, receive, send)


# -- access log ----------------------------------------------------------------------------------

ACCESS_LOGGER = "rag.access"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname.lower(),
                 "logger": record.name, **getattr(record, "access", {"message": record.getMessage()})}
        return json.dumps(entry, ensure_ascii=False)


def access_log_mode() -> str:
    """RAG_ACCESS_LOG: `text` (default), `json` (one JSON object a line), or `off`."""
    mode = os.environ.get("RAG_ACCESS_LOG", "text").strip().lower() or "text"
    if mode in ("0", "off", "false", "no", "none"):
        return "off"
    return "json" if mode == "json" else "text"


def configure_access_log(mode: str) -> logging.Logger:
    """The `rag.access` logger, INFO, with its own stderr handler (text or JSON lines), whatever the
    level of the root logger (`rag serve` logs only warnings elsewhere without -v)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = next((h for h in logger.handlers if getattr(h, "_rag_access", False)), None)
    if handler is None:
        handler = logging.StreamHandler()  # sys.stderr
        handler._rag_access = True
        logger.addHandler(handler)
    handler.setFormatter(_JsonFormatter() if mode == "json" else
                         logging.Formatter("%(asctime)s %(name)s %(message)s"))
    return logger


class AccessLog:
    """One line per request: method, path (no query string), status, duration in ms (streamed answers:
    until the last byte), client address.  No question text unless RAG_ACCESS_LOG_QUESTIONS=1; then the
    question a JSON body asked (`question`, `query`, the last user message) is added."""

    def __init__(self, app, mode: str = "text", questions: bool | None = None):
        self.app = app
        self.logger = configure_access_log(mode)
        if questions is None:
            questions = os.environ.get("RAG_ACCESS_LOG_QUESTIONS", "").strip().lower() in ("1", "true", "yes")
        self.questions = questions

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            client = scope.get("client")
            entry = {"method": scope.get("method", ""), "path": scope.get("path", ""), "status": status["code"],
                     "duration_ms": ms, "client": client[0] if client else None}
            if self.questions:
                question = (scope.get("state") or {}).get("question_text")
                if question is not None:
                    entry["question"] = question
            text = f"{entry['method']} {entry['path']} {entry['status']} {ms}ms"
            if "question" in entry:
                text += f" question={json.dumps(entry['question'], ensure_ascii=False)}"
            self.logger.info(text, extra={"access": entry})
