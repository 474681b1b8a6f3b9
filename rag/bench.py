"""`rag bench`: cold index build time and warm query latency, measured, not guessed.

Cold build = a fresh process-level model load plus embedding and indexing the
five plans into a temporary index folder.  Warm latency = p50/p95 of `search`
and `ask` over the benchmark questions after one warm-up pass.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from .config import PROJECT_ROOT, Settings

DEFAULT_QUESTIONS = PROJECT_ROOT / "evals" / "bench_questions.txt"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def load_questions(path: Path | None) -> list[str]:
    path = Path(path) if path else DEFAULT_QUESTIONS
    if path.suffix == ".jsonl":
        return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(questions: list[str], n: int) -> dict:
    from .embeddings import SentenceTransformerEmbeddings
    from .service import Assistant

    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        settings.index_dir = Path(tmp) / "index"
        t0 = time.perf_counter()
        embedder = SentenceTransformerEmbeddings(settings.embed_model, settings)
        t_model = time.perf_counter() - t0
        assistant = Assistant(settings, embedder=embedder, rebuild=True)
        t_build = time.perf_counter() - t0
        manifest = assistant.index.manifest

        qs = (questions * (n // len(questions) + 1))[:n]
        for q in qs[:5]:  # warm-up
            assistant.ask(q)
        search_ms, ask_ms, stages = [], [], {}
        for q in qs:
            t = time.perf_counter()
            assistant.search(q, k=10)
            search_ms.append((time.perf_counter() - t) * 1000)
        for q in qs:
            t = time.perf_counter()
            answer = assistant.ask(q)
            ask_ms.append((time.perf_counter() - t) * 1000)
            for stage, ms in answer.timings_ms.items():
                stages.setdefault(stage, []).append(ms)
    return {
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "model": settings.embed_model,
        "chunks": manifest["chunk_count"],
        "clauses": manifest["clause_count"],
        "cold_build_s": {"model_load": round(t_model, 2), "embed_and_index": manifest["build_seconds"],
                         "total_with_model_load": round(t_build, 2)},
        "queries": len(qs),
        "search_ms": {"p50": round(percentile(search_ms, 50), 2), "p95": round(percentile(search_ms, 95), 2),
                      "mean": round(statistics.mean(search_ms), 2)},
        "ask_ms": {"p50": round(percentile(ask_ms, 50), 2), "p95": round(percentile(ask_ms, 95), 2),
                   "mean": round(statistics.mean(ask_ms), 2)},
        "ask_stage_ms_p95": {k: round(percentile(v, 95), 2) for k, v in stages.items()},
    }


def run_bench(args) -> int:
    if getattr(args, "http", False):
        from .bench_http import run_http_bench

        return run_http_bench(args)
    result = measure(load_questions(getattr(args, "questions", None)), max(50, getattr(args, "n", 60)))
    if getattr(args, "json", False):
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    b, s, a = result["cold_build_s"], result["search_ms"], result["ask_ms"]
    print(f"machine: {result['machine']['cpu']} ({result['machine']['cores']} cores)")
    print(f"model: {result['model']}; {result['clauses']} clauses -> {result['chunks']} chunks")
    print(f"cold build: {b['total_with_model_load']} s total (model load {b['model_load']} s, "
          f"embed+index {b['embed_and_index']} s)")
    print(f"search over {result['queries']} queries: p50 {s['p50']} ms, p95 {s['p95']} ms")
    print(f"ask    over {result['queries']} queries: p50 {a['p50']} ms, p95 {a['p95']} ms")
    print(f"ask stages p95: {result['ask_stage_ms_p95']}")
    return 0
