"""A LangChain retriever over a running 政策问答 server's `POST /v1/search`.

```python
from rag.langchain_client import PolicyRetriever

retriever = PolicyRetriever(base_url="http://127.0.0.1:8000", k=5)   # api_key="…" when keys are set
docs = retriever.invoke("深圳到2025年集成电路产业营收目标是多少？")
docs[0].page_content          # the clause text
docs[0].metadata              # doc_id, doc_title, clause_id, chunk_id, section, section_path, score, rank, url
```

It needs only `langchain-core` and `httpx` (no model, no index): use it in any chain
(`retriever | format_docs | prompt | llm`) or agent as a `BaseRetriever`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field


class PolicyAPIError(RuntimeError):
    """The server refused the search (its `error.code` and `error.message`), or could not be reached."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class PolicyRetriever(BaseRetriever):
    """Clauses of the plans ranked for a query, as LangChain `Document`s with clause metadata."""

    base_url: str = Field("http://127.0.0.1:8000", description="The server, without /v1")
    api_key: str | None = Field(None, description="Sent as `Authorization: Bearer` (RAG_API_KEYS)")
    k: int = Field(5, ge=1, le=50, description="Clauses to return")
    documents: list[str] | None = Field(None, description="Only these doc_ids (GET /v1/documents)")
    mode: str = Field("hybrid", description="hybrid, dense or bm25")
    timeout: float = 60.0

    def _request(self, query: str) -> tuple[str, dict, dict]:
        body: dict[str, Any] = {"query": query, "k": self.k, "mode": self.mode}
        if self.documents:
            body["documents"] = list(self.documents)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return f"{self.base_url.rstrip('/')}/v1/search", body, headers

    def _documents(self, response: httpx.Response) -> list[Document]:
        if response.status_code != 200:
            try:
                err = response.json()["error"]
                raise PolicyAPIError(response.status_code, err.get("code", ""), err.get("message", ""))
            except (ValueError, KeyError, TypeError):
                raise PolicyAPIError(response.status_code, "http_error", response.text[:200]) from None
        base = self.base_url.rstrip("/")
        docs = []
        for hit in response.json()["results"]:
            metadata = {
                "doc_id": hit["doc_id"], "doc_title": hit["doc_title"], "clause_id": hit["clause_id"],
                "chunk_id": hit["chunk_id"], "section": hit["section"],
                "section_path": [p.strip() for p in hit["section"].split(">") if p.strip()],
                "score": hit["score"], "rank": hit["rank"],
                "url": f"{base}/v1/documents/{quote(hit['doc_id'], safe='')}/clauses/"
                       f"{quote(hit['clause_id'], safe='')}",
            }
            docs.append(Document(page_content=hit["text"], metadata=metadata, id=f"{hit['doc_id']}:{hit['chunk_id']}"))
        return docs

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        url, body, headers = self._request(query)
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise PolicyAPIError(0, "unreachable", f"{url}: {exc}") from exc
        return self._documents(response)

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        url, body, headers = self._request(query)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise PolicyAPIError(0, "unreachable", f"{url}: {exc}") from exc
        return self._documents(response)
