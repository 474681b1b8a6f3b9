"""The API's answer cache (`rag serve`: RAG_ANSWER_CACHE) and the upload jobs' one-runner claim (rag/jobs.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from fastapi.testclient import TestClient

from rag.api import create_app
from rag.config import PROJECT_ROOT
from rag.jobs import UploadJobs
from rag.security import KeyConfig

Q = "深圳到2025年集成电路产业营收目标是多少？"


def test_a_repeated_question_is_answered_from_the_cache_until_the_index_changes(assistant):
    app = create_app(assistant, keys=KeyConfig(), with_ui=False, answer_cache=2)
    with TestClient(app) as client:
        first = client.post("/v1/ask", json={"question": Q}).json()
        again = client.post("/v1/ask", json={"question": Q}).json()
        assert "answer_cache" not in first["timings_ms"] and "answer_cache" in again["timings_ms"]
        assert {k: v for k, v in again.items() if k != "timings_ms"} == \
            {k: v for k, v in first.items() if k != "timings_ms"}
        other = client.post("/v1/ask", json={"question": Q, "k": 3}).json()  # another request: not cached
        assert "answer_cache" not in other["timings_ms"]
        follow_up = client.post("/v1/ask", json={"question": Q, "history": [
            {"role": "user", "content": "苏州呢？"}, {"role": "assistant", "content": "……"}]}).json()
        assert "answer_cache" not in follow_up["timings_ms"]  # follow-ups are never cached
        assistant.set_answerer(assistant.answerer)  # a new snapshot (as an upload would publish)
        fresh = client.post("/v1/ask", json={"question": Q}).json()
        assert "answer_cache" not in fresh["timings_ms"] and fresh["answer"] == first["answer"]
        assert app.state.service.answer_cache_hits == 1
        assert "rag_answer_cache_hits_total 1.0" in client.get("/metrics").text
    plain = create_app(assistant, keys=KeyConfig(), with_ui=False)  # the default: no answer cache
    with TestClient(plain) as client:
        for _ in range(2):
            assert "answer_cache" not in client.post("/v1/ask", json={"question": Q}).json()["timings_ms"]


HOLDER = textwrap.dedent("""
    import sys, time
    from types import SimpleNamespace
    from rag.jobs import UploadJobs
    jobs = UploadJobs(SimpleNamespace(settings=SimpleNamespace(index_dir=sys.argv[1])))
    print(jobs._claim("a" * 32), flush=True)
    sys.stdin.readline()
""")


def test_a_job_is_claimed_by_one_process_and_free_again_when_it_dies(tmp_path):
    from types import SimpleNamespace

    jobs = UploadJobs(SimpleNamespace(settings=SimpleNamespace(index_dir=tmp_path)))
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    try:
        assert child.stdout.readline().strip() == "True"
        assert jobs._claim("a" * 32) is False  # the other process runs it
        assert jobs._claim("b" * 32) is True and jobs._claim("b" * 32) is False  # never twice here either
    finally:
        child.kill()  # dies holding the claim: the kernel drops it
        child.wait()
    assert jobs._claim("a" * 32) is True
