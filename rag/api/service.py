"""`ApiService`: what the routers share — the Assistant, metrics, and the query slots.

The CPU-bound Python part of a query (retrieval, answer) runs in at most RAG_API_CONCURRENCY
(default: the core count, at most 4) threads at once; the rest queue in order.  More threads
only fight over the GIL and the event loop, which stretches the latency tail.  Query embeddings
are fetched before a slot is taken, so any number of queries still share the model's batches.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict

import anyio
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from ..catalog import describe_document
from ..config import MAX_QUESTION_CHARS
from ..ingest import DocumentError, check_doc_id
from ..metrics import Metrics
from ..query_batch import BatchingQueryEmbedder
from ..retrieve import RRF_K
from .errors import ApiError
from .streaming import text_pieces


BM25_HALF = 10.0  # bm25 mode: a score of 10 (several rare words of the question in one clause) is 0.5


def confidence(answer: dict, mode: str = "hybrid") -> float:
    """How strongly retrieval backs the answer, 0-1 (not a probability that the answer is right).

    0 for a refusal.  Otherwise from the best-scored cited clause: in `hybrid` mode its fused
    (reciprocal-rank) score over the best possible one, 2/(RRF_K+1) — 1.0 when the semantic and the
    keyword ranking both put it first, about 0.5 when only one of them ranks it at all; in `dense`
    mode its cosine similarity to the question; in `bm25` mode score/(score + 10)."""
    cites = answer.get("citations") or []
    if answer.get("refused") or not cites:
        return 0.0
    top = max(float(c.get("score") or 0.0) for c in cites)
    if mode == "dense":
        value = top
    elif mode == "bm25":
        value = top / (top + BM25_HALF) if top > 0 else 0.0
    else:
        value = top / (2.0 / (RRF_K + 1))
    return round(min(1.0, max(0.0, value)), 3)


# Questions whose first answer initialises something once per process (the pinyin syllables, each
# document's pinyin names, the English lookup): asked at start-up in bm25 mode (no model call), so no
# user's request pays for it (measured: ~5 s of CPU on the first English question otherwise).
def warm_questions(documents) -> list[str]:
    """An English question and a comparison of the first two documents the corpus names (no name in code)."""
    names = [d.aliases[0] for d in documents if getattr(d, "aliases", None)][:2]
    latin = [a for d in documents for a in getattr(d, "aliases", []) if a.isascii()][:1]
    out = [f"What talent policies does {latin[0] if latin else 'the plan'} offer?"]
    if len(names) == 2:
        out.append(f"{names[0]}和{names[1]}的产业规模目标有何不同？")
    return out


class ApiService:
    def __init__(self, assistant, metrics: Metrics, slots: int | None = None, answer_cache: int = 0,
                 warm_answers: bool = False):
        """`answer_cache`: extractive answers kept (LRU) per published index snapshot, 0 = none (`rag serve`
        uses RAG_ANSWER_CACHE); `warm_answers`: the warm-up also answers `warm_questions`."""
        self.assistant = assistant
        self.metrics = metrics
        self.answer_cache_size = max(0, int(answer_cache))
        self._answers: OrderedDict = OrderedDict()
        self._answers_lock = threading.Lock()
        self.answer_cache_hits = 0
        self.warm_answers = warm_answers
        default_slots = min(4, os.cpu_count() or 2)
        if slots is None:
            slots = int(os.environ.get("RAG_API_CONCURRENCY", "") or default_slots)
        self.work_slots = anyio.Semaphore(max(1, slots))
        self.warm_ms: float | None = None
        self.warm_error: str | None = None

    # -- readiness --

    def warm_up(self) -> None:
        """One query embedding with the model itself (not through the batcher or its cache): the first
        model call pays for lazy initialisation; afterwards /readyz says the model is warm."""
        emb = getattr(self.assistant, "embedder", None)
        inner = getattr(emb, "inner", emb) if isinstance(emb, BatchingQueryEmbedder) else emb
        if inner is None or getattr(inner, "_rag_warm", False):
            self.warm_ms = 0.0 if inner is None or self.warm_ms is None else self.warm_ms
            return
        started = time.perf_counter()
        try:
            inner.embed_query("预热 warm-up")
        except Exception as exc:  # noqa: BLE001  -- reported by /readyz, never raised
            self.warm_error = f"{type(exc).__name__}: {exc}"[:300]
            return
        if self.warm_answers and hasattr(self.assistant, "ask"):
            corpus = getattr(self.assistant, "corpus", None)
            for question in warm_questions(getattr(corpus, "documents", [])):
                try:
                    self.assistant.ask(question, mode="bm25")  # bm25: no model call, no cached vector
                except Exception:  # noqa: BLE001  -- a warm-up, never fatal
                    pass
        try:
            inner._rag_warm = True
        except AttributeError:
            pass
        self.warm_ms = round((time.perf_counter() - started) * 1000, 1)

    def readiness(self) -> dict:
        assistant = self.assistant
        index = getattr(assistant, "index", None)
        index_loaded = index is not None and len(index) > 0
        emb = getattr(assistant, "embedder", None)
        inner = getattr(emb, "inner", emb) if isinstance(emb, BatchingQueryEmbedder) else emb
        warm = inner is not None and bool(getattr(inner, "_rag_warm", False))
        out = {"ready": index_loaded and warm, "index_loaded": index_loaded, "model_warm": warm,
               "index_status": getattr(assistant, "index_status", None)}
        if self.warm_ms is not None:
            out["warm_up_ms"] = self.warm_ms
        if self.warm_error:
            out["detail"] = f"model warm-up failed: {self.warm_error}"
        elif not warm:
            out["detail"] = "the embedding model is warming up"
        elif not index_loaded:
            out["detail"] = "the index is empty"
        return out

    # -- queries --

    async def prefetch_query_vector(self, text, mode: str, history=None) -> None:
        """Embed the query before taking a CPU slot (see rag/query_batch.py); a follow-up is rewritten
        by the chain first, so its standalone text is not known here and it is embedded in the slot."""
        emb = getattr(self.assistant, "embedder", None)
        if mode == "bm25" or history or not isinstance(emb, BatchingQueryEmbedder) or not isinstance(text, str):
            return
        text = text.strip()
        if text and len(text) <= MAX_QUESTION_CHARS and not emb.is_cached(text):
            await run_in_threadpool(emb.prefetch, text)

    def generative(self, backend) -> bool:
        resolve = getattr(self.assistant, "resolve_backend", None)
        return resolve is not None and resolve(backend) != "extractive"

    async def ask(self, question, k, documents, history, mode, backend=None, **generation) -> dict:
        """The final answer dict (what `rag ask --json` prints).  `generation` (language, max_tokens) is for
        the generative backends (`Assistant.ask_stream`)."""
        if not self.generative(backend):
            return await self.extractive_answer(question, k, documents, history, mode)
        answer = None
        async for item in await self.answer_pieces(question, k, documents, history, mode, backend, **generation):
            if isinstance(item, dict):
                answer = item
        return answer

    def _answer_key(self, question, k, documents, history, mode):
        """(snapshot, key) of a cacheable request — an extractive answer depends only on these and the
        published index snapshot — or None (a follow-up, a cache of size 0, an assistant without snapshots)."""
        if not self.answer_cache_size or history or not isinstance(question, str):
            return None
        snap = getattr(self.assistant, "snapshot", None)
        if snap is None:
            return None
        docs = tuple(documents) if isinstance(documents, list) and all(isinstance(d, str) for d in documents) \
            else documents
        if docs is not None and not isinstance(docs, tuple):
            return None
        return snap, (question, k, docs, mode)

    async def extractive_answer(self, question, k, documents, history, mode) -> dict:
        started = time.perf_counter()
        cache_key = self._answer_key(question, k, documents, history, mode)
        if cache_key is not None:
            snap, key = cache_key
            with self._answers_lock:
                held = self._answers.get(key)
                if held is not None and held[0] is snap:  # answered from this very index snapshot
                    self._answers.move_to_end(key)
                    self.answer_cache_hits += 1
                    ms = round((time.perf_counter() - started) * 1000, 3)
                    answer = {**held[1], "timings_ms": {"answer_cache": ms, "total": ms}}
                    self.metrics.observe_answer(answer)
                    return answer
        await self.prefetch_query_vector(question, mode, history)
        async with self.work_slots:
            result = await run_in_threadpool(self.assistant.ask, question, k=k, documents=documents,
                                             history=history, mode=mode)
        answer = result.to_dict()
        answer["confidence"] = confidence(answer, mode)
        self.metrics.observe_answer(answer)
        if cache_key is not None:
            with self._answers_lock:
                self._answers[cache_key[1]] = (cache_key[0], answer)
                self._answers.move_to_end(cache_key[1])
                while len(self._answers) > self.answer_cache_size:
                    self._answers.popitem(last=False)
        return answer

    async def answer_pieces(self, question, k, documents, history, mode, backend=None, **generation):
        """Text deltas, then the final answer dict, as an async iterator.  Validation errors raise here.

        Extractive answers are computed at once and cut into pieces.  A generative
        backend streams the model's verified sentences as they come: retrieval
        takes a CPU slot, generation does not (llama.cpp and HTTP clients release
        the GIL, and one local model runs one generation at a time anyway).
        """
        if not self.generative(backend):
            answer = await self.extractive_answer(question, k, documents, history, mode)

            async def extractive():
                for piece in text_pieces(answer["answer"]):
                    yield piece
                yield answer
            return extractive()
        await self.prefetch_query_vector(question, mode, history)
        async with self.work_slots:
            options = {name: value for name, value in generation.items() if value is not None}
            gen = await run_in_threadpool(self.assistant.ask_stream, question, k=k, documents=documents,
                                          history=history, mode=mode, backend=backend, **options)
        metrics = self.metrics

        async def generated():
            try:
                async for item in iterate_in_threadpool(gen):
                    if isinstance(item, str):
                        yield item
                    else:
                        answer = item.to_dict()
                        answer["confidence"] = confidence(answer, mode)
                        metrics.observe_answer(answer)
                        yield answer
            finally:
                try:
                    gen.close()  # the client left: stop the model at its next token
                except ValueError:  # still running in its worker thread; it ends at max_tokens
                    pass
        return generated()

    async def search(self, query, k, documents, mode):
        await self.prefetch_query_vector(query, mode)
        async with self.work_slots:
            return await run_in_threadpool(self.assistant.search, query, k=k, documents=documents, mode=mode)

    # -- documents --

    def document_out(self, doc_id: str, snap=None) -> dict:
        try:
            return describe_document(snap or self.assistant.snapshot, doc_id)
        except KeyError:
            raise ApiError(404, "unknown_document", f"unknown doc_id {doc_id!r}", param="doc_id",
                           zh=f"未知文档 {doc_id!r}") from None

    def checked_id(self, doc_id: str) -> str:
        """Known ids pass as they are; an unknown one must at least look like an id (422 if path-like)."""
        if any(d.doc_id == doc_id for d in self.assistant.corpus.documents):
            return doc_id
        try:
            return check_doc_id(doc_id)
        except DocumentError as exc:
            raise ApiError(exc.status, exc.code, str(exc), param="doc_id") from None  # "中文 (English)": split per request

    def job_out(self, job) -> dict:
        out = job.public()
        if job.status == "done":
            try:
                out["document"] = self.document_out(job.doc_id)
            except ApiError:  # deleted since
                out["document"] = None
        return out

    def job_finished(self, job) -> None:
        """The jobs' worker thread: count the outcome as a synchronous upload would."""
        self.metrics.documents.labels("upload", "ok" if job.status == "done" else job.error["code"]).inc()
        if job.status == "done" and job.finished and job.created:
            self.metrics.stage.labels("upload").observe(max(0.0, job.finished - job.created))
