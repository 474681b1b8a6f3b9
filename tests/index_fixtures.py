"""Synthetic indexes for the persistence tests (tests/test_segments.py): real chunks, random vectors and
tokens, no model.  Imports only what the index code before segments had too: the old-format test runs
it under that code."""

from __future__ import annotations

import numpy as np

from rag.clauses import Chunk
from rag.index import FORMAT_VERSION, IndexedChunk, KnowledgeIndex

DIM = 32
WORDS = [f"词{i}" for i in range(300)]


def _chunks(doc_id: str, n: int, rng) -> list[IndexedChunk]:
    out = []
    for i in range(n):
        sentences = "。".join(f"第{i}条第{j}句" for j in range(1 + i % 3)) + "。"
        out.append(IndexedChunk.from_chunk(Chunk(doc_id=doc_id, clause_id=f"一.{i}", part=1, parts=1,
                                                 section=["一", f"（{i}）"], text=sentences, line_start=i,
                                                 line_end=i), f"{doc_id} 标题"))
    return out


def _unit(rng, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _tokens(rng, n: int) -> list[list[str]]:
    return [list(rng.choice(WORDS, 8)) for _ in range(n)]


def _entry(doc_id: str) -> dict:
    return {"doc_id": doc_id, "file": f"uploads/{doc_id}.txt", "title": f"{doc_id} 标题", "short_title": doc_id,
            "issuer": "某区人民政府", "date": "", "region": "某区", "doc_number": None, "aliases": [],
            "weak_aliases": [], "note": None, "upload": {"filename": f"{doc_id}.txt"}}


def base_index(n: int, docs: int = 10, seed: int = 0) -> KnowledgeIndex:
    """n seed chunks over `docs` documents (what a full build over the seeds holds)."""
    rng = np.random.default_rng(seed)
    names = [f"seed-{d}" for d in range(docs)]
    chunks = [c for d in range(docs) for c in _chunks(names[d], n // docs + (d < n % docs), rng)]
    manifest = {"format_version": FORMAT_VERSION, "model": "m", "corpus_fingerprint": "f", "dimension": DIM,
                "clause_count": len(chunks), "chunk_count": len(chunks), "documents": names}
    return KnowledgeIndex(chunks, _unit(rng, len(chunks)), _tokens(rng, len(chunks)), manifest)


def upload(index: KnowledgeIndex, doc_id: str, n: int = 40, seed: int = 1) -> KnowledgeIndex:
    rng = np.random.default_rng(seed)
    return index.with_document(_entry(doc_id), f"{doc_id} 全文\n", _chunks(doc_id, n, rng), _unit(rng, n),
                               _tokens(rng, n), clause_count=n)
