"""Which runtime embeds: `RAG_EMBED_BACKEND=onnx|onnx-int8|torch` for the embedded model.

- `onnx` (the default): the embedded model exported to ONNX in fp32, run by
  onnxruntime (rag/onnx_embedder.py).  No torch import: `rag ask` starts in about
  a second.  Its vectors are torch's (cosine >= 0.999), so every CPU gets the same
  rankings and the same answers.
- `onnx-int8`: the same export with dynamic int8 weights, about twice as fast.
  Its vectors depend on the CPU: onnxruntime's int8 kernels saturate on AVX2
  machines and not on AVX-512 VNNI ones, and the key-fact accuracy of one index
  moved by 0.02-0.04 between two such machines (README, "Embedding backends").
- `torch`: sentence-transformers on torch (rag/embeddings.py), as before.

Any other model (`RAG_EMBED_MODEL` / `--model`: a sentence-transformers name or
path) always runs on torch, whatever the setting says.

The index manifest records the backend that built it (`embed_backend`).  Vectors
of fp32 backends (torch, onnx) are interchangeable.  An index built in one
precision and queried in the other (int8 vs fp32) still works — the vectors are
of the same model and agree to cosine ~0.997 — so it is not stale and is never
rebuilt for it: opening it logs a warning naming the difference, and
`rag index build --force` rebuilds it with the current backend.
"""

from __future__ import annotations

import logging
import os

from .config import EMBEDDED_MODEL, Settings

log = logging.getLogger(__name__)

BACKENDS = ("onnx", "onnx-int8", "torch")
DEFAULT_BACKEND = "onnx"
_PRECISION = {"torch": "fp32", "onnx": "fp32", "onnx-int8": "int8"}


class EmbedBackendError(ValueError):
    """RAG_EMBED_BACKEND names no backend."""


def requested_backend(settings: Settings) -> str:
    name = (settings.embed_backend or DEFAULT_BACKEND).strip().lower()
    if name not in BACKENDS:
        raise EmbedBackendError(f"RAG_EMBED_BACKEND={settings.embed_backend!r} is not a backend: "
                                f"choose {', '.join(BACKENDS)}")
    return name


def resolve_backend(settings: Settings) -> str:
    """The backend that will embed for these settings (torch for any model but the embedded one)."""
    name = requested_backend(settings)
    if settings.embed_model != EMBEDDED_MODEL and name != "torch":
        if settings.embed_backend:
            log.info("RAG_EMBED_BACKEND=%s applies to the embedded model only; %s runs on torch",
                     name, settings.embed_model)
        return "torch"
    return name


def threads_for_serving() -> int:
    """Intra-op threads per model call in `rag serve` (RAG_TORCH_THREADS, default 1, for either runtime):
    requests run concurrently, so a second thread per call only contends for the same cores."""
    try:
        return max(1, int(os.environ.get("RAG_TORCH_THREADS", "1") or 1))
    except ValueError:
        return 1


def make_embedder(settings: Settings | None = None, threads: int | None = None):
    """The embedder the settings ask for; `threads` (per model call) defaults to the runtime's own."""
    settings = settings or Settings()
    backend = resolve_backend(settings)
    if backend == "torch":
        from .embeddings import SentenceTransformerEmbeddings

        if threads:
            import torch

            torch.set_num_threads(threads)
        return SentenceTransformerEmbeddings(settings.embed_model, settings)
    from .onnx_embedder import OnnxEmbeddings, onnx_dir

    return OnnxEmbeddings(onnx_dir(settings.models_dir), backend, model_name=settings.embed_model, threads=threads)


def as_langchain(embedder):
    """`embedder` as a LangChain `Embeddings` (LangChain's vector stores check the type): itself when it
    is one (the torch backend), else a thin view over its embed_documents / embed_query."""
    from langchain_core.embeddings import Embeddings

    if isinstance(embedder, Embeddings):
        return embedder

    class LangChainView(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed_query(text)

    return LangChainView()


def embedder_backend(embedder) -> str:
    """What an embedder object is running on (wrappers pass the attribute through)."""
    return getattr(embedder, "backend", None) or "torch"


def backend_mismatch(index_backend: str | None, query_backend: str) -> str | None:
    """A warning when the index's vectors and the queries' come from different precisions, else None."""
    built = index_backend or "torch"  # indexes from before the manifest recorded it were built on torch
    if _PRECISION.get(built, built) == _PRECISION.get(query_backend, query_backend):
        return None
    return (f"the index was built with the {built} embedding backend, queries use {query_backend}: the vectors "
            f"agree closely (cosine ~0.997) but not exactly; `rag index build --force` rebuilds it with "
            f"{query_backend}")
