"""The embedding model's lock (queries first, a bounded share for background work), and the
methods every embedder offers over its own `_encode`.

Shared by every embedding backend (rag/embeddings.py for torch, rag/onnx_embedder.py
for onnxruntime); it imports nothing heavy.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager


def _env_share(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        value = default
    return min(1.0, max(0.05, value))


class QueriesFirstLock:
    """The model's lock, with queries first and a bounded share for background work.

    Queries wait for the model; passage batches (an upload being embedded) are
    background work.  Two rules keep a large upload from stalling queries:

    - A passage batch takes the model only when no query is waiting for it.  A plain
      lock is no help: the upload thread releases it and takes it again at once, before
      the woken query thread runs, so a query could wait for many upload batches in a
      row.  Here a query waits for at most the one batch already running (uploads embed
      in small batches for that reason: rag/service.py `UPLOAD_EMBED_BATCH`).
    - While queries use the model (one did within the last `ACTIVE_S` seconds),
      background work gets at most `share` of the model's time (RAG_UPLOAD_CPU_SHARE,
      default 0.5): after a batch that took t seconds it pauses t * (1 - share) / share.
      The model runs on one core (RAG_TORCH_THREADS), so an upload then leaves the
      queries more than one of the two cores.  With no queries around it runs flat out.
    """

    ACTIVE_S = 2.0

    def __init__(self, share: float | None = None):
        self._cv = threading.Condition(threading.Lock())
        self._held = False
        self._queries_waiting = 0
        self._last_query = float("-inf")
        self.share = _env_share("RAG_UPLOAD_CPU_SHARE", 0.5) if share is None else share
        self.paused_s = 0.0  # background time spent yielding (tests, logs)

    @contextmanager
    def hold(self, background: bool = False):
        with self._cv:
            if background:
                while self._held or self._queries_waiting:
                    self._cv.wait()
            else:
                self._queries_waiting += 1
                try:
                    while self._held:
                        self._cv.wait()
                finally:
                    self._queries_waiting -= 1
            self._held = True
        started = time.monotonic()
        try:
            yield
        finally:
            ended = time.monotonic()
            with self._cv:
                self._held = False
                if not background:
                    self._last_query = ended
                queries_active = ended - self._last_query < self.ACTIVE_S
                self._cv.notify_all()
            if background and queries_active and self.share < 1.0:
                pause = (ended - started) * (1.0 - self.share) / self.share
                self.paused_s += pause
                time.sleep(pause)


class EmbedderMethods:
    """Passages, one query, and the LangChain Embeddings interface (duck-typed: no LangChain
    import here), all over the backend's `_encode(texts, prompt, show_progress, background)`."""

    passage_prompt: str
    query_prompt: str

    def embed_passages(self, texts: list[str], show_progress: bool = False):
        return self._encode(texts, self.passage_prompt, show_progress, background=True)

    def embed_query_vector(self, text: str):
        return self._encode([text], self.query_prompt)[0]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_query_vector(text).tolist()

