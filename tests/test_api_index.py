"""Uploads in the index version folder: add/remove return new indexes, persist atomically, checksummed.

Real FAISS and BM25 on small synthetic vectors (no embedding model needed).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.index import CURRENT, FORMAT_VERSION, IndexCorrupt, IndexedChunk, KnowledgeIndex, version_copies
from rag.store import DocumentStore


def _chunk(doc_id, clause_id, text):
    return IndexedChunk(doc_id=doc_id, doc_title=f"《{doc_id}》", clause_id=clause_id, part=1, parts=1,
                        section=["一、目标"], text=text, line_start=1, line_end=1)


def _unit(rng, n, dim=8):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def base():
    rng = np.random.default_rng(0)
    chunks = [_chunk("seed-a", f"一.{i}", f"种子文本{i} 集成电路") for i in range(4)]
    manifest = {"format_version": FORMAT_VERSION, "model": "m", "corpus_fingerprint": "f", "clause_count": 4,
                "chunk_count": 4, "documents": ["seed-a"]}
    return KnowledgeIndex(chunks, _unit(rng, 4), [["种子", "集成电路"]] * 4, manifest)


def _entry(doc_id):
    return {"doc_id": doc_id, "file": f"uploads/{doc_id}.txt", "title": doc_id, "short_title": doc_id,
            "issuer": "", "date": "", "region": "", "doc_number": None, "aliases": [], "weak_aliases": [],
            "note": None, "upload": {"filename": "x.txt"}}


def _with_upload(index, doc_id, n=2, seed=1):
    rng = np.random.default_rng(seed)
    chunks = [_chunk(doc_id, f"一.{i}", f"上传文本{i} 流片补贴") for i in range(n)]
    return index.with_document(_entry(doc_id), f"{doc_id} 全文", chunks, _unit(rng, n),
                               [["上传", "流片", "补贴"]] * n, clause_count=n)


def test_with_document_returns_a_new_index_and_leaves_the_old_one_alone(base):
    new = _with_upload(base, "up-1")
    assert len(base) == 4 and base.doc_ids == ["seed-a"] and not base.uploads.entries
    assert len(new) == 6 and new.doc_ids == ["seed-a", "up-1"]
    assert new.manifest["clause_count"] == 6 and new.manifest["documents"] == ["seed-a", "up-1"]
    # Both retrievers see the new rows.
    assert new.flat_index().ntotal == 6
    assert new.bm25_scores(["流片"])[4:].min() > 0 and new.bm25_scores(["流片"])[:4].max() == 0
    hits = new.dense_search(new.vectors[5], 1)
    assert hits[0][0] == 5
    with pytest.raises(ValueError):
        _with_upload(new, "up-1")


def test_without_document_removes_rows_vectors_tokens_and_text(base):
    two = _with_upload(_with_upload(base, "up-1"), "up-2", seed=2)
    one = two.without_document("up-1")
    assert one.doc_ids == ["seed-a", "up-2"]
    assert [c.doc_id for c in one.chunks] == ["seed-a"] * 4 + ["up-2"] * 2
    np.testing.assert_array_equal(one.vectors[4:], two.vectors[6:])
    assert one.uploads.doc_ids == ["up-2"] and "up-1" not in one.uploads.texts
    assert one.manifest["clause_count"] == 6
    with pytest.raises(KeyError):
        one.without_document("seed-a")  # seeds are not uploads


def test_uploads_are_saved_inside_the_version_and_checksummed(base, tmp_path):
    new = _with_upload(base, "up-1")
    folder = new.save(tmp_path)
    assert (folder / "uploads" / "up-1.txt").read_text(encoding="utf-8") == "up-1 全文"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert {"uploads/up-1.txt", "uploads/catalog.json"} <= set(manifest["files"])
    assert manifest["uploads"] == ["up-1"]
    loaded = KnowledgeIndex.load(tmp_path)
    assert loaded.uploads.doc_ids == ["up-1"] and loaded.uploads.texts["up-1"] == "up-1 全文"
    assert loaded.uploads.entries[0]["upload"] == {"filename": "x.txt"}
    assert len(loaded) == 6
    # Removing it and saving again leaves no upload files in the new version; the old version,
    # the only place up-1's text is (nothing put it in the document store), is kept.
    folder2 = loaded.without_document("up-1").save(tmp_path)
    assert not (folder2 / "uploads").exists()
    assert folder.exists()
    assert KnowledgeIndex.load(tmp_path).uploads.entries == []
    # Once the store has it (or it was deleted: a tombstone), old versions are cleaned up; folder2
    # stays as the segment folder3 (which adds no rows) builds on (rag/segments.py).
    DocumentStore(tmp_path).put(loaded.uploads.entries[0], loaded.uploads.texts["up-1"])
    folder3 = KnowledgeIndex.load(tmp_path).save(tmp_path)
    assert not folder.exists() and folder2.exists() and folder3.exists()
    assert [s.version for s in KnowledgeIndex.load(tmp_path).segments] == [folder2.name]


def test_a_corrupted_upload_text_is_detected(base, tmp_path):
    folder = _with_upload(base, "up-1").save(tmp_path)
    (folder / "uploads" / "up-1.txt").write_text("tampered", encoding="utf-8")
    with pytest.raises(IndexCorrupt, match="up-1.txt"):
        KnowledgeIndex.load(tmp_path)
    copies = version_copies(tmp_path, folder.name)
    assert copies.uploads.entries == [] and copies.unverifiable == {"up-1"}


def test_a_manifest_naming_a_path_outside_uploads_is_corrupt(base, tmp_path):
    folder = _with_upload(base, "up-1").save(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["uploads/../../etc.txt"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexCorrupt, match="unexpected upload files"):
        KnowledgeIndex.load(tmp_path)


def test_upload_copies_are_recoverable_when_the_rest_of_the_version_is_broken(base, tmp_path):
    folder = _with_upload(base, "up-1").save(tmp_path)
    (folder / "dense.faiss").write_bytes(b"broken")
    with pytest.raises(IndexCorrupt):
        KnowledgeIndex.load(tmp_path)
    kept = version_copies(tmp_path, folder.name).uploads
    assert kept.doc_ids == ["up-1"] and kept.texts["up-1"] == "up-1 全文"
    nowhere = version_copies(tmp_path, "v-20000101-000000-1-1")
    assert nowhere.uploads.entries == [] and not nowhere.unverifiable


def test_a_failing_save_leaves_current_and_the_old_version_untouched(base, tmp_path, monkeypatch):
    base.save(tmp_path)
    before = (tmp_path / CURRENT).read_text()
    files_before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    import faiss

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", disk_full)
    with pytest.raises(OSError):
        _with_upload(base, "up-1").save(tmp_path)
    assert (tmp_path / CURRENT).read_text() == before
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == files_before
    assert KnowledgeIndex.load(tmp_path).uploads.entries == []
