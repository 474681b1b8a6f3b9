"""Sentence-transformers behind LangChain's `Embeddings` interface.

The model is a setting: the embedded default (prepared offline from PyPI
wheels) or any sentence-transformers name or local path.  E5-style models need
`query: ` / `passage: ` prompts; models that declare prompts in their own
config get them from there, others get none.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from .config import EMBEDDED_MODEL, Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model_path(name: str, settings: Settings) -> str:
    """Turn the configured model name into something SentenceTransformer can load."""
    if name == EMBEDDED_MODEL:
        from .embedded_model import prepare_e5_folder

        return str(prepare_e5_folder(settings.models_dir / "multilingual-e5-small"))
    return name


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


class SentenceTransformerEmbeddings(Embeddings):
    """Normalized embeddings; queries and passages get the model's prompts."""

    def __init__(self, model_name: str, settings: Settings | None = None, batch_size: int = 16):
        from sentence_transformers import SentenceTransformer

        settings = settings or Settings()
        self.model_name = model_name
        self.batch_size = batch_size
        path = resolve_model_path(model_name, settings)
        self.model = SentenceTransformer(path, device="cpu")
        prompts = getattr(self.model, "prompts", {}) or {}
        self.query_prompt = prompts.get("query", "")
        self.passage_prompt = prompts.get("passage", prompts.get("document", ""))
        self._lock = QueriesFirstLock()  # torch modules are not re-entrant under threads; queries go first

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def _encode(self, texts: list[str], prompt: str, show_progress: bool = False,
                background: bool = False) -> np.ndarray:
        """`background`: passages (index builds, uploads) wait while any query waits for the model."""
        with self._lock.hold(background):
            vecs = self.model.encode(
                list(texts), prompt=prompt or None, batch_size=self.batch_size,
                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=show_progress,
            )
        return np.asarray(vecs, dtype=np.float32)

    def embed_passages(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.passage_prompt, show_progress, background=True)

    def embed_query_vector(self, text: str) -> np.ndarray:
        return self._encode([text], self.query_prompt)[0]

    # LangChain interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_query_vector(text).tolist()


def model_fingerprint(model_name: str) -> str:
    """What the manifest records: the name, plus the folder's mtime for local paths."""
    path = Path(model_name)
    if path.exists():
        return f"{model_name}@{int(path.stat().st_mtime)}"
    return model_name
