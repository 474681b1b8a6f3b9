"""`rag serve --workers 2`: real worker processes on one index.  An upload through one worker is answered
by every worker; upload jobs are visible from any worker; a job left pending by a server that died is
run again by exactly one of the workers that start on the index (rag/jobs.py `_claim`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from rag.bench_http import _free_port, wait_healthy
from rag.config import PROJECT_ROOT
from rag.store import DocumentStore
from tests.test_api_files import PLAN_LINES

pytestmark = pytest.mark.slow

PLAN = "\n".join(PLAN_LINES)
CHENGDU_Q = "成都对首轮流片的补助比例是多少？"


DIES_AFTER_ACCEPTING = textwrap.dedent("""
    import sys
    from pathlib import Path
    from fastapi.testclient import TestClient
    from rag.api import create_app
    from rag.config import Settings
    from rag.jobs import UploadJobs
    from rag.security import KeyConfig
    from rag.service import Assistant
    UploadJobs._work = lambda self, job, prepared: None  # accepted, never run: then the process exits
    app = create_app(Assistant(Settings(index_dir=Path(sys.argv[1]))), keys=KeyConfig(), with_ui=False)
    with TestClient(app) as client:
        r = client.post("/v1/documents", params={"wait": "false"}, data={"title": "成都计划"},
                        files={"file": ("chengdu.txt", Path(sys.argv[2]).read_bytes(), "text/plain")})
    assert r.status_code == 202, r.text
    print(r.json()["job"]["id"], flush=True)
""")


def _pending_job(index_dir, tmp_path, env) -> str:
    """A job accepted (record and text durable, 202 sent) by a server process that then died."""
    plan = tmp_path / "chengdu.txt"
    plan.write_text(PLAN, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", DIES_AFTER_ACCEPTING, str(index_dir), str(plan)], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def _worker_pids(url: str, n: int, timeout: float = 300.0) -> set[int]:
    """Every worker's pid, from /healthz asked on fresh connections (the kernel hands each to one worker)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < n:
        assert time.monotonic() < deadline, f"only workers {seen} answered"
        try:
            seen.add(httpx.get(f"{url}/healthz", timeout=10).json()["worker"]["pid"])
        except (httpx.HTTPError, KeyError, ValueError):
            time.sleep(0.2)
    return seen


def _answers_by_worker(url: str, question: str, pids: set[int], timeout: float = 60.0) -> dict[int, dict]:
    """An answer to `question` from each worker: /healthz then /v1/ask on one keep-alive connection (one worker)."""
    got: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while set(got) != pids:
        assert time.monotonic() < deadline, f"answers only from {set(got)} of {pids}"
        with httpx.Client(base_url=url, timeout=30) as http:
            pid = http.get("/healthz").json()["worker"]["pid"]
            got[pid] = http.post("/v1/ask", json={"question": question}).json()
    return got


def test_workers_share_the_index_see_uploads_and_run_a_pending_job_once(session_index_dir, assistant, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(session_index_dir, index_dir)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_API_KEYS", "RAG_ADMIN_KEYS")}
    env.update(RAG_INDEX_DIR=str(index_dir), RAG_INDEX_CHECK_S="0.2", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    job_id = _pending_job(index_dir, tmp_path, env)
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "-v", "serve", "--port", str(port), "--no-ui",
                             "--workers", "2"], cwd=PROJECT_ROOT, env=env, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(url, proc, timeout=300)
        pids = _worker_pids(url, 2)
        assert len(pids) == 2 and proc.pid not in pids

        # The job the dead server accepted: run again by one worker, seen as done from any.
        deadline = time.monotonic() + 180
        while True:
            job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()["job"]
            if job["status"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert job["status"] == "done" and job["attempts"] == 2, job  # one run, not one per worker
        output = log.read_text(encoding="utf-8", errors="replace")
        assert output.count(f"upload job {job_id}: indexing") == 1, output[-3000:]
        chengdu = job["doc_id"]
        for pid, ans in _answers_by_worker(url, CHENGDU_Q, pids).items():
            assert ans["citations"][0]["doc_id"] == chengdu, (pid, ans)

        # A synchronous upload through one worker is answered by both (they re-read CURRENT).
        wuxi = PLAN.replace("成都", "无锡")
        r = httpx.post(f"{url}/v1/documents", data={"title": "无锡计划"},
                       files={"file": ("wuxi.txt", wuxi.encode(), "text/plain")}, timeout=120)
        assert r.status_code == 201, r.text
        wuxi_id = r.json()["doc_id"]
        answers = _answers_by_worker(url, "无锡对首轮流片的补助比例是多少？", pids)
        for pid, ans in answers.items():
            assert ans["citations"][0]["doc_id"] == wuxi_id, (pid, ans)

        # A job accepted by one worker is visible, and finishes, from the others.
        r = httpx.post(f"{url}/v1/documents", params={"wait": "false"}, data={"title": "绵阳计划"},
                       files={"file": ("mianyang.txt", PLAN.replace("成都", "绵阳").encode(), "text/plain")},
                       timeout=60)
        assert r.status_code == 202, r.text
        new_id, seen_by = r.json()["job"]["id"], set()
        deadline = time.monotonic() + 120
        while True:
            with httpx.Client(base_url=url, timeout=10) as http:
                seen_by.add(http.get("/healthz").json()["worker"]["pid"])
                job = http.get(f"/v1/jobs/{new_id}").json()["job"]
            if (job["status"] == "done" and seen_by == pids) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert job["status"] == "done" and seen_by == pids, (job, seen_by)
        uploads = [d["doc_id"] for d in httpx.get(f"{url}/v1/documents", timeout=10).json()["documents"]
                   if d["source"] == "upload"]
        assert sorted(uploads) == sorted(set(uploads)) and chengdu in uploads and wuxi_id in uploads
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-3000:]
    store = DocumentStore(index_dir)
    assert store.read(chengdu).text == PLAN and not store.holds_pending(job_id)
    assert not list((index_dir / "jobs" / ".locks").iterdir())  # finished jobs leave no lock behind
