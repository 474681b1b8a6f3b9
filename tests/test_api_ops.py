"""Operations: /docs without internet, the access log, /readyz, the schema's limits and descriptions,
the confidence value, error messages in one language per request, JSON errors that name the problem,
and the duplicate-upload message."""

from __future__ import annotations

import json
import logging
import re
import shutil
import time

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.config import MAX_QUESTION_CHARS, Settings
from rag.security import KeyConfig

Q_SZ = "深圳到2025年集成电路产业营收目标是多少？"
Q_EN = "What is Shenzhen's revenue target for 2025?"


@pytest.fixture(scope="module")
def client(assistant):
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=False)) as c:
        yield c


# -- /docs offline ----------------------------------------------------------------------------------

def test_docs_page_loads_only_local_assets_and_they_are_served(client):
    r = client.get("/docs")
    assert r.status_code == 200 and "SwaggerUIBundle" in r.text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", r.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", r.text)
    assert urls and not [u for u in urls if "://" in u or u.startswith("//")], urls
    assert "cdn" not in r.text.lower()
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 500_000
    assert client.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert "/docs/assets" not in json.dumps(client.get("/openapi.json").json()["paths"])


# -- access log -------------------------------------------------------------------------------------

class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def access_records():
    handler = _Records()
    logger = logging.getLogger("rag.access")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def test_access_log_by_default_without_the_question(client, access_records):
    client.post("/v1/ask", json={"question": Q_SZ})
    client.get("/v1/documents/no-such-doc?context=1")
    ask, missing = access_records[-2:]
    assert ask.access["method"] == "POST" and ask.access["path"] == "/v1/ask" and ask.access["status"] == 200
    assert ask.access["duration_ms"] > 0 and "question" not in ask.access
    assert re.fullmatch(r"POST /v1/ask 200 [\d.]+ms", ask.getMessage())
    assert Q_SZ not in ask.getMessage() and "深圳" not in json.dumps(ask.access, ensure_ascii=False)
    assert missing.access["status"] == 404 and missing.access["path"] == "/v1/documents/no-such-doc"  # no query


def test_access_log_json_and_questions_when_configured(assistant, monkeypatch, capsys):
    monkeypatch.setenv("RAG_ACCESS_LOG", "json")
    monkeypatch.setenv("RAG_ACCESS_LOG_QUESTIONS", "1")
    try:
        with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=False)) as c:
            handler = next(h for h in logging.getLogger("rag.access").handlers if getattr(h, "_rag_access", False))
            handler.setStream(__import__("sys").stderr)  # the stderr capsys captures
            c.post("/v1/ask", json={"question": Q_SZ})
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        (entry,) = [e for e in lines if e.get("path") == "/v1/ask"]
        assert entry["method"] == "POST" and entry["status"] == 200 and entry["question"] == Q_SZ
        assert entry["logger"] == "rag.access" and isinstance(entry["duration_ms"], float)
    finally:
        monkeypatch.setenv("RAG_ACCESS_LOG", "text")
        monkeypatch.delenv("RAG_ACCESS_LOG_QUESTIONS")
        create_app(object(), keys=KeyConfig(), with_ui=False)  # back to the text format for later tests


def test_access_log_off(assistant, monkeypatch, access_records):
    monkeypatch.setenv("RAG_ACCESS_LOG", "off")
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=False)) as c:
        c.get("/healthz")
    assert not access_records


# -- readiness ---------------------------------------------------------------------------------------

def test_readyz_is_ready_once_the_index_is_loaded_and_the_model_warm(client):
    deadline = time.monotonic() + 60
    while (r := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        assert r.status_code == 503 and r.json()["ready"] is False
        time.sleep(0.2)
    body = r.json()
    assert r.status_code == 200 and body["ready"] and body["index_loaded"] and body["model_warm"]
    assert client.get("/healthz").status_code == 200


def test_readyz_is_503_while_the_model_is_not_warm(assistant):
    class Cold:
        def embed_query(self, text):
            raise RuntimeError("model file missing")

    class Stub:
        index, index_status, embedder = assistant.index, "loaded", Cold()

    with TestClient(create_app(Stub(), keys=KeyConfig(), with_ui=False, batch_queries=False)) as c:
        time.sleep(0.3)
        r = c.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["ready"] is False and body["index_loaded"] is True and body["model_warm"] is False
        assert "model file missing" in body["detail"]


# -- schema, confidence --------------------------------------------------------------------------------

def test_schema_limits_match_the_real_ones_and_scores_are_described(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["AskRequest"]["properties"]["question"]["maxLength"] == MAX_QUESTION_CHARS == 1000
    assert schemas["SearchRequest"]["properties"]["query"]["maxLength"] == MAX_QUESTION_CHARS
    for name in ("Citation", "SearchHit"):
        assert "reciprocal-rank" in schemas[name]["properties"]["score"]["description"]
    conf = schemas["AskResponse"]["properties"]["confidence"]
    assert conf["minimum"] == 0 and conf["maximum"] == 1 and "refusal" in conf["description"]
    assert "confidence" in schemas["AskResponse"]["required"]
    r = client.post("/v1/ask", json={"question": "长" * (MAX_QUESTION_CHARS + 1)})
    assert r.status_code == 422 and r.json()["error"]["param"] == "question"


def test_ask_gives_a_confidence_between_0_and_1(client):
    good = client.post("/v1/ask", json={"question": Q_SZ}).json()
    assert 0.5 <= good["confidence"] <= 1
    top = max(c["score"] for c in good["citations"])
    assert good["confidence"] == round(min(1.0, top / (2 / 61)), 3)
    refused = client.post("/v1/ask", json={"question": "杭州到2025年集成电路产业营收目标是多少？"}).json()
    assert refused["refused"] is True and refused["confidence"] == 0.0
    events = client.post("/v1/ask", json={"question": Q_SZ, "stream": True}).text
    final = json.loads([line for line in events.split("\n") if '"citations"' in line][-1][len("data: "):])
    assert final["confidence"] == good["confidence"]
    chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q_SZ}]}).json()
    assert chat["confidence"] == good["confidence"]


# -- one language per request ---------------------------------------------------------------------------

@pytest.mark.parametrize("request_kw,lang", [
    ({"json": {"question": ""}}, "zh"),
    ({"json": {"question": "", "k": 0}}, "zh"),
    ({"json": {"question": Q_SZ, "documents": ["no-such-doc"]}}, "zh"),
    ({"json": {"question": Q_EN, "documents": ["no-such-doc"]}}, "en"),
    ({"json": {"question": Q_SZ, "documents": ["no-such-doc"]}, "headers": {"Accept-Language": "en-US,en;q=0.9"}},
     "en"),
    ({"json": {"question": Q_EN, "documents": ["no-such-doc"]}, "headers": {"Accept-Language": "zh-CN"}}, "zh"),
    ({"json": {"question": Q_EN, "k": "five"}}, "en"),
    ({"json": {"question": Q_SZ, "k": "five"}}, "zh"),
    ({"content": b'{"question": }', "headers": {"content-type": "application/json"}}, "zh"),
    ({"content": b'{"question": }', "headers": {"content-type": "application/json", "Accept-Language": "en"}},
     "en"),
])
def test_error_messages_are_in_one_language_per_request(client, request_kw, lang):
    r = client.post("/v1/ask", **request_kw)
    assert 400 <= r.status_code < 500
    message = r.json()["error"]["message"]
    has_cjk = bool(re.search(r"[\u4e00-\u9fff]", message))
    if lang == "zh":
        assert has_cjk and not re.search(r"\b(the|is|should|unknown|empty|must)\b", message), message
    else:
        assert not has_cjk or "no-such-doc" in message and not re.search(r"[\u4e00-\u9fff]", message), message


def test_other_errors_follow_accept_language(client):
    r = client.get("/v1/documents/no-such-doc")
    assert r.json()["error"]["message"] == "未知文档 'no-such-doc'"
    r = client.get("/v1/documents/no-such-doc", headers={"Accept-Language": "en"})
    assert r.json()["error"]["message"] == "unknown doc_id 'no-such-doc'"
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q_EN}], "n": 3})
    assert r.json()["error"]["message"].startswith("unsupported parameter 'n'")
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q_SZ}], "n": 3})
    assert r.json()["error"]["message"].startswith("不支持的参数 'n'")
    r = client.post("/v1/documents", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]["message"]
    assert re.search(r"[\u4e00-\u9fff]", r.json()["error"]["message"])


# -- JSON errors name the problem ------------------------------------------------------------------------

@pytest.mark.parametrize("body,where,what", [
    (b'{"question": }', "line 1, column 14", "expected a value"),
    (b'{"question": "a",}', "line 1, column 18", "expected a field name in double quotes"),
    (b"{'question': 'a'}", "line 1, column 2", "single quotes"),
    (b'{"question": "a"\n "k": 3}', "line 2, column 2", "expected ','"),
    (b'{"question": "a"} x', "line 1, column 19", "more data after the end"),
])
def test_invalid_json_errors_say_where_and_what_was_expected(client, body, where, what):
    r = client.post("/v1/ask", content=body, headers={"content-type": "application/json", "Accept-Language": "en"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_json" and "param" not in err
    assert where in err["message"] and what in err["message"] and "⟨here⟩" in err["message"]
    zh = client.post("/v1/ask", content=body, headers={"content-type": "application/json"}).json()["error"]
    assert zh["message"].startswith("请求体不是有效的 JSON：第 ")


def test_a_json_body_without_content_type_is_read_as_json(client):
    r = client.post("/v1/ask", content=json.dumps({"question": Q_SZ}).encode())
    assert r.status_code == 200, r.text
    r = client.post("/v1/ask", content=b"[1, 2]", headers={"Accept-Language": "en"})
    assert r.status_code == 422 and "JSON object" in r.json()["error"]["message"]


# -- uploads: the same text under another title ------------------------------------------------------------

def test_the_same_text_under_another_title_says_same_content_as(assistant, session_index_dir, embedder, tmp_path,
                                                                 wuxi_plan):
    from rag.service import Assistant

    shutil.copytree(session_index_dir, tmp_path / "index")
    mine = Assistant(Settings(index_dir=tmp_path / "index"), embedder=embedder)
    with TestClient(create_app(mine, keys=KeyConfig(), with_ui=False)) as c:
        files = {"file": ("wuxi.txt", wuxi_plan.encode(), "text/plain")}
        first = c.post("/v1/documents", files=files, data={"title": "无锡计划"})
        assert first.status_code == 201, first.text
        doc_id = first.json()["doc_id"]
        again = c.post("/v1/documents", files=files, data={"title": "另一个标题"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_document"
        assert again.json()["error"]["message"] == f"与 {doc_id} 内容相同，该文档已在索引中"
        en = c.post("/v1/documents", files=files, data={"title": "Another title"}, headers={"Accept-Language": "en"})
        assert en.json()["error"]["message"] == f"same content as {doc_id}: this text is already indexed"
        assert "duplicate doc_id" not in en.json()["error"]["message"]
