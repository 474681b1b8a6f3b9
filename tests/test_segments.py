"""Incremental persistence (rag/segments.py): an upload writes its own segment, a delete a tombstone,
compaction merges; loading gives the same index as a full rebuild.  Real files, real FAISS, no model
(synthetic vectors and tokens)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from rag import segments
from rag.config import PROJECT_ROOT, Settings
from rag.index import CURRENT, IndexCorrupt, KnowledgeIndex, list_versions
from rag.retrieve import rank
from rag.service import compact_index
from rag.store import DocumentStore
from tests.index_fixtures import _tokens, _unit, base_index, upload

def folder_state(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def assert_same_index(a: KnowledgeIndex, b: KnowledgeIndex) -> None:
    assert [asdict(c) for c in a.chunks] == [asdict(c) for c in b.chunks]
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.sentence_vectors, b.sentence_vectors)
    assert a.bm25_tokens == b.bm25_tokens
    assert a.uploads.entries == b.uploads.entries and a.uploads.texts == b.uploads.texts
    for key in ("documents", "upload_clause_counts", "clause_count", "chunk_count"):
        assert a.manifest.get(key) == b.manifest.get(key), key
    rng = np.random.default_rng(9)
    for q, toks in zip(_unit(rng, 8), _tokens(rng, 8)):
        ra, rb = rank(a, q, toks), rank(b, q, toks)
        assert [(c.row, round(c.score, 6)) for c in ra] == [(c.row, round(c.score, 6)) for c in rb]
        assert a.bm25_scores(toks).tolist() == b.bm25_scores(toks).tolist()


def test_an_upload_writes_only_its_own_segment_whatever_the_corpus_size(tmp_path):
    written = {}
    for n in (500, 20_000):
        index_dir = tmp_path / str(n)
        base = base_index(n)
        base_folder = base.save(index_dir)
        assert base.last_save["kind"] == "compact" and base.last_save["rows_written"] == n
        before = folder_state(base_folder)
        bigger = upload(base, "up-1")
        folder = bigger.save(index_dir)
        assert bigger.last_save["kind"] == "upload" and bigger.last_save["rows_written"] == 40
        written[n] = bigger.last_save["bytes_written"]
        assert written[n] == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert folder_state(base_folder) == before  # the base is not rewritten, nor removed
        m = manifest_of(folder)
        assert [s["version"] for s in m["segments"]] == [base_folder.name] and m["segment_chunks"] == 40
        assert m["documents"] == ["up-1"] and m["uploads"] == ["up-1"] and m["chunk_count"] == n + 40
        assert (folder / "uploads" / "up-1.txt").is_file() and sorted(list_versions(index_dir)) == sorted(
            [base_folder.name, folder.name])
        assert_same_index(KnowledgeIndex.load(index_dir), bigger)
    # 40 times bigger corpus, the same bytes (the version folder's name is in the manifest: a few bytes apart)
    assert abs(written[20_000] - written[500]) < 64, written


def test_loading_segments_and_tombstones_equals_a_full_rebuild(tmp_path):
    index = base_index(400)
    index.save(tmp_path)
    index = upload(upload(index, "up-1", seed=1), "up-2", n=12, seed=2)  # one segment of two documents
    index.save(tmp_path)
    index = upload(index, "up-x", n=5, seed=4)
    index.save(tmp_path)
    index = index.without_document("up-x")  # its segment holds nothing else: dropped from the list
    index.save(tmp_path)
    index = index.without_document("up-1")  # 40 of 452 rows: a tombstone, not a compaction
    index.save(tmp_path)
    assert index.last_save["kind"] == "delete" and index.last_save["rows_written"] == 0
    index = upload(index, "up-3", n=7, seed=3)
    index.save(tmp_path)

    loaded = KnowledgeIndex.load(tmp_path)
    m = manifest_of(tmp_path / loaded.version)
    assert [s["deleted"] for s in m["segments"]] == [[], ["up-1"]]  # the base, then up-1 and up-2's segment
    rebuilt = KnowledgeIndex(index.chunks, index.vectors, index.bm25_tokens, dict(index.manifest), index.uploads,
                             index.sentence_vectors)
    assert_same_index(loaded, rebuilt)
    assert loaded.uploads.doc_ids == ["up-2", "up-3"] and "up-1" not in loaded.doc_rows
    # and after a compaction: one segment, the same index
    loaded.save(tmp_path, compact=True)
    assert loaded.last_save["kind"] == "compact" and len(loaded.segments) == 1
    again = KnowledgeIndex.load(tmp_path)
    assert "segments" not in manifest_of(tmp_path / again.version)
    assert_same_index(again, rebuilt)


def test_a_delete_writes_a_tombstone_and_compaction_merges_the_segments(tmp_path, monkeypatch, capsys):
    index = upload(base_index(400), "up-1")  # the upload is in the base segment (a full build with it)
    base_folder = index.save(tmp_path)
    store = DocumentStore(tmp_path)
    store.put(index.uploads.entries[0], index.uploads.texts["up-1"])
    before = folder_state(base_folder)

    smaller = index.without_document("up-1")
    folder = smaller.save(tmp_path)
    store.delete("up-1")  # what the service does before the swap: the tombstone keeps the copy from coming back
    m = manifest_of(folder)
    assert m["segments"] == [{"version": base_folder.name, "manifest_sha256": hashlib.sha256(
        (base_folder / "manifest.json").read_bytes()).hexdigest(), "deleted": ["up-1"]}]
    assert m["segment_chunks"] == 0 and smaller.last_save["bytes_written"] < 4000
    assert folder_state(base_folder) == before
    loaded = KnowledgeIndex.load(tmp_path)
    assert "up-1" not in loaded.doc_rows and loaded.uploads.entries == [] and len(loaded) == 400
    assert_same_index(loaded, smaller)

    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path))
    from rag import cli

    assert cli.main(["index", "compact"]) == 0
    assert "1 segments (1 deleted documents)" in capsys.readouterr().out
    compacted = KnowledgeIndex.load(tmp_path)
    assert len(compacted.segments) == 1 and list_versions(tmp_path) == [compacted.version]
    assert not base_folder.exists() and not folder.exists()  # the store tombstones up-1: nothing is lost
    assert not (tmp_path / "documents" / ".tombstones" / "up-1").exists()  # no version holds a copy any more
    assert_same_index(compacted, smaller)


def test_a_deleted_share_over_the_limit_compacts(tmp_path):
    index = upload(base_index(100), "up-1")
    index.save(tmp_path)
    smaller = index.without_document("up-1")  # 40 of 140 rows
    smaller.save(tmp_path)
    assert smaller.last_save["kind"] == "compact" and smaller.last_save["rows_written"] == 100
    assert "segments" not in manifest_of(tmp_path / smaller.version)


def test_too_many_segments_merge_the_newer_ones_and_leave_the_base(tmp_path):
    index = base_index(2000)
    base_folder = index.save(tmp_path)
    before = folder_state(base_folder)
    for i in range(segments.MAX_SEGMENTS - 1):
        index = upload(index, f"up-{i}", n=10, seed=i)
        index.save(tmp_path)
        assert index.last_save["kind"] == "upload" and len(index.segments) == i + 2
    index = upload(index, "up-last", n=10, seed=99)
    index.save(tmp_path)
    assert index.last_save["kind"] == "compact" and index.last_save["rows_written"] == 10 * segments.MAX_SEGMENTS
    assert [s.version for s in index.segments] == [base_folder.name, index.version]
    assert folder_state(base_folder) == before
    assert_same_index(KnowledgeIndex.load(tmp_path), index)


def test_a_damaged_or_missing_segment_is_corruption(tmp_path):
    index = base_index(200)
    base_folder = index.save(tmp_path)
    upload(index, "up-1").save(tmp_path)
    data = bytearray((base_folder / "chunks.jsonl").read_bytes())
    data[len(data) // 2] ^= 0x55
    (base_folder / "chunks.jsonl").write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match=f"{base_folder.name}/chunks.jsonl is corrupted"):
        KnowledgeIndex.load(tmp_path)
    (base_folder / "manifest.json").write_text(json.dumps({**manifest_of(base_folder), "note": 1}), encoding="utf-8")
    with pytest.raises(IndexCorrupt, match="is not the one .* lists"):
        KnowledgeIndex.load(tmp_path)
    shutil.rmtree(base_folder)
    with pytest.raises(IndexCorrupt, match="which does not exist"):
        KnowledgeIndex.load(tmp_path)


def test_a_save_on_segments_another_process_compacted_away_writes_everything(tmp_path):
    index = base_index(200)
    index.save(tmp_path)
    index = upload(index, "up-1")
    index.save(tmp_path)
    DocumentStore(tmp_path).put(index.uploads.entries[0], index.uploads.texts["up-1"])
    compact_index(Settings(index_dir=tmp_path))  # another process; `index` still names the old segments
    bigger = upload(index, "up-2", seed=2)
    bigger.save(tmp_path)
    assert bigger.last_save["kind"] == "compact"
    assert_same_index(KnowledgeIndex.load(tmp_path), bigger)


OLD_CODE = "c8d04f1"  # main before segments: every version folder holds the whole index
OLD_WRITER = """
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from tests.index_fixtures import base_index, upload
index = upload(base_index(300), "up-1")
index.save(sys.argv[2])
"""


def test_an_index_written_by_the_code_before_segments_loads_and_takes_uploads(tmp_path):
    old = tmp_path / "old-code"
    old.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", OLD_CODE, "rag"], capture_output=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"no git history with {OLD_CODE} here")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    (old / "tests").mkdir()
    shutil.copy(PROJECT_ROOT / "tests" / "index_fixtures.py", old / "tests")
    index_dir = tmp_path / "index"
    subprocess.run([sys.executable, "-c", OLD_WRITER, str(old), str(index_dir)], check=True, cwd=old,
                   env={"PYTHONPATH": str(old), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    old_folder = index_dir / (index_dir / CURRENT).read_text().strip()
    assert "segments" not in manifest_of(old_folder) and "segment_chunks" not in manifest_of(old_folder)

    loaded = KnowledgeIndex.load(index_dir)
    expected = upload(base_index(300), "up-1")
    assert_same_index(loaded, expected)
    bigger = upload(loaded, "up-2", seed=2)
    folder = bigger.save(index_dir)  # the old folder is the base segment: not rewritten
    assert bigger.last_save["kind"] == "upload" and old_folder.exists()
    assert [s["version"] for s in manifest_of(folder)["segments"]] == [old_folder.name]
    assert_same_index(KnowledgeIndex.load(index_dir), bigger)


def test_merges_past_the_limit_rewrite_the_small_newest_segments_not_the_large_ones():
    def seg(name, rows):
        return segments.Segment(name, "0" * 64, ((name, rows),))

    base, big = seg("v-base", 100_000), seg("v-big", 80)
    small = [seg(f"v-{i}", 10) for i in range(segments.MAX_SEGMENTS - 2)]
    kept, kind = segments.plan((base, big, *small), fresh_rows=10)
    assert kind == "compact" and kept == [base, big]  # 70 rows rewritten, not the 80 nor the base
    kept, kind = segments.plan((seg("v-small-base", 50), *[seg(f"v-{i}", 10) for i in range(7)]), fresh_rows=10)
    assert kept == []  # the uploads outgrew the base: everything
    assert segments.plan((base, big), fresh_rows=40) == ([base, big], "upload")
    assert segments.plan((base, big), fresh_rows=0, compact=True) == ([], "compact")
