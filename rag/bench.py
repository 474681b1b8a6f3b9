"""`rag bench`: cold index build time and warm query latency, measured, not guessed.

Cold build = a fresh process-level model load plus embedding and indexing the
five plans into a temporary index folder.  Warm latency = p50/p95 of `search`
and `ask` over the benchmark questions after one warm-up pass.

Embedding, per backend (RAG_EMBED_BACKEND: onnx, onnx-int8, torch; `--backends`):
model load time, query-embedding latency (p50/p95 over the benchmark questions,
one at a time, after a warm-up) and build throughput — passages per second on
300-character passages cut from the seeds' clause text (`--passages`, 200), as
an index build embeds them.  The default backend is marked.

A peer in the same run: the common LangChain recipe (RecursiveCharacterTextSplitter
500/50 + LangChain's FAISS + the same model through sentence-transformers on
torch, `rag.baseline`), built and asked the same questions; the ratios of its
figures to ours are printed beside them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
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


def bench_passages(settings: Settings, n: int = 200, chars: int = 300) -> list[str]:
    """`n` passages of `chars` characters, cut from the seeds' clauses in order (wrapping around)."""
    from .corpus import load_corpus

    text = "".join(c.text for c in load_corpus(settings.seeds_dir).clauses)
    return [(text * (1 + n * chars // max(1, len(text))))[i * chars:(i + 1) * chars] for i in range(n)]


def measure_embedding(questions: list[str], backends: list[str], n_passages: int = 200,
                      batch_sizes: list[int] | None = None) -> dict:
    """Per backend: model load, query latency (one query per call), passages/s on 300-character passages;
    with `batch_sizes` (ONNX backends), build throughput at each number of passages per model call
    (rag/onnx_embedder.py batches texts of similar length: padding at most MAX_PADDING)."""
    from dataclasses import replace

    from .embed_backend import make_embedder, resolve_backend

    base = Settings()
    passages = bench_passages(base, n_passages)
    out = {}
    for backend in backends:
        settings = replace(base, embed_backend=backend)
        if resolve_backend(settings) != backend:
            continue  # a non-embedded model runs on torch only
        t0 = time.perf_counter()
        embedder = make_embedder(settings)
        load_s = time.perf_counter() - t0
        for q in questions[:5]:
            embedder.embed_query_vector(q)  # warm-up
        query_ms = []
        cpu = time.process_time()
        for q in questions:
            t = time.perf_counter()
            embedder.embed_query_vector(q)
            query_ms.append((time.perf_counter() - t) * 1000)
        query_cpu_ms = (time.process_time() - cpu) * 1000 / max(1, len(questions))
        embedder.embed_passages(passages[:4])
        t, cpu = time.perf_counter(), time.process_time()
        embedder.embed_passages(passages)
        build_s, build_cpu_s = time.perf_counter() - t, time.process_time() - cpu
        out[backend] = {"model_load_s": round(load_s, 2),
                        "query_ms": {"p50": round(percentile(query_ms, 50), 2),
                                     "p95": round(percentile(query_ms, 95), 2),
                                     "mean": round(statistics.mean(query_ms), 2)},
                        # CPU time too: on a shared machine wall time also measures the neighbours
                        "query_cpu_ms": round(query_cpu_ms, 2),
                        "passages_per_s": round(len(passages) / build_s, 1),
                        "passages_per_cpu_s": round(len(passages) / max(build_cpu_s, 1e-9), 1),
                        "passages": len(passages),
                        "passage_chars": len(passages[0]) if passages else 0}
        if batch_sizes and hasattr(embedder, "batches"):
            sweep = {}
            for size in batch_sizes:
                t, cpu = time.perf_counter(), time.process_time()
                embedder._encode(passages, embedder.passage_prompt, background=True, batch_size=size)
                wall, used = time.perf_counter() - t, time.process_time() - cpu
                sweep[size] = {"passages_per_s": round(len(passages) / wall, 1),
                               "passages_per_cpu_s": round(len(passages) / max(used, 1e-9), 1),
                               "load_average": round(os.getloadavg()[0], 2)}
            out[backend]["by_batch_size"] = sweep
        del embedder
    return out


def measure(questions: list[str], n: int) -> dict:
    from .embed_backend import make_embedder, resolve_backend
    from .service import Assistant

    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        settings.index_dir = Path(tmp) / "index"
        t0 = time.perf_counter()
        embedder = make_embedder(settings)
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
        "embed_backend": resolve_backend(settings),
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


def measure_peer(questions: list[str], n: int) -> dict:
    """The LangChain recipe on the same questions: build time, search and ask latency."""
    from dataclasses import replace

    from .baseline import LangChainBaseline
    from .corpus import load_corpus
    from .embed_backend import make_embedder

    settings = replace(Settings(), embed_backend="torch")  # the recipe's sentence-transformers
    t0 = time.perf_counter()
    embedder = make_embedder(settings)
    t_model = time.perf_counter() - t0
    peer = LangChainBaseline(load_corpus(settings.seeds_dir), embedder, settings.seeds_dir)
    qs = (questions * (n // len(questions) + 1))[:n]
    for q in qs[:5]:
        peer.ask(q)
    search_ms, ask_ms = [], []
    for q in qs:
        t = time.perf_counter()
        peer.search(q, k=10)
        search_ms.append((time.perf_counter() - t) * 1000)
    for q in qs:
        t = time.perf_counter()
        peer.ask(q)
        ask_ms.append((time.perf_counter() - t) * 1000)
    return {"recipe": "RecursiveCharacterTextSplitter(500, 50) + LangChain FAISS + sentence-transformers (torch)",
            "chunks": len(peer.chunks),
            "cold_build_s": {"model_load": round(t_model, 2), "embed_and_index": round(peer.build_seconds, 2),
                             "total_with_model_load": round(t_model + peer.build_seconds, 2)},
            "search_ms": {"p50": round(percentile(search_ms, 50), 2), "p95": round(percentile(search_ms, 95), 2)},
            "ask_ms": {"p50": round(percentile(ask_ms, 50), 2), "p95": round(percentile(ask_ms, 95), 2)}}


def _ratio(peer: float, ours: float) -> str:
    return f"{peer / ours:.1f}x" if ours > 0 else "–"


def run_bench(args) -> int:
    if getattr(args, "http", False):
        from .bench_http import run_http_bench

        return run_http_bench(args)
    from .embed_backend import BACKENDS, resolve_backend

    questions = load_questions(getattr(args, "questions", None))
    result = measure(questions, max(50, getattr(args, "n", 60)))
    wanted = getattr(args, "backends", None)
    backends = [b.strip() for b in wanted.split(",") if b.strip()] if wanted else list(BACKENDS)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        print(f"unknown backends {unknown}: choose from {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    sizes = [int(x) for x in (getattr(args, "batch_sizes", None) or "").split(",") if x.strip()]
    result["embedding"] = measure_embedding(questions, backends, getattr(args, "passages", 200) or 200, sizes)
    result["embedding_default"] = resolve_backend(Settings())
    if not getattr(args, "no_peer", False):
        result["peer_langchain"] = measure_peer(questions, max(50, getattr(args, "n", 60)))
    if getattr(args, "json", False):
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    b, s, a = result["cold_build_s"], result["search_ms"], result["ask_ms"]
    print(f"machine: {result['machine']['cpu']} ({result['machine']['cores']} cores)")
    print(f"model: {result['model']} ({result['embed_backend']}); {result['clauses']} clauses -> "
          f"{result['chunks']} chunks")
    print(f"cold build: {b['total_with_model_load']} s total (model load {b['model_load']} s, "
          f"embed+index {b['embed_and_index']} s)")
    print(f"search over {result['queries']} queries: p50 {s['p50']} ms, p95 {s['p95']} ms")
    print(f"ask    over {result['queries']} queries: p50 {a['p50']} ms, p95 {a['p95']} ms")
    print(f"ask stages p95: {result['ask_stage_ms_p95']}")
    print(f"embedding (default backend: {result['embedding_default']}):")
    for backend, e in result["embedding"].items():
        mark = "*" if backend == result["embedding_default"] else " "
        print(f" {mark}{backend:10s} query p50 {e['query_ms']['p50']:6.1f} ms, p95 {e['query_ms']['p95']:6.1f} ms "
              f"({e['query_cpu_ms']:.1f} ms CPU); build {e['passages_per_s']:5.1f} passages/s "
              f"({e['passages_per_cpu_s']:.1f} per CPU second; {e['passages']} x {e['passage_chars']} chars); "
              f"model load {e['model_load_s']} s")
        for size, b in e.get("by_batch_size", {}).items():
            print(f"   {'':10s} {size:3d} passages per call: {b['passages_per_s']:5.1f} passages/s "
                  f"({b['passages_per_cpu_s']:.1f} per CPU second; load average {b['load_average']})")
    peer = result.get("peer_langchain")
    if peer:
        pb, ps, pa = peer["cold_build_s"], peer["search_ms"], peer["ask_ms"]
        print(f"peer, {peer['recipe']}: {peer['chunks']} chunks")
        print(f"  cold build {pb['total_with_model_load']} s ({_ratio(pb['total_with_model_load'], b['total_with_model_load'])}"
              f" ours); search p50 {ps['p50']} ms, p95 {ps['p95']} ms ({_ratio(ps['p95'], s['p95'])} ours at p95); "
              f"ask p50 {pa['p50']} ms, p95 {pa['p95']} ms ({_ratio(pa['p95'], a['p95'])} ours at p95)")
    print(f"load average during the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    return 0
