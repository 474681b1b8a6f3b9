"""The "common LangChain recipe" baseline the evaluation compares our pipeline against.

What it does, on purpose, like most tutorials:
- each plan's *plain cleaned text* (PDF artifact lines dropped, stray spaces
  removed — the same cleaning as ours, so the comparison is not about noise),
  with no clause structure: no headings, no section paths, no clause ids;
- `RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)` with its
  default separators;
- the same embedding model (and its query/passage prompts), in a LangChain
  `FAISS` vector store, top-4 by similarity; no BM25, no routing, no filters.

What keeps it fair: answers come from *our* extractive answerer
(`rag.answer.answer_question`, same refusal rules), and follow-ups go through
*our* rewriter, so the numbers measure what clause structure, hybrid
retrieval and routing add — not a weaker answer step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .answer import Answer, answer_question
from .cleaning import classify_artifacts, tidy_spaces
from .corpus import Corpus
from .index import IndexedChunk, chunk_counts
from .keywords import normalize, tokens
from .retrieve import Hit, RetrievalResult
from .rewrite import rewrite_followup
from .routing import Route

CHUNK_SIZE = 500
CHUNK_OVERLAP = 50
TOP_K = 4


def plain_text(raw_text: str) -> str:
    """The document as a loader would give it, minus PDF artifact lines and stray spaces."""
    raw_lines = raw_text.splitlines()
    artifacts = classify_artifacts(raw_lines)
    lines = [tidy_spaces(line.strip()) for n, line in enumerate(raw_lines, start=1) if n not in artifacts]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


class _Idf:
    """What the extractive answerer reads of an index, over the baseline's own chunks: keyword
    IDF, the keyword vocabulary (English questions) and each document's text (the answerability
    checks look for names in it)."""

    def __init__(self, texts: list[str], doc_texts: dict[str, str] | None = None):
        from rank_bm25 import BM25Okapi

        token_lists = [tokens(t) or ["_"] for t in texts]
        self._bm25 = BM25Okapi(token_lists)
        self.vocabulary = chunk_counts(token_lists)  # as KnowledgeIndex.vocabulary
        self.normalized_doc_texts = {d: normalize(t) for d, t in (doc_texts or {}).items()}

    def idf(self, token: str) -> float:
        idf = self._bm25.idf
        return float(idf.get(token, max(idf.values(), default=1.0)))


@dataclass
class BaselineHit:
    chunk: IndexedChunk
    score: float  # cosine similarity (vectors are normalized)


class LangChainBaseline:
    """Chunk → FAISS → top-4 → extractive answer, with no clause structure."""

    name = "baseline-langchain"

    def __init__(self, corpus: Corpus, embedder, seeds_dir, chunk_size: int = CHUNK_SIZE,
                 chunk_overlap: int = CHUNK_OVERLAP, k: int = TOP_K):
        from langchain_community.vectorstores import FAISS
        from langchain_core.documents import Document
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from .embed_backend import as_langchain

        started = time.perf_counter()
        self.corpus = corpus
        self.k = k
        splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        docs = []
        for info in corpus.documents:
            raw = (seeds_dir / info.file).read_text(encoding="utf-8")
            docs.append(Document(page_content=plain_text(raw), metadata={"doc_id": info.doc_id,
                                                                         "doc_title": info.title}))
        self.chunks = splitter.split_documents(docs)
        for i, d in enumerate(self.chunks):
            d.metadata["chunk"] = i
        self.store = FAISS.from_documents(self.chunks, as_langchain(embedder))  # the ONNX runner is duck-typed
        self._idf = _Idf([d.page_content for d in self.chunks], {d.metadata["doc_id"]: d.page_content for d in docs})
        self.build_seconds = time.perf_counter() - started

    def _indexed(self, doc) -> IndexedChunk:
        # No clause ids or section paths: the chunk number stands in for the clause id.
        n = doc.metadata["chunk"]
        return IndexedChunk(doc_id=doc.metadata["doc_id"], doc_title=doc.metadata["doc_title"],
                            clause_id=f"chunk-{n}", part=1, parts=1, section=[], text=doc.page_content,
                            line_start=0, line_end=0)

    def search(self, query: str, k: int | None = None) -> list[BaselineHit]:
        """Top-k chunks; the FAISS L2 distance of unit vectors turned into cosine similarity."""
        found = self.store.similarity_search_with_score(query, k=k or self.k)
        return [BaselineHit(self._indexed(doc), 1.0 - float(dist) / 2.0) for doc, dist in found]

    def ask(self, question: str, history: list[dict] | None = None) -> Answer:
        t0 = time.perf_counter()
        standalone = rewrite_followup(question, history, self.corpus.documents)
        t1 = time.perf_counter()
        hits = self.search(standalone)
        t2 = time.perf_counter()
        result = RetrievalResult([Hit(h.chunk, h.score, h.score, 0.0, i) for i, h in enumerate(hits)],
                                 Route(documents=[], compare=False), None)
        answer = answer_question(standalone, result, self._idf, self.corpus.documents)
        t3 = time.perf_counter()
        answer.question = question
        answer.rewritten_question = standalone
        answer.backend = "extractive (baseline)"
        answer.timings_ms = {"rewrite": (t1 - t0) * 1000, "retrieve": (t2 - t1) * 1000,
                             "answer": (t3 - t2) * 1000, "total": (t3 - t0) * 1000}
        return answer
