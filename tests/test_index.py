"""The persisted index: atomic versions, checksums, staleness, clear errors."""

from __future__ import annotations


import numpy as np
import pytest

from rag.config import Settings
from rag.corpus import load_corpus
from rag.index import CURRENT, IndexCorrupt, IndexMissing, KnowledgeIndex, build_index
from rag.service import open_index
from tests.conftest import SMALL_PLAN



@pytest.fixture
def small_settings(small_seeds, tmp_path):
    return Settings(seeds_dir=small_seeds, index_dir=tmp_path / "index")


def test_build_save_load_roundtrip(small_settings, embedder):
    corpus = load_corpus(small_settings.seeds_dir)
    index, status = open_index(small_settings, corpus, embedder)
    assert status.startswith("built")
    loaded = KnowledgeIndex.load(small_settings.index_dir)
    assert [c.clause_id for c in loaded.chunks] == [c.clause_id for c in index.chunks]
    assert np.allclose(loaded.vectors, index.vectors)
    assert loaded.manifest["corpus_fingerprint"] == corpus.fingerprint
    assert loaded.manifest["dimension"] == 384 and loaded.manifest["clause_count"] == len(corpus.clauses)
    again, status = open_index(small_settings, corpus, embedder)
    assert status == "loaded"


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexMissing, match="rag index build"):
        KnowledgeIndex.load(tmp_path / "nothing")


@pytest.mark.parametrize("victim", ["dense.faiss", "chunks.jsonl", "bm25.json", "manifest.json"])
def test_corrupted_file_is_detected_and_rebuilt(small_settings, embedder, victim):
    corpus = load_corpus(small_settings.seeds_dir)
    open_index(small_settings, corpus, embedder)
    version = small_settings.index_dir / (small_settings.index_dir / CURRENT).read_text()
    data = (version / victim).read_bytes()
    (version / victim).write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(IndexCorrupt):
        KnowledgeIndex.load(small_settings.index_dir)
    index, status = open_index(small_settings, corpus, embedder)
    assert status.startswith("built") and "corrupt" in status or "unreadable" in status
    assert len(KnowledgeIndex.load(small_settings.index_dir)) == len(index)


def test_changed_seeds_make_the_index_stale(small_settings, embedder):
    corpus = load_corpus(small_settings.seeds_dir)
    open_index(small_settings, corpus, embedder)
    plan = small_settings.seeds_dir / "demo.txt"
    plan.write_text(SMALL_PLAN.replace("800亿元", "900亿元"), encoding="utf-8")
    changed = load_corpus(small_settings.seeds_dir)
    assert changed.fingerprint != corpus.fingerprint
    index, status = open_index(small_settings, changed, embedder)
    assert "changed" in status
    assert any("900亿元" in c.text for c in index.chunks)


def test_changed_model_setting_makes_the_index_stale(small_settings, embedder):
    corpus = load_corpus(small_settings.seeds_dir)
    open_index(small_settings, corpus, embedder)
    small_settings.embed_model = "some/other-model"
    _, status = open_index(small_settings, corpus, embedder)
    assert "built with" in status


def test_interrupted_build_leaves_previous_index_usable(small_settings, embedder, monkeypatch):
    corpus = load_corpus(small_settings.seeds_dir)
    index, _ = open_index(small_settings, corpus, embedder)
    before = (small_settings.index_dir / CURRENT).read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("rag.index.faiss.write_index", boom)
    with pytest.raises(OSError):
        index.save(small_settings.index_dir)
    assert (small_settings.index_dir / CURRENT).read_text() == before
    assert not [p for p in small_settings.index_dir.iterdir() if p.name.startswith(".tmp-")]
    assert len(KnowledgeIndex.load(small_settings.index_dir)) == len(index)


def test_old_versions_are_cleaned_up(small_settings, embedder):
    corpus = load_corpus(small_settings.seeds_dir)
    open_index(small_settings, corpus, embedder)
    open_index(small_settings, corpus, embedder, rebuild=True)
    versions = [p for p in small_settings.index_dir.iterdir() if p.name.startswith("v-")]
    assert len(versions) == 1


def test_dense_and_bm25_scores_rank_the_right_chunk(small_settings, embedder):
    corpus = load_corpus(small_settings.seeds_dir)
    index = build_index(corpus.chunks, {"demo-2025": "示例市集成电路行动计划"}, embedder, {})
    q = embedder.embed_query_vector("引进多少高层次人才？")
    best_dense = int(np.argmax(index.dense_scores(q)))
    assert "500名" in index.chunks[best_dense].text
    from rag.keywords import tokens

    best_bm25 = int(np.argmax(index.bm25_scores(tokens("高层次人才"))))
    assert "500名" in index.chunks[best_bm25].text
