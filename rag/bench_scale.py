"""`rag bench --scale N[,N...]`: what retrieval costs as the index grows, on synthetic corpora.

A corpus of N chunks is made from the real index (RAG_INDEX_DIR; built in a temporary folder if
there is none) by replicating its chunks: copy c of a chunk belongs to document `<doc_id>~c`
(so a document stays the size of a real one), its vector is the original plus gaussian noise
(NOISE per dimension, renormalised: cosine ~0.98 to the original) and its BM25 tokens are the
original's with about one in ten dropped and two swapped.  Nothing synthetic is embedded: the
only model calls are the benchmark questions' query vectors (evals/bench_questions.txt), once.

Per N it reports:
- build: the in-memory `KnowledgeIndex` over the synthetic lists (BM25 matrix, idf, sentence
  rows, document rows; what loading an index of that size costs once its files are read), and,
  above `HNSW_THRESHOLD`, the HNSW graph's build separately;
- memory: resident set growth for the index and for the graph (psutil or /proc/self/statm);
- search: p50/p95 of the index side of a hybrid search (`rag.retrieve.rank`: dense candidates,
  BM25 scores, top-k, fusion; the query vector and tokens given), over the whole index and with
  a one-document filter (`rows_for` included);
- for HNSW sizes, recall@10 of the HNSW dense candidates against exact inner product, and the
  exact dense top-10's latency beside the graph's;
- persistence (`measure_persistence`): the full save, then one 40-chunk upload's new in-memory
  index and its save (seconds and bytes written: its segment and a manifest, rag/segments.py),
  and the load of the resulting two segments.

With `--milvus`, the same index is also put in a Milvus Lite collection (`measure_milvus`): fill
time, disk, memory, the same searches through Milvus, and one 40-chunk upload.

Default sizes are 10,000 and 100,000; 1,000,000 runs only when asked (`--scale 1000000`: about
8 GB of memory and a long HNSW build on two cores).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from .bench import _cpu_model, load_questions, percentile

DEFAULT_SIZES = (10_000, 100_000)
NOISE = 0.01  # per dimension; 384 dimensions -> a noise vector of norm ~0.2
DROP = 0.1  # share of a copy's tokens dropped
SWAPS = 2  # token pairs swapped in a copy (BM25 ignores order; the lists still differ)
SEED = 14


def parse_sizes(text: str | None) -> list[int]:
    if not text:
        return list(DEFAULT_SIZES)
    sizes = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        if not part:
            continue
        mult = 1
        if part[-1] in "km":
            mult, part = (1_000 if part[-1] == "k" else 1_000_000), part[:-1]
        sizes.append(int(float(part) * mult))
    if not sizes or min(sizes) < 1:
        raise ValueError("--scale wants chunk counts, e.g. 10000,100000")
    return sizes


def rss_bytes() -> int:
    """The process's resident set now (not its peak)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak: an upper bound


def real_index(settings):
    """The index the product would answer from; one built in a temporary folder when there is none."""
    from .index import IndexError_, KnowledgeIndex

    try:
        return KnowledgeIndex.load(settings.index_dir), str(settings.index_dir)
    except IndexError_ as exc:
        print(f"no usable index at {settings.index_dir} ({exc}); building one in a temporary folder",
              file=sys.stderr)
    from .service import Assistant

    tmp = tempfile.mkdtemp(prefix="rag-bench-scale-")
    return Assistant(replace(settings, index_dir=Path(tmp) / "index"), rebuild=True).index, tmp


def synthetic_lists(base, n: int, rng: np.random.Generator):
    """Chunks, vectors and token lists of an n-chunk corpus replicated from `base` (see module doc)."""
    b = len(base)
    src = np.arange(n) % b
    copy = np.arange(n) // b
    chunks = [base.chunks[s] if c == 0 else replace(base.chunks[s], doc_id=f"{base.chunks[s].doc_id}~{c}")
              for s, c in zip(src.tolist(), copy.tolist())]
    vectors = np.empty((n, base.vectors.shape[1]), dtype=np.float32)
    for start in range(0, n, 65536):
        s, original = src[start:start + 65536], copy[start:start + 65536] == 0
        block = base.vectors[s] + rng.normal(scale=NOISE, size=(len(s), base.vectors.shape[1])).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        block[original] = base.vectors[s[original]]  # copy 0 is the real chunk, unchanged
        vectors[start:start + len(s)] = block
    token_lists = []
    for s, c in zip(src.tolist(), copy.tolist()):
        toks = base.bm25_tokens[s]
        if c == 0 or len(toks) < 4:
            token_lists.append(list(toks))
            continue
        kept = [t for t, r in zip(toks, rng.random(len(toks)).tolist()) if r >= DROP] or list(toks[:1])
        for _ in range(SWAPS):
            x, y = rng.integers(len(kept), size=2)
            kept[x], kept[y] = kept[y], kept[x]
        token_lists.append(kept)
    return chunks, vectors, token_lists


def _ms(values: list[float]) -> dict:
    return {"p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2),
            "mean": round(statistics.mean(values), 2)}


def _timed_searches(index, queries, rounds: int, pick, docs) -> dict:
    """Hybrid search latency over everything and with a one-document filter (document `pick[i]` for
    the i-th query), after five warm-up queries: the same loop for the embedded store and Milvus."""
    from .retrieve import rank

    for q, toks in queries[:5]:
        rank(index, q, toks)
    whole, filtered = [], []
    for r in range(rounds):
        for i, (q, toks) in enumerate(queries):
            t = time.perf_counter()
            rank(index, q, toks)
            whole.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            rank(index, q, toks, index.rows_for([docs[pick[r * len(queries) + i]]]))
            filtered.append((time.perf_counter() - t) * 1000)
    return {"search_ms": _ms(whole), "filtered_search_ms": _ms(filtered)}


def measure_size(base_dir: str, n: int, queries: list[tuple[np.ndarray, list[str]]], rounds: int,
                 milvus: bool = False) -> dict:
    """One size, in a fresh process (`run_scale_bench` spawns it): its memory growth is its own,
    not freed memory of the embedding model or of a smaller size reused."""
    from .index import KnowledgeIndex

    base = KnowledgeIndex.load(Path(base_dir))
    rng = np.random.default_rng(SEED + n)
    gc.collect()
    rss0 = rss_bytes()
    t = time.perf_counter()
    chunks, vectors, token_lists = synthetic_lists(base, n, rng)
    synth_s = time.perf_counter() - t
    t = time.perf_counter()
    index = KnowledgeIndex(chunks, vectors, token_lists, {"format_version": base.manifest.get("format_version")})
    build_s = time.perf_counter() - t
    del chunks, vectors, token_lists
    gc.collect()
    rss_index = rss_bytes() - rss0
    bm25 = index.bm25.model.scores
    out = {"chunks": n, "documents": len(index.doc_rows), "synthesis_s": round(synth_s, 2),
           "build_s": round(build_s, 2), "rss_mb": round(rss_index / 2**20),
           "arrays_mb": {"vectors": round(index.vectors.nbytes / 2**20),
                         "sentence_vectors": round(index.sentence_vectors.nbytes / 2**20),
                         "bm25_matrix": round(sum(bm25[k].nbytes for k in ("data", "indices", "indptr")) / 2**20)},
           "dense": "hnsw" if index.uses_hnsw else "exact"}
    if index.uses_hnsw:
        rss1 = rss_bytes()
        t = time.perf_counter()
        index.hnsw  # noqa: B018 - built on first use; timed here, not in the first query
        out["hnsw_build_s"] = round(time.perf_counter() - t, 2)
        out["hnsw_rss_mb"] = round((rss_bytes() - rss1) / 2**20)

    docs = list(index.doc_rows)
    pick = np.random.default_rng(SEED).integers(len(docs), size=len(queries) * rounds)
    out.update(_timed_searches(index, queries, rounds, pick, docs))
    out["filtered_rows_mean"] = round(float(np.mean([len(index.doc_rows[docs[p]]) for p in pick])), 1)
    if index.uses_hnsw:
        import faiss

        from .index import HNSW_EF_SEARCH

        exact, exact_ms = [], []
        for q, _ in queries:
            t = time.perf_counter()
            exact.append(index.dense_top(q, 10, exact=True)[0].tolist())
            exact_ms.append((time.perf_counter() - t) * 1000)
        b = len(base)
        sweep = {}
        for ef in sorted({128, 256, HNSW_EF_SEARCH, 1024}):
            same, same_chunk, ms = [], [], []
            for (q, _), want in zip(queries, exact):
                t = time.perf_counter()
                _, ids = index.hnsw.search(q[None, :], 10, params=faiss.SearchParametersHNSW(efSearch=ef))
                ms.append((time.perf_counter() - t) * 1000)
                got = ids[0][ids[0] >= 0].tolist()
                same.append(len(set(want) & set(got)) / len(want))
                # a copy of the same real chunk is as good an answer: recall of the real chunks
                same_chunk.append(len({r % b for r in want} & {r % b for r in got}) / len({r % b for r in want}))
            sweep[ef] = {"recall_at_10": round(float(np.mean(same)), 4),
                         "source_recall_at_10": round(float(np.mean(same_chunk)), 4), "ms": _ms(ms)}
        out["hnsw_recall_at_10"] = sweep[HNSW_EF_SEARCH]["recall_at_10"]
        out["hnsw_source_recall_at_10"] = sweep[HNSW_EF_SEARCH]["source_recall_at_10"]
        out["hnsw_ef_sweep"] = sweep
        out["dense_top10_ms"] = {"hnsw": sweep[HNSW_EF_SEARCH]["ms"], "exact": _ms(exact_ms)}
    out["persistence"] = measure_persistence(index)
    if milvus:
        out["milvus_lite"] = measure_milvus(index, queries, rounds, pick, docs)
    del index
    gc.collect()
    return out


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


UPLOAD_CHUNKS = 40  # the "one upload of a 40-chunk plan"


def upload_of(index, doc_id: str = "bench-upload"):
    """A 40-chunk upload made of the index's first rows under a new document id (nothing embedded)."""
    from .index import NewDocument

    rows = np.arange(UPLOAD_CHUNKS) % len(index)
    chunks = [replace(index.chunks[r], doc_id=doc_id) for r in rows]
    entry = {"doc_id": doc_id, "title": doc_id}
    return NewDocument(entry, "某区 " * 2000, chunks, index.vectors[rows], [index.bm25_tokens[r] for r in rows],
                       UPLOAD_CHUNKS, index.sentence_vectors[[index.sentence_start[r] + j for r in rows
                                                              for j in range(index.sentence_start[r + 1]
                                                                             - index.sentence_start[r])]])


def measure_persistence(index) -> dict:
    """Incremental persistence (rag/segments.py) at this size, in a temporary folder: the full save
    (a first build or a compaction; what every upload cost before segments), then one 40-chunk upload —
    the new in-memory index (`with_documents`: vectors appended, BM25 matrix rebuilt) and its save
    (its segment and a manifest: seconds, bytes written) — then the load of the two segments."""
    from .index import KnowledgeIndex

    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-save-"))
    try:
        t = time.perf_counter()
        index.save(tmp)
        out = {"full_save_s": round(time.perf_counter() - t, 2), "full_save_bytes": index.last_save["bytes_written"]}
        t = time.perf_counter()
        bigger = index.with_documents([upload_of(index)])
        out["upload_in_memory_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        bigger.save(tmp)
        out["upload_save_s"] = round(time.perf_counter() - t, 3)
        out["upload_save_bytes"] = bigger.last_save["bytes_written"]
        out["upload_save_kind"] = bigger.last_save["kind"]
        del bigger
        gc.collect()
        t = time.perf_counter()
        loaded = KnowledgeIndex.load(tmp)
        out["load_s"] = round(time.perf_counter() - t, 2)
        out["load_segments"] = len(loaded.segments)
        return out
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def measure_milvus(index, queries, rounds: int, pick, docs) -> dict:
    """The same index in a Milvus Lite collection (FLAT dense index, BM25 function over our tokens):
    the time to fill it (`MilvusStore.sync`), its disk, the index side of a hybrid search through it
    (whole and one-document filter, the filter a Milvus expression), and one upload of a 40-chunk
    document (the sync of an index with one more document: fingerprints, diff, insert)."""
    from .milvus_store import MilvusConfig, MilvusIndex, MilvusStore

    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-milvus-"))
    try:
        store = MilvusStore(MilvusConfig(str(tmp / "bench.db"), "bench"), tmp)
        rss0 = rss_bytes()
        t = time.perf_counter()
        store.sync(index)
        out = {"fill_s": round(time.perf_counter() - t, 2), "rows": store.count()}
        out["rss_mb"] = round((rss_bytes() - rss0) / 2**20)
        out["disk_mb"] = round(_du(tmp / "bench.db") / 2**20, 1)
        mindex = MilvusIndex.of(index, store)
        out.update(_timed_searches(mindex, queries, rounds, pick, docs))
        bigger = index.with_documents([upload_of(index)])
        t = time.perf_counter()
        store.sync(bigger)
        out["upload_sync_s"] = round(time.perf_counter() - t, 2)
        store.close()
        return out
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def run_scale_bench(args) -> int:
    from .config import Settings
    from .embed_backend import make_embedder
    from .index import EXACT_FILTER_ROWS, HNSW_EF_SEARCH, HNSW_M, HNSW_THRESHOLD
    from .keywords import tokens

    try:
        sizes = parse_sizes(args.scale)
    except ValueError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    settings = Settings()
    base, source = real_index(settings)
    base_dir = str(settings.index_dir) if source == str(settings.index_dir) else str(Path(source) / "index")
    questions = load_questions(getattr(args, "questions", None))
    embedder = make_embedder(settings)
    queries = [(np.asarray(embedder.embed_query_vector(q), dtype=np.float32), tokens(q)) for q in questions]
    del embedder
    gc.collect()
    rounds = max(1, -(-max(50, getattr(args, "n", 60) or 60) // len(queries)))
    result = {"machine": {"cpu": _cpu_model(), "cores": os.cpu_count()},
              "base_index": {"source": source, "chunks": len(base), "documents": len(base.doc_rows)},
              "queries": len(queries) * rounds, "noise_per_dim": NOISE, "token_drop": DROP,
              "hnsw": {"threshold": HNSW_THRESHOLD, "M": HNSW_M, "efSearch": HNSW_EF_SEARCH,
                       "exact_filter_rows": EXACT_FILTER_ROWS},
              "sizes": []}
    ctx = multiprocessing.get_context("spawn")
    for n in sizes:
        if not args.json:
            print(f"… {n:,} chunks", file=sys.stderr, flush=True)
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            result["sizes"].append(pool.submit(measure_size, base_dir, n, queries, rounds,
                                                    bool(getattr(args, "milvus", False))).result())
    result["load_average"] = [round(x, 1) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    print(format_table(result))
    return 0


def format_table(result: dict) -> str:
    b, h = result["base_index"], result["hnsw"]
    lines = [f"machine: {result['machine']['cpu']} ({result['machine']['cores']} cores); "
             f"synthetic corpora from {b['chunks']} real chunks in {b['documents']} documents; "
             f"{result['queries']} queries per column (index side: query vector and tokens given)",
             f"dense: exact inner product up to {h['threshold']:,} chunks, HNSW above (M {h['M']}, efSearch "
             f"{h['efSearch']}; a filter of at most {h['exact_filter_rows']:,} rows is scored exactly)",
             "",
             "| chunks | build s | HNSW build s | index MB (vectors + sentences + BM25 matrix) | HNSW MB "
             "| hybrid p50 / p95 ms | one-document filter p50 / p95 ms | dense | recall@10 vs exact (real chunks) "
             "| dense top-10 p50 HNSW / exact ms |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for s in result["sizes"]:
        d, a = s.get("dense_top10_ms"), s["arrays_mb"]
        recall = f"{s['hnsw_recall_at_10']} ({s['hnsw_source_recall_at_10']})" if "hnsw_recall_at_10" in s else "–"
        lines.append(
            f"| {s['chunks']:,} | {s['build_s']} | {s.get('hnsw_build_s', '–')} | {s['rss_mb']:,} "
            f"({a['vectors']} + {a['sentence_vectors']} + {a['bm25_matrix']}) "
            f"| {s.get('hnsw_rss_mb', '–')} | {s['search_ms']['p50']} / {s['search_ms']['p95']} "
            f"| {s['filtered_search_ms']['p50']} / {s['filtered_search_ms']['p95']} | {s['dense']} "
            f"| {recall} | {(str(d['hnsw']['p50']) + ' / ' + str(d['exact']['p50'])) if d else '–'} |")
    for s in result["sizes"]:
        if "hnsw_ef_sweep" in s:
            lines.append(f"HNSW at {s['chunks']:,} chunks, efSearch: recall@10 (real chunks), p50 ms — " + "; ".join(
                f"{ef}: {v['recall_at_10']} ({v['source_recall_at_10']}), {v['ms']['p50']}"
                for ef, v in s["hnsw_ef_sweep"].items()))
    lines += ["", "Persistence (rag/segments.py; in a temporary folder): the full save every upload "
              "made before segments, then one 40-chunk upload — the new in-memory index (vectors appended, BM25 "
              "matrix rebuilt) and the save of its segment and manifest — and the load of the two segments:",
              "", "| chunks | full save s | full save MB | upload: in-memory index s | upload: save s "
              "| upload: bytes written | load s |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in result["sizes"]:
        p = s["persistence"]
        lines.append(f"| {s['chunks']:,} | {p['full_save_s']} | {p['full_save_bytes'] / 2**20:.1f} "
                     f"| {p['upload_in_memory_s']} | {p['upload_save_s']} | {p['upload_save_bytes']:,} | {p['load_s']} |")
    milvus = [s for s in result["sizes"] if "milvus_lite" in s]
    if milvus:
        lines += ["", "Milvus Lite (rag/milvus_store.py; FLAT dense index, BM25 function over our tokens), same queries:",
                  "", "| chunks | fill s | disk MB | RSS growth MB | hybrid p50 / p95 ms "
                  "| one-document filter p50 / p95 ms | one 40-chunk upload: sync s |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for s in milvus:
            m = s["milvus_lite"]
            lines.append(f"| {s['chunks']:,} | {m['fill_s']} | {m['disk_mb']} | {m['rss_mb']} "
                         f"| {m['search_ms']['p50']} / {m['search_ms']['p95']} "
                         f"| {m['filtered_search_ms']['p50']} / {m['filtered_search_ms']['p95']} | {m['upload_sync_s']} |")
    lines.append("")
    lines.append(f"load average at the end: {' '.join(str(x) for x in result['load_average'])}")
    return "\n".join(lines)
