"""Micro-batching and caching of query embeddings (rag/query_batch.py) with the real model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rag.bench_http import QUESTIONS
from rag.query_batch import BatchingQueryEmbedder


def test_concurrent_queries_share_model_calls_and_get_the_same_vectors(embedder):
    batcher = BatchingQueryEmbedder(embedder, cache_size=0)
    questions = QUESTIONS[:16]
    direct = {q: embedder.embed_query_vector(q) for q in questions}
    results: dict[str, np.ndarray] = {}
    start = threading.Barrier(len(questions))

    def ask(q):
        start.wait()
        results[q] = batcher.embed_query_vector(q)

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for q in questions:
        np.testing.assert_allclose(results[q], direct[q], atol=1e-5)
    assert batcher.queries == len(questions)
    assert batcher.batches < len(questions)  # some calls were shared
    assert batcher.cache_hits == 0


def test_a_lone_query_is_embedded_exactly_as_before(embedder):
    batcher = BatchingQueryEmbedder(embedder, cache_size=0)
    q = QUESTIONS[0]
    np.testing.assert_array_equal(batcher.embed_query_vector(q), embedder.embed_query_vector(q))
    assert batcher.embed_query(q) == embedder.embed_query(q)
    assert batcher.dimension == embedder.dimension  # everything else is the wrapped embedder's


def test_repeated_queries_come_from_a_bounded_cache(embedder, monkeypatch):
    batcher = BatchingQueryEmbedder(embedder, cache_size=2)
    a, b, c = QUESTIONS[:3]
    va = batcher.embed_query_vector(a)
    va[:] = 0  # callers may modify what they get: the cache keeps its own copy
    np.testing.assert_array_equal(batcher.embed_query_vector(a), embedder.embed_query_vector(a))
    assert (batcher.queries, batcher.cache_hits) == (1, 1)
    batcher.embed_query_vector(b)
    batcher.embed_query_vector(c)  # evicts a (least recently used)
    batcher.embed_query_vector(a)
    assert (batcher.queries, batcher.cache_hits) == (4, 1)
    monkeypatch.setenv("RAG_QUERY_CACHE", "0")
    off = BatchingQueryEmbedder(embedder)
    off.embed_query_vector(a)
    off.embed_query_vector(a)
    assert (off.queries, off.cache_hits) == (2, 0)


class _Failing:
    """An embedder whose model call fails: stands in for a broken model."""

    query_prompt = ""

    def _encode(self, texts, prompt):
        raise RuntimeError("model exploded")


def test_a_failing_model_call_reaches_every_caller_and_the_batcher_survives():
    batcher = BatchingQueryEmbedder(_Failing(), cache_size=0)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="model exploded"):
            batcher.embed_query_vector("问题")


def test_prefetch_makes_the_next_call_free_even_with_the_cache_off(embedder):
    batcher = BatchingQueryEmbedder(embedder, cache_size=0)
    q = QUESTIONS[5]
    batcher.prefetch(q)
    assert batcher.queries == 1 and not batcher.is_cached(q)
    np.testing.assert_array_equal(batcher.embed_query_vector(q), embedder.embed_query_vector(q))
    assert batcher.queries == 1  # served from the one-shot prefetch ...
    batcher.embed_query_vector(q)
    assert batcher.queries == 2  # ... which is used up
    cached = BatchingQueryEmbedder(embedder, cache_size=8)
    assert not cached.is_cached(q)
    cached.prefetch(q)
    assert cached.is_cached(q)


def test_each_prefetch_serves_one_call_when_the_same_text_is_prefetched_twice(embedder):
    batcher = BatchingQueryEmbedder(embedder, cache_size=0)
    q = QUESTIONS[6]
    batcher.prefetch(q)
    batcher.prefetch(q)
    before = batcher.queries
    batcher.embed_query_vector(q)
    batcher.embed_query_vector(q)
    assert batcher.queries == before
    batcher.embed_query_vector(q)
    assert batcher.queries == before + 1
