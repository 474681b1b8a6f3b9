"""Two processes on one index: a write never drops what another process published, and a running
Assistant (a server) picks up versions other processes publish, without a restart.

The other process is real: a child `python -c` opening its own `Assistant` on the same index folder
(what `rag documents add` or a second server does), over the one-document seed corpus.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from rag.config import PROJECT_ROOT, Settings
from rag.index import KnowledgeIndex
from rag.service import Assistant
from rag.store import DocumentStore
from tests.test_api_files import PLAN_LINES

OTHER_PLAN = "\n".join(PLAN_LINES)
OTHER_TITLE = PLAN_LINES[0]

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from rag.config import Settings
    from rag.service import Assistant
    index_dir, seeds_dir, op, arg = sys.argv[1:5]
    a = Assistant(Settings(index_dir=Path(index_dir), seeds_dir=Path(seeds_dir)))
    if op == "add":
        print(a.add_document("other.txt", open(arg, "rb").read(), "另一个进程上传的规划").doc_id, flush=True)
    else:
        a.remove_document(arg)
        print("removed", flush=True)
""")


def in_other_process(settings: Settings, op: str, arg: str) -> str:
    """Run one upload or delete in a separate process on the same index; returns what it printed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(settings.index_dir), str(settings.seeds_dir), op, arg],
                          capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


@pytest.fixture
def shared(tmp_path, small_seeds, embedder):
    """(settings, the running Assistant) on a fresh index over the one-document seed corpus."""
    settings = Settings(seeds_dir=small_seeds, index_dir=tmp_path / "index")
    return settings, Assistant(settings, embedder=embedder)


def assert_consistent(settings: Settings, doc_ids: set[str], embedder) -> None:
    """The published version, the document store and a fresh read-only open all hold exactly `doc_ids`."""
    assert set(KnowledgeIndex.load(settings.index_dir).uploads.doc_ids) == doc_ids
    assert set(DocumentStore(settings.index_dir).scan().documents) == doc_ids
    reader = Assistant(settings, embedder=embedder, allow_rebuild=False)  # `rag ask` opens it as it is
    assert set(reader.index.uploads.doc_ids) == doc_ids


def test_an_upload_keeps_the_document_another_process_added_meanwhile(shared, embedder, tmp_path, wuxi_plan):
    settings, server = shared
    plan = tmp_path / "other.txt"
    plan.write_text(OTHER_PLAN, encoding="utf-8")
    theirs = in_other_process(settings, "add", str(plan))

    ours = server.add_document("wuxi.txt", wuxi_plan.encode("utf-8"), "无锡市集成电路产业发展三年行动计划").doc_id

    assert_consistent(settings, {theirs, ours}, embedder)
    assert {theirs, ours} <= set(server.index.doc_ids)
    hits = server.search("首轮流片 补助比例", k=3, documents=[theirs]).hits
    assert hits and hits[0].chunk.doc_id == theirs


def test_an_upload_does_not_bring_back_a_document_another_process_deleted(shared, embedder, tmp_path, wuxi_plan):
    settings, server = shared
    gone = server.add_document("other.txt", OTHER_PLAN.encode("utf-8"), OTHER_TITLE).doc_id
    assert in_other_process(settings, "remove", gone) == "removed"

    ours = server.add_document("wuxi.txt", wuxi_plan.encode("utf-8"), "无锡市集成电路产业发展三年行动计划").doc_id

    assert_consistent(settings, {ours}, embedder)
    assert gone not in server.index.doc_ids and not server.corpus.is_upload(gone)


def test_a_delete_keeps_the_document_another_process_added_meanwhile(shared, embedder, tmp_path, wuxi_plan):
    settings, server = shared
    ours = server.add_document("wuxi.txt", wuxi_plan.encode("utf-8"), "无锡市集成电路产业发展三年行动计划").doc_id
    plan = tmp_path / "other.txt"
    plan.write_text(OTHER_PLAN, encoding="utf-8")
    theirs = in_other_process(settings, "add", str(plan))

    server.remove_document(ours)

    assert_consistent(settings, {theirs}, embedder)


def test_a_running_assistant_answers_from_a_version_another_process_published(shared, tmp_path):
    settings, server = shared
    assert server.search("首轮流片 补助比例", k=1).hits[0].chunk.doc_id == "demo-2025"
    plan = tmp_path / "other.txt"
    plan.write_text(OTHER_PLAN, encoding="utf-8")
    theirs = in_other_process(settings, "add", str(plan))

    deadline = time.monotonic() + 5  # CURRENT is checked at most once a second (RAG_INDEX_CHECK_S)
    while theirs not in server.snapshot.corpus.uploaded and time.monotonic() < deadline:
        time.sleep(0.2)
    assert theirs in server.snapshot.corpus.uploaded  # what GET /v1/documents lists
    assert server.search("首轮流片 补助比例", k=1).hits[0].chunk.doc_id == theirs
    answer = server.ask("首轮流片的补助比例是多少？", documents=[theirs])
    assert "40%" in answer.answer

    assert in_other_process(settings, "remove", theirs) == "removed"
    deadline = time.monotonic() + 5
    while theirs in server.snapshot.corpus.uploaded and time.monotonic() < deadline:
        time.sleep(0.2)
    assert theirs not in server.snapshot.corpus.uploaded and theirs not in server.index.doc_ids
