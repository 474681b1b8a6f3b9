"""Sentence-transformers behind LangChain's `Embeddings` interface.

The model is a setting: the embedded default (prepared offline from PyPI
wheels) or any sentence-transformers name or local path.  E5-style models need
`query: ` / `passage: ` prompts; models that declare prompts in their own
config get them from there, others get none.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from .config import EMBEDDED_MODEL, Settings
from .model_lock import EmbedderMethods, QueriesFirstLock  # noqa: F401  (re-exported: rag.embeddings.QueriesFirstLock)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model_path(name: str, settings: Settings) -> str:
    """Turn the configured model name into something SentenceTransformer can load."""
    if name == EMBEDDED_MODEL:
        from .embedded_model import prepare_e5_folder

        return str(prepare_e5_folder(settings.models_dir / "multilingual-e5-small"))
    return name


class SentenceTransformerEmbeddings(EmbedderMethods, Embeddings):
    """Normalized embeddings; queries and passages get the model's prompts."""

    backend = "torch"  # rag/embed_backend.py

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



def model_fingerprint(model_name: str) -> str:
    """What the manifest records: the name, plus the folder's mtime for local paths."""
    path = Path(model_name)
    if path.exists():
        return f"{model_name}@{int(path.stat().st_mtime)}"
    return model_name
