"""Uploading and deleting documents over HTTP, on an Assistant with its own copy of the index.

Real files (.txt, .docx written with python-docx, .pdf with a real text layer),
real embedding, real FAISS/BM25, real atomic saves.  Nothing here touches the
session Assistant, so uploads never leak into other tests.
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.config import Settings
from rag.index import CURRENT, KnowledgeIndex
from rag.security import KeyConfig
from rag.service import Assistant
from tests.test_api_files import PLAN_LINES, make_docx, make_pdf

CHENGDU_Q = "成都对首轮流片的补助比例是多少？"


@pytest.fixture
def own(assistant, session_index_dir, embedder, tmp_path):
    """(Assistant, TestClient, index dir) over a private copy of the session index (loads, no rebuild)."""
    index_dir = tmp_path / "index"
    shutil.copytree(session_index_dir, index_dir)
    mine = Assistant(Settings(index_dir=index_dir), embedder=embedder)
    assert mine.index_status == "loaded"
    with TestClient(create_app(mine, keys=KeyConfig(), with_ui=False)) as client:
        yield mine, client, index_dir


def _upload(client, name, content, params=None, **fields):
    fields.setdefault("title", "成都市集成电路产业高质量发展行动计划")
    return client.post("/v1/documents", files={"file": (name, content, "application/octet-stream")}, data=fields,
                       params=params)


def _state(index_dir):
    """Everything a failed upload must leave alone: CURRENT, and every file of the active version."""
    name = (index_dir / CURRENT).read_text()
    files = {p.relative_to(index_dir).as_posix(): p.read_bytes() for p in (index_dir / name).rglob("*") if p.is_file()}
    return name, files, sorted(p.name for p in index_dir.iterdir())


PLAN_TXT = "\n".join(PLAN_LINES).encode("utf-8")


@pytest.mark.parametrize("name,content", [
    ("chengdu.txt", PLAN_TXT),
    ("chengdu.docx", make_docx(PLAN_LINES)),
    ("chengdu.pdf", make_pdf([PLAN_LINES[:4], PLAN_LINES[4:]])),
])
def test_upload_is_searchable_at_once_listed_persisted_and_deletable(own, name, content):
    mine, client, index_dir = own
    seeds_chunks = len(mine.index)
    r = _upload(client, name, content, issuer="成都市人民政府", date="2026-03", region="四川省成都市",
                aliases="成都,Chengdu")
    assert r.status_code == 201, r.text
    doc = r.json()
    doc_id = doc["doc_id"]
    assert doc["source"] == "upload" and doc["upload"]["filename"] == name
    assert doc["upload"]["kind"] == name.rsplit(".", 1)[1]
    assert doc["clause_count"] >= 4 and doc["chunk_count"] >= doc["clause_count"]
    # the given aliases first, then what the document itself gives (its region's city)
    assert doc["aliases"][:2] == ["成都", "Chengdu"] and "成都市" in doc["aliases"]
    assert doc["issuer"] == "成都市人民政府"

    # Searchable at once, routed by its alias, answered with a citation of the right clause.
    hits = client.post("/v1/search", json={"query": "首轮流片 补助", "k": 3}).json()["results"]
    assert hits[0]["doc_id"] == doc_id
    ans = client.post("/v1/ask", json={"question": CHENGDU_Q}).json()
    assert not ans["refused"], ans
    assert ans["citations"][0]["doc_id"] == doc_id
    assert "40%" in ans["answer"]
    assert "二.(一)" in {c["clause_id"] for c in ans["citations"]}
    # Listed, with outline and clause context, like a seed.
    assert doc_id in [d["doc_id"] for d in client.get("/v1/documents").json()["documents"]]
    outline = client.get(f"/v1/documents/{doc_id}").json()["outline"]
    assert [h["title"] for h in outline if h["level"] == 1] == ["发展目标", "重点任务", "保障措施"]
    ctx = client.get(f"/v1/documents/{doc_id}/clauses/二.(一)").json()
    assert "40%" in ctx["clause"]["text"] and ctx["after"][0]["clause_id"] == "二.(二)"
    assert client.get("/healthz").json()["uploads"] == 1

    # Persisted inside the index version: a new Assistant on the same folder has it.
    manifest = json.loads((index_dir / (index_dir / CURRENT).read_text() / "manifest.json").read_text())
    assert manifest["uploads"] == [doc_id] and f"uploads/{doc_id}.txt" in manifest["files"]
    reopened = Assistant(Settings(index_dir=index_dir), embedder=mine.embedder)
    assert reopened.index_status == "loaded"
    assert reopened.corpus.is_upload(doc_id)
    assert reopened.ask(CHENGDU_Q).citations[0].hit.chunk.doc_id == doc_id

    # Deleted from both indexes and the corpus.
    r = client.delete(f"/v1/documents/{doc_id}")
    assert r.status_code == 200 and r.json() == {"deleted": doc_id, "documents": 5}
    assert len(mine.index) == seeds_chunks
    assert doc_id not in mine.index.doc_ids
    assert all(h["doc_id"] != doc_id for h in
               client.post("/v1/search", json={"query": "首轮流片 补助", "k": 10, "mode": "bm25"}).json()["results"])
    assert client.get(f"/v1/documents/{doc_id}").status_code == 404
    assert client.delete(f"/v1/documents/{doc_id}").status_code == 404
    assert KnowledgeIndex.load(index_dir).uploads.entries == []


BAD_UPLOADS = [
    ("a .pdf that is really text", "plan.pdf", PLAN_TXT, {}, 415, "type_mismatch"),
    ("a .docx that is really a pdf", "plan.docx", make_pdf([PLAN_LINES]), {}, 415, "type_mismatch"),
    ("an empty file", "plan.txt", b"", {}, 422, "empty_file"),
    ("an .exe", "plan.exe", PLAN_TXT, {}, 415, "unsupported_type"),
    ("a pdf with no text", "scan.pdf", make_pdf([[], []]), {}, 422, "no_text"),
    ("a truncated pdf", "plan.pdf", make_pdf([PLAN_LINES])[:300], {}, 422, "unreadable_pdf"),
    ("a path-like doc_id", "plan.txt", PLAN_TXT, {"doc_id": "../../etc"}, 422, "invalid_doc_id"),
    ("a bad date", "plan.txt", PLAN_TXT, {"date": "next year"}, 422, "invalid_date"),
    ("a seed's doc_id", "plan.txt", PLAN_TXT, {"doc_id": "shenzhen-2022"}, 409, "duplicate_document"),
    ("a seed's title", "plan.txt", PLAN_TXT,
     {"title": "深圳市培育发展半导体与集成电路产业集群行动计划（2022-2025年）"}, 409, "duplicate_document"),
]


@pytest.mark.parametrize("what,name,content,fields,status,code", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads_are_refused_and_leave_the_index_exactly_as_it_was(own, what, name, content, fields, status,
                                                                        code):
    mine, client, index_dir = own
    before, chunks = _state(index_dir), len(mine.index)
    r = _upload(client, name, content, **fields)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert _state(index_dir) == before
    assert len(mine.index) == chunks and len(mine.corpus.documents) == 5


def test_a_seed_uploaded_again_is_a_duplicate(own):
    mine, client, index_dir = own
    seed = mine.corpus.document("qingpu-2023")
    raw = (mine.settings.seeds_dir / seed.file).read_bytes()
    r = _upload(client, "qingpu.txt", raw, title="另一个标题")
    assert r.status_code == 409 and "qingpu-2023" in r.json()["error"]["message"]


def test_duplicate_uploads_conflict_by_id_and_by_text(own):
    mine, client, index_dir = own
    first = _upload(client, "chengdu.txt", PLAN_TXT)
    assert first.status_code == 201
    # Same text in another format, another title and id: still the same document.
    r = _upload(client, "chengdu.docx", make_docx(PLAN_LINES), title="另一个标题", doc_id="chengdu-2")
    assert r.status_code == 409 and first.json()["doc_id"] in r.json()["error"]["message"]
    r = _upload(client, "other.txt", PLAN_TXT.replace("成都".encode(), "绵阳".encode()), title="绵阳计划", doc_id=first.json()["doc_id"])
    assert r.status_code == 409 and "文档编号已存在" in r.json()["error"]["message"]  # Chinese by default
    assert len([d for d in mine.corpus.documents if mine.corpus.is_upload(d.doc_id)]) == 1


def test_upload_size_limit_is_configurable_and_413(own, monkeypatch):
    mine, client, index_dir = own
    before = _state(index_dir)
    monkeypatch.setenv("RAG_MAX_UPLOAD_MB", "0.002")  # 2 KiB
    big = "\n".join(PLAN_LINES * 20).encode()
    r = _upload(client, "big.txt", big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    # Far over the limit: refused from Content-Length, before the body is parsed.
    r = _upload(client, "huge.txt", big * 200)
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    assert _state(index_dir) == before
    monkeypatch.setenv("RAG_MAX_UPLOAD_MB", "1")
    assert _upload(client, "big.txt", big).status_code == 201


def test_a_save_that_fails_midway_publishes_nothing(own, monkeypatch):
    """Disk full while writing the new version: CURRENT, the files and the in-memory index are unchanged."""
    mine, client, index_dir = own
    before, snapshot = _state(index_dir), mine.snapshot
    import faiss

    real = faiss.write_index

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", disk_full)
    with TestClient(create_app(mine, keys=KeyConfig(), with_ui=False), raise_server_exceptions=False) as c500:
        r = _upload(c500, "chengdu.txt", PLAN_TXT)
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert _state(index_dir) == before  # no half-written version left behind either
    assert mine.snapshot is snapshot
    assert all(h["doc_id"] != "chengdu" for h in client.post("/v1/search", json={"query": "成都 流片"}).json()["results"])
    monkeypatch.setattr(faiss, "write_index", real)
    assert _upload(client, "chengdu.txt", PLAN_TXT).status_code == 201  # and the next try works


def test_title_defaults_to_the_file_name_and_ids_can_be_chosen(own):
    mine, client, index_dir = own
    r = client.post("/v1/documents", files={"file": ("成都行动计划.txt", PLAN_TXT, "text/plain")},
                    data={"doc_id": "chengdu-2026"})
    assert r.status_code == 201, r.text
    assert r.json()["title"] == "成都行动计划" and r.json()["doc_id"] == "chengdu-2026"
    assert client.get("/v1/documents/chengdu-2026/clauses/一").json()["clause"]["text"].startswith("到2026年")


def test_the_service_api_the_chat_page_uses(own):
    """`Assistant.add_document` / `remove_document` directly (the chat page calls these)."""
    from rag.ingest import DocumentError

    mine, client, index_dir = own
    info = mine.add_document("chengdu.docx", make_docx(PLAN_LINES), "成都计划", region="四川省成都市")
    assert info.doc_id.startswith("chengdu-") and info.region == "四川省成都市"
    assert mine.ask(CHENGDU_Q).citations[0].hit.chunk.doc_id == info.doc_id
    with pytest.raises(DocumentError) as exc:
        mine.remove_document("xiamen-huli-2024")
    assert exc.value.status == 403
    with pytest.raises(DocumentError) as exc:
        mine.remove_document("../x")
    assert exc.value.status == 422
    mine.remove_document(info.doc_id)
    assert info.doc_id not in mine.index.doc_ids


@pytest.mark.slow
def test_queries_are_served_while_an_upload_is_indexed(own):
    """A long upload (hundreds of chunks to embed) does not stop queries, and nobody sees half of it."""
    mine, client, index_dir = own
    lines = [PLAN_LINES[0]]
    for i in range(1, 9):
        lines.append(f"{'一二三四五六七八九'[i - 1]}、第{i}部分")
        for j in range(1, 26):
            lines.append(f"（{'一二三四五六七八九十'[(j - 1) % 10] if j <= 10 else '十' + '一二三四五六七八九十'[(j - 11) % 10]}）"
                         if j <= 20 else f"{j}. ")
            lines[-1] += f"成都第{i}部分第{j}条措施：支持集成电路企业开展第{i * 100 + j}号专项，给予{j}%的补贴。"
    content = "\n".join(lines).encode()
    n_docs = len(mine.corpus.documents)
    done = threading.Event()
    result = {}

    def upload():
        with TestClient(create_app(mine, keys=KeyConfig(), with_ui=False)) as c2:
            # 201 chunks: over RAG_ASYNC_UPLOAD_CHUNKS, so a job unless asked to wait (jobs: test_upload_jobs*.py)
            result["r"] = _upload(c2, "big-chengdu.txt", content, params={"wait": "true"}, title="成都大计划")
        done.set()

    t = threading.Thread(target=upload)
    started = time.perf_counter()
    t.start()
    served, slowest, seen = 0, 0.0, set()
    while not done.is_set():
        q0 = time.perf_counter()
        r = client.post("/v1/ask", json={"question": "深圳到2025年集成电路产业营收目标是多少？"})
        slowest = max(slowest, time.perf_counter() - q0)
        assert r.status_code == 200 and r.json()["citations"][0]["doc_id"] == "shenzhen-2022"
        docs = [d["doc_id"] for d in client.get("/v1/documents").json()["documents"]]
        seen.add(len(docs))
        served += 1
    t.join()
    upload_s = time.perf_counter() - started
    assert result["r"].status_code == 201, result["r"].text
    assert result["r"].json()["chunk_count"] >= 200
    assert served >= 3, f"only {served} queries served during a {upload_s:.1f}s upload"
    assert slowest < max(5.0, upload_s / 2)
    assert seen <= {n_docs, n_docs + 1}  # before or after, never in between


@pytest.mark.slow
def test_uploads_survive_a_rebuild_when_the_seeds_change(own, tmp_path, embedder):
    mine, client, index_dir = own
    doc_id = _upload(client, "chengdu.txt", PLAN_TXT).json()["doc_id"]
    seeds = tmp_path / "seeds"
    shutil.copytree(mine.settings.seeds_dir, seeds)
    target = seeds / mine.corpus.document("xiamen-huli-2024").file
    target.write_text(target.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # seeds changed
    rebuilt = Assistant(Settings(index_dir=index_dir, seeds_dir=seeds), embedder=embedder)
    assert rebuilt.index_status.startswith("built")
    assert rebuilt.corpus.is_upload(doc_id)
    assert rebuilt.index.uploads.doc_ids == [doc_id]
    assert rebuilt.ask(CHENGDU_Q).citations[0].hit.chunk.doc_id == doc_id
    assert rebuilt.index.manifest["clause_count"] == len(rebuilt.corpus.clauses)
    rebuilt.remove_document(doc_id)
    assert rebuilt.index.manifest["clause_count"] == len(rebuilt.corpus.clauses)


@pytest.mark.slow
def test_a_process_killed_in_the_middle_of_saving_an_upload_leaves_the_index_as_it_was(own):
    """The server dies (os._exit) while writing the new version: the next start sees the old index intact."""
    import os
    import subprocess
    import sys
    import textwrap

    from rag.config import PROJECT_ROOT

    mine, client, index_dir = own
    before = _state(index_dir)
    script = textwrap.dedent(f"""
        import os, faiss
        from rag.config import Settings
        from rag.service import Assistant
        a = Assistant(Settings(index_dir={str(index_dir)!r}))
        real = faiss.write_index
        def die(*args, **kwargs):
            real(*args, **kwargs)   # half of the version is on disk ...
            os._exit(9)             # ... when the process dies
        faiss.write_index = die
        a.add_document("chengdu.txt", {PLAN_TXT!r}, "成都计划")
        """)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, timeout=600)
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]
    leftovers = [p.name for p in index_dir.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers  # the half-written version is there, but nothing points at it
    name, files, _ = _state(index_dir)
    assert (name, files) == before[:2]
    reopened = Assistant(Settings(index_dir=index_dir), embedder=mine.embedder)
    assert reopened.index_status == "loaded" and not reopened.index.uploads.entries
    assert [d.doc_id for d in reopened.corpus.documents] == [d.doc_id for d in mine.corpus.documents]
