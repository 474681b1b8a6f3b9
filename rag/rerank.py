"""Optional cross-encoder reranking of retrieved chunks (pluggable; off by default).

No Chinese cross-encoder ships on PyPI here, so the default is none; any
sentence-transformers `CrossEncoder` name or path can be configured with
`RAG_RERANKER`.
"""

from __future__ import annotations

import threading


class CrossEncoderReranker:
    def __init__(self, model_name: str):
        from sentence_transformers import CrossEncoder

        self.model_name = model_name
        self.model = CrossEncoder(model_name, device="cpu")
        self._lock = threading.Lock()

    def rerank(self, query: str, texts: list[str], rows: list[int]) -> list[int]:
        """Return `rows` reordered by the cross-encoder's score of (query, text)."""
        if not rows:
            return rows
        with self._lock:
            scores = self.model.predict([(query, t) for t in texts], convert_to_numpy=True)
        order = sorted(range(len(rows)), key=lambda i: -float(scores[i]))
        return [rows[i] for i in order]
