"""Shared fixtures: one real embedding model and one real index per test session."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from rag.config import PROJECT_ROOT, Settings  # noqa: E402

SEEDS = PROJECT_ROOT / "seeds"


@pytest.fixture(scope="session")
def corpus():
    from rag.corpus import load_corpus

    return load_corpus(SEEDS)


@pytest.fixture(scope="session")
def embedder():
    """The embedder users get: the default backend (RAG_EMBED_BACKEND, else onnx)."""
    from rag.embed_backend import make_embedder

    return make_embedder(Settings())


@pytest.fixture(scope="session")
def session_index_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="session")
def assistant(embedder, session_index_dir):
    """A real Assistant over the seeds, with its own index built once for the session."""
    from rag.service import Assistant

    settings = Settings(index_dir=session_index_dir)
    return Assistant(settings, embedder=embedder)


# A one-document seed corpus for tests that rebuild indexes (cheap to embed).
SMALL_PLAN = """示例市集成电路行动计划

一、发展目标

到2025年，示例市集成电路产业规模达到800亿元，培育10家上市企业。

二、重点任务

（一）设计业倍增。支持芯片设计企业做大做强。（责任单位：市工信局）

（二）人才引育。引进高层次人才500名。
"""


def kill_when_paused(args: list[str], point: str, log_path) -> None:
    """Run `python *args` with RAG_TEST_PAUSE_AT=`point`, wait until it prints "PAUSED <point>" (up to
    300 s), then SIGKILL it: a crash at that exact moment (rag.store.crash_point).  Its stderr goes
    to `log_path`, whose tail a failure shows."""
    import selectors
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "RAG_TEST_PAUSE_AT": point, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    with open(log_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, *args], env=env, cwd=PROJECT_ROOT,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline, line = time.monotonic() + 300, ""
        try:
            while time.monotonic() < deadline and not line.startswith(("PAUSED", "DONE")):
                if sel.select(timeout=1):
                    line = proc.stdout.readline()
                    if not line and proc.poll() is not None:
                        break
            assert line.strip() == f"PAUSED {point}", (line, log_path.read_text(errors="replace")[-3000:])
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


@pytest.fixture
def small_seeds(tmp_path):
    """A seeds folder holding only SMALL_PLAN and its catalog entry."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "demo.txt").write_text(SMALL_PLAN, encoding="utf-8")
    (seeds / "catalog.json").write_text(json.dumps({"documents": [{
        "doc_id": "demo-2025", "file": "demo.txt", "title": "示例市集成电路行动计划", "issuer": "示例市",
        "date": "2023", "region": "示例市", "aliases": ["示例市"]}]}, ensure_ascii=False), encoding="utf-8")
    return seeds


@pytest.fixture
def wuxi_plan() -> str:
    """A small plan that is not in the seeds: what the upload tests upload."""
    return """无锡市集成电路产业发展三年行动计划（2024-2026年）
一、发展目标
到2026年，全市集成电路产业营收突破3000亿元，培育10家以上营收超50亿元的龙头企业。
二、重点任务
（一）做强设计业。支持设计企业开展车规级芯片研发，对流片费用给予最高30%的补贴。
（二）提升制造业。推动12英寸特色工艺产线扩产。
"""


@pytest.fixture
def fresh_settings(tmp_path):
    return Settings(index_dir=tmp_path / "index")


@pytest.fixture
def stub_openai_server():
    """A loopback HTTP server speaking the OpenAI chat-completions wire format (SSE when asked
    to stream), answering with a canned text and recording every request body."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    requests: list[dict] = []
    reply = {"text": ""}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            base = {"id": "c1", "created": 0, "model": body["model"]}
            if body.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in [reply["text"][i:i + 4] for i in range(0, len(reply["text"]), 4)]:
                    chunk = {**base, "object": "chat.completion.chunk",
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                done = {**base, "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            else:
                out = json.dumps({**base, "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply["text"]},
                     "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests, reply
    server.shutdown()
    server.server_close()
