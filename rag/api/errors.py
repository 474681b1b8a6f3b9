"""Errors: `ApiError`, the one JSON error body, its OpenAPI schema, and the app's exception handlers.

Every failure of the API becomes `{"error": {"code", "message", "type", "param"?, "details"?}}`
with a 4xx (or 500) status; the shape is also what OpenAI SDK clients read (`error.message`,
`error.type`, `error.code`, `error.param`).

Messages come in one language per request (`request_language`): English when the request's
`Accept-Language` prefers English, or, without a preference for Chinese or English, when the
question (`question`, `query`, the last user message, `input`) is English; Chinese otherwise.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..ingest import DocumentError
from ..service import QuestionError

log = logging.getLogger("rag.api")


class ApiError(Exception):
    """A 4xx (or 5xx) answer with our JSON error body.  `message` is English (or a "中文 (English)" pair,
    as DocumentError and QuestionError messages are); `zh` the Chinese message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None, param: str | None = None,
                 type: str | None = None, zh: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.param = status, code, message, headers, param
        self.type = type
        self.zh = zh

    def text(self, lang: str) -> str:
        return localized(self.message, lang, self.zh)


# -- one language per request -----------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


def split_bilingual(text: str) -> tuple[str, str]:
    """("中文", "English") of a message written "中文 (English)…" (the service's and the upload checks'
    style; text after the parenthesis belongs to both); (text, text) when it is one language."""
    for m in re.finditer(r"\s?\((?=[A-Za-z'\"])", text):
        before = text[:m.start()]
        if not _CJK.search(before):
            continue
        opening, depth = m.end() - 1, 0
        for j in range(opening, len(text)):
            if text[j] == "(":
                depth += 1
            elif text[j] == ")":
                depth -= 1
                if depth == 0:
                    inside, after = text[opening + 1:j], text[j + 1:]
                    return before.rstrip() + after, inside + after
        break
    return text, text


def localized(message: str, lang: str, zh: str | None = None) -> str:
    if zh is not None:
        return zh if lang == "zh" else split_bilingual(message)[1]
    chinese, english = split_bilingual(message)
    return chinese if lang == "zh" else english


def accept_language(header: str | None) -> str | None:
    """"en" or "zh" when the client's most preferred language (highest q) is one of them."""
    best, best_q = None, -1.0
    for item in (header or "").split(","):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary and q > best_q:
            best, best_q = primary, q
    return best if best in ("en", "zh") else None


def is_english_text(text: str | None) -> bool:
    return bool(text) and bool(_LATIN.search(text)) and not _CJK.search(text)


def request_language(request) -> str:
    lang = accept_language(request.headers.get("accept-language"))
    if lang:
        return lang
    question = getattr(request.state, "question_text", None)
    return "en" if is_english_text(question) else "zh"


def scope_language(scope) -> str:
    """The language for an error answered by middleware (no body read): Accept-Language, else Chinese."""
    for k, v in scope.get("headers", []):
        if k.lower() == b"accept-language":
            return accept_language(v.decode("latin-1")) or "zh"
    return "zh"


# Pydantic's validation errors, in Chinese (the English ones are pydantic's own `msg`).
_ZH_VALIDATION = {
    "missing": "缺少必填字段", "extra_forbidden": "不认识的字段", "string_type": "应为字符串",
    "int_type": "应为 JSON 整数", "float_type": "应为数字", "bool_type": "应为 JSON 布尔值 true 或 false",
    "list_type": "应为数组", "dict_type": "应为对象", "model_type": "应为对象",
    "model_attributes_type": "应为 JSON 对象", "literal_error": "取值应为 {expected} 之一",
    "string_too_long": "过长：最多 {max_length} 个字符", "string_too_short": "过短：至少 {min_length} 个字符",
    "too_long": "过长：最多 {max_length} 项", "too_short": "过短：至少 {min_length} 项",
    "greater_than_equal": "应大于或等于 {ge}", "less_than_equal": "应小于或等于 {le}",
    "greater_than": "应大于 {gt}", "less_than": "应小于 {lt}", "int_parsing": "应为整数",
    "bool_parsing": "应为布尔值", "union_tag_invalid": "类型不对", "value_error": "取值无效",
    "string_pattern_mismatch": "格式不对",
}


def _json_kind(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "a body that is not JSON"
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def validation_message(error: dict, lang: str) -> str:
    kind = error.get("type", "")
    if lang != "zh":
        if kind == "model_attributes_type":  # pydantic's "a valid dictionary or object to extract fields from"
            return f"must be a JSON object {{...}}, got {_json_kind(error.get('input'))}"
        return error.get("msg", "")
    template = _ZH_VALIDATION.get(kind)
    if template is None:
        return f"取值无效（{kind}）"
    try:
        return template.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError):
        return template.split("：")[0]


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error",
               413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
               429: "rate_limit_error"}


def error_body(status: int, code: str, message: str, param: str | None = None, details: list | None = None,
               type: str | None = None) -> dict:
    """Our error shape; also valid for OpenAI SDK clients (`error.message`, `error.type`, `error.code`)."""
    err: dict[str, Any] = {"code": code, "message": message, "type": type or ERROR_TYPES.get(status, "server_error")}
    if param:
        err["param"] = param
    if details:
        err["details"] = details
    return {"error": err}


def json_error(status: int, code: str, message: str, headers: dict | None = None, **kw) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, **kw), status_code=status, headers=headers)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_question"])
    message: str = Field(examples=["问题为空 (empty question)"])
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = None
    details: list[dict] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


STATUS_TEXT = {400: "Bad input", 401: "Missing or invalid API key", 403: "Not allowed",
               404: "Unknown document or clause", 409: "Duplicate document", 413: "File or body too large",
               415: "Unsupported media type", 422: "Invalid request", 429: "Busy: retry after `Retry-After` seconds"}


def error_responses(*codes: int) -> dict:
    """OpenAPI `responses` entries for these statuses, all with the error body's schema."""
    return {c: {"model": ErrorResponse, "description": STATUS_TEXT.get(c, "Error")} for c in codes}


def install_error_handlers(app: FastAPI) -> None:
    """Every failure becomes our JSON error body."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return json_error(exc.status, exc.code, exc.text(request_language(request)), headers=exc.headers,
                          param=exc.param, type=exc.type)

    @app.exception_handler(QuestionError)
    async def _question_error(request: Request, exc: QuestionError):
        return json_error(422, "invalid_question", localized(str(exc), request_language(request)))

    @app.exception_handler(DocumentError)
    async def _document_error(request: Request, exc: DocumentError):
        headers = {"Retry-After": str(exc.retry_after)} if getattr(exc, "retry_after", None) else None
        return json_error(exc.status, exc.code, localized(str(exc), request_language(request)), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        lang = request_language(request)
        if any(e.get("type") == "json_invalid" for e in exc.errors()):  # routes outside /v1 (none read JSON now)
            return json_error(400, "invalid_json", "请求体不是有效的 JSON" if lang == "zh"
                              else "the request body is not valid JSON")
        details = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ()) if x not in ("body",)]
            details.append({"loc": ".".join(loc), "message": validation_message(e, lang), "type": e.get("type", "")})
        whole = "请求体" if lang == "zh" else "body"
        summary = "; ".join(f"{d['loc'] or whole}: {d['message']}" for d in details[:5]) or "invalid request"
        return json_error(422, "invalid_request", summary, details=details,
                          param=details[0]["loc"] if details and details[0]["loc"] else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed",
                413: "body_too_large"}.get(exc.status_code, "http_error")
        return json_error(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        zh = request_language(request) == "zh"
        return json_error(500, "internal_error", "内部错误，详情见服务器日志" if zh
                          else "internal error; the server log has the details")
