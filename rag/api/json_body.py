"""Reading JSON bodies: one rule for bad requests.

400 when the body cannot be read as JSON at all, 422 when it is JSON but a value fails
validation (types are strict: `k` must be a JSON integer, not "5", 5.0 or true), 415 when
a JSON endpoint is sent another content type.
"""

from __future__ import annotations

import json

from fastapi import Request
from fastapi import params as fastapi_params
from fastapi.routing import APIRoute

from .errors import ApiError

MAX_JSON_DEPTH = 32  # our bodies nest 5 levels deep at most (RFC 8259 section 9 lets a parser limit it)
JSON_BODY_LIMIT = 4 * 1024 * 1024


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
            return handler  # no body, or a form (uploads: multipart, checked by BodyLimit)

        async def read_json_first(request: Request):
            if not _json_content(request.headers.get("content-type")):
                # Never read as JSON (a cross-site form post cannot pass as an API call): say what to send.
                raise ApiError(415, "unsupported_media_type", "send the request body as JSON "
                               "(Content-Type: application/json)")
            request._json = parse_json_body(await request.body())  # FastAPI's request.json() returns it
            return await handler(request)

        return read_json_first
