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
        self._chains: dict[str, object] = {"extractive": self.chain}

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

    def _backend(self, backend: str | None) -> str:
        from .generate import GenerationConfig, check_backend

        try:
            return check_backend(backend or GenerationConfig.from_env().backend)
        except ValueError as exc:
            raise QuestionError(str(exc)) from None

    def _chain_for(self, backend: str):
        if backend not in self._chains:
            from .generate import generative_answerer

            self._chains[backend] = build_chain(self, generative_answerer(self, backend))
        return self._chains[backend]

    def _state(self, question, k, documents, history, mode, use_routing) -> dict:
        question = validate_question(question, k)
        if mode not in MODES:
            raise QuestionError(f"mode must be one of {MODES}")
        return {"question": question, "k": k or self.settings.top_k, "documents": self._check_documents(documents),
                "history": history or [], "mode": mode, "use_routing": use_routing}

    def ask(self, question: str, k: int | None = None, documents: list[str] | None = None,
            history: list[dict] | None = None, mode: str = "hybrid", use_routing: bool = True,
            backend: str | None = None) -> Answer:
        """`backend`: extractive | openai | llamacpp (default: env RAG_BACKEND, else extractive)."""
        state = self._state(question, k, documents, history, mode, use_routing)
        return finish(self._chain_for(self._backend(backend)).invoke(state))

    def ask_stream(self, question: str, k: int | None = None, documents: list[str] | None = None,
                   history: list[dict] | None = None, mode: str = "hybrid", use_routing: bool = True,
                   backend: str | None = None):
        """Like `ask`, but a generator: text deltas (str) of the verified answer, then the final Answer.

        Validation errors raise before the first item.  The final Answer is authoritative:
        on a fallback its text (the extractive answer) replaces whatever was streamed.
        """
        import time as _time

        from .generate import stream_answer

        state = self._state(question, k, documents, history, mode, use_routing)
        chosen = self._backend(backend)
        if "_retrieval" not in self._chains:
            self._chains["_retrieval"] = build_chain(self, lambda s: s)
        state = self._chains["_retrieval"].invoke(state)

        def gen():
            started = _time.perf_counter()
            for item in stream_answer(self, state, chosen):
                if isinstance(item, Answer):
                    state["answer"] = item
                    state["timings_ms"]["answer"] = (_time.perf_counter() - started) * 1000
                    yield finish(state)
                else:
                    yield item
        return gen()
