"""Large uploads are jobs: 202 + Location once the text is durable, polled to done or failed,
other writes busy meanwhile, interrupted jobs run again at start-up, old records pruned.

Real components throughout (model, FAISS, the document store on disk, the app
through TestClient with its start-up); the index is the one-document seed
corpus so that every test builds its own in seconds.  The crash cases with a
real `rag serve` killed by SIGKILL are in test_upload_jobs_server.py (slow).
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.config import Settings
from rag.index import CURRENT
from rag.jobs import Job, UploadJobs
from rag.security import KeyConfig
from rag.service import Assistant
from rag.store import DocumentStore
from tests.test_api_files import PLAN_LINES

PLAN_TXT = "\n".join(PLAN_LINES).encode("utf-8")
CHENGDU_Q = "成都对首轮流片的补助比例是多少？"


@pytest.fixture
def settings(tmp_path, small_seeds):
    return Settings(seeds_dir=small_seeds, index_dir=tmp_path / "index")


@pytest.fixture
def served(settings, embedder):
    """(assistant, client) over a fresh index of the one-document seed corpus; the app has started."""
    mine = Assistant(settings, embedder=embedder)
    with TestClient(create_app(mine, keys=KeyConfig(), with_ui=False)) as client:
        yield mine, client
    assert mine.jobs.wait(120)  # no job thread outlives its test


def upload(client, content=PLAN_TXT, name="chengdu.txt", params=None, headers=None, **fields):
    fields.setdefault("title", "成都市集成电路产业高质量发展行动计划")
    return client.post("/v1/documents", files={"file": (name, content, "text/plain")}, data=fields,
                       params=params or {}, headers=headers or {})


def poll(client, job_id: str, timeout: float = 120.0, until=("done", "failed")) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()["job"]
        if job["status"] in until:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")


class ModelHeld:
    """Hold the embedding model the way a query does: a job's next batch waits until released."""

    def __init__(self, assistant):
        inner = getattr(assistant.embedder, "inner", assistant.embedder)
        self.hold = inner._lock.hold()

    def __enter__(self):
        self.hold.__enter__()
        return self

    def __exit__(self, *exc):
        self.hold.__exit__(None, None, None)


def index_state(index_dir):
    name = (index_dir / CURRENT).read_text()
    files = {p.relative_to(index_dir).as_posix(): p.read_bytes() for p in (index_dir / name).rglob("*") if p.is_file()}
    return name, files


# -- 202, polling, done ------------------------------------------------------------------------------

def test_a_large_upload_is_a_job_durable_before_202_and_polled_to_done(served, monkeypatch):
    mine, client = served
    monkeypatch.setenv("RAG_ASYNC_UPLOAD_CHUNKS", "3")  # the Chengdu plan has more chunks than that
    index_dir = mine.settings.index_dir
    with ModelHeld(mine):  # the job cannot embed yet: what is on disk now is what the 202 promised
        r = upload(client)
        assert r.status_code == 202, r.text
        job = r.json()["job"]
        assert r.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["status"] in ("queued", "running") and job["doc_id"].startswith("chengdu")
        assert job["progress"]["chunks_total"] >= 4 and job["document"] is None
        pending = DocumentStore(index_dir).read_pending(job["id"])  # fsynced, checksummed, in the store
        assert pending.text == PLAN_TXT.decode("utf-8") and pending.entry["doc_id"] == job["doc_id"]
        record = json.loads((index_dir / "jobs" / f"{job['id']}.json").read_text(encoding="utf-8"))
        assert record["status"] in ("queued", "running") and record["doc_id"] == job["doc_id"]
        assert job["doc_id"] not in mine.index.doc_ids  # not searchable until done
    done = poll(client, job["id"])
    assert done["status"] == "done" and done["error"] is None and done["finished_at"]
    p = done["progress"]
    assert p["chunks_embedded"] == p["chunks_total"] and p["sentences_embedded"] == p["sentences_total"]
    assert p["percent"] == 100.0
    doc = done["document"]
    assert doc["doc_id"] == job["doc_id"] and doc["source"] == "upload" and doc["chunk_count"] == p["chunks_total"]
    ans = client.post("/v1/ask", json={"question": CHENGDU_Q}).json()
    assert "40%" in ans["answer"] and ans["citations"][0]["doc_id"] == job["doc_id"]
    store = DocumentStore(index_dir)
    assert store.read(job["doc_id"]).text == PLAN_TXT.decode("utf-8") and not store.holds_pending(job["id"])
    record = json.loads((index_dir / "jobs" / f"{job['id']}.json").read_text(encoding="utf-8"))
    assert record["status"] == "done"
    assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == [job["id"]]
    assert client.get("/healthz").json()["jobs"] == {"queued": 0, "running": 0, "done": 1, "failed": 0}


def test_small_uploads_stay_synchronous_and_wait_or_prefer_choose(served, monkeypatch):
    mine, client = served
    r = upload(client)  # default threshold (200 chunks): a small plan is indexed before the answer
    assert r.status_code == 201 and r.json()["source"] == "upload"
    r = upload(client, PLAN_TXT.replace("成都".encode(), "绵阳".encode()), "mianyang.txt", {"wait": "false"},
               title="绵阳计划")
    assert r.status_code == 202 and poll(client, r.json()["job"]["id"])["status"] == "done"
    r = upload(client, PLAN_TXT.replace("成都".encode(), "德阳".encode()), "deyang.txt",
               headers={"Prefer": "respond-async"}, title="德阳计划")
    assert r.status_code == 202 and poll(client, r.json()["job"]["id"])["status"] == "done"
    monkeypatch.setenv("RAG_ASYNC_UPLOAD_CHUNKS", "3")
    r = upload(client, PLAN_TXT.replace("成都".encode(), "乐山".encode()), "leshan.txt", {"wait": "true"},
               title="乐山计划")
    assert r.status_code == 201 and r.json()["title"] == "乐山计划"
    assert len([d for d in mine.corpus.documents if mine.corpus.is_upload(d.doc_id)]) == 4


def test_refusals_come_before_the_job_exists(served, monkeypatch):
    """A duplicate or a bad file is refused at once (4xx), with no job and nothing stored."""
    mine, client = served
    monkeypatch.setenv("RAG_ASYNC_UPLOAD_CHUNKS", "0")
    assert poll(client, upload(client).json()["job"]["id"])["status"] == "done"
    r = upload(client, name="again.txt", title="另一个标题")
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_document"
    r = upload(client, b"", name="empty.txt")
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_file"
    assert len(client.get("/v1/jobs").json()["jobs"]) == 1
    assert not (mine.settings.index_dir / "documents" / ".pending").exists() or \
        not list((mine.settings.index_dir / "documents" / ".pending").iterdir())


# -- failure, busy -----------------------------------------------------------------------------------

def test_a_job_that_fails_reports_why_keeps_the_text_and_publishes_nothing(served, monkeypatch):
    mine, client = served
    index_dir = mine.settings.index_dir
    before, snapshot = index_state(index_dir), mine.snapshot
    import faiss

    real = faiss.write_index

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", disk_full)
    r = upload(client, params={"wait": "false"})
    assert r.status_code == 202
    job = poll(client, r.json()["job"]["id"])
    assert job["status"] == "failed" and job["document"] is None
    assert job["error"]["status"] == 500 and job["error"]["code"] == "job_failed"
    assert "No space left on device" in job["error"]["message"]
    assert "documents/.quarantine/" in job["error"]["message"]  # where the text was kept
    kept = [p for p in (index_dir / "documents" / ".quarantine").iterdir()]
    assert len(kept) == 1 and (kept[0] / "text.txt").read_bytes() == PLAN_TXT
    assert index_state(index_dir) == before and mine.snapshot is snapshot  # nothing published
    assert not DocumentStore(index_dir).scan().documents
    monkeypatch.setattr(faiss, "write_index", real)
    assert upload(client).status_code == 201  # the writer was released: the next upload works


def test_writes_while_a_job_holds_the_writer_get_429_busy_with_retry_after(served, monkeypatch):
    mine, client = served
    monkeypatch.setenv("RAG_WRITE_WAIT_S", "0.2")
    first = upload(client, PLAN_TXT.replace("成都".encode(), "绵阳".encode()), "mianyang.txt", title="绵阳计划")
    assert first.status_code == 201
    with ModelHeld(mine):
        job = upload(client, params={"wait": "false"}).json()["job"]
        for r in (upload(client, PLAN_TXT.replace("成都".encode(), "德阳".encode()), "deyang.txt", title="德阳计划"),
                  upload(client, PLAN_TXT.replace("成都".encode(), "乐山".encode()), "leshan.txt",
                         {"wait": "false"}, title="乐山计划"),
                  client.delete(f"/v1/documents/{first.json()['doc_id']}")):
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "busy" and job["id"] in r.json()["error"]["message"]
            assert 5 <= int(r.headers["retry-after"]) <= 600
        # reads never wait for the writer (bm25: the model is held by this test)
        assert client.post("/v1/search", json={"query": "设计业", "mode": "bm25"}).status_code == 200
    assert poll(client, job["id"])["status"] == "done"
    assert client.delete(f"/v1/documents/{first.json()['doc_id']}").status_code == 200


# -- interrupted jobs --------------------------------------------------------------------------------

def _accept_and_die(settings, embedder, monkeypatch) -> dict:
    """A server that accepted a job (202) and died before its worker did anything: the record says
    queued, the text is pending in the store (the in-process stand-in for the kill -9 cases)."""
    mine = Assistant(settings, embedder=embedder)
    monkeypatch.setattr(UploadJobs, "_work", lambda self, job, prepared: None)
    with TestClient(create_app(mine, keys=KeyConfig(), with_ui=False)) as client:
        r = upload(client, params={"wait": "false"})
    monkeypatch.undo()
    assert r.status_code == 202
    return r.json()["job"]


def test_a_job_interrupted_before_it_ran_is_run_at_the_next_start(settings, embedder, monkeypatch):
    job = _accept_and_die(settings, embedder, monkeypatch)
    again = Assistant(settings, embedder=embedder)  # the next start
    assert job["doc_id"] not in again.index.doc_ids
    with TestClient(create_app(again, keys=KeyConfig(), with_ui=False)) as client:
        done = poll(client, job["id"])
        assert done["status"] == "done" and done["attempts"] == 2
        assert client.post("/v1/ask", json={"question": CHENGDU_Q}).json()["citations"][0]["doc_id"] == job["doc_id"]
    assert DocumentStore(settings.index_dir).read(job["doc_id"]).text == PLAN_TXT.decode("utf-8")
    # and a read command agrees with the store (nothing pending counts as an indexed document)
    assert Assistant(settings, embedder=embedder, allow_rebuild=False).corpus.is_upload(job["doc_id"])


def test_an_interrupted_job_whose_text_is_damaged_fails_and_the_text_is_quarantined(settings, embedder, monkeypatch):
    job = _accept_and_die(settings, embedder, monkeypatch)
    text = settings.index_dir / "documents" / ".pending" / job["id"] / "text.txt"
    text.write_bytes(text.read_bytes()[:-10])
    again = Assistant(settings, embedder=embedder)
    with TestClient(create_app(again, keys=KeyConfig(), with_ui=False)) as client:
        failed = poll(client, job["id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "job_interrupted"
        assert "fails its checksum" in failed["error"]["message"]
        assert "documents/.quarantine/pending-" in failed["error"]["message"]
        assert job["doc_id"] not in again.index.doc_ids
        assert upload(client, PLAN_TXT.replace("成都".encode(), "绵阳".encode()), "m.txt", title="绵阳").status_code \
            == 201  # the writer is free again
    kept = list((settings.index_dir / "documents" / ".quarantine").glob("pending-*"))
    assert len(kept) == 1 and (kept[0] / "text.txt").read_bytes() == PLAN_TXT[:-10]  # never deleted


def test_a_job_interrupted_too_often_fails_with_its_text_kept(settings, embedder, monkeypatch):
    job = _accept_and_die(settings, embedder, monkeypatch)
    path = settings.index_dir / "jobs" / f"{job['id']}.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**record, "status": "running", "attempts": 3}), encoding="utf-8")
    with TestClient(create_app(Assistant(settings, embedder=embedder), keys=KeyConfig(), with_ui=False)) as client:
        failed = poll(client, job["id"])
    assert failed["status"] == "failed" and "interrupted 3 times" in failed["error"]["message"]
    assert list((settings.index_dir / "documents" / ".quarantine").glob("pending-*/text.txt"))


# -- records, auth -----------------------------------------------------------------------------------

def test_old_finished_job_records_are_pruned(settings, embedder):
    mine = Assistant(settings, embedder=embedder)
    jobs = mine.jobs
    now = time.time()

    def record(i, status, finished_days_ago):
        job = Job(id=f"{i:032x}", status=status, doc_id=f"d{i}", title=f"t{i}", filename="f.txt", created_at="",
                  chunks_total=1, sentences_total=0, created=now - 30 * 86400 + i,
                  finished=None if finished_days_ago is None else now - finished_days_ago * 86400 - i)
        jobs._save(job)
        return job.id

    old = record(1, "done", 8)
    unfinished = record(2, "running", None)
    recent = [record(10 + i, "failed" if i % 2 else "done", 1) for i in range(5)]
    assert set(jobs.prune(keep=3)) == {old, *recent[3:]}  # too old, or beyond the newest three
    left = {p.stem for p in (settings.index_dir / "jobs").glob("*.json")}
    assert left == {unfinished, *recent[:3]}
    assert set(UploadJobs(mine)._all()) == left  # from disk, as the next start sees them


def test_jobs_need_an_admin_key_and_unknown_ids_are_404(settings, embedder, monkeypatch):
    mine = Assistant(settings, embedder=embedder)
    keys = KeyConfig(api_keys=frozenset({"user-key"}), admin_keys=frozenset({"admin-key"}))
    admin, user = {"Authorization": "Bearer admin-key"}, {"Authorization": "Bearer user-key"}
    with TestClient(create_app(mine, keys=keys, with_ui=False)) as client:
        job = upload(client, params={"wait": "false"}, headers=admin).json()["job"]
        assert client.get(f"/v1/jobs/{job['id']}").status_code == 401
        assert client.get(f"/v1/jobs/{job['id']}", headers=user).status_code == 403
        assert client.get("/v1/jobs", headers=user).status_code == 403
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{job['id']}", headers=admin).json()["job"]["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = client.get("/v1/jobs/" + "0" * 32, headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_job"
        assert client.get("/v1/jobs/../etc", headers=admin).status_code == 404
