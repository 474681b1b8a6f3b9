"""Settings, read from environment variables so every front end shares them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_MODEL = "embedded:multilingual-e5-small"
MAX_QUESTION_CHARS = 1000


def _cache_dir() -> Path:
    base = os.environ.get("RAG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zhengce-rag")
    return Path(base)


def jieba_cache_dir() -> str | None:
    """Where jieba keeps its dictionary cache: <cache>/jieba, or None (jieba's default, the temp dir)
    when that cannot be created or written."""
    path = _cache_dir() / "jieba"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return str(path) if os.access(path, os.W_OK) else None


@dataclass
class Settings:
    seeds_dir: Path = field(default_factory=lambda: Path(os.environ.get("RAG_SEEDS_DIR", PROJECT_ROOT / "seeds")))
    index_dir: Path = field(default_factory=lambda: Path(os.environ.get("RAG_INDEX_DIR", PROJECT_ROOT / "index")))
    cache_dir: Path = field(default_factory=_cache_dir)
    # Any sentence-transformers name or path; the default is prepared offline from PyPI wheels.
    embed_model: str = field(default_factory=lambda: os.environ.get("RAG_EMBED_MODEL", EMBEDDED_MODEL))
    # Runtime of the embedded model: onnx (default, fp32), onnx-int8 or torch (rag/embed_backend.py).
    embed_backend: str = field(default_factory=lambda: os.environ.get("RAG_EMBED_BACKEND", ""))
    # Optional cross-encoder (name or path); empty means no reranking.
    reranker: str = field(default_factory=lambda: os.environ.get("RAG_RERANKER", ""))
    top_k: int = field(default_factory=lambda: int(os.environ.get("RAG_TOP_K", "5")))
    # Where chunks are searched: "" = the embedded store (FAISS + bm25s); milvus-lite:/path/file.db or
    # milvus://host:port = a Milvus collection kept in step with the index (rag/milvus_store.py).
    store: str = field(default_factory=lambda: os.environ.get("RAG_STORE", ""))

    def __post_init__(self):  # a folder given as a string (a caller's or a test's) is a Path like the defaults
        for name in ("seeds_dir", "index_dir", "cache_dir"):
            setattr(self, name, Path(getattr(self, name)))

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
