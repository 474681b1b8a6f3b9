"""`Assistant`: the one core object the CLI, HTTP API and chat page all use.

It loads the corpus and the embedding model, opens the index (rebuilding it
when the seeds or the model changed, or when a file is corrupted), and answers
`search` and `ask` calls.
"""

from __future__ import annotations

import logging
import threading
import time

from .answer import Answer
from .chain import build_chain, finish
from .config import MAX_QUESTION_CHARS, Settings
from .corpus import Corpus, load_corpus
from .index import IndexCorrupt, IndexError_, IndexMissing, IndexStale, KnowledgeIndex, build_index
from .retrieve import MODES, RetrievalResult, search
from .routing import route

log = logging.getLogger(__name__)
MAX_K = 50


class QuestionError(ValueError):
    """The question (or its options) cannot be answered as given: a user error, not a crash."""


def validate_question(question: object, k: int | None = None) -> str:
    if not isinstance(question, str):
        raise QuestionError("问题必须是文本 (question must be a string)")
    q = question.strip()
    if not q:
        raise QuestionError("问题为空 (empty question)")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(f"问题过长：{len(q)} 字，上限 {MAX_QUESTION_CHARS} 字 (question too long)")
    if k is not None and not (1 <= int(k) <= MAX_K):
        raise QuestionError(f"k 必须在 1 到 {MAX_K} 之间 (k out of range)")
    return q


def open_index(settings: Settings, corpus: Corpus, embedder, rebuild: bool = False,
               show_progress: bool = False) -> tuple[KnowledgeIndex, str]:
    """Load the index, or build it when missing, stale or corrupted. Returns (index, what happened)."""
    reason = "forced rebuild"
    if not rebuild:
        try:
            index = KnowledgeIndex.load(settings.index_dir)
            m = index.manifest
            if m.get("corpus_fingerprint") != corpus.fingerprint:
                raise IndexStale("the seeds or catalog changed since the index was built")
            if m.get("model") != settings.embed_model:
                raise IndexStale(f"index was built with {m.get('model')!r}, settings say {settings.embed_model!r}")
            return index, "loaded"
        except IndexMissing as exc:
            reason = str(exc)
        except (IndexStale, IndexCorrupt) as exc:
            reason = str(exc)
            log.warning("index unusable, rebuilding: %s", exc)
    started = time.perf_counter()
    titles = {d.doc_id: d.title for d in corpus.documents}
    index = build_index(corpus.chunks, titles, embedder, {
        "model": settings.embed_model,
        "corpus_fingerprint": corpus.fingerprint,
        "clause_count": len(corpus.clauses),
        "documents": [d.doc_id for d in corpus.documents],
    }, show_progress=show_progress)
    index.save(settings.index_dir)
    log.info("index built in %.1fs (%s)", time.perf_counter() - started, reason)
    return index, f"built ({reason})"


class Assistant:
    def __init__(self, settings: Settings | None = None, embedder=None, rebuild: bool = False,
                 show_progress: bool = False):
        self.settings = settings or Settings()
        timings = {}
        t = time.perf_counter()
        self.corpus = load_corpus(self.settings.seeds_dir)
        timings["corpus_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if embedder is None:
            from .embeddings import SentenceTransformerEmbeddings

            embedder = SentenceTransformerEmbeddings(self.settings.embed_model, self.settings)
        self.embedder = embedder
        timings["model_s"] = time.perf_counter() - t
        t = time.perf_counter()
        self.index, self.index_status = open_index(self.settings, self.corpus, embedder, rebuild, show_progress)
        timings["index_s"] = time.perf_counter() - t
        self.startup_timings = timings
        self.reranker = None
        if self.settings.reranker:
            from .rerank import CrossEncoderReranker

            self.reranker = CrossEncoderReranker(self.settings.reranker)
        self._lock = threading.RLock()
        self.chain = build_chain(self)

    # -- queries ----------------------------------------------------------------

    def _check_documents(self, documents: list[str] | None) -> list[str] | None:
        if not documents:
            return None
        known = set(self.index.doc_ids)
        unknown = [d for d in documents if d not in known]
        if unknown:
            raise QuestionError(f"未知文档 (unknown doc_id): {', '.join(unknown)}")
        return list(documents)

    def search(self, query: str, k: int = 10, documents: list[str] | None = None,
               mode: str = "hybrid", use_routing: bool = True) -> RetrievalResult:
        query = validate_question(query, k)
        if mode not in MODES:
            raise QuestionError(f"mode must be one of {MODES}")
        docs = self._check_documents(documents)
        return search(self.index, self.embedder, query, k=k, documents=docs, mode=mode,
                      route=route(query, self.corpus.documents), use_routing=use_routing,
                      reranker=self.reranker)

    def ask(self, question: str, k: int | None = None, documents: list[str] | None = None,
            history: list[dict] | None = None, mode: str = "hybrid", use_routing: bool = True) -> Answer:
        question = validate_question(question, k)
        if mode not in MODES:
            raise QuestionError(f"mode must be one of {MODES}")
        state = self.chain.invoke({
            "question": question, "k": k or self.settings.top_k, "documents": self._check_documents(documents),
            "history": history or [], "mode": mode, "use_routing": use_routing,
        })
        return finish(state)
