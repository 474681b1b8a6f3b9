"""Fault injection: uploaded documents survive a damaged index, crashes, and read commands.

Every case starts from a real index over the seeds (a copy of the session
index) with the Wuxi plan uploaded through `Assistant.add_document` (the API's
path), then damages the index folder and checks that

(a) a read-only open (the CLI's: `allow_rebuild=False`, and `rag ask/search/
    index status` themselves) fails with an error naming the problem and
    `rag index build`, and changes nothing on disk (every path and hash compared);
(b) a serve-style open repairs or rebuilds, keeps the upload (searchable and
    answered again), logs at ERROR and reports "degraded" with a reason that
    holds no absolute path — until an operator's `rag index build`.

(b) over the real seeds rebuilds 194 chunks per case (slow); the same cases
over a one-document seed corpus run in the fast suite.  The crash cases kill
(SIGKILL) a subprocess paused at a named moment of an upload or a delete
(`RAG_TEST_PAUSE_AT`, rag/store.py `crash_point`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rag import cli
from rag.api import create_app
from rag.config import Settings
from rag.index import CURRENT, IndexError_, KnowledgeIndex
from rag.security import KeyConfig
from rag.service import Assistant, QuestionError, validate_question
from rag.store import DocumentStore
from tests.test_api_files import PLAN_LINES
from tests.conftest import SMALL_PLAN, kill_when_paused

WUXI_TITLE = "无锡市集成电路产业发展三年行动计划（2024-2026年）"
WUXI_Q = "无锡到2026年集成电路产业营收目标是多少？"
CHENGDU_TEXT = "\n".join(PLAN_LINES)
CHENGDU_Q = "成都对首轮流片的补助比例是多少？"


# -- helpers ---------------------------------------------------------------------------------

def disk_state(root: Path) -> dict[str, str]:
    """Every path under `root` with the sha256 of each file ("dir" for folders)."""
    state = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        state[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return state


def active(index_dir: Path) -> Path:
    return index_dir / (index_dir / CURRENT).read_text().strip()


def no_absolute_paths(text: str, *roots: Path) -> bool:
    return not any(str(r) in text for r in roots) and not re.search(r"(^|[\s'\"(=:])/[\w.]", text)


def upload_wuxi(assistant: Assistant, plan: str) -> str:
    return assistant.add_document("wuxi.txt", plan.encode("utf-8"), WUXI_TITLE, issuer="无锡市人民政府",
                                  region="江苏省无锡市", aliases="无锡").doc_id


def assert_wuxi_answered(assistant: Assistant, doc_id: str) -> None:
    assert assistant.corpus.is_upload(doc_id)
    answer = assistant.ask(WUXI_Q)
    assert not answer.refused and "3000亿元" in answer.answer
    assert answer.citations[0].hit.chunk.doc_id == doc_id
    hits = assistant.search("车规级芯片 流片费用 补贴", k=3).hits
    assert hits[0].chunk.doc_id == doc_id


class _RememberingEmbedder:
    """The session's real model, remembering each passage's vector: every case embeds the same seed
    and upload texts again, and what these tests check is what survives, not the model's speed."""

    def __init__(self, inner):
        self.inner = inner
        self.memo: dict[str, np.ndarray] = {}

    def embed_passages(self, texts, show_progress=False):
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            self.memo.update(zip(missing, self.inner.embed_passages(missing, show_progress=show_progress)))
        if not texts:
            return self.inner.embed_passages([])
        return np.stack([self.memo[t] for t in texts])

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def model(embedder):
    """conftest's `embedder`, remembering passage vectors (see `_RememberingEmbedder`)."""
    return _RememberingEmbedder(embedder)


@pytest.fixture
def seeded(session_index_dir, assistant, model, tmp_path, wuxi_plan):
    """(settings, wuxi doc_id): a private copy of the session index (all seeds) with the Wuxi plan uploaded."""
    index_dir = tmp_path / "index"
    shutil.copytree(session_index_dir, index_dir)
    settings = Settings(index_dir=index_dir)
    doc_id = upload_wuxi(Assistant(settings, embedder=model), wuxi_plan)
    return settings, doc_id


@pytest.fixture(params=["small", pytest.param("seeds", marks=pytest.mark.slow)])
def uploaded(request, model, tmp_path, small_seeds, wuxi_plan):
    """Like `seeded`, over the one-document seed corpus (fast) or all the seeds (slow: real rebuilds)."""
    if request.param == "seeds":
        return request.getfixturevalue("seeded")
    settings = Settings(seeds_dir=small_seeds, index_dir=tmp_path / "index")
    doc_id = upload_wuxi(Assistant(settings, embedder=model), wuxi_plan)
    return settings, doc_id


# -- the damage ---------------------------------------------------------------------------------

def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


DAMAGE = {
    # name: (what it does, a fragment the reason must name)
    "CURRENT deleted": (lambda d, doc: (d / CURRENT).unlink(), "CURRENT is missing"),
    "CURRENT names a missing version": (lambda d, doc: (d / CURRENT).write_text("v-20990101-000000-1-1"),
                                        "does not exist"),
    "CURRENT points outside": (lambda d, doc: (d / CURRENT).write_text("../x"), "outside"),
    "manifest.json deleted": (lambda d, doc: (active(d) / "manifest.json").unlink(), "manifest.json is missing"),
    "manifest.json truncated": (lambda d, doc: _truncate(active(d) / "manifest.json"), "manifest.json"),
    "uploads/catalog.json garbage": (lambda d, doc: (active(d) / "uploads" / "catalog.json").write_bytes(
        b"\x00{garbage"), "uploads/catalog.json"),
    "chunks.jsonl corrupted": (lambda d, doc: _flip(active(d) / "chunks.jsonl"), "chunks.jsonl"),
    "the store's copy corrupted": (lambda d, doc: _flip(d / "documents" / doc / "text.txt"),
                                   "text.txt fails its checksum"),
    "the version folder deleted": (lambda d, doc: shutil.rmtree(active(d)), "does not exist"),
}
CASES = list(DAMAGE)


@pytest.mark.parametrize("case", CASES)
def test_a_read_command_on_a_damaged_index_fails_clearly_and_changes_nothing(seeded, model, case, monkeypatch,
                                                                              capsys):
    settings, doc_id = seeded
    DAMAGE[case][0](settings.index_dir, doc_id)
    before = disk_state(settings.index_dir)

    with pytest.raises(IndexError_, match="rag index build"):
        Assistant(settings, embedder=model, allow_rebuild=False)
    # The real commands (they fail before loading the model: nothing to inject).
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    for argv in (["ask", WUXI_Q], ["search", "无锡 流片"], ["index", "status"]):
        code = cli.main(argv)
        out, err = capsys.readouterr()
        assert code == 1, (argv, out, err)
        assert "rag index build" in out + err and "Traceback" not in err

    assert disk_state(settings.index_dir) == before


@pytest.mark.parametrize("case", CASES)
def test_a_serve_open_of_a_damaged_index_keeps_the_upload_and_reports_degraded(uploaded, model, case, caplog):
    settings, doc_id = uploaded
    damage, fragment = DAMAGE[case]
    damage(settings.index_dir, doc_id)
    caplog.set_level(logging.INFO)

    served = Assistant(settings, embedder=model)  # what `rag serve` / `make run` start-up does

    assert_wuxi_answered(served, doc_id)
    if case != "the store's copy corrupted":  # there the index itself is intact: repaired, not rebuilt
        assert served.index_status.startswith("built")
    health = served.health()
    assert health["status"] == "degraded" and fragment in health["reason"], health
    assert no_absolute_paths(health["reason"], settings.index_dir), health["reason"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(fragment in m for m in errors), errors
    assert all(no_absolute_paths(m, settings.index_dir) for m in errors), errors
    with TestClient(create_app(served, keys=KeyConfig(), with_ui=False)) as client:
        body = client.get("/healthz").json()
    assert body["status"] == "degraded" and body["reason"] == health["reason"] and body["uploads"] == 1

    # The repaired index is consistent: a read command opens it (and says it is degraded), and the
    # store and the index agree on the uploads.
    reader = Assistant(settings, embedder=model, allow_rebuild=False)
    assert reader.index.uploads.doc_ids == [doc_id] and reader.health()["status"] == "degraded"
    assert list(DocumentStore(settings.index_dir).scan().documents) == [doc_id]
    if case == "the store's copy corrupted":  # the damaged files were moved aside, not deleted
        quarantined = list((settings.index_dir / "documents" / ".quarantine").glob(f"{doc_id}-*/text.txt"))
        assert len(quarantined) == 1
    # A later start of the healthy index is still degraded until an operator acknowledges it.
    assert Assistant(settings, embedder=model).health()["status"] == "degraded"
    served.acknowledge_damage()
    assert served.health() == {"status": "ok"}
    assert Assistant(settings, embedder=model).index_status == "loaded"


def test_rag_index_build_acknowledges_damage_but_not_with_if_needed(uploaded, model, monkeypatch, capsys):
    settings, doc_id = uploaded
    (settings.index_dir / CURRENT).unlink()
    monkeypatch.setattr(cli, "_assistant", lambda args, **kw: Assistant(settings, embedder=model, **kw))
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("RAG_SEEDS_DIR", str(settings.seeds_dir))
    assert cli.main(["index", "build", "--if-needed", "--quiet"]) == 0  # what `make run` does first
    out, _ = capsys.readouterr()
    assert "1 uploaded documents" in out and "CURRENT is missing" in out and "degraded" in out
    assert cli.main(["index", "status"]) == 1  # healthy index, but the damage is not acknowledged
    assert "rag index build" in capsys.readouterr().err
    assert cli.main(["index", "build", "--quiet"]) == 0  # the operator's build
    assert "acknowledged" in capsys.readouterr().out
    assert cli.main(["index", "status"]) == 0
    assert Assistant(settings, embedder=model).health() == {"status": "ok"}


def test_a_clean_first_build_or_a_seed_change_is_not_damage(model, tmp_path, small_seeds, wuxi_plan, caplog):
    settings = Settings(seeds_dir=small_seeds, index_dir=tmp_path / "index")
    caplog.set_level(logging.INFO)
    first = Assistant(settings, embedder=model)
    assert first.index_status.startswith("built (no index yet") and first.health() == {"status": "ok"}
    doc_id = upload_wuxi(first, wuxi_plan)
    plan = small_seeds / "demo.txt"
    plan.write_text(SMALL_PLAN.replace("800亿元", "900亿元"), encoding="utf-8")
    before = disk_state(settings.index_dir)
    with pytest.raises(IndexError_, match="seeds or catalog changed.*rag index build"):
        Assistant(settings, embedder=model, allow_rebuild=False)  # a read command never rebuilds
    assert disk_state(settings.index_dir) == before
    rebuilt = Assistant(settings, embedder=model)
    assert "changed" in rebuilt.index_status and rebuilt.health() == {"status": "ok"}
    assert_wuxi_answered(rebuilt, doc_id)  # re-parsed and re-embedded from the store
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_index_from_before_the_store_is_migrated_not_lost(uploaded, model, caplog):
    settings, doc_id = uploaded
    index_dir = settings.index_dir
    shutil.rmtree(index_dir / "documents")  # the layout of older versions: uploads only in v-…/uploads/
    manifest_path = active(index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    del manifest["document_store"]
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    before = disk_state(index_dir)
    with pytest.raises(IndexError_, match="not in the document store.*rag index build"):
        Assistant(settings, embedder=model, allow_rebuild=False)
    assert disk_state(index_dir) == before
    caplog.set_level(logging.INFO)
    migrated = Assistant(settings, embedder=model)
    assert migrated.index_status == "loaded" and migrated.health() == {"status": "ok"}
    assert list(DocumentStore(index_dir).scan().documents) == [doc_id]
    assert_wuxi_answered(migrated, doc_id)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_store_copy_with_no_intact_copy_anywhere_is_quarantined_and_reported(uploaded, model):
    settings, doc_id = uploaded
    index_dir = settings.index_dir
    _flip(index_dir / "documents" / doc_id / "text.txt")
    _flip(active(index_dir) / "uploads" / f"{doc_id}.txt")
    damaged = (index_dir / "documents" / doc_id / "text.txt").read_bytes()
    served = Assistant(settings, embedder=model)
    health = served.health()
    assert health["status"] == "degraded" and f"{doc_id!r} is lost" in health["reason"]
    assert doc_id not in served.index.doc_ids  # not indexed from a text that fails its checksum
    kept = list((index_dir / "documents" / ".quarantine").glob(f"{doc_id}-*/text.txt"))
    assert [p.read_bytes() for p in kept] == [damaged]  # moved aside, never deleted
    assert no_absolute_paths(health["reason"], index_dir)


def test_a_document_only_an_old_version_still_has_is_recovered_from_it(uploaded, model):
    settings, doc_id = uploaded
    index_dir = settings.index_dir
    old = index_dir / "v-20000101-000000-1-1"
    shutil.copytree(active(index_dir), old)  # an older version holding the upload
    shutil.rmtree(index_dir / "documents" / doc_id)  # the store lost it …
    _flip(active(index_dir) / "uploads" / f"{doc_id}.txt")  # … and the active version's copy is damaged
    served = Assistant(settings, embedder=model)
    assert_wuxi_answered(served, doc_id)
    reason = served.health()["reason"]
    assert f"{doc_id!r} was missing from the document store: recovered from {old.name}/uploads/" in reason
    assert list(DocumentStore(index_dir).scan().documents) == [doc_id]
    assert not old.exists()  # removable now that the store has the document


def test_a_version_holding_the_only_copy_of_an_upload_is_never_deleted(uploaded, model):
    """Even a copy that fails its checksum is the user's data: the folder stays, and it is reported."""
    settings, doc_id = uploaded
    index_dir = settings.index_dir
    broken = active(index_dir)
    shutil.rmtree(index_dir / "documents" / doc_id)
    _flip(broken / "uploads" / f"{doc_id}.txt")
    served = Assistant(settings, embedder=model)
    assert served.index_status.startswith("built") and doc_id not in served.index.doc_ids
    assert broken.exists() and active(index_dir) != broken
    health = served.health()
    assert f"{doc_id!r}: the copy in {broken.name}/uploads/ cannot be verified" in health["reason"]
    assert no_absolute_paths(health["reason"], index_dir)
    assert broken.exists()
    Assistant(settings, embedder=model)  # and at every later start
    assert broken.exists()


def test_crash_debris_of_dead_processes_is_removed_and_live_writers_are_left_alone(uploaded, model):
    settings, doc_id = uploaded
    index_dir = settings.index_dir
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        for pid in (live.pid, dead.pid):
            (index_dir / f".tmp-v-20240101-000000-{pid}-1").mkdir()
            (index_dir / f".tmp-v-20240101-000000-{pid}-1" / "chunks.jsonl").write_text("half")
            (index_dir / "documents" / f".tmp-{doc_id}-{pid}-1").mkdir()
        (index_dir / ".trash-v-20240101-000000-1-1").mkdir()
        served = Assistant(settings, embedder=model)
        names = {p.name for p in index_dir.iterdir()} | {p.name for p in (index_dir / "documents").iterdir()}
        assert f".tmp-v-20240101-000000-{live.pid}-1" in names and f".tmp-{doc_id}-{live.pid}-1" in names
        assert f".tmp-v-20240101-000000-{dead.pid}-1" not in names and f".tmp-{doc_id}-{dead.pid}-1" not in names
        assert ".trash-v-20240101-000000-1-1" not in names
        assert served.index_status == "loaded" and served.health() == {"status": "ok"}  # debris is not damage
    finally:
        live.kill()
        live.wait()


def test_delete_removes_the_document_from_the_store_and_it_stays_deleted(uploaded, model):
    settings, doc_id = uploaded
    index_dir = settings.index_dir
    served = Assistant(settings, embedder=model)
    stored = index_dir / "documents" / doc_id
    assert (stored / "text.txt").read_text(encoding="utf-8") == served.index.uploads.texts[doc_id]
    old = active(index_dir)
    served.remove_document(doc_id)
    assert not stored.exists() and not old.exists()
    assert not list((index_dir / "documents" / ".tombstones").glob("*"))  # no version holds it any more
    again = Assistant(settings, embedder=model)
    assert again.index_status == "loaded" and doc_id not in again.index.doc_ids


# -- crashes (SIGKILL at a named moment of an upload or a delete) -------------------------------

CHILD = textwrap.dedent("""
    import sys
    from rag.config import Settings
    from rag.service import Assistant
    index_dir, op, arg = sys.argv[1:4]
    a = Assistant(Settings(index_dir=index_dir))
    if op == "add":
        a.add_document("chengdu.txt", open(arg, "rb").read(), "成都市集成电路产业高质量发展行动计划",
                       issuer="成都市人民政府", region="四川省成都市", aliases="成都,Chengdu")
    else:
        a.remove_document(arg)
    print("DONE", flush=True)
""")

# (operation, crash point, is the document it adds/removes there afterwards?)
CRASHES = [
    ("add", "index.save:segment", False),     # the upload's segment written, its manifest not yet
    ("add", "index.save:written", False),     # new version written, not yet stored or published
    ("add", "index.upload:written", False),   # the same moment, named for the kind of save (rag/segments.py)
    ("add", "store.put:partial", False),      # half of the document in the store's temporary folder
    ("add", "store.put:done", True),          # durable in the store, the index not yet published
    ("add", "index.save:renamed", True),      # the new version in place, CURRENT not yet swapped
    ("add", "index.save:swapped", True),      # published, old version not yet removed
    ("add", "index.upload:swapped", True),
    # (an upload removes no version: the one before it is a segment of the new one, rag/segments.py;
    # a compaction's clean-up is killed in test_a_kill_during_a_compaction_loses_nothing)
    ("remove", "index.save:written", True),   # nothing changed yet
    ("remove", "index.delete:written", True),  # the version dropping the document's segment written, not published
    ("remove", "store.delete:tombstoned", True),  # tombstone written, the document still in the store
    ("remove", "store.delete:trashed", False),    # out of the store, the index not yet published
    ("remove", "index.save:swapped", False),
    ("remove", "index.delete:swapped", False),
    ("remove", "index.cleanup:partial", False),
]


@pytest.mark.slow
@pytest.mark.parametrize("op,point,present", CRASHES, ids=[f"{c[0]}-{c[1]}" for c in CRASHES])
def test_a_kill_during_an_upload_or_delete_leaves_the_document_whole_or_gone(seeded, model, tmp_path, op, point,
                                                                             present):
    settings, wuxi = seeded  # uploaded and acknowledged before the crash
    index_dir = settings.index_dir
    plan = tmp_path / "chengdu.txt"
    plan.write_text(CHENGDU_TEXT, encoding="utf-8")
    kill_when_paused(["-c", CHILD, str(index_dir), op, str(plan) if op == "add" else wuxi], point,
                     tmp_path / "child.log")

    fresh = Assistant(settings, embedder=model)  # the next start
    store = DocumentStore(index_dir).scan()
    assert not store.damaged and fresh.health() == {"status": "ok"}  # a crash is not damage
    # The index and the store agree on the uploads, and a read command can open it.
    assert sorted(fresh.index.uploads.doc_ids) == sorted(store.documents)
    assert sorted(Assistant(settings, embedder=model, allow_rebuild=False).index.uploads.doc_ids) \
        == sorted(store.documents)
    assert not [p for p in [*index_dir.iterdir(), *(index_dir / "documents").iterdir()]
                if p.name.startswith((".tmp-", ".trash-"))]  # the debris is gone

    if op == "add":
        assert_wuxi_answered(fresh, wuxi)  # the acknowledged upload is never lost
        chengdu = [d for d in store.documents if d != wuxi]
        if present:
            assert len(chengdu) == 1 and store.documents[chengdu[0]].text == CHENGDU_TEXT  # whole
            answer = fresh.ask(CHENGDU_Q)
            assert "40%" in answer.answer and answer.citations[0].hit.chunk.doc_id == chengdu[0]
            on_disk = [c for c in KnowledgeIndex.load(index_dir).chunks if c.doc_id == chengdu[0]]
            assert len(fresh.index.doc_rows[chengdu[0]]) == len(on_disk) >= 4
        else:
            assert chengdu == [] and len(fresh.corpus.documents) == 6
    else:
        if present:
            assert list(store.documents) == [wuxi]
            assert_wuxi_answered(fresh, wuxi)
        else:
            assert store.documents == {} and wuxi not in fresh.index.doc_ids
            assert not fresh.corpus.is_upload(wuxi)
            assert not (index_dir / "documents" / ".tombstones" / wuxi).exists()


COMPACT_CHILD = textwrap.dedent("""
    import sys
    from rag.config import Settings
    from rag.service import compact_index
    compact_index(Settings(index_dir=sys.argv[1]))
    print("DONE", flush=True)
""")


def _rows(index: KnowledgeIndex) -> list[tuple]:
    return [(c.doc_id, c.chunk_id, c.text) for c in index.chunks]


@pytest.mark.slow
@pytest.mark.parametrize("point", ["index.save:segment", "index.compact:written", "index.save:renamed",
                                   "index.compact:swapped", "index.cleanup:partial"])
def test_a_kill_during_a_compaction_loses_nothing(seeded, model, tmp_path, point):
    """Three segments (the seeds, the Wuxi plan, the Chengdu plan) merged into one by `rag index compact`,
    killed at each step: the next start has both uploads, the same rows, and no debris."""
    settings, wuxi = seeded
    index_dir = settings.index_dir
    chengdu = Assistant(settings, embedder=model).add_document(
        "chengdu.txt", CHENGDU_TEXT.encode("utf-8"), "成都市集成电路产业高质量发展行动计划", issuer="成都市人民政府",
        region="四川省成都市").doc_id
    before = KnowledgeIndex.load(index_dir)
    assert len(before.segments) == 3
    kill_when_paused(["-c", COMPACT_CHILD, str(index_dir)], point, tmp_path / "child.log")

    fresh = Assistant(settings, embedder=model)
    assert fresh.index_status == "loaded" and fresh.health() == {"status": "ok"}
    assert sorted(DocumentStore(index_dir).scan().documents) == sorted([wuxi, chengdu])
    after = KnowledgeIndex.load(index_dir)
    assert _rows(after) == _rows(before) and after.uploads.texts == before.uploads.texts
    assert len(after.segments) == (1 if point in ("index.compact:swapped", "index.cleanup:partial") else 3)
    assert not [p for p in index_dir.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    assert_wuxi_answered(fresh, wuxi)
    assert "40%" in fresh.ask(CHENGDU_Q).answer


@pytest.mark.slow
@pytest.mark.parametrize("point,present", [("index.delete:written", True), ("store.delete:trashed", False),
                                           ("index.delete:swapped", False)])
def test_a_kill_during_a_delete_by_tombstone_leaves_the_document_whole_or_gone(seeded, model, tmp_path, point,
                                                                                 present):
    """The Wuxi plan in the base segment (after a compaction): its delete writes a tombstone, not the base."""
    settings, wuxi = seeded
    index_dir = settings.index_dir
    from rag.service import compact_index

    compact_index(settings)
    base = KnowledgeIndex.load(index_dir).version
    base_state = disk_state(index_dir / base)
    kill_when_paused(["-c", CHILD, str(index_dir), "remove", wuxi], point, tmp_path / "child.log")

    fresh = Assistant(settings, embedder=model)
    store = DocumentStore(index_dir).scan()
    assert not store.damaged and fresh.health() == {"status": "ok"}
    assert disk_state(index_dir / base) == base_state  # the base is never rewritten by a delete
    assert not [p for p in index_dir.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    if present:
        assert list(store.documents) == [wuxi]
        assert_wuxi_answered(fresh, wuxi)
    else:
        assert store.documents == {} and wuxi not in fresh.index.doc_ids and not fresh.corpus.is_upload(wuxi)
        manifest = json.loads((active(index_dir) / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["segments"][0]["version"] == base and manifest["segments"][0]["deleted"] == [wuxi]
        # the base still holds a copy: the store's tombstone keeps it from being recovered, until a compaction
        assert (index_dir / "documents" / ".tombstones" / wuxi).exists()
        assert wuxi not in Assistant(settings, embedder=model).index.doc_ids
        compact_index(settings)
        assert not (index_dir / base).exists() and not (index_dir / "documents" / ".tombstones" / wuxi).exists()
        assert wuxi not in Assistant(settings, embedder=model, allow_rebuild=False).index.doc_ids


# -- questions of invisible characters ------------------------------------------------------------

INVISIBLE = ["\x00", "\x00\x00\x00", "\u200b", "\u200b\u200c\u200d\u200e\u200f", "\u202a\u202b\u202c\u202d\u202e",
             "\u2060\u2061\u2062\u2063\u2064", "\ufeff", " \u200b\n\x00 \ufeff ", "\u2066\u2069\u00ad\x07"]


@pytest.mark.parametrize("question", INVISIBLE, ids=[repr(q) for q in INVISIBLE])
def test_a_question_of_only_invisible_characters_is_empty(assistant, question):
    with pytest.raises(QuestionError, match="empty question"):
        validate_question(question)
    with TestClient(create_app(assistant, keys=KeyConfig(), with_ui=False)) as client:
        for path, body in (("/v1/ask", {"question": question}), ("/v1/search", {"query": question})):
            r = client.post(path, json=body)
            assert r.status_code == 422, (path, r.text)
            assert r.json()["error"]["code"] == "invalid_question" and r.json()["error"]["message"] == "问题为空"


def test_invisible_characters_inside_a_question_are_dropped(assistant):
    assert validate_question("深\u200b圳\x00到2025年\ufeff营收目标？") == "深圳到2025年营收目标？"
    answer = assistant.ask("深\u200b圳到2025年集成电路产业\u202e营收目标是多少？")
    assert "2500亿元" in answer.answer


def test_folders_given_as_strings_work_like_paths(seeded, model):
    """Settings(index_dir="…") from a caller's script: an upload and a delete work (a str folder
    made the store's tombstone check fail with TypeError after the upload was written)."""
    from rag.config import Settings
    from rag.service import Assistant

    seeded_settings, _ = seeded
    settings = Settings(index_dir=str(seeded_settings.index_dir), seeds_dir=str(seeded_settings.seeds_dir))
    assert isinstance(settings.index_dir, Path) and isinstance(settings.seeds_dir, Path)
    a = Assistant(settings, embedder=model)
    info = a.add_document("strings.txt", "某某市促进产业发展若干措施\n一、对新认定的企业给予一次性奖励50万元。\n".encode(),
                          title="字符串路径测试")
    assert info.doc_id in [d.doc_id for d in a.corpus.documents]
    a.remove_document(info.doc_id)
