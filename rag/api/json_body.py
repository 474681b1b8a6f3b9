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


_EXPECTED_ZH = {
    "Expecting value": "此处应为一个值（对象、数组、字符串、数字、true、false 或 null）",
    "Expecting property name enclosed in double quotes": "此处应为用双引号括起的字段名（多余的逗号？单引号？）",
    "Expecting ':' delimiter": "字段名后应为冒号 :",
    "Expecting ',' delimiter": "此处应为逗号 , 或结束括号",
    "Extra data": "JSON 值结束后还有多余内容",
    "Unterminated string starting at": "字符串没有结束的双引号",
    "Invalid control character at": "字符串中有未转义的控制字符（换行请写 \\n）",
    "Invalid \\escape": "无效的转义序列",
}
_EXPECTED_EN = {
    "Expecting value": "expected a value (object, array, string, number, true, false or null)",
    "Expecting property name enclosed in double quotes":
        "expected a field name in double quotes (a trailing comma? single quotes?)",
    "Expecting ':' delimiter": "expected ':' after the field name",
    "Expecting ',' delimiter": "expected ',' or a closing bracket",
    "Extra data": "more data after the end of the JSON value",
    "Unterminated string starting at": "a string has no closing double quote",
    "Invalid control character at": "an unescaped control character in a string (write a newline as \\n)",
    "Invalid \\escape": "an invalid escape sequence",
}


def _near(text: str, pos: int) -> str:
    """A short excerpt of the body around `pos`, with ⟨here⟩ marking the position."""
    start, end = max(0, pos - 20), min(len(text), pos + 20)
    excerpt = text[start:pos] + "⟨here⟩" + text[pos:end]
    return ("…" if start else "") + excerpt.replace("\n", "\\n") + ("…" if end < len(text) else "")


def parse_json_body(raw: bytes):
    """The request body as JSON, or ApiError 400 `invalid_json` saying why it cannot be read: not UTF-8,
    a syntax error (with its line, column and what was expected there), NaN/Infinity, a number too
    large to represent, nesting deeper than MAX_JSON_DEPTH."""
    def bad(why: str, zh: str) -> ApiError:
        return ApiError(400, "invalid_json", f"the request body is not valid JSON: {why}",
                        zh=f"请求体不是有效的 JSON：{zh}")

    if not raw.strip():
        raise bad("it is empty (send a JSON object)", "请求体为空（请发送一个 JSON 对象）")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 (byte {exc.start})", f"不是 UTF-8 编码（第 {exc.start} 字节）") from None
    try:
        value = json.loads(text, parse_constant=_not_json_constant, parse_float=_finite_float)
    except RecursionError:
        raise bad(f"nested deeper than {MAX_JSON_DEPTH} levels", f"嵌套超过 {MAX_JSON_DEPTH} 层") from None
    except json.JSONDecodeError as exc:
        where_en = f"line {exc.lineno}, column {exc.colno} (character {exc.pos}), near {_near(text, exc.pos)}"
        where_zh = f"第 {exc.lineno} 行第 {exc.colno} 列（第 {exc.pos} 个字符），{_near(text, exc.pos)}"
        what_en = _EXPECTED_EN.get(exc.msg, exc.msg)
        what_zh = _EXPECTED_ZH.get(exc.msg, exc.msg)
        raise bad(f"{what_en} at {where_en}", f"{where_zh}：{what_zh}") from None
    except ValueError as exc:  # a constant, a float out of range, an integer of more than 4300 digits
        why = str(exc)
        if "integer string conversion" in why:
            raise bad("an integer of more than 4300 digits", "整数超过 4300 位") from None
        if "is not a JSON value" in why:
            raise bad(why[:200], f"{why.split()[0]} 不是 JSON 的值") from None
        raise bad(why[:200], f"数字太大：{why[:200]}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise bad(f"nested deeper than {MAX_JSON_DEPTH} levels", f"嵌套超过 {MAX_JSON_DEPTH} 层")
    return value


def _content_text(content) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return None


def question_text(body) -> str | None:
    """The question a JSON body asks (`question`, `query`, the last user message, `input`): its language
    is the language of the request's error messages."""
    if not isinstance(body, dict):
        return None
    for key in ("question", "query"):
        if isinstance(body.get(key), str):
            return body[key]
    messages = body.get("messages") if isinstance(body.get("messages"), list) else None
    if isinstance(body.get("input"), str):
        return body["input"]
    if isinstance(body.get("input"), list):
        messages = body["input"]
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return _content_text(m.get("content"))
    return None


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
            content_type = request.headers.get("content-type")
            if not _json_content(content_type):
                # Never read as JSON (a cross-site form post cannot pass as an API call): say what to send.
                raise ApiError(415, "unsupported_media_type", "send the request body as JSON "
                               "(Content-Type: application/json)",
                               zh="请以 JSON 发送请求体（Content-Type: application/json）")
            request._json = parse_json_body(await request.body())  # FastAPI's request.json() returns it
            request.state.question_text = question_text(request._json)
            if not content_type:  # FastAPI reads a body without Content-Type as bytes: it is JSON here
                request.scope["headers"] = [*request.scope["headers"], (b"content-type", b"application/json")]
                request.__dict__.pop("_headers", None)
            return await handler(request)

        return read_json_first
