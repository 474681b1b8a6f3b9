"""Errors: `ApiError`, the one JSON error body, its OpenAPI schema, and the app's exception handlers.

Every failure of the API becomes `{"error": {"code", "message", "type", "param"?, "details"?}}`
with a 4xx (or 500) status; the shape is also what OpenAI SDK clients read (`error.message`,
`error.type`, `error.code`, `error.param`).
"""

from __future__ import annotations

import logging
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
    """A 4xx (or 5xx) answer with our JSON error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None, param: str | None = None,
                 type: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.param = status, code, message, headers, param
        self.type = type


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
        return json_error(exc.status, exc.code, exc.message, headers=exc.headers, param=exc.param, type=exc.type)

    @app.exception_handler(QuestionError)
    async def _question_error(request: Request, exc: QuestionError):
        return json_error(422, "invalid_question", str(exc))

    @app.exception_handler(DocumentError)
    async def _document_error(request: Request, exc: DocumentError):
        headers = {"Retry-After": str(exc.retry_after)} if getattr(exc, "retry_after", None) else None
        return json_error(exc.status, exc.code, str(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        if any(e.get("type") == "json_invalid" for e in exc.errors()):  # routes outside /v1 (none read JSON now)
            return json_error(400, "invalid_json", "the request body is not valid JSON")
        details = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ()) if x not in ("body",)]
            details.append({"loc": ".".join(loc), "message": e.get("msg", ""), "type": e.get("type", "")})
        summary = "; ".join(f"{d['loc'] or 'body'}: {d['message']}" for d in details[:5]) or "invalid request"
        return json_error(422, "invalid_request", summary, details=details,
                          param=details[0]["loc"] if details else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed",
                413: "body_too_large"}.get(exc.status_code, "http_error")
        return json_error(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return json_error(500, "internal_error", "internal error; the server log has the details")
