"""The HTTP API against the real session Assistant (real model, real index), read-only calls.

Uploads and deletes are in test_api_upload.py (on an Assistant of their own);
a real uvicorn process and the OpenAI SDK are in test_api_server.py.
"""

from __future__ import annotations

import json
import sys
import types

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app, references_block, text_pieces
from rag.security import KeyConfig, bind_host, is_loopback

Q_SZ = "深圳到2025年集成电路产业营收目标是多少？"
Q_SIP = "苏州工业园区的人才目标是什么？"


@pytest.fixture(scope="module")
def client(assistant):
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=False)) as c:
        yield c


def sse_events(text: str) -> list:
    """Parse an SSE body into JSON payloads (and the literal "[DONE]")."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        data = "".join(line[len("data: "):] for line in block.split("\n") if line.startswith("data: "))
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


# -- /v1/ask --------------------------------------------------------------------------------

def test_ask_returns_the_same_object_as_rag_ask_json(client, assistant):
    r = client.post("/v1/ask", json={"question": Q_SZ})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = assistant.ask(Q_SZ).to_dict()
    assert set(body) == set(expected) | {"confidence"}  # the API adds its confidence (test_api_ops.py)
    for key in ("question", "answer", "refused", "citations", "backend"):
        assert body[key] == expected[key], key
    assert not body["refused"]
    assert "2500亿元" in body["answer"]
    assert body["citations"][0]["doc_id"] == "shenzhen-2022"
    assert set(body["timings_ms"]) >= {"retrieve", "answer", "total"}


def test_ask_follow_up_uses_history_and_documents_filter_restricts(client):
    r = client.post("/v1/ask", json={"question": "那苏州工业园区呢？", "history": [
        {"role": "user", "content": Q_SZ}, {"role": "assistant", "content": "到2025年，产业营收突破2500亿元[1]。"}]})
    body = r.json()
    assert r.status_code == 200, r.text
    assert "苏州工业园区" in body["rewritten_question"]
    assert {c["doc_id"] for c in body["citations"]} == {"suzhou-sip-2022"}
    r = client.post("/v1/ask", json={"question": "人才培养有哪些措施？", "documents": ["qingpu-2023"], "k": 3})
    assert r.status_code == 200
    assert {c["doc_id"] for c in r.json()["citations"]} <= {"qingpu-2023"}


def test_ask_stream_sends_deltas_then_citations_then_done(client):
    plain = client.post("/v1/ask", json={"question": Q_SIP}).json()
    r = client.post("/v1/ask", json={"question": Q_SIP, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    deltas = [e for e in events[:-1] if e["type"] == "delta"]
    finals = [e for e in events[:-1] if e["type"] == "citations"]
    assert len(deltas) >= 2 and len(finals) == 1
    assert events[-2] is finals[0]  # citations come after every delta
    assert "".join(d["text"] for d in deltas) == plain["answer"]
    assert finals[0]["citations"] == plain["citations"]
    assert finals[0]["refused"] is plain["refused"]


BAD_ASK = [
    ({"question": ""}, "invalid_question", "empty"),
    ({"question": "   \n "}, "invalid_question", "empty"),
    ({"question": "长" * 1001}, "invalid_request", "at most 1000 characters"),  # the schema's maxLength
    ({"question": "长" * 5000}, "invalid_request", "question"),
    ({"question": Q_SZ, "k": 0}, "invalid_request", "k"),
    ({"question": Q_SZ, "k": 51}, "invalid_request", "k"),
    ({"question": Q_SZ, "k": "many"}, "invalid_request", "k"),
    ({"question": Q_SZ, "documents": ["no-such-doc"]}, "invalid_question", "no-such-doc"),
    ({"question": Q_SZ, "documents": ["../../etc/passwd"]}, "invalid_question", "../../etc/passwd"),
    ({"question": Q_SZ, "documents": "shenzhen-2022"}, "invalid_request", "documents"),
    ({"question": Q_SZ, "history": [{"role": "system", "content": "x"}]}, "invalid_request", "history.0.role"),
    ({"question": Q_SZ, "history": [{"role": "user"}]}, "invalid_request", "history.0.content"),
    ({"question": Q_SZ, "mode": "magic"}, "invalid_request", "mode"),
    ({"question": Q_SZ, "temperature": 0}, "invalid_request", "temperature"),
    ({"question": 42}, "invalid_request", "question"),
    ({}, "invalid_request", "question"),
]


@pytest.mark.parametrize("payload,code,named", BAD_ASK)
def test_bad_ask_input_is_a_422_naming_the_problem(client, payload, code, named):
    r = client.post("/v1/ask", json=payload, headers={"Accept-Language": "en"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert named in err["message"]


@pytest.mark.parametrize("body,ctype,status,code", [
    (b"{not json", "application/json", 400, "invalid_json"),  # not JSON: 400 (see test_api_errors.py)
    (b"", None, 400, "invalid_json"),
    (b"[1, 2]", "application/json", 422, "invalid_request"),  # JSON, but not the object asked for: 422
    (b"question=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
])
def test_malformed_bodies_are_clean_4xx(client, body, ctype, status, code):
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/v1/ask", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_an_over_large_body_is_413_before_it_is_parsed(client):
    r = client.post("/v1/ask", content=b'{"question": "' + b"x" * (5 * 1024 * 1024) + b'"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


# -- /v1/search -------------------------------------------------------------------------------

def test_search_ranks_clauses_and_honours_k_and_filters(client, assistant):
    r = client.post("/v1/search", json={"query": "第三代半导体", "k": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [h["rank"] for h in body["results"]] == [1, 2, 3, 4]
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)
    direct = [h.to_dict() for h in assistant.search("第三代半导体", k=4).hits]
    assert [(h["doc_id"], h["chunk_id"]) for h in body["results"]] == [(h["doc_id"], h["chunk_id"]) for h in direct]
    assert body["searched_documents"] is None
    r = client.post("/v1/search", json={"query": "深圳的人才政策", "k": 5})
    assert r.json()["routed_documents"] == ["shenzhen-2022"]
    assert {h["doc_id"] for h in r.json()["results"]} == {"shenzhen-2022"}
    r = client.post("/v1/search", json={"query": "人才", "documents": ["qingpu-2023", "xiamen-huli-2024"],
                                        "mode": "bm25"})
    assert {h["doc_id"] for h in r.json()["results"]} <= {"qingpu-2023", "xiamen-huli-2024"}
    assert client.post("/v1/search", json={"query": ""}).status_code == 422
    assert client.post("/v1/search", json={"query": "x", "documents": ["nope"]}).status_code == 422


# -- documents ----------------------------------------------------------------------------------

def test_documents_list_the_catalog(client, assistant):
    r = client.get("/v1/documents")
    assert r.status_code == 200
    docs = r.json()["documents"]
    assert [d["doc_id"] for d in docs] == [d.doc_id for d in assistant.corpus.documents]
    for d in docs:
        assert d["source"] == "seed" and d["upload"] is None
        assert d["clause_count"] == len(assistant.corpus.parsed[d["doc_id"]].clauses)
        assert d["chunk_count"] >= d["clause_count"]
        assert d["title"] == assistant.corpus.document(d["doc_id"]).title


def test_document_outline_covers_every_heading_and_clause(client, assistant):
    r = client.get("/v1/documents/suzhou-sip-2022")
    assert r.status_code == 200
    body = r.json()
    parsed = assistant.corpus.parsed["suzhou-sip-2022"]
    assert [h["id"] for h in body["outline"]] == [h.id for h in parsed.headings]
    assert [c["clause_id"] for c in body["clauses"]] == [c.clause_id for c in parsed.clauses]
    listed = [cid for h in body["outline"] for cid in h["clause_ids"]]
    assert len(listed) == len(set(listed))
    assert set(listed) <= {c.clause_id for c in parsed.clauses}
    assert body["clause_count"] == len(parsed.clauses)


def test_clause_in_context_gives_its_neighbours_in_order(client, assistant):
    clauses = assistant.corpus.parsed["shenzhen-2022"].clauses
    ids = [c.clause_id for c in clauses]
    pos = ids.index("二.(一)")
    r = client.get("/v1/documents/shenzhen-2022/clauses/二.(一)", params={"context": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["clause"]["text"] == clauses[pos].text
    assert body["clause"]["section"] == clauses[pos].section_path
    assert [c["clause_id"] for c in body["before"]] == ids[pos - 2:pos]
    assert [c["clause_id"] for c in body["after"]] == ids[pos + 1:pos + 3]
    assert body["clause"]["chunk_ids"] == ["二.(一)"]
    first = client.get(f"/v1/documents/shenzhen-2022/clauses/{ids[0]}", params={"context": 0}).json()
    assert first["before"] == [] and first["after"] == []
    # A chunk id (clause#part, '#' encoded) resolves to its clause.
    assert client.get("/v1/documents/shenzhen-2022/clauses/二.(一)%231").json()["clause"]["clause_id"] == "二.(一)"


@pytest.mark.parametrize("path,status,code", [
    ("/v1/documents/no-such-doc", 404, "unknown_document"),
    ("/v1/documents/%2E%2E", 422, "invalid_doc_id"),
    ("/v1/documents/..%5C..%5Cwindows", 422, "invalid_doc_id"),
    ("/v1/documents/Shenzhen-2022", 422, "invalid_doc_id"),
    ("/v1/documents/no-such-doc/clauses/一", 404, "unknown_document"),
    ("/v1/documents/shenzhen-2022/clauses/九十九.(一)", 404, "unknown_clause"),
    ("/v1/documents/shenzhen-2022/clauses/%2E%2E", 404, "unknown_clause"),
    ("/v1/documents/%2E%2E/clauses/一", 422, "invalid_doc_id"),
    ("/v1/documents/shenzhen-2022/clauses/二.(一)?context=-1", 422, "invalid_request"),
    ("/v1/documents/shenzhen-2022/clauses/二.(一)?context=abc", 422, "invalid_request"),
    ("/v1/documents/..%2F..%2Fetc%2Fpasswd", 404, "not_found"),
    ("/v1/no-such-endpoint", 404, "not_found"),
])
def test_unknown_and_path_like_ids_are_clean_4xx(client, path, status, code):
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_wrong_methods_are_405_with_allow(client):
    r = client.put("/v1/ask", json={"question": Q_SZ})
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert client.post("/v1/documents/shenzhen-2022").status_code == 405


def test_seed_documents_cannot_be_deleted_and_unknown_ones_are_404(client, assistant):
    n = len(assistant.corpus.documents)
    r = client.delete("/v1/documents/shenzhen-2022")
    assert r.status_code == 403 and r.json()["error"]["code"] == "seed_document"
    r = client.delete("/v1/documents/no-such-doc")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_document"
    assert client.delete("/v1/documents/%2E%2E").status_code == 422
    assert len(assistant.corpus.documents) == n


def test_upload_requests_that_are_not_multipart_are_415(client):
    r = client.post("/v1/documents", json={"file": "x"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = client.post("/v1/documents", data={"title": "x"}, files={})  # multipart, but no file
    assert r.status_code in (415, 422)


# -- OpenAI-compatible ----------------------------------------------------------------------------

def test_chat_completions_answers_with_references_and_structured_citations(client):
    plain = client.post("/v1/ask", json={"question": Q_SIP}).json()
    r = client.post("/v1/chat/completions", json={"model": "zhengce-rag", "temperature": 0.2,
                                                  "messages": [{"role": "system", "content": "你是助手"},
                                                               {"role": "user", "content": Q_SIP}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "zhengce-rag"
    assert body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    content = choice["message"]["content"]
    assert content.startswith(plain["answer"])
    assert "参考条款：" in content
    for c in plain["citations"]:
        assert f"[{c['n']}] 《{c['doc_title']}》 {c['chunk_id']}" in content
    assert body["citations"] == plain["citations"]
    assert body["refused"] is False


def test_chat_completions_history_and_content_parts(client):
    first = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q_SZ}]}).json()
    r = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": [{"type": "text", "text": Q_SZ}]},
        {"role": "assistant", "content": first["choices"][0]["message"]["content"]},
        {"role": "user", "content": [{"type": "text", "text": "那苏州工业园区呢？"}]}]})
    assert r.status_code == 200, r.text
    assert {c["doc_id"] for c in r.json()["citations"]} == {"suzhou-sip-2022"}


@pytest.mark.parametrize("payload,code", [
    ({"messages": []}, "invalid_request"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "invalid_messages"),
    ({"messages": [{"role": "user", "content": Q_SZ}, {"role": "assistant", "content": "x"}]}, "invalid_messages"),
    ({"messages": [{"role": "user", "content": ""}]}, "invalid_question"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "unsupported_content"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "invalid_request"),
    ({"messages": "hello"}, "invalid_request"),
])
def test_bad_chat_requests_are_4xx_in_openai_error_shape(client, payload, code):
    r = client.post("/v1/chat/completions", json=payload)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["type"] == "invalid_request_error"


def test_chat_completions_stream_in_openai_chunk_format(client):
    plain = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q_SZ}]}).json()
    r = client.post("/v1/chat/completions", json={"model": "zhengce-rag", "stream": True,
                                                  "messages": [{"role": "user", "content": Q_SZ}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == plain["choices"][0]["message"]["content"]
    assert [c["choices"][0]["finish_reason"] for c in chunks].count("stop") == 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["citations"] == plain["citations"]


def test_models_list(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list" and body["data"][0]["id"] == "zhengce-rag"


# -- ops, schema -------------------------------------------------------------------------------------

def test_healthz_reports_index_and_model(client, assistant):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["index_loaded"] is True
    assert body["model"] == assistant.settings.embed_model
    assert body["chunks"] == len(assistant.index) and body["documents"] == 5
    assert body["clauses"] == len(assistant.corpus.clauses)
    assert body["auth"] == "open_loopback_only"


def test_metrics_count_requests_and_stage_latencies(client):
    client.post("/v1/ask", json={"question": Q_SZ})
    client.post("/v1/ask", json={"question": ""})
    client.get("/v1/documents/no-such-doc")
    text = client.get("/metrics").text
    assert 'rag_http_requests_total{endpoint="/v1/ask",method="POST",status="200"}' in text
    assert 'rag_http_requests_total{endpoint="/v1/ask",method="POST",status="422"}' in text
    assert 'rag_http_requests_total{endpoint="/v1/documents/{doc_id}",method="GET",status="404"}' in text
    assert 'rag_http_request_duration_seconds_bucket{endpoint="/v1/ask",le="0.2",method="POST"}' in text
    for stage in ("retrieve", "answer", "total"):
        assert f'rag_stage_duration_seconds_count{{stage="{stage}"}}' in text
    assert "rag_index_chunks" in text and "process_resident_memory_bytes" in text


def test_openapi_documents_every_endpoint_with_examples(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path, method in [("/v1/ask", "post"), ("/v1/search", "post"), ("/v1/documents", "get"),
                         ("/v1/documents", "post"), ("/v1/documents/{doc_id}", "get"),
                         ("/v1/documents/{doc_id}", "delete"), ("/v1/documents/{doc_id}/clauses/{clause_id}", "get"),
                         ("/v1/chat/completions", "post"), ("/v1/models", "get"), ("/healthz", "get"),
                         ("/metrics", "get")]:
        assert method in paths[path], (path, method)
    assert "/v1/{rest}" not in paths
    comps = schema["components"]["schemas"]
    assert comps["AskRequest"]["examples"][0]["question"]
    assert comps["ChatRequest"]["examples"]
    assert "text/event-stream" in paths["/v1/ask"]["post"]["responses"]["200"]["content"]
    assert {"404", "422"} <= set(paths["/v1/documents/{doc_id}"]["get"]["responses"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


# -- API keys ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyed(assistant):
    keys = KeyConfig(api_keys=frozenset({"user-key"}), admin_keys=frozenset({"admin-key"}))
    with TestClient(create_app(assistant, keys=keys, with_ui=False)) as c:
        yield c


def _auth(key):
    return {"Authorization": f"Bearer {key}"}


def test_with_keys_every_v1_call_needs_a_valid_key(keyed):
    for call in (lambda h: keyed.get("/v1/documents", headers=h),
                 lambda h: keyed.post("/v1/ask", json={"question": Q_SZ}, headers=h),
                 lambda h: keyed.post("/v1/chat/completions", headers=h,
                                      json={"messages": [{"role": "user", "content": Q_SZ}]})):
        r = call({})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        assert r.headers["www-authenticate"] == "Bearer"
        r = call(_auth("wrong"))
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert call(_auth("user-key")).status_code == 200
        assert call(_auth("admin-key")).status_code == 200
    assert keyed.get("/healthz").json()["auth"] == "api_keys"
    assert keyed.get("/metrics").status_code == 401  # RAG_METRICS_PUBLIC=1 opens it (test_web_safety.py)
    assert keyed.get("/metrics", headers=_auth("user-key")).status_code == 200


def test_with_keys_upload_and_delete_need_an_admin_key(keyed, assistant):
    files = {"file": ("a.txt", b"", "text/plain")}
    r = keyed.post("/v1/documents", files=files, data={"title": "x"}, headers=_auth("user-key"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key_required"
    r = keyed.delete("/v1/documents/shenzhen-2022", headers=_auth("user-key"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key_required"
    assert keyed.post("/v1/documents", files=files, data={"title": "x"}).status_code == 401
    # The admin key gets past auth to the file checks (an empty file: nothing is added).
    r = keyed.post("/v1/documents", files=files, data={"title": "x"}, headers=_auth("admin-key"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_file"
    assert len(assistant.corpus.documents) == 5


def test_bind_host_is_loopback_only_without_keys():
    none = KeyConfig()
    host, msg = bind_host("0.0.0.0", none)
    assert host == "127.0.0.1" and "loopback only" in msg and "RAG_API_KEYS" in msg
    host, msg = bind_host("127.0.0.1", none)
    assert host == "127.0.0.1" and "loopback only" in msg
    assert bind_host("::1", none)[0] == "::1"
    host, msg = bind_host("0.0.0.0", KeyConfig(api_keys=frozenset({"k"})))
    assert host == "0.0.0.0" and "no admin key" in msg
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and not is_loopback("10.0.0.1")


def test_keys_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAG_API_KEYS", " a, b ,,")
    monkeypatch.setenv("RAG_ADMIN_KEYS", "root")
    keys = KeyConfig.from_env()
    assert keys.api_keys == {"a", "b"} and keys.admin_keys == {"root"}
    assert keys.role("a") == "user" and keys.role("root") == "admin" and keys.role("c") is None
    assert keys.role("") is None
    monkeypatch.delenv("RAG_API_KEYS")
    monkeypatch.delenv("RAG_ADMIN_KEYS")
    assert not KeyConfig.from_env().enabled


# -- formatting helpers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "到2025年，产业营收突破2500亿元[1]。\n根据《深圳》：x[2]。",
                                  "a" * 100, "English answer, with commas. And [3] marks."])
def test_text_pieces_rebuild_the_text_exactly(text):
    pieces = text_pieces(text)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= 24 for p in pieces)


def test_references_block_lists_every_citation():
    ans = {"question": Q_SZ, "refused": False, "citations": [
        {"n": 1, "doc_title": "T", "chunk_id": "二.(一)", "section": "二、目标", "text": "正文"}]}
    assert references_block(ans) == "参考条款：\n[1] 《T》 二.(一)（二、目标）：正文"
    assert references_block({**ans, "question": "What?"}).startswith("References:")
    assert references_block({**ans, "refused": True}).startswith("最接近的条款：")
    assert references_block({**ans, "citations": []}) == ""


# -- chat page mounted at / -------------------------------------------------------------------------------------

def install_ui(monkeypatch, build_ui) -> None:
    """Make `ui.app.build_ui` this function for the test (what `create_app` mounts at '/')."""
    ui_pkg, ui_app = types.ModuleType("ui"), types.ModuleType("ui.app")
    ui_app.build_ui = build_ui
    ui_pkg.app = ui_app
    monkeypatch.setitem(sys.modules, "ui", ui_pkg)
    monkeypatch.setitem(sys.modules, "ui.app", ui_app)


@pytest.fixture
def stand_in_ui(monkeypatch) -> list:
    """A one-line Gradio page installed as `ui.app`; returns the assistants `build_ui` was called with."""
    import gradio as gr

    built = []

    def build_ui(a):
        built.append(a)
        with gr.Blocks() as demo:
            gr.Markdown("政策问答测试页")
        return demo

    install_ui(monkeypatch, build_ui)
    return built


def test_api_docs_and_health_still_work_with_a_ui_mounted_at_root(assistant, stand_in_ui):
    """`create_app` mounts `ui.app.build_ui(assistant)` at '/'; the API keeps its routes."""
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=True)) as c:
        assert stand_in_ui == [assistant]
        page = c.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert c.get("/healthz").json()["status"] == "ok"
        assert c.get("/docs").status_code == 200
        assert "/v1/ask" in c.get("/openapi.json").json()["paths"]
        assert c.post("/v1/ask", json={"question": Q_SZ}).json()["citations"]
        r = c.get("/v1/no-such-endpoint")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert 'rag_http_requests_total{endpoint="/healthz"' in c.get("/metrics").text


def test_with_keys_the_chat_page_asks_for_a_key_on_its_own_login_page(assistant, stand_in_ui):
    keys = KeyConfig(api_keys=frozenset({"user-key"}))
    with TestClient(create_app(assistant, keys=keys, with_ui=True)) as c:
        assert c.get("/config").status_code == 401
        first = c.get("/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].endswith("/login")
        page = c.get("/login").text
        assert "访问密钥" in page and "username" not in page.lower()
        wrong = c.post("/login", data={"key": "wrong"}, follow_redirects=False)
        assert wrong.status_code == 401 and "密钥不正确" in wrong.text
        ok = c.post("/login", data={"key": "user-key"}, follow_redirects=False)
        assert ok.status_code == 303 and "zc_session" in ok.cookies
        assert c.get("/config").status_code == 200 and c.get("/").status_code == 200
        assert c.get("/v1/documents").status_code == 401  # the page login is not an API key
        c.get("/logout")
        assert c.get("/config").status_code == 401


def test_a_failing_chat_page_leaves_the_api_running(assistant, monkeypatch):
    def build_ui(a):
        raise RuntimeError("broken page")

    install_ui(monkeypatch, build_ui)
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=True)) as c:
        assert c.get("/healthz").status_code == 200
        assert c.post("/v1/search", json={"query": "人才"}).status_code == 200
