"""政策问答: retrieval-augmented Q&A over Chinese industrial-policy plans.

Data flows one way: load (catalog, seeds) → clauses → index (FAISS + BM25)
→ retrieve (hybrid, routed) → answer (extractive by default, cited).  The CLI,
HTTP API and chat page are thin layers over `rag.service.Assistant`.
"""

__version__ = "0.1.0"
