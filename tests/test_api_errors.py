"""One rule for bad requests (README "Errors"): 400 when the body cannot be read as JSON at all,
422 when it is JSON (or a readable upload form) but a value fails validation, with strict types;
415 when a JSON endpoint is sent something that is not declared as JSON."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from rag.api import MAX_JSON_DEPTH, create_app
from rag.security import KeyConfig

Q = "深圳到2025年集成电路产业营收目标是多少？"
ENDPOINTS = {"/v1/ask": {"question": Q}, "/v1/search": {"query": Q},
             "/v1/chat/completions": {"model": "zhengce-rag", "messages": [{"role": "user", "content": Q}]}}


@pytest.fixture(scope="module")
def client(assistant):
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=False)) as c:
        yield c


def post(client, path, body: bytes, ctype: str | None = "application/json"):
    return client.post(path, content=body, headers={"content-type": ctype} if ctype else {})


def nested(depth: int) -> str:
    """Arrays for a field of the body object, `depth` levels deep counting the object itself."""
    return "[" * (depth - 1) + "]" * (depth - 1)


NOT_JSON = {
    "invalid UTF-8": b'{"question": "\xff\xfe\xfa"}',
    "UTF-16": json.dumps({"question": Q}).encode("utf-16"),
    "a syntax error": b'{"question": ',
    "a trailing comma": b'{"question": "x",}',
    "an empty body": b"",
    "whitespace only": b"  \n",
    "NaN": b'{"question": "x", "k": NaN}',
    "Infinity": b'{"question": "x", "k": -Infinity}',
    "an integer of 5000 digits": b'{"question": "x", "k": 1' + b"0" * 5000 + b"}",
    "a float beyond double range": b'{"question": "x", "k": 1e400}',
    "nesting just over the limit": ('{"question": "x", "extra": ' + nested(MAX_JSON_DEPTH + 1) + "}").encode(),
    "nesting 100000 deep": b'{"question": "x", "history": ' + b"[" * 100000 + b"]" * 100000 + b"}",
}


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("what", list(NOT_JSON))
def test_a_body_that_is_not_json_is_400_invalid_json(client, path, what):
    r = post(client, path, NOT_JSON[what])
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_json" and err["type"] == "invalid_request_error"
    assert err["message"].startswith("请求体不是有效的 JSON")  # Chinese unless the client prefers English
    r = client.post(path, content=NOT_JSON[what], headers={"content-type": "application/json", "Accept-Language": "en"})
    assert r.json()["error"]["message"].startswith("the request body is not valid JSON")


def test_nesting_up_to_the_limit_is_read_and_then_validated(client):
    body = ('{"question": "x", "extra": ' + nested(MAX_JSON_DEPTH) + "}").encode()
    r = post(client, "/v1/ask", body)
    assert r.status_code == 422 and r.json()["error"]["param"] == "extra"  # read, then refused: unknown field


INVALID = [
    ("/v1/ask", {"question": Q, "k": "5"}, "k"),
    ("/v1/ask", {"question": Q, "k": True}, "k"),
    ("/v1/ask", {"question": Q, "k": 5.0}, "k"),
    ("/v1/ask", {"question": Q, "k": 0}, "k"),
    ("/v1/ask", {"question": Q, "k": 10 ** 30}, "k"),
    ("/v1/ask", {"question": Q, "stream": "true"}, "stream"),
    ("/v1/ask", {"question": 5}, "question"),
    ("/v1/ask", {"question": Q, "documents": "shenzhen-2022"}, "documents"),
    ("/v1/ask", {"question": Q, "history": [{"role": "user", "content": 5}]}, "history"),
    ("/v1/ask", {"question": Q, "colour": "red"}, "colour"),
    ("/v1/ask", [Q], ""),
    ("/v1/ask", None, ""),
    ("/v1/search", {"query": Q, "k": "10"}, "k"),
    ("/v1/search", {"query": Q, "k": False}, "k"),
    ("/v1/chat/completions", {**ENDPOINTS["/v1/chat/completions"], "k": "5"}, "k"),
    ("/v1/chat/completions", {**ENDPOINTS["/v1/chat/completions"], "stream": 1}, "stream"),
    ("/v1/chat/completions", {"messages": "hi"}, "messages"),
]


@pytest.mark.parametrize("path,body,param", INVALID, ids=[f"{p} {json.dumps(b, ensure_ascii=False)[:60]}"
                                                        for p, b, _ in INVALID])
def test_json_that_fails_validation_is_422_with_strict_types(client, path, body, param):
    r = post(client, path, json.dumps(body).encode())
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert (err.get("param") or "").startswith(param)


def test_integers_and_booleans_as_json_types_are_accepted(client):
    assert post(client, "/v1/ask", json.dumps({"question": Q, "k": 5, "stream": False}).encode()).status_code == 200
    r = post(client, "/v1/search", json.dumps({"query": Q, "k": 3}).encode())
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    bom = b"\xef\xbb\xbf" + json.dumps({"question": Q}).encode()  # a UTF-8 byte-order mark is tolerated
    assert post(client, "/v1/ask", bom).status_code == 200


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"])
def test_a_body_not_declared_as_json_is_415(client, ctype):
    r = post(client, "/v1/ask", json.dumps({"question": Q}).encode(), ctype)
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    assert "application/json" in r.json()["error"]["message"]


# -- uploads: a readable form with a bad field is 422, an unreadable form 400 ----------------------

PLAN = "\n".join(["某市集成电路行动计划", "一、发展目标", "到2026年，产业规模突破1500亿元，培育龙头企业5家。"]).encode()


@pytest.mark.parametrize("fields,code", [
    ({"title": "标" * 201}, "invalid_request"),   # over 200 characters: the form's own limit
    ({"title": "标" * 401}, "invalid_request"),
    ({"title": "标" * 5000}, "invalid_request"),
    ({"title": "计划", "region": "区" * 201}, "invalid_request"),
    ({"title": "计划", "date": "next year"}, "invalid_date"),
    ({"title": "计划", "doc_id": "../../etc"}, "invalid_doc_id"),
    ({"title": "计划", "aliases": ",".join(f"别名{i}" for i in range(30))}, "invalid_field"),
], ids=["title 201", "title 401", "title 5000", "region 201", "date", "doc_id", "aliases"])
def test_a_bad_upload_field_is_422_and_changes_nothing(client, assistant, fields, code):
    before = list(assistant.index.doc_ids)
    r = client.post("/v1/documents", files={"file": ("plan.txt", PLAN, "text/plain")}, data=fields)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code
    assert list(assistant.index.doc_ids) == before


@pytest.mark.parametrize("ctype,body", [
    ("multipart/form-data", b"no boundary"),
    ("multipart/form-data; boundary=x", b"not multipart at all"),
    ("multipart/form-data; boundary=x", b"--x\r\nnot a header\r\n\r\nv\r\n--x--\r\n"),
])
def test_an_upload_body_that_is_not_a_readable_form_is_400(client, ctype, body):
    r = client.post("/v1/documents", content=body, headers={"content-type": ctype})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_body"


def test_path_like_ids_are_422_like_any_invalid_parameter(client):
    for r in (client.get("/v1/documents/%2E%2E"), client.delete("/v1/documents/A-Upper"),
              client.get("/v1/documents/shenzhen-2022/clauses/一", params={"context": "-1"})):
        assert r.status_code == 422, r.text
