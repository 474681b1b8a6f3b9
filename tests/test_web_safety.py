"""Web-facing safety: slow clients cut off, cross-site writes and foreign Host headers refused,
security headers, /metrics behind keys, `rag bench --http` on a copy of the index.

The slow-client tests run `rag serve`'s uvicorn settings (rag.cli.server_config) in-process on a
free loopback port with a tiny app and 1-second timeouts; the rest use TestClient.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag import bench_http
from rag.api import create_app
from rag.bench_http import _free_port
from rag.security import KeyConfig, allowed_hosts

Q_SZ = "深圳到2025年集成电路产业营收目标是多少？"
BASE = "http://127.0.0.1:8000"
FOREIGN = "http://attacker.example"


@pytest.fixture(scope="module")
def client(assistant):
    app = create_app(assistant, keys=KeyConfig(), with_ui=False, allowed_hosts=allowed_hosts("127.0.0.1", ""))
    with TestClient(app, base_url=BASE) as c:
        yield c


# -- cross-site writes and DNS rebinding --------------------------------------------------------------

def _upload(c, **headers):
    return c.post("/v1/documents", files={"file": ("a.txt", b"", "text/plain")}, data={"title": "x"},
                  headers=headers)


def test_cross_site_writes_are_refused_and_change_nothing(client, assistant):
    before = sorted(assistant.index.doc_ids)
    for headers in ({"Origin": FOREIGN}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:9999"},
                    {"Sec-Fetch-Site": "cross-site"}):
        for r in (_upload(client, **headers), client.delete("/v1/documents/shenzhen-2022", headers=headers),
                  client.post("/v1/ask", json={"question": Q_SZ}, headers=headers)):
            assert r.status_code == 403, (headers, r.text)
            err = r.json()["error"]
            assert err["code"] == "cross_origin_write" and err["type"] == "permission_error" and err["message"]
    assert sorted(assistant.index.doc_ids) == before


def test_same_origin_and_origin_less_writes_still_work(client):
    for headers in ({}, {"Origin": BASE}, {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}):
        assert client.post("/v1/ask", json={"question": Q_SZ}, headers=headers).status_code == 200
        # These reach the endpoints: the empty file and the unknown id are refused there, not here.
        r = _upload(client, **headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "empty_file"
        r = client.delete("/v1/documents/no-such-doc", headers=headers)
        assert r.status_code == 404
    # Reads are not writes: a foreign page may not read them anyway (no CORS), and GETs change nothing.
    assert client.get("/v1/documents", headers={"Origin": FOREIGN}).status_code == 200


def test_foreign_host_header_is_refused(client):
    for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.attacker.example"):
        r = client.delete("/v1/documents/no-such-doc", headers={"Host": host})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host", host
        assert client.get("/healthz", headers={"Host": host}).status_code == 400
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1", "") == ["localhost", "127.0.0.1", "::1"]
    assert allowed_hosts("10.0.0.5", "rag.example.com, *.corp.example") == [
        "localhost", "127.0.0.1", "::1", "10.0.0.5", "rag.example.com", "*.corp.example"]
    assert allowed_hosts("0.0.0.0", "") == ["*"]  # keyed server on all interfaces: names unknown
    assert "rag.example.com" in allowed_hosts("0.0.0.0", "rag.example.com")


# -- security headers ------------------------------------------------------------------------------------

def test_security_headers_on_every_response(client):
    for r in (client.get("/healthz"), client.get("/v1/documents"), client.get("/v1/no-such-endpoint"),
              client.post("/v1/ask", json={"question": ""}), _upload(client, Origin=FOREIGN),
              client.get("/healthz", headers={"Host": "attacker.example"})):
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["content-security-policy"] == "frame-ancestors 'none'"


# -- /metrics with keys -----------------------------------------------------------------------------------

def test_metrics_need_a_key_when_keys_are_set(assistant, monkeypatch):
    monkeypatch.delenv("RAG_METRICS_PUBLIC", raising=False)
    keys = KeyConfig(api_keys=frozenset({"user-key"}))
    with TestClient(create_app(assistant, keys=keys, with_ui=False)) as c:
        r = c.get("/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.get("/metrics", headers={"Authorization": "Bearer user-key"})
        assert r.status_code == 200 and "rag_http_requests_total" in r.text
    monkeypatch.setenv("RAG_METRICS_PUBLIC", "1")
    with TestClient(create_app(assistant, keys=keys, with_ui=False)) as c:
        assert c.get("/metrics").status_code == 200


# -- slow clients, on a real uvicorn server with `rag serve`'s settings -------------------------------------

async def _echo_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})
            if kind == "lifespan.shutdown":
                return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"got %d" % len(body)})


@pytest.fixture(scope="module")
def slow_server():
    import uvicorn

    from rag.cli import server_config

    mp = pytest.MonkeyPatch()
    for name in ("RAG_HTTP_HEADER_TIMEOUT_S", "RAG_HTTP_BODY_TIMEOUT_S", "RAG_HTTP_KEEPALIVE_S"):
        mp.setenv(name, "1")
    port = _free_port()
    server = uvicorn.Server(server_config(_echo_app, "127.0.0.1", port, log_level="warning"))
    mp.undo()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(5)
    return s


def _closed_after(s: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent before."""
    started, data = time.monotonic(), b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return time.monotonic() - started, data
        data += chunk


def test_half_a_request_line_is_cut_off(slow_server):
    with _connect(slow_server) as s:
        s.sendall(b"GET /heal")
        waited, data = _closed_after(s)
    assert waited < 3 and data.startswith(b"HTTP/1.1 408")


def test_a_trickled_request_head_is_cut_off_at_the_deadline(slow_server):
    """A header line every 0.3 s resets no timer: the head must be complete 1 s after it began."""
    with _connect(slow_server) as s:
        started, closed = time.monotonic(), False
        s.sendall(b"GET / HTTP/1.1\r\n")
        s.settimeout(0.3)
        while not closed and time.monotonic() - started < 5:
            try:
                s.sendall(b"x-slow: 1\r\n")
                closed = s.recv(4096).startswith(b"HTTP/1.1 408") or True
            except socket.timeout:
                continue
            except OSError:
                closed = True
        assert closed and time.monotonic() - started < 3


def test_an_oversized_request_head_is_refused(slow_server):
    with _connect(slow_server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        try:
            for _ in range(20):
                s.sendall(b"x-big: " + b"a" * 8000 + b"\r\n")
        except OSError:
            pass
        try:
            _, data = _closed_after(s)
        except ConnectionResetError:  # closed with our unread bytes in its buffer: the 431 may be lost
            data = b"reset"
    assert data.startswith(b"HTTP/1.1 431") or data == b"reset"


def test_a_big_body_in_the_first_packets_is_not_mistaken_for_a_big_head(slow_server):
    body = b"b" * 300_000
    with _connect(slow_server) as s:
        s.sendall(b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        _, data = _closed_after(s)
    assert data.startswith(b"HTTP/1.1 200") and b"got 300000" in data


def test_a_stalled_request_body_is_cut_off(slow_server):
    with _connect(slow_server) as s:
        s.sendall(b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\r\n0123456789")
        waited, _ = _closed_after(s)
    assert waited < 3


def test_a_prompt_request_is_answered_then_an_idle_keep_alive_closes(slow_server):
    with _connect(slow_server) as s:
        s.sendall(b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\n\r\nhello")
        waited, data = _closed_after(s)  # keep-alive (1 s here) then closes the idle connection
    assert data.startswith(b"HTTP/1.1 200") and b"got 5" in data
    assert b"server:" not in data.lower()  # no `server: uvicorn`
    assert 0.5 < waited < 3


# -- rag bench --http on a copy of the index -----------------------------------------------------------------

def test_bench_http_serves_a_copy_of_the_index(tmp_path, monkeypatch, capsys):
    real = tmp_path / "index"
    (real / "documents" / "d1").mkdir(parents=True)
    (real / "CURRENT").write_text("v-1")
    (real / "documents" / "d1" / "text.txt").write_text("uploaded")
    (real / ".tmp-123").mkdir()
    monkeypatch.setenv("RAG_INDEX_DIR", str(real))
    seen = {}

    def fake_start(port, env=None, *a, **kw):
        copy = Path(env["RAG_INDEX_DIR"])
        seen.update(copy=copy, files=sorted(str(p.relative_to(copy)) for p in copy.rglob("*")), env=env)
        return None

    async def fake_load(url, *a, **kw):
        return {"errors": 0, "ok": 1}

    monkeypatch.setattr(bench_http, "start_server", fake_start)
    monkeypatch.setattr(bench_http, "wait_healthy", lambda url, proc=None: {})
    monkeypatch.setattr(bench_http, "run_load", fake_load)
    args = argparse.Namespace(questions=None, url=None, no_cache=True, endpoint="/v1/ask", clients=1,
                              duration=1, warmup=0, api_key=None, timeout=1, json=True)
    assert bench_http.run_http_bench(args) == 0
    assert seen["copy"] != real and real not in seen["copy"].parents
    assert seen["files"] == ["CURRENT", "documents", "documents/d1", "documents/d1/text.txt"]
    assert seen["env"]["RAG_QUERY_CACHE"] == "0"
    assert not seen["copy"].exists()  # removed afterwards
    assert (real / "documents" / "d1" / "text.txt").read_text() == "uploaded"
