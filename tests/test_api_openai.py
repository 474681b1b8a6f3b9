"""The OpenAI-compatible endpoints behave like OpenAI's: citations as `url_citation` annotations,
`usage`, 400 for what cannot be honoured, 404 for an unknown model, the Responses API, and the
generative backends' language and token limit (a stub OpenAI endpoint on loopback is the model).

The real uvicorn server with the openai SDK and LangChain's ChatOpenAI is in test_api_server.py.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.api.tokens import count_tokens
from rag.generate import SYSTEM_EN, SYSTEM_ZH
from rag.security import KeyConfig
from test_api import sse_events

Q_SZ = "深圳到2025年集成电路产业营收目标是多少？"
Q_SIP = "苏州工业园区的人才目标是什么？"
GOOD = "到2025年，深圳集成电路产业营收目标是突破2500亿元[1]。"
USER = [{"role": "user", "content": Q_SZ}]


@pytest.fixture(scope="module")
def client(assistant):
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=False)) as c:
        yield c


def _check_annotations(client, content: str, annotations: list[dict], citations: list[dict]) -> None:
    assert {a["n"] for a in annotations} == {c["n"] for c in citations}
    for a in annotations:
        c = next(c for c in citations if c["n"] == a["n"])
        assert a["doc_id"] == c["doc_id"] and a["clause_id"] == c["clause_id"]
        assert content[a["start_index"]:a["end_index"]] == f"[{a['n']}]"
        assert a["title"].startswith(f"《{c['doc_title']}》")
        # the url is the clause in context, on this server
        r = client.get(a["url"])
        assert r.status_code == 200 and r.json()["clause"]["clause_id"] == c["clause_id"]


def test_chat_completion_carries_url_citation_annotations_and_usage(client):
    body = client.post("/v1/chat/completions", json={"model": "zhengce-rag", "messages": USER}).json()
    message = body["choices"][0]["message"]
    content = message["content"]
    assert all(a["type"] == "url_citation" for a in message["annotations"])
    _check_annotations(client, content, [a["url_citation"] for a in message["annotations"]], body["citations"])
    assert body["usage"] == {"prompt_tokens": count_tokens(Q_SZ), "completion_tokens": count_tokens(content),
                             "total_tokens": count_tokens(Q_SZ) + count_tokens(content)}
    assert 0 < body["usage"]["prompt_tokens"] < len(Q_SZ)


def test_references_block_can_be_left_out_by_request_or_setting(client, monkeypatch):
    with_refs = client.post("/v1/chat/completions", json={"messages": USER}).json()
    body = client.post("/v1/chat/completions", json={"messages": USER, "include_references": False}).json()
    content = body["choices"][0]["message"]["content"]
    assert "参考条款" not in content and content == with_refs["choices"][0]["message"]["content"].split("\n\n参考条款：")[0]
    _check_annotations(client, content, [a["url_citation"] for a in body["choices"][0]["message"]["annotations"]],
                       body["citations"])
    monkeypatch.setenv("RAG_CHAT_REFERENCES", "0")
    body = client.post("/v1/chat/completions", json={"messages": USER}).json()
    assert "参考条款" not in body["choices"][0]["message"]["content"]
    body = client.post("/v1/chat/completions", json={"messages": USER, "include_references": True}).json()
    assert "参考条款" in body["choices"][0]["message"]["content"]


def test_streamed_chat_completion_ends_with_annotations_and_usage(client):
    plain = client.post("/v1/chat/completions", json={"messages": USER}).json()
    events = sse_events(client.post("/v1/chat/completions", json={
        "messages": USER, "stream": True, "stream_options": {"include_usage": True}}).text)
    assert events[-1] == "[DONE]"
    usage_chunk, stop = events[-2], events[-3]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == plain["usage"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in events[:-2])
    assert text == plain["choices"][0]["message"]["content"]
    assert stop["choices"][0]["finish_reason"] == "stop"
    assert stop["choices"][0]["delta"]["annotations"] == plain["choices"][0]["message"]["annotations"]
    without = sse_events(client.post("/v1/chat/completions", json={"messages": USER, "stream": True}).text)
    assert "usage" not in without[-2] and without[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("param,value", [
    ("n", 2), ("response_format", {"type": "json_object"}),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("tool_choice", "required"), ("functions", [{"name": "f"}]), ("logprobs", True), ("top_logprobs", 3),
    ("stop", ["。"]), ("audio", {"voice": "alloy"}), ("logit_bias", {"100": 5}),
])
def test_parameters_that_cannot_be_honoured_are_a_400_naming_them(client, param, value):
    r = client.post("/v1/chat/completions", json={"messages": USER, param: value})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "unsupported_parameter" and err["param"] == param and param in err["message"]
    assert err["message"].startswith(f"不支持的参数 {param!r}")
    assert err["type"] == "invalid_request_error"


def test_harmless_values_and_sampling_parameters_are_accepted(client):
    r = client.post("/v1/chat/completions", json={
        "messages": USER, "n": 1, "response_format": {"type": "text"}, "tools": [], "temperature": 0.3,
        "top_p": 0.9, "seed": 1, "user": "u1", "stream_options": None, "logprobs": False})
    assert r.status_code == 200, r.text


def test_unknown_parameters_are_a_400_and_unknown_models_a_404(client):
    r = client.post("/v1/chat/completions", json={"messages": USER, "frobnicate": 1},
                    headers={"Accept-Language": "en"})
    assert r.status_code == 400 and r.json()["error"] == {
        "code": "unknown_parameter", "param": "frobnicate", "type": "invalid_request_error",
        "message": "unrecognized request argument supplied: frobnicate"}
    r = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER},
                    headers={"Accept-Language": "en"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and err["type"] == "invalid_request_error" and err["param"] == "model"
    assert "gpt-4o" in err["message"] and "zhengce-rag" in err["message"]
    r = client.post("/v1/responses", json={"model": "gpt-4o", "input": Q_SZ})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_max_tokens_is_refused_by_the_extractive_backend(client):
    for name in ("max_tokens", "max_completion_tokens"):
        r = client.post("/v1/chat/completions", json={"messages": USER, name: 50})
        assert r.status_code == 400 and r.json()["error"]["param"] == name
        assert "抽取式回答不支持参数" in r.json()["error"]["message"]
    r = client.post("/v1/responses", json={"input": Q_SZ, "max_output_tokens": 50})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_output_tokens"


def test_responses_api_output_text_carries_the_annotations(client):
    chat = client.post("/v1/chat/completions", json={"messages": USER}).json()
    body = client.post("/v1/responses", json={"model": "zhengce-rag", "input": Q_SZ}).json()
    assert body["object"] == "response" and body["status"] == "completed" and body["id"].startswith("resp_")
    (item,) = body["output"]
    (part,) = item["content"]
    assert item["type"] == "message" and part["type"] == "output_text"
    assert part["text"] == chat["choices"][0]["message"]["content"]
    assert all(a["type"] == "url_citation" for a in part["annotations"])
    _check_annotations(client, part["text"], part["annotations"], body["citations"])
    assert body["usage"]["input_tokens"] == chat["usage"]["prompt_tokens"]
    assert body["usage"]["output_tokens"] == chat["usage"]["completion_tokens"]
    # messages as input, with history; and a follow-up
    body = client.post("/v1/responses", json={"input": [
        {"role": "user", "content": [{"type": "input_text", "text": Q_SZ}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": part["text"]}]},
        {"role": "user", "content": "那苏州工业园区呢？"}]}).json()
    assert {c["doc_id"] for c in body["citations"]} == {"suzhou-sip-2022"}
    r = client.post("/v1/responses", json={"input": Q_SZ, "previous_response_id": "resp_1"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "previous_response_id"
    r = client.post("/v1/responses", json={"input": [{"type": "function_call_output", "output": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_input"


def test_streamed_responses_api_sends_deltas_annotations_and_completed(client):
    plain = client.post("/v1/responses", json={"input": Q_SZ}).json()
    r = client.post("/v1/responses", json={"input": Q_SZ, "stream": True})
    events = sse_events(r.text)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(1, len(events) + 1))
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == plain["output"][0]["content"][0]["text"]
    added = [e["annotation"] for e in events if e["type"] == "response.output_text.annotation.added"]
    assert added == plain["output"][0]["content"][0]["annotations"]
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == text
    assert events[-1]["response"]["usage"] == plain["usage"]


# -- generative backends: the language asked for, the token limit ------------------------------------

@pytest.fixture
def openai_client(assistant, stub_openai_server, monkeypatch):
    base, requests, reply = stub_openai_server
    monkeypatch.setenv("RAG_OPENAI_BASE_URL", base)
    monkeypatch.setenv("RAG_OPENAI_MODEL", "stub-model")
    monkeypatch.delenv("RAG_BACKEND", raising=False)
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=False)) as c:
        yield c, requests, reply


@pytest.mark.parametrize("system,rules", [
    ("You are helpful. Please answer in English.", SYSTEM_EN), ("请用中文回答。", SYSTEM_ZH), (None, SYSTEM_ZH)])
def test_a_system_message_asking_for_a_language_reaches_the_models_prompt(openai_client, system, rules):
    client, requests, reply = openai_client
    reply["text"] = GOOD
    messages = ([{"role": "system", "content": system}] if system else []) + USER
    r = client.post("/v1/chat/completions", json={"messages": messages, "backend": "openai"})
    assert r.status_code == 200, r.text
    sent = requests[-1]["messages"]
    assert sent[0]["role"] == "system" and sent[0]["content"] == rules
    if rules is SYSTEM_EN:
        assert r.json()["choices"][0]["message"]["content"].split("\n\n")[1].startswith("References:")


def test_english_question_answered_in_chinese_when_asked(openai_client):
    client, requests, reply = openai_client
    reply["text"] = GOOD
    client.post("/v1/responses", json={"instructions": "请用中文回答", "backend": "openai", "stream": True,
                                       "input": "What is Shenzhen's 2025 revenue target for integrated circuits?"})
    assert requests[-1]["messages"][0]["content"] == SYSTEM_ZH


def test_max_tokens_reaches_the_generative_model_capped_by_the_setting(openai_client, monkeypatch):
    client, requests, reply = openai_client
    reply["text"] = GOOD
    r = client.post("/v1/chat/completions", json={"messages": USER, "backend": "openai", "max_tokens": 40})
    assert r.status_code == 200, r.text
    assert requests[-1]["max_completion_tokens"] == 40 and requests[-1]["max_tokens"] == 40
    client.post("/v1/chat/completions", json={"messages": USER, "backend": "openai", "max_tokens": 100000,
                                              "stream": True})
    assert requests[-1]["max_completion_tokens"] == 200  # RAG_LLM_MAX_TOKENS (default 200) is the ceiling


def test_responses_input_of_odd_shapes_is_a_4xx_and_long_questions_pass(client):
    for bad in ([{"role": "user", "content": 5}], [{"role": "user", "content": {"text": "x"}}],
                [{"role": "user", "content": ["x"]}], [{"role": "user", "content": Q_SZ}] * 200):
        r = client.post("/v1/responses", json={"input": bad})
        assert 400 <= r.status_code < 500 and r.json()["error"]["param"] == "input", (bad, r.text)
    long_question = "请问" * 100 + Q_SZ  # a string input is a question: up to 1000 characters
    assert client.post("/v1/responses", json={"input": long_question}).status_code == 200
