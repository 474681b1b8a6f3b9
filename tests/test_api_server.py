"""`rag serve` as a real uvicorn process on a free loopback port: HTTP, SSE and the OpenAI SDK.

Two servers run side by side on private copies of the session index: one with
no API keys (it must refuse a public address and listen on loopback only), one
with keys (every /v1 call needs one; the OpenAI SDK sends it as its api_key).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag.bench_http import _free_port, percentile, run_load, wait_healthy
from rag.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

Q_SZ = "深圳到2025年集成电路产业营收目标是多少？"
Q_SIP = "苏州工业园区的人才目标是什么？"


class Server:
    def __init__(self, index_dir: Path, log: Path, host: str, env: dict):
        import subprocess

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = {k: v for k, v in os.environ.items() if k not in ("RAG_API_KEYS", "RAG_ADMIN_KEYS")}
        full_env.update(RAG_INDEX_DIR=str(index_dir), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                        PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), full_env.get("PYTHONPATH", "")]), **env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "serve", "--host", host, "--port", str(self.port), "--no-ui"],
            cwd=PROJECT_ROOT, env=full_env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except Exception:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


@pytest.fixture(scope="module")
def servers(assistant, session_index_dir, tmp_path_factory):
    """(open server, keyed server), both started from the CLI, both healthy."""
    base = tmp_path_factory.mktemp("servers")
    made = []
    for name, host, env in (("open", "0.0.0.0", {"RAG_HTTP_HEADER_TIMEOUT_S": "2"}),
                            ("keyed", "127.0.0.1", {"RAG_API_KEYS": "user-key", "RAG_ADMIN_KEYS": "admin-key"})):
        shutil.copytree(session_index_dir, base / name)
        made.append(Server(base / name, base / f"{name}.log", host, env))
    try:
        for s in made:
            try:
                s.health = wait_healthy(s.url, s.proc, timeout=600)
            except RuntimeError as exc:
                pytest.fail(f"{exc}\n--- server output ---\n{s.output()}")
        yield tuple(made)
    finally:
        for s in made:
            s.stop()


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":
                found.add(addr)
    return found


def test_without_keys_the_server_says_so_and_listens_on_loopback_only(servers):
    open_server, _ = servers
    out = open_server.output()
    assert "no API keys configured" in out and "refusing to listen on 0.0.0.0" in out
    assert "loopback only (127.0.0.1)" in out
    assert _listening_addresses(open_server.port) == {"0100007F"}  # 127.0.0.1, not 0.0.0.0
    assert open_server.health["auth"] == "open_loopback_only"
    assert open_server.health["index_status"] == "loaded"


def test_ask_and_errors_over_real_http(servers):
    s, _ = servers
    r = httpx.post(f"{s.url}/v1/ask", json={"question": Q_SZ}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert "2500亿元" in body["answer"] and body["citations"][0]["doc_id"] == "shenzhen-2022"
    r = httpx.post(f"{s.url}/v1/ask", json={"question": ""}, timeout=60)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_question"
    r = httpx.get(f"{s.url}/v1/documents/%2E%2E", timeout=60)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_doc_id"
    r = httpx.post(f"{s.url}/v1/ask", content=b'{"question": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_ask_streams_server_sent_events_over_real_http(servers):
    s, _ = servers
    plain = httpx.post(f"{s.url}/v1/ask", json={"question": Q_SIP}, timeout=60).json()
    events, chunks = [], 0
    with httpx.stream("POST", f"{s.url}/v1/ask", json={"question": Q_SIP, "stream": True}, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers.get("cache-control") == "no-cache"
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: "):]
                events.append(data if data == "[DONE]" else json.loads(data))
        chunks += 1
    assert events[-1] == "[DONE]" and events[-2]["type"] == "citations"
    assert "".join(e["text"] for e in events if e != "[DONE]" and e["type"] == "delta") == plain["answer"]
    assert events[-2]["citations"] == plain["citations"]


def test_openai_sdk_chat_completions_non_streaming_and_streaming(servers):
    import openai

    s, _ = servers
    client = openai.OpenAI(base_url=f"{s.url}/v1", api_key="not-needed-on-an-open-server", max_retries=0,
                           timeout=60)
    assert [m.id for m in client.models.list()] == ["zhengce-rag"]
    resp = client.chat.completions.create(model="zhengce-rag", messages=[
        {"role": "system", "content": "只根据文件回答"}, {"role": "user", "content": Q_SZ}])
    content = resp.choices[0].message.content
    assert "2500亿元" in content and "参考条款：" in content
    citations = resp.model_extra["citations"]
    assert citations[0]["doc_id"] == "shenzhen-2022"
    assert f"[1] 《{citations[0]['doc_title']}》 {citations[0]['chunk_id']}" in content
    assert resp.choices[0].finish_reason == "stop"

    # A follow-up, streamed: history comes from the earlier messages.
    stream = client.chat.completions.create(model="zhengce-rag", stream=True, messages=[
        {"role": "user", "content": Q_SZ}, {"role": "assistant", "content": content},
        {"role": "user", "content": "那苏州工业园区呢？"}])
    parts, last = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        last = chunk
    text = "".join(parts)
    assert len(parts) >= 3
    assert "参考条款：" in text and "苏州工业园区" in text
    assert last.choices[0].finish_reason == "stop"
    assert {c["doc_id"] for c in last.model_extra["citations"]} == {"suzhou-sip-2022"}

    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="zhengce-rag", messages=[{"role": "user", "content": "   "}])
    assert info.value.body["code"] == "invalid_question"


def test_keyed_server_needs_keys_and_the_sdk_sends_them(servers):
    import openai

    _, k = servers
    assert "API keys required on /v1 (1 user, 1 admin" in k.output()
    assert k.health["auth"] == "api_keys"
    assert httpx.get(f"{k.url}/v1/documents", timeout=30).status_code == 401
    r = httpx.get(f"{k.url}/v1/documents", headers={"Authorization": "Bearer user-key"}, timeout=30)
    assert r.status_code == 200 and len(r.json()["documents"]) == 5
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{k.url}/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model="zhengce-rag", messages=[{"role": "user", "content": Q_SZ}])
    ok = openai.OpenAI(base_url=f"{k.url}/v1", api_key="user-key", max_retries=0, timeout=60)
    assert ok.chat.completions.create(model="zhengce-rag", messages=[{"role": "user", "content": Q_SZ}]).model_extra["citations"]
    # Upload: user key refused, admin key accepted; the document is searchable, then deleted.
    from tests.test_api_files import PLAN_LINES

    files = {"file": ("chengdu.txt", "\n".join(PLAN_LINES).encode(), "text/plain")}
    r = httpx.post(f"{k.url}/v1/documents", files=files, data={"title": "成都计划"},
                   headers={"Authorization": "Bearer user-key"}, timeout=60)
    assert r.status_code == 403
    r = httpx.post(f"{k.url}/v1/documents", files=files, data={"title": "成都计划", "aliases": "成都"},
                   headers={"Authorization": "Bearer admin-key"}, timeout=120)
    assert r.status_code == 201, r.text
    doc_id = r.json()["doc_id"]
    ans = ok.chat.completions.create(model="zhengce-rag", messages=[{"role": "user", "content": "成都对首轮流片的补助比例是多少？"}])
    assert ans.model_extra["citations"][0]["doc_id"] == doc_id
    r = httpx.delete(f"{k.url}/v1/documents/{doc_id}", headers={"Authorization": "Bearer admin-key"}, timeout=60)
    assert r.status_code == 200


def test_metrics_endpoint_is_prometheus_text(servers):
    s, _ = servers
    httpx.post(f"{s.url}/v1/ask", json={"question": Q_SZ}, timeout=60)
    r = httpx.get(f"{s.url}/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'rag_http_requests_total{endpoint="/v1/ask",method="POST",status="200"}' in r.text


def test_real_server_refuses_foreign_hosts_and_cross_site_writes_and_sets_security_headers(servers):
    s, k = servers
    r = httpx.delete(f"{s.url}/v1/documents/no-such-doc", headers={"Host": "attacker.example"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host"
    r = httpx.post(f"{s.url}/v1/documents", headers={"Origin": "http://attacker.example"}, timeout=30,
                   files={"file": ("a.txt", b"x", "text/plain")}, data={"title": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin_write"
    r = httpx.get(f"{s.url}/healthz", timeout=30)
    assert "server" not in r.headers  # no `server: uvicorn`
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert httpx.get(f"{k.url}/metrics", timeout=30).status_code == 401
    assert httpx.get(f"{k.url}/metrics", headers={"Authorization": "Bearer user-key"}, timeout=30).status_code == 200


def test_real_server_cuts_off_half_a_request_line(servers):
    import socket

    s, _ = servers  # started with RAG_HTTP_HEADER_TIMEOUT_S=2
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /heal")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert time.monotonic() - started < 6 and data.startswith(b"HTTP/1.1 408")


def test_short_load_run_has_no_errors(servers):
    """A few seconds of the `rag bench --http` client: 8 concurrent clients, zero errors."""
    import asyncio

    s, _ = servers
    report = asyncio.run(run_load(s.url, "/v1/ask", clients=8, duration=4.0, warmup=1.0))
    assert report["errors"] == 0, report
    assert report["ok"] >= 8 and report["throughput_rps"] > 0
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p95"] <= report["latency_ms"]["max"]


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0


def _is_marker(content: str, a) -> bool:
    return content[a["start_index"]:a["end_index"]] == f"[{a['n']}]"


def test_openai_sdk_gets_citations_as_annotations_and_usage(servers):
    import openai

    s, _ = servers
    client = openai.OpenAI(base_url=f"{s.url}/v1", api_key="x", max_retries=0, timeout=60)
    resp = client.chat.completions.create(model="zhengce-rag", messages=[{"role": "user", "content": Q_SZ}],
                                          extra_body={"include_references": False})
    message = resp.choices[0].message
    assert "2500亿元" in message.content and "参考条款" not in message.content
    (ann,) = message.annotations  # the SDK's typed field
    assert ann.type == "url_citation" and ann.url_citation.url.startswith(f"{s.url}/v1/documents/shenzhen-2022/")
    assert _is_marker(message.content, ann.url_citation.model_dump())
    assert httpx.get(ann.url_citation.url, timeout=30).status_code == 200
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

    stream = client.chat.completions.create(model="zhengce-rag", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": Q_SZ}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    stop = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    (ann,) = stop.choices[0].delta.model_extra["annotations"]
    assert _is_marker(text, ann["url_citation"]) and "参考条款：" in text
    assert chunks[-1].usage.completion_tokens > resp.usage.completion_tokens  # the references block counts

    r = client.responses.create(model="zhengce-rag", input=Q_SZ)
    assert "2500亿元" in r.output_text and r.output[0].content[0].annotations[0].type == "url_citation"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="zhengce-rag", n=2, messages=[{"role": "user", "content": Q_SZ}])
    assert info.value.body["param"] == "n" and info.value.body["code"] == "unsupported_parameter"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": Q_SZ}])
    assert info.value.body["code"] == "model_not_found"


def test_langchain_chat_openai_keeps_the_citations(servers):
    """langchain-openai's chat-completions client keeps only `content` (the references block and the
    [n] markers); with the Responses API it keeps the annotations, invoked and streamed."""
    from langchain_openai import ChatOpenAI

    s, _ = servers
    chat = ChatOpenAI(model="zhengce-rag", base_url=f"{s.url}/v1", api_key="x", max_retries=0, timeout=60)
    msg = chat.invoke(Q_SZ)
    assert "2500亿元" in msg.text and "参考条款：" in msg.text
    assert msg.usage_metadata["input_tokens"] > 0 and msg.usage_metadata["output_tokens"] > 0

    chat = ChatOpenAI(model="zhengce-rag", base_url=f"{s.url}/v1", api_key="x", max_retries=0, timeout=60,
                      use_responses_api=True, extra_body={"include_references": False})
    for msg in (chat.invoke(Q_SZ), _merged(chat.stream(Q_SZ))):
        (block,) = [b for b in msg.content if b["type"] == "text"]
        assert "2500亿元" in block["text"] and "参考条款" not in block["text"]
        (ann,) = block["annotations"]
        assert ann["type"] == "url_citation" and ann["doc_id"] == "shenzhen-2022" and ann["clause_id"]
        assert _is_marker(block["text"], ann) and ann["url"].startswith(f"{s.url}/v1/documents/shenzhen-2022/")
        assert msg.usage_metadata["input_tokens"] > 0


def _merged(chunks):
    total = None
    for chunk in chunks:
        total = chunk if total is None else total + chunk
    return total


def test_langchain_retriever_over_search(servers):
    import asyncio

    from rag.langchain_client import PolicyAPIError, PolicyRetriever

    s, k = servers
    docs = PolicyRetriever(base_url=s.url, k=3).invoke(Q_SZ)
    assert len(docs) == 3
    top = docs[0]
    assert top.metadata["doc_id"] == "shenzhen-2022" and "2500亿元" in top.page_content
    assert top.metadata["rank"] == 1 and top.metadata["score"] > 0 and top.metadata["clause_id"]
    assert top.metadata["section_path"] == [p.strip() for p in top.metadata["section"].split(">")]
    assert httpx.get(top.metadata["url"], timeout=30).json()["clause"]["clause_id"] == top.metadata["clause_id"]
    only = asyncio.run(PolicyRetriever(base_url=s.url, k=5, documents=["qingpu-2023"]).ainvoke("人才"))
    assert only and {d.metadata["doc_id"] for d in only} == {"qingpu-2023"}
    keyed = PolicyRetriever(base_url=k.url, api_key="user-key", k=2).invoke(Q_SIP)
    assert keyed[0].metadata["doc_id"] == "suzhou-sip-2022"
    with pytest.raises(PolicyAPIError) as info:
        PolicyRetriever(base_url=k.url).invoke(Q_SIP)
    assert info.value.status == 401 and info.value.code == "missing_api_key"


def test_real_server_logs_each_request_is_ready_and_serves_docs_offline(servers):
    s, _ = servers
    deadline = time.monotonic() + 60
    while (r := httpx.get(f"{s.url}/readyz", timeout=30)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert r.status_code == 200 and r.json()["model_warm"] and r.json()["index_loaded"]
    httpx.post(f"{s.url}/v1/ask", json={"question": Q_SIP}, timeout=60)
    docs = httpx.get(f"{s.url}/docs", timeout=30)
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert httpx.get(f"{s.url}/docs/assets/swagger-ui-bundle.js", timeout=30).status_code == 200
    time.sleep(0.5)
    out = s.output()
    assert re.search(r"rag\.access POST /v1/ask 200 [\d.]+ms", out), out[-2000:]
    assert re.search(r"rag\.access GET /readyz (200|503) ", out)
    assert Q_SIP not in out  # no question text unless RAG_ACCESS_LOG_QUESTIONS=1


def test_sigterm_stops_the_server_cleanly(servers):
    for s in servers:
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why it stopped.
        assert s.stop() in (0, -signal.SIGTERM), s.output()[-2000:]
        assert "Application shutdown complete" in s.output()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{s.url}/healthz", timeout=5)
