"""`rag bench --http`: a bounded asyncio load test of the HTTP API on loopback.

N clients (default 20) each send one request at a time, back to back (a closed
loop, no think time), for a fixed duration after an unmeasured warm-up; the
questions cycle through a fixed mixed set (five plans, comparisons, English,
questions the plans do not answer).  Without `--url` it starts its own
`rag serve` on a free loopback port and stops it afterwards; `--no-cache`
starts it with the query-vector cache off, so every request runs the model.  Reports
throughput, latency percentiles, the server's own processing time, and every
error (non-200 status, timeout, connection error, malformed body).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from .config import PROJECT_ROOT, Settings

QUESTIONS = [
    "深圳到2025年集成电路产业营收目标是多少？",
    "苏州工业园区的人才目标是什么？",
    "青浦区集成电路产业的发展目标是什么？",
    "厦门湖里区对集成电路企业有哪些支持政策？",
    "“十二五”期间集成电路产业销售收入目标是多少？",
    "深圳计划建设几个专业集成电路产业园？",
    "苏州工业园区到2025年集成电路产业规模目标是多少？",
    "第三代半导体有哪些支持措施？",
    "“十二五”规划对集成电路设计业提出了什么要求？",
    "青浦区如何支持集成电路企业引进人才？",
    "厦门湖里区的发展重点是什么？",
    "深圳对EDA工具研发有什么支持？",
    "苏州工业园区如何推动封装测试产业发展？",
    "十二五规划中关于芯片制造业的主要任务有哪些？",
    "深圳和苏州工业园区的产业规模目标有何不同？",
    "各地对集成电路人才培养有哪些措施？",
    "青浦区有哪些保障措施？",
    "深圳的产业营收目标和苏州工业园区相比如何？",
    "What is Shenzhen's 2025 revenue target for the integrated circuit industry?",
    "What talent policies does Suzhou Industrial Park offer?",
    "十二五期间要培育多少家销售收入超过20亿元的企业？",
    "深圳如何支持企业流片？",
    "苏州工业园区对企业首轮流片有什么补贴？",
    "厦门湖里区的工作目标是什么？",
    "青浦区集成电路产业的空间布局是怎样的？",
    "十二五规划提出了哪些政策措施？",
    "深圳市培育半导体产业集群的重点任务是什么？",
    "苏州工业园区如何支持集成电路设计企业做大做强？",
    "北京市集成电路产业的营收目标是多少？",
    "杭州对芯片企业的补贴标准是什么？",
    "深圳2030年的集成电路产业目标是什么？",
    "集成电路产业基金有哪些安排？",
    "如何加强知识产权保护？",
    "关键装备和材料方面有哪些任务？",
    "厦门湖里区有哪些重点项目？",
    "青浦区如何加强组织领导？",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, extra_env: dict | None = None, log_path: Path | None = None,
                 ui: bool = False) -> subprocess.Popen:
    """`rag serve` on 127.0.0.1:port in a child process (its output to `log_path`, or discarded)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(extra_env or {})}
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning"]
    if not ui:
        cmd.append("--no-ui")
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before becoming healthy")
        try:
            r = httpx.get(f"{url}/healthz", timeout=2.0)
            if r.status_code == 200:
                return r.json()
            last = f"status {r.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise RuntimeError(f"server at {url} not healthy after {timeout:.0f}s ({last})")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _payload(endpoint: str, question: str) -> dict:
    if endpoint == "/v1/search":
        return {"query": question, "k": 10}
    if endpoint == "/v1/chat/completions":
        return {"model": "zhengce-rag", "messages": [{"role": "user", "content": question}]}
    return {"question": question}


def _valid(endpoint: str, body: dict) -> bool:
    if endpoint == "/v1/search":
        return isinstance(body.get("results"), list)
    if endpoint == "/v1/chat/completions":
        return bool(body.get("choices")) and "citations" in body
    return isinstance(body.get("answer"), str) and isinstance(body.get("citations"), list)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation): a reported p99 is a latency that really happened."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


async def run_load(url: str, endpoint: str = "/v1/ask", clients: int = 20, duration: float = 60.0,
                   warmup: float = 5.0, questions: list[str] | None = None, api_key: str | None = None,
                   timeout: float = 30.0, seed: int = 0, stop: asyncio.Event | None = None) -> dict:
    """Closed-loop load: `clients` concurrent requesters for `duration` seconds after `warmup`, or until
    `stop` is set (then the measured window ends there: `duration_s` in the report is what was measured)."""
    questions = questions or QUESTIONS
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    server_ms: list[float] = []
    errors: Counter = Counter()
    error_examples: dict[str, str] = {}
    refused = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    measure_from, stop_at = t0 + warmup, t0 + warmup + duration
    stopped_at: list[float] = []

    def window_closed() -> bool:
        if stop is not None and stop.is_set() and not stopped_at:
            stopped_at.append(loop.time())
        return loop.time() >= stop_at or bool(stopped_at)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal refused
        rng = random.Random(seed * 1000 + i)
        order = questions[:]
        rng.shuffle(order)
        n = 0
        while not window_closed():
            q = order[n % len(order)]
            n += 1
            started = loop.time()
            kind, detail, body = None, "", None
            try:
                r = await http.post(endpoint, json=_payload(endpoint, q))
                if r.status_code != 200:
                    kind, detail = f"status {r.status_code}", r.text[:200]
                else:
                    body = r.json()
                    if not _valid(endpoint, body):
                        kind, detail = "malformed body", r.text[:200]
            except httpx.TimeoutException as exc:
                kind, detail = "timeout", repr(exc)
            except httpx.HTTPError as exc:
                kind, detail = type(exc).__name__, repr(exc)
            except ValueError as exc:
                kind, detail = "invalid JSON", repr(exc)
            ended = loop.time()
            window_closed()
            if started < measure_from or ended > (stopped_at[0] if stopped_at else stop_at):
                continue  # warm-up, or finished after the window closed
            if kind:
                errors[kind] += 1
                error_examples.setdefault(kind, detail)
                continue
            latencies.append((ended - started) * 1000)
            if endpoint == "/v1/ask":
                server_ms.append(float(body.get("timings_ms", {}).get("total", 0.0)))
                refused += bool(body.get("refused"))

    counters: dict[str, dict] = {}

    async def snapshot(http: httpx.AsyncClient) -> None:
        await asyncio.sleep(max(0.0, measure_from - loop.time()))
        counters["start"] = await _embedding_counters(http)

    # Counters are read on a connection of their own, not queued behind the clients' requests.
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=httpx.Timeout(timeout)) as http, \
            httpx.AsyncClient(base_url=url, headers=headers, timeout=httpx.Timeout(timeout)) as side:
        await asyncio.gather(snapshot(side), *(client(i, http) for i in range(clients)))
        counters["end"] = await _embedding_counters(side)
    n_ok, n_err = len(latencies), sum(errors.values())
    if stopped_at:
        duration = max(0.0, min(stop_at, stopped_at[0]) - measure_from)
    report = {
        "url": url, "endpoint": endpoint, "clients": clients, "duration_s": round(duration, 1), "warmup_s": warmup,
        "distinct_questions": len(set(questions)),
        "requests": n_ok + n_err, "ok": n_ok, "errors": n_err, "error_kinds": dict(errors),
        "error_examples": error_examples,
        "throughput_rps": round(n_ok / duration, 2) if duration else 0.0,
        "latency_ms": {name: round(percentile(latencies, p), 1) for name, p in
                       (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("max", 100))},
    }
    report["latency_ms"]["mean"] = round(sum(latencies) / n_ok, 1) if n_ok else float("nan")
    start, end = counters.get("start") or {}, counters.get("end") or {}
    if start and end:
        d = {k: end[k] - start[k] for k in end}
        asked = d["model"] + d["cache_hits"]
        report["query_embedding"] = {
            "model_calls": int(d["batches"]), "embedded_by_model": int(d["model"]),
            "cache_hits": int(d["cache_hits"]), "cache_hit_share": round(d["cache_hits"] / asked, 3) if asked else 0.0,
            "mean_batch": round(d["model"] / d["batches"], 1) if d["batches"] else 0.0}
    if server_ms:
        report["server_processing_ms"] = {"p50": round(percentile(server_ms, 50), 1),
                                          "p95": round(percentile(server_ms, 95), 1)}
        report["refused_share"] = round(refused / len(server_ms), 3)
    return report


async def _embedding_counters(http: httpx.AsyncClient) -> dict | None:
    """The server's query-embedding counters from /metrics (None if it does not export them)."""
    try:
        text = (await http.get("/metrics")).text
    except httpx.HTTPError:
        return None
    names = {"rag_query_embedding_batches_total": "batches", "rag_query_embeddings_total": "model",
             "rag_query_embedding_cache_hits_total": "cache_hits"}
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[names[name]] = float(value)
    return out if len(out) == 3 else None


def _cn_numeral(n: int) -> str:
    """1 -> 一, 15 -> 十五, 105 -> 一百零五, 1234 -> 一千二百三十四 (rag.clauses.cn_to_int reads them back)."""
    digits, out, zero = "零一二三四五六七八九", "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十")):
        d, n = divmod(n, value)
        if d:
            out += ("零" if zero and out else "") + ("" if value == 10 and d == 1 and not out else digits[d]) + unit
            zero = False
        elif out:
            zero = True
    return out + (("零" if zero and out else "") + digits[n] if n else "")


def large_document(min_chunks: int = 1000) -> tuple[str, int]:
    """(text, chunk count): a regulation-shaped document of at least `min_chunks` chunks, for load tests.

    Every clause of the seeds and of evals/documents, in turn, as 第N条 under a 第N章 per source document
    (numbered through, so every heading is distinct), repeated until it is long enough: real policy text
    with real sentence lengths.
    """
    from .clauses import chunk_clause, parse_document

    sources = sorted((PROJECT_ROOT / "seeds").glob("*.txt")) + sorted((PROJECT_ROOT / "evals" / "documents").glob("*.txt"))
    parsed = [(s.read_text(encoding="utf-8").strip().splitlines()[0].strip(),
               parse_document("src", s.read_text(encoding="utf-8")).clauses) for s in sources]
    lines, chapter, article, chunks, round_ = ["政策文件汇编（压力测试用）"], 0, 0, 0, 0
    while chunks < min_chunks:
        round_ += 1
        for title, clauses in parsed:
            chapter += 1
            lines.append(f"第{_cn_numeral(chapter)}章 {title}（第{round_}辑）")
            for clause in clauses:
                article += 1
                text = " ".join(clause.text.split())
                lines.append(f"第{_cn_numeral(article)}条 {text}" + ("" if text.endswith(("。", "；", "！", "？")) else "。"))
        text = "\n".join(lines)
        chunks = sum(len(chunk_clause(c)) for c in parse_document("big", text).clauses)
    return text, chunks


async def run_during_upload(url: str, content: bytes, filename: str, title: str, clients: int, duration: float,
                            api_key: str | None = None, questions: list[str] | None = None,
                            timeout: float = 30.0, job_timeout: float = 3600.0, wait_for_job: bool = True) -> dict:
    """Upload `content` as a job (wait=false), then load the server while the job runs: the window ends
    after `duration` seconds or when the job ends, whichever is first.  Returns {"load", "upload"}."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=httpx.Timeout(120.0)) as side:
        t0 = loop.time()
        r = await side.post("/v1/documents", params={"wait": "false"}, data={"title": title},
                            files={"file": (filename, content, "text/plain")})
        if r.status_code != 202:
            raise RuntimeError(f"upload not accepted as a job: {r.status_code} {r.text[:300]}")
        job = r.json()["job"]
        accepted_s = loop.time() - t0
        stop = asyncio.Event()
        end: dict = {}

        async def watch() -> None:
            while True:
                j = (await side.get(f"/v1/jobs/{job['id']}")).json()["job"]
                end["job"] = j
                if j["status"] in ("done", "failed"):
                    end["at"] = loop.time()
                    stop.set()
                    return
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch())
        load = await run_load(url, "/v1/ask", clients, duration, warmup=1.0, questions=questions, api_key=api_key,
                              timeout=timeout, stop=stop)
        load_ended = loop.time()
        if wait_for_job:
            await asyncio.wait_for(watcher, timeout=job_timeout)
        else:
            watcher.cancel()
        j = end.get("job", job)
        upload = {"job_id": job["id"], "status": j["status"], "chunks": job["progress"]["chunks_total"],
                  "sentences": job["progress"]["sentences_total"], "accepted_s": round(accepted_s, 2),
                  "percent_at_window_end": j["progress"]["percent"],
                  "ran_through_window": "at" not in end or end["at"] >= load_ended - 0.6,
                  "total_s": round(end["at"] - t0, 1) if "at" in end else None, "error": j.get("error")}
    return {"load": load, "upload": upload}


def format_report(r: dict) -> str:
    lat = r["latency_ms"]
    lines = [
        f"HTTP load test: POST {r['endpoint']} at {r['url']}",
        f"  {r['clients']} concurrent clients, closed loop, {r['duration_s']:g} s measured after "
        f"{r['warmup_s']:g} s warm-up, {r['distinct_questions']} distinct questions",
        f"  requests {r['requests']}  ok {r['ok']}  errors {r['errors']}"
        + (f"  {r['error_kinds']}" if r["errors"] else ""),
        f"  throughput {r['throughput_rps']:.1f} req/s",
        f"  latency ms  p50 {lat['p50']}  p90 {lat['p90']}  p95 {lat['p95']}  p99 {lat['p99']}  "
        f"max {lat['max']}  mean {lat['mean']}",
    ]
    if "server_processing_ms" in r:
        s = r["server_processing_ms"]
        lines.append(f"  server processing (timings_ms.total) p50 {s['p50']} ms  p95 {s['p95']} ms; "
                     f"refused {r['refused_share']:.0%}")
    if "query_embedding" in r:
        q = r["query_embedding"]
        lines.append(f"  query embeddings: {q['embedded_by_model']} by the model in {q['model_calls']} calls "
                     f"(mean batch {q['mean_batch']}), {q['cache_hits']} from the cache "
                     f"({q['cache_hit_share']:.0%} of queries)")
    for kind, example in r.get("error_examples", {}).items():
        lines.append(f"  e.g. {kind}: {example}")
    return "\n".join(lines)


def copy_index(index_dir: Path, dest: Path) -> Path:
    """A private copy of `index_dir` (versions, CURRENT, document store; not crash debris) at `dest`."""
    index_dir = Path(index_dir)
    if index_dir.is_dir():
        shutil.copytree(index_dir, dest, ignore=shutil.ignore_patterns(".tmp-*", ".trash-*"), symlinks=True)
    else:  # nothing built yet: the server builds into the copy, never into the real folder
        dest.mkdir(parents=True)
    return dest


def run_http_bench(args) -> int:
    questions = None
    if getattr(args, "questions", None):
        questions = [q.strip() for q in Path(args.questions).read_text(encoding="utf-8").splitlines() if q.strip()]
    proc = None
    scratch = None
    url = args.url.rstrip("/") if args.url else None
    try:
        if url is None:
            # The server under load gets a copy of the index (document store included): a load test must
            # never write to, repair or rebuild the project's real index/.
            scratch = tempfile.mkdtemp(prefix="rag-bench-")
            index_copy = copy_index(Settings().index_dir, Path(scratch) / "index")
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            print(f"starting `rag serve` on {url} (on a copy of the index in {index_copy}) ...", file=sys.stderr,
                  flush=True)
            env = {"RAG_INDEX_DIR": str(index_copy)}
            if args.no_cache:
                env["RAG_QUERY_CACHE"] = "0"
            proc = start_server(port, env)
        health = wait_healthy(url, proc)
        print(f"server healthy: {health.get('chunks')} chunks, model {health.get('model')}", file=sys.stderr,
              flush=True)
        report = asyncio.run(run_load(url, args.endpoint, args.clients, args.duration, args.warmup, questions,
                                      args.api_key, args.timeout))
        during = getattr(args, "during_upload", None)
        if during:
            if during == "large":
                text, n = large_document()
                content, filename = text.encode("utf-8"), f"large-{n}-chunks.txt"
            else:
                content, filename = Path(during).read_bytes(), Path(during).name
            print(f"idle: p50 {report['latency_ms']['p50']} ms, p95 {report['latency_ms']['p95']} ms; uploading "
                  f"{filename} ({len(content)} bytes) as a job and loading the server while it runs ...",
                  file=sys.stderr, flush=True)
            busy = asyncio.run(run_during_upload(url, content, filename, f"压力测试 {time.strftime('%H%M%S')}",
                                                 args.clients, args.duration, args.api_key, questions, args.timeout))
            report = {"idle": report, "during_upload": busy["load"], "upload": busy["upload"]}
    finally:
        if proc is not None:
            stop_server(proc)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if "idle" in report:
        if args.json:
            print(json.dumps(report, ensure_ascii=False, indent=2))
        else:
            u, i, b = report["upload"], report["idle"]["latency_ms"], report["during_upload"]["latency_ms"]
            print("idle\n" + format_report(report["idle"]) + "\n\nduring the upload\n"
                  + format_report(report["during_upload"]))
            print(f"\nupload job {u['job_id']}: {u['chunks']} chunks + {u['sentences']} sentences, accepted in "
                  f"{u['accepted_s']} s, {u['status']} after {u['total_s']} s"
                  + ("" if u["ran_through_window"] else " (it ended before the load window did: the window is "
                     "shorter than --duration)"))
            print(f"p95 during the upload / idle: {b['p95'] / i['p95']:.2f}x  (p50 {b['p50'] / i['p50']:.2f}x)")
        ok = all(r["errors"] == 0 and r["ok"] > 0 for r in (report["idle"], report["during_upload"]))
        return 0 if ok and report["upload"]["status"] == "done" else 1
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_report(report))
    return 0 if report["errors"] == 0 and report["ok"] > 0 else 1
