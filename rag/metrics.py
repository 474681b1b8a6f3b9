"""Prometheus metrics for the HTTP API: requests by endpoint, latencies by endpoint and stage.

Each app gets its own `CollectorRegistry`, so several apps in one process (the
tests) never clash over metric names.  Requests are labelled by their route
template (`/v1/documents/{doc_id}`), never by raw path, to keep cardinality bounded.
The middleware is plain ASGI, so it times streamed responses to their last byte.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, GCCollector, Histogram,
                               PlatformCollector, ProcessCollector, generate_latest)
from prometheus_client.core import CounterMetricFamily

# Buckets fit an API whose queries take milliseconds and uploads take seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter("rag_http_requests_total", "HTTP requests by endpoint and status",
                                ["method", "endpoint", "status"], registry=self.registry)
        self.latency = Histogram("rag_http_request_duration_seconds",
                                 "HTTP request latency by endpoint (streamed responses: until the last byte)",
                                 ["method", "endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("rag_http_requests_in_flight", "HTTP requests being served",
                               registry=self.registry)
        self.stage = Histogram("rag_stage_duration_seconds",
                               "Time spent in each pipeline stage (rewrite, retrieve, answer, total, upload, delete)",
                               ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.answers = Counter("rag_answers_total", "Answers given, by outcome", ["outcome"],
                               registry=self.registry)
        self.documents = Counter("rag_document_changes_total", "Document uploads and deletes, by result",
                                 ["action", "result"], registry=self.registry)
        self.index_chunks = Gauge("rag_index_chunks", "Chunks in the published index", registry=self.registry)
        self.index_documents = Gauge("rag_index_documents", "Documents in the published index",
                                     registry=self.registry)
        # Which process answered: `rag serve --workers N` runs N, each with its own counters.
        Gauge("rag_worker_pid", "This server process's id (each worker of `rag serve --workers` counts its own)",
              registry=self.registry).set(os.getpid())

    def track_embedder(self, embedder) -> None:
        """Export the query batcher's counters (model calls, queries embedded, cache hits) at scrape time."""
        self.registry.register(_EmbedderCollector(embedder))

    def track_answer_cache(self, service) -> None:
        """Export the API's answer-cache hits at scrape time (rag/api/service.py)."""
        self.registry.register(_AnswerCacheCollector(service))

    def observe_answer(self, answer: dict) -> None:
        for stage, ms in (answer.get("timings_ms") or {}).items():
            self.stage.labels(stage).observe(ms / 1000.0)
        self.answers.labels("refused" if answer.get("refused") else "answered").inc()

    def render(self, assistant=None) -> tuple[bytes, str]:
        if assistant is not None:
            index = assistant.index
            self.index_chunks.set(len(index))
            self.index_documents.set(len(index.doc_ids))
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _EmbedderCollector:
    def __init__(self, embedder):
        self.embedder = embedder

    def collect(self):
        e = self.embedder
        for name, doc, value in (
                ("rag_query_embedding_batches", "Model calls made for query embeddings", e.batches),
                ("rag_query_embeddings", "Queries embedded by the model (cache misses)", e.queries),
                ("rag_query_embedding_cache_hits", "Queries answered from the query-vector cache", e.cache_hits)):
            yield CounterMetricFamily(name, doc, value=value)


class _AnswerCacheCollector:
    def __init__(self, service):
        self.service = service

    def collect(self):
        yield CounterMetricFamily("rag_answer_cache_hits", "Answers served from the answer cache (same question, "
                                  "same index snapshot)", value=self.service.answer_cache_hits)


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        m = self.metrics
        m.in_flight.inc()

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m.in_flight.dec()
            endpoint = _endpoint(scope)
            method = scope.get("method", "")
            m.requests.labels(method, endpoint, str(status["code"])).inc()
            m.latency.labels(method, endpoint).observe(time.perf_counter() - started)


def _endpoint(scope) -> str:
    """The matched route template; requests no route matched share one label."""
    path = getattr(scope.get("route"), "path", None)
    if path is None:
        return "unmatched"
    return path or "/"
