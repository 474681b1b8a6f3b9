"""Retrieval that scales: BM25 on a sparse matrix (same scores as rank_bm25), partial top-k
selection, and the HNSW path for large indexes.  Fast: no embedding model."""

from __future__ import annotations

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from rag.bench import load_questions
from rag.clauses import Chunk
from rag.index import IndexedChunk, KnowledgeIndex, keyword_text, list_leads, top_k
from rag.keywords import tokens
from rag.retrieve import rank


@pytest.fixture(scope="module")
def seed_tokens(corpus) -> list[list[str]]:
    """The seed index's BM25 token lists, made as `build_index` makes them (no embedding)."""
    titles = {d.doc_id: d.title for d in corpus.documents}
    indexed = [IndexedChunk.from_chunk(ch, titles[ch.doc_id]) for ch in corpus.chunks]
    return [tokens(keyword_text(c, lead)) for c, lead in zip(indexed, list_leads(indexed))]


def _queries() -> list[list[str]]:
    qs = [tokens(q) for q in load_questions(None)]
    # a repeated word counts twice, an unknown one not at all, a very common one (idf floor) too
    return qs + [["集成电路", "集成电路", "人才"], ["不存在的词"], ["的", "产业"], []]


def _index(token_lists: list[list[str]], vectors: np.ndarray, docs: list[str], **kw) -> KnowledgeIndex:
    chunks = [IndexedChunk.from_chunk(Chunk(doc_id=d, clause_id=f"一.{i}", part=1, parts=1, section=["一"],
                                            text=f"第{i}条。", line_start=i, line_end=i), d)
              for i, d in enumerate(docs)]
    return KnowledgeIndex(chunks, vectors, token_lists, {"format_version": 4}, **kw)


def _unit(rng, n: int, d: int = 32) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_bm25s_scores_and_idf_equal_rank_bm25_on_the_seed_corpus(seed_tokens):
    ref = BM25Okapi(seed_tokens)
    index = _index(seed_tokens, _unit(np.random.default_rng(0), len(seed_tokens)), ["seed"] * len(seed_tokens))
    assert index.bm25.idf == ref.idf  # identical floats: the answer step weighs words by them
    assert any(v < 0 for v in (np.log(len(seed_tokens) - n + 0.5) - np.log(n + 0.5)
                               for n in index.vocabulary.values()))  # the epsilon floor is exercised
    for token in ("集成电路", "人才", "不存在的词"):
        expected = ref.idf.get(token, max(ref.idf.values()))
        assert index.idf(token) == expected and index.has_token(token) == (token in ref.idf)
    for q in _queries():
        ours = index.bm25_scores(q)
        theirs = np.asarray(ref.get_scores(q), dtype=np.float32) if q else np.zeros(len(seed_tokens), np.float32)
        assert ours.dtype == np.float32 and ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 1e-4, q
        assert list(top_k(ours, 50)) == list(top_k(theirs, 50)) or np.allclose(ours, theirs, atol=1e-5)


def test_top_k_is_the_full_sorts_top_k_ties_included():
    rng = np.random.default_rng(1)
    for values in (rng.integers(0, 6, 500).astype(np.float32),  # many ties
                   rng.normal(size=300).astype(np.float32),
                   np.zeros(40, np.float32)):
        full = np.argsort(-values, kind="stable")
        for k in (1, 3, 10, 50, len(values) - 1, len(values), len(values) + 5):
            assert list(top_k(values, k)) == list(full[:k])
    assert len(top_k(np.zeros(0), 5)) == 0 and len(top_k(np.ones(3), 0)) == 0


def _synthetic(n: int = 3000, threshold: int | None = 1000):
    rng = np.random.default_rng(2)
    vectors = _unit(rng, n)
    docs = [f"doc-{i % 7}" for i in range(n)]
    words = [f"w{j}" for j in range(200)]
    token_lists = [list(rng.choice(words, 12)) for _ in range(n)]
    return _index(token_lists, vectors, docs, hnsw_threshold=threshold), rng


def test_hnsw_path_over_the_threshold_returns_the_exact_top_1():
    index, rng = _synthetic()
    assert index.uses_hnsw
    for _ in range(30):
        target = int(rng.integers(len(index)))
        q = index.vectors[target] + rng.normal(scale=0.01, size=index.vectors.shape[1]).astype(np.float32)
        q /= np.linalg.norm(q)
        exact_rows, _ = index.dense_top(q, 10, exact=True)
        rows, sims = index.dense_top(q, 10)
        assert rows[0] == exact_rows[0] == target
        assert np.all(np.diff(sims) <= 1e-6)  # best first
    assert "hnsw" in index.__dict__  # the graph was built and used
    small, _ = _synthetic(threshold=None)
    assert not small.uses_hnsw and "hnsw" not in small.__dict__


@pytest.mark.parametrize("threshold", [None, 1000])  # exact path, HNSW path
@pytest.mark.parametrize("exact_filter_rows", [20_000, 100])  # small filters scored exactly, or passed to HNSW
def test_a_document_filter_is_honoured_on_both_paths(threshold, exact_filter_rows, monkeypatch):
    monkeypatch.setattr("rag.index.EXACT_FILTER_ROWS", exact_filter_rows)
    index, rng = _synthetic(threshold=threshold)
    rows = index.rows_for(["doc-3"])
    assert len(rows) > 100
    for _ in range(10):
        target = int(rng.choice(rows))
        q = index.vectors[target]
        found, _ = index.dense_top(q, 10, rows)
        assert len(found) == 10 and {index.chunks[r].doc_id for r in found} == {"doc-3"}
        assert found[0] == target
        for mode in ("hybrid", "dense", "bm25"):
            cands = rank(index, q, index.bm25_tokens[target], rows, mode)
            assert cands and {index.chunks[c.row].doc_id for c in cands} == {"doc-3"}
        outside = rank(index, q, index.bm25_tokens[target], index.rows_for(["doc-4"]), "hybrid")
        assert {index.chunks[c.row].doc_id for c in outside} == {"doc-4"}


def test_hybrid_rank_fuses_exactly_as_a_full_sort_would():
    """The reference: every chunk scored and sorted (the code before the partial selection)."""
    index, rng = _synthetic(n=800, threshold=None)
    for filt in (None, ["doc-5", "doc-1"]):
        rows = index.rows_for(filt)
        searched = np.arange(len(index)) if rows is None else rows
        for _ in range(20):
            q, words = _unit(rng, 1)[0], index.bm25_tokens[int(rng.integers(len(index)))][:4]
            dense, bm25 = index.dense_scores(q), index.bm25_scores(words)
            fused = np.zeros(len(index))
            for ranking in (searched[np.argsort(-dense[searched], kind="stable")][:50],
                            [r for r in searched[np.argsort(-bm25[searched], kind="stable")][:50] if bm25[r] > 0]):
                for i, r in enumerate(ranking):
                    fused[r] += 1.0 / (60 + i + 1)
            expected = sorted((int(r) for r in searched if fused[r] > 0), key=lambda r: -fused[r])
            got = rank(index, q, words, rows, "hybrid")
            assert [c.row for c in got] == expected
            assert [c.score for c in got] == [fused[r] for r in expected]


def test_scale_bench_replicates_chunks_with_perturbed_vectors_and_tokens():
    from rag.bench_scale import parse_sizes, synthetic_lists

    assert parse_sizes("10000, 100k,1m") == [10_000, 100_000, 1_000_000] and parse_sizes(None) == [10_000, 100_000]
    with pytest.raises(ValueError):
        parse_sizes("0")
    base, rng = _synthetic(n=50, threshold=None)
    chunks, vectors, token_lists = synthetic_lists(base, 230, rng)
    assert len(chunks) == len(vectors) == len(token_lists) == 230
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.array_equal(vectors[:50], base.vectors) and token_lists[:50] == base.bm25_tokens
    copy = vectors[120]  # copy 2 of chunk 20
    assert chunks[120].doc_id == base.chunks[20].doc_id + "~2" and chunks[120].text == base.chunks[20].text
    assert 0.9 < float(copy @ base.vectors[20]) < 0.9999
    assert set(token_lists[120]) <= set(base.bm25_tokens[20]) and token_lists[120] != base.bm25_tokens[20]
    index = KnowledgeIndex(chunks, vectors, token_lists, {})
    assert len(index.doc_rows) == 7 * 5  # each copy of a document is a document of its own
