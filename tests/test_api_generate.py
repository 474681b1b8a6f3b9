"""The API's per-request `backend`: a generative answer over HTTP, streamed and verified.

The model is a real OpenAI-compatible endpoint on loopback (`stub_openai_server`,
canned replies), so the whole path runs: API → Assistant → ChatOpenAI → HTTP →
verification.  The real local model is in test_generate_real.py.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.security import KeyConfig
from test_api import sse_events

Q_SZ = "深圳到2025年集成电路产业营收目标是多少？"
GOOD = "到2025年，深圳集成电路产业营收目标是突破2500亿元[1]。"
HALLUCINATED = "到2025年，深圳集成电路产业营收目标是突破2600亿元[1]。"


@pytest.fixture
def openai_client(assistant, stub_openai_server, monkeypatch):
    base, requests, reply = stub_openai_server
    monkeypatch.setenv("RAG_OPENAI_BASE_URL", base)
    monkeypatch.setenv("RAG_OPENAI_MODEL", "stub-model")
    monkeypatch.delenv("RAG_BACKEND", raising=False)
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=False)) as c:
        yield c, requests, reply


def test_ask_with_openai_backend_returns_the_verified_generation(openai_client):
    client, requests, reply = openai_client
    reply["text"] = GOOD
    body = client.post("/v1/ask", json={"question": Q_SZ, "backend": "openai"}).json()
    assert body["backend"] == "openai" and body["verified"] is True and "fallback_reason" not in body
    assert body["answer"] == GOOD and len(requests) == 1
    assert body["citations"][0]["doc_id"] == "shenzhen-2022" and "2500亿元" in body["citations"][0]["text"]
    # the default stays extractive: no model call
    body = client.post("/v1/ask", json={"question": Q_SZ}).json()
    assert body["backend"] == "extractive" and "verified" not in body and len(requests) == 1


def test_hallucinated_figure_over_http_falls_back_and_says_why(openai_client):
    client, _, reply = openai_client
    reply["text"] = HALLUCINATED
    body = client.post("/v1/ask", json={"question": Q_SZ, "backend": "openai"}).json()
    assert body["verified"] is False and body["fallback_reason"].startswith("unsupported_figure:2600")
    assert "2600" not in body["answer"] and "2500亿元" in body["answer"]


def test_streamed_generation_sends_verified_deltas_then_citations(openai_client):
    client, _, reply = openai_client
    reply["text"] = GOOD + "这一目标很宏伟[9]。"  # the second sentence cites a clause it was not given
    r = client.post("/v1/ask", json={"question": Q_SZ, "backend": "openai", "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    deltas = [e["text"] for e in events if isinstance(e, dict) and e["type"] == "delta"]
    final = events[-2]
    assert final["type"] == "citations" and final["verified"] is True and final["dropped_sentences"] == 1
    assert "".join(deltas) == GOOD and not any(e.get("type") == "replace" for e in events[:-1])


def test_streamed_fallback_tells_the_client_to_replace_the_text(openai_client):
    client, _, reply = openai_client
    reply["text"] = HALLUCINATED
    events = sse_events(client.post("/v1/ask", json={"question": Q_SZ, "backend": "openai",
                                                     "stream": True}).text)
    (replace,) = [e for e in events[:-1] if e["type"] == "replace"]
    assert "2500亿元" in replace["text"] and "2600" not in replace["text"]
    assert "2600" not in "".join(e["text"] for e in events[:-1] if e["type"] == "delta")
    assert events[-2]["verified"] is False


def test_chat_completions_backend_extension_streams_the_generation(openai_client):
    client, requests, reply = openai_client
    reply["text"] = GOOD
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q_SZ}],
                                                  "backend": "openai", "stream": True})
    events = sse_events(r.text)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text.startswith(GOOD) and "参考条款：" in text
    last = events[-2]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["verified"] is True and last["backend"] == "openai" and last["citations"]
    body = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": Q_SZ}],
                                                     "backend": "openai"}).json()
    assert body["choices"][0]["message"]["content"].startswith(GOOD) and body["verified"] is True


def test_bad_backend_is_a_422_and_healthz_lists_backends(openai_client, monkeypatch):
    client, requests, _ = openai_client
    r = client.post("/v1/ask", json={"question": Q_SZ, "backend": "gpt-5"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "backend" and not requests
    backends = client.get("/healthz").json()["backends"]
    assert backends["extractive"] == {"available": True}
    assert backends["openai"] == {"available": True}
    monkeypatch.delenv("RAG_OPENAI_MODEL")
    assert "RAG_OPENAI_MODEL" in client.get("/healthz").json()["backends"]["openai"]["detail"]


def test_unconfigured_backend_answers_extractively_and_says_why(openai_client, monkeypatch):
    client, requests, _ = openai_client
    monkeypatch.delenv("RAG_OPENAI_MODEL")
    body = client.post("/v1/ask", json={"question": Q_SZ, "backend": "openai"}).json()
    assert body["verified"] is False and body["fallback_reason"].startswith("model_unavailable")
    assert "2500亿元" in body["answer"] and not requests


def test_a_bad_streamed_generative_request_is_a_4xx_before_the_stream(openai_client):
    client, requests, _ = openai_client
    for path, body in [("/v1/ask", {"question": Q_SZ}),
                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": Q_SZ}]})]:
        r = client.post(path, json={**body, "backend": "openai", "stream": True, "documents": ["no-such-plan"]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_question", (path, r.text)
    assert not requests
