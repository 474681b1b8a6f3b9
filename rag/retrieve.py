"""Hybrid retrieval: dense (FAISS) + BM25 (jieba) fused by reciprocal-rank fusion.

Questions that name a place or issuer are routed to that document; comparison
questions get clauses from every document they name.  The retriever is also a
LangChain `BaseRetriever` (`ClauseRetriever`), so it plugs into any LangChain
chain; LangChain's retriever module (and langsmith behind it) is imported only
when `ClauseRetriever` is first used, not on the command line's path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .index import IndexedChunk, KnowledgeIndex
from .keywords import english_terms, key_terms, tokens
from .question import part_queries
from .routing import Route

RRF_K = 60
CANDIDATES = 50
MODES = ("hybrid", "dense", "bm25")


@dataclass
class Hit:
    chunk: IndexedChunk
    score: float  # fused score (RRF) or the single retriever's score
    dense: float  # cosine similarity to the question
    bm25: float
    row: int

    def to_dict(self) -> dict:
        c = self.chunk
        return {"doc_id": c.doc_id, "doc_title": c.doc_title, "clause_id": c.clause_id,
                "chunk_id": c.chunk_id, "section": c.section_path, "text": c.text,
                "score": round(float(self.score), 6)}


@dataclass
class RetrievalResult:
    hits: list[Hit]
    route: Route
    searched_documents: list[str] | None  # None = whole corpus
    query_vector: np.ndarray | None = field(default=None, repr=False)
    query: str = ""  # what was searched (a comparison's per-document search drops the other names)
    # a comparison: each compared document's own search, in the order the question names them
    per_document: dict[str, "RetrievalResult"] = field(default_factory=dict, repr=False)
    # a question of several parts: each part's own best rows and query vector, in the parts' order
    parts: list[tuple[list[int], np.ndarray | None]] = field(default_factory=list, repr=False)


@dataclass
class Candidate:
    row: int
    score: float  # fused (RRF) or the single retriever's score
    dense: float
    bm25: float


def rank(index: KnowledgeIndex, query_vector: np.ndarray | None, keyword_tokens: list[str],
         rows: np.ndarray | None = None, mode: str = "hybrid") -> list[Candidate]:
    """The candidates of one query, best first: the index side of `search` (no embedding, no
    routing).  Dense and BM25 each give their CANDIDATES best rows among `rows` (all when None);
    hybrid fuses the two lists by reciprocal rank, ties in the order of `rows`.  Nothing here
    sorts every chunk: dense candidates come from `KnowledgeIndex.dense_top` (exact, or HNSW on a
    large index), BM25's from `bm25_top`, a partial selection over its sparse scores (or both from
    Milvus searches, rag/milvus_store.py)."""
    dense_rows: list[int] = []
    dense_of: dict[int, float] = {}
    if mode != "bm25" and query_vector is not None:
        ids, sims = index.dense_top(query_vector, CANDIDATES, rows)
        dense_rows = [int(r) for r in ids]
        dense_of = dict(zip(dense_rows, (float(x) for x in sims)))
    bm25_rows, bm25 = index.bm25_top(keyword_tokens, CANDIDATES, rows) if mode != "dense" else ([], None)

    if mode == "dense":
        order, fused = dense_rows, dense_of
    elif mode == "bm25":
        order, fused = bm25_rows, {r: bm25(r) for r in bm25_rows}
    else:
        fused = {}
        for ranking in (dense_rows, bm25_rows):
            for i, r in enumerate(ranking):
                fused[r] = fused.get(r, 0.0) + 1.0 / (RRF_K + i + 1)
        if rows is None:
            position = {r: r for r in fused}
        else:  # where each candidate stands in `rows`: a tie keeps that order
            found = np.flatnonzero(np.isin(rows, np.fromiter(fused, dtype=np.int64, count=len(fused))))
            position = {int(rows[p]): int(p) for p in found[::-1]}  # a repeated row: its first place
        order = sorted(fused, key=lambda r: (-fused[r], position[r]))
    missing = [r for r in order if r not in dense_of]
    if missing and query_vector is not None and mode != "bm25":
        dense_of.update(zip(missing, (float(x) for x in
                                      index.vectors[missing] @ np.asarray(query_vector, dtype=np.float32))))
    return [Candidate(r, fused[r], dense_of.get(r, 0.0), bm25(r) if bm25 is not None else 0.0)
            for r in order]


def search(index: KnowledgeIndex, embedder, query: str, k: int = 5, documents: list[str] | None = None,
           mode: str = "hybrid", route: Route | None = None, use_routing: bool = True,
           reranker=None) -> RetrievalResult:
    """Rank chunks for `query`.

    `documents` (explicit filter from the caller) wins over routing; otherwise a
    question naming documents searches only those, and a comparison spreads
    the k results over every named document.
    """
    if mode not in MODES:
        raise ValueError(f"unknown retrieval mode {mode!r}; choose from {MODES}")
    route = route or Route(documents=[], compare=False)
    scope = documents or (route.documents if use_routing and route.named else None)
    rows = index.rows_for(scope)
    if rows is not None and len(rows) == 0:
        return RetrievalResult([], route, scope)
    if len(index) == 0:
        return RetrievalResult([], route, scope)

    if route.compare and len(scope or []) >= 2 and not documents:
        # Each named document is searched with the question minus the *other* places'
        # names, so one "…工业园区" cannot pull another's clauses up by the word 园区.
        per_doc = {}
        for d in scope:
            sub_query = strip_other_places(query, d, route)
            # Routed to the one document, so its own name is kept out of the keywords too.
            own = Route(documents=[d], compare=False, aliases={d: route.aliases[d]} if d in route.aliases else {})
            sub = search(index, embedder, sub_query, k=k, mode=mode, route=own, reranker=reranker)
            per_doc[d] = sub
        merged: list[Hit] = []
        depth = 0
        while len(merged) < k and any(depth < len(v.hits) for v in per_doc.values()):
            for d in scope:
                if depth < len(per_doc[d].hits) and len(merged) < k:
                    merged.append(per_doc[d].hits[depth])
            depth += 1
        return RetrievalResult(merged, route, scope, query=query, per_document=per_doc)

    qvec = embedder.embed_query_vector(query) if mode != "bm25" else None
    found = {c.row: c for c in rank(index, qvec, _keyword_tokens(query, index, route, scope, documents), rows, mode)}
    parts = part_queries(query)
    part_rankings: list[tuple[list[int], np.ndarray | None]] = []
    if len(parts) > 1:
        found, part_rankings = _fused_with_parts(found, parts, index, embedder, route, scope, documents,
                                                 rows, mode, qvec)
    candidates = list(found)
    if reranker is not None:
        head = candidates[: max(k * 3, 20)]
        candidates = reranker.rerank(query, [index.chunks[r].text for r in head], head)
    hits = [Hit(index.chunks[r], found[r].score, found[r].dense, found[r].bm25, r) for r in candidates[:k]]
    shown = {h.row for h in hits}
    part_rankings = [([r for r in ranking if r in shown], vector) for ranking, vector in part_rankings]
    return RetrievalResult(hits, route, scope, qvec, query, parts=part_rankings)


def _keyword_tokens(query: str, index: KnowledgeIndex, route: Route, scope, documents) -> list[str]:
    # Within a routed document its own name matches everywhere: keep it out of the keywords.
    keyword_query = query
    if scope and not documents:
        for alias in route.aliases.values():
            keyword_query = keyword_query.replace(alias, " ")
    return tokens(keyword_query) + [t for term in english_terms(keyword_query, index) for t in tokens(term)]


def _fused_with_parts(found: dict[int, Candidate], parts: list[str], index: KnowledgeIndex, embedder,
                      route: Route, scope, documents, rows, mode: str, qvec) -> dict[int, Candidate]:
    """A question of several parts ("罚多少？对负责人个人又罚多少？") is also searched part by part,
    and the whole question's ranking and each part's are fused by reciprocal rank: the clause that
    answers only the second part is not crowded out by the first part's.  Scores stay the whole
    question's (its dense similarity is what the answerability checks read).  Also returns each
    part's own ranking and vector: the answerer chooses a part's sentence among its own best clauses."""
    rankings = [list(found)]
    part_rankings = []
    for part in parts:
        pvec = embedder.embed_query_vector(part) if mode != "bm25" else None
        rankings.append([c.row for c in rank(index, pvec, _keyword_tokens(part, index, route, scope, documents),
                                             rows, mode)])
        part_rankings.append((rankings[-1], pvec))
    fused: dict[int, float] = {}
    for ranking in rankings:
        for i, r in enumerate(ranking):
            fused[r] = fused.get(r, 0.0) + 1.0 / (RRF_K + i + 1)
    # each part's best clause is among the first k, after the whole question's best; then by fused rank
    heads = [ranking[0] for ranking in rankings if ranking]
    order = list(dict.fromkeys(heads + sorted(fused, key=lambda r: -fused[r])))  # stable: ties keep the whole's order
    missing = [r for r in order if r not in found]
    dense = {}
    if missing and qvec is not None:
        dense = dict(zip(missing, (float(x) for x in index.vectors[missing] @ np.asarray(qvec, dtype=np.float32))))
    # a row only a part found has no BM25 score for the whole question (0, as outside a keyword top-k)
    return {r: Candidate(r, fused[r], found[r].dense if r in found else dense.get(r, 0.0),
                         found[r].bm25 if r in found else 0.0)
            for r in order}, part_rankings


def strip_other_places(query: str, doc_id: str, route: Route) -> str:
    """The query as asked of one compared document.  "绵阳市现有企业数量，和洛阳市要培育的企业
    数量相比如何" asks each its own thing, one clause each: the document's clause, up to the comma
    before the next name.  Otherwise the whole query with the other documents' names removed."""
    alias = route.aliases.get(doc_id)
    at = query.find(alias) if alias else -1
    if at >= 0:
        later = [p for a in route.aliases.values() if (p := query.find(a)) > at]
        own = query[at: min(later)] if later else query[at:]
        head = re.split(r"[，,]", own)[0]
        if later and head != own and len("".join(key_terms(head.replace(alias, "")))) >= 4:
            return head
    for other, alias in route.aliases.items():
        if other != doc_id:
            query = query.replace(alias, "")
    return query


def _clause_retriever_class():
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from pydantic import ConfigDict

    class ClauseRetriever(BaseRetriever):
        """LangChain view of `search`: returns clauses as `Document`s with their metadata."""

        model_config = ConfigDict(arbitrary_types_allowed=True)
        index: KnowledgeIndex
        embedder: object
        k: int = 5
        mode: str = "hybrid"

        def _get_relevant_documents(self, query: str, *,
                                    run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
            result = search(self.index, self.embedder, query, k=self.k, mode=self.mode)
            return [Document(page_content=h.chunk.text, metadata=h.to_dict()) for h in result.hits]

    ClauseRetriever.__qualname__ = "ClauseRetriever"
    return ClauseRetriever


def __getattr__(name: str):
    if name == "ClauseRetriever":  # built on first use: `from rag.retrieve import ClauseRetriever` works as before
        cls = globals()["ClauseRetriever"] = _clause_retriever_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
