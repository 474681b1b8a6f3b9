"""`rag bench --http`: a bounded asyncio load test of the HTTP API on loopback.

N clients (default 20) each send one request at a time, back to back (a closed
loop, no think time), for a fixed duration after an unmeasured warm-up.  Without
`--url` it starts its own `rag serve` (`--workers`, default 2) on a free
loopback port, on a copy of the index, and stops it afterwards — twice by
default: once with the caches on and once with them off (RAG_QUERY_CACHE=0 and
RAG_ANSWER_CACHE=0: every request runs the model and the whole answer step);
`--cache on|off` runs one.

The questions are varied, not a few dozen repeated (`question_pool`): every
question of the eval sets and the bench lists, each also in a few rewordings,
~5,000 distinct texts, drawn by popularity (Zipf, exponent 1, the same ranking
for every client): some questions are asked often, most rarely, so the cache-on
run has the hit rate of a real question log rather than 100%, and the cache-off
run embeds every request's question.  Reports throughput, latency percentiles,
the server's own processing time, the query-embedding counters of every worker
(model calls, cache hits), CPU time per request of the server (all its
processes) and of the load generator, the load average before and after, and
every error (non-200 status, timeout, connection error, malformed body).
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


EVAL_QUESTION_FILES = ("gold.jsonl", "dev_fresh.jsonl", "test_fresh.jsonl", "uploaded_gold.jsonl")
# Rewordings: the same question as people type it, a different text each (the cache keys on the exact text).
ZH_VARIANTS = ("请问{q}", "{bare}", "我想了解一下，{q}", "{bare}呢？", "麻烦查一下：{q}")
EN_VARIANTS = ("Please tell me: {q}", "{bare}", "I would like to know: {q}", "{bare}, please?", "Quick question: {q}")


def question_pool() -> list[str]:
    """Distinct questions for load tests: every question of evals/*.jsonl, evals/bench_questions.txt and
    QUESTIONS, each also in the rewordings above (~5,000 texts), in a fixed order."""
    base: list[str] = []
    for name in EVAL_QUESTION_FILES:
        path = PROJECT_ROOT / "evals" / name
        if path.exists():
            base += [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip()]
    bench = PROJECT_ROOT / "evals" / "bench_questions.txt"
    if bench.exists():
        base += [line.strip() for line in bench.read_text(encoding="utf-8").splitlines() if line.strip()]
    base += QUESTIONS
    pool: dict[str, None] = {}
    for q in base:
        q = q.strip()
        bare = q.rstrip("？?。.！! ")
        english = q.isascii()
        for template in ("{q}",) + (EN_VARIANTS if english else ZH_VARIANTS):
            pool.setdefault(template.format(q=q, bare=bare), None)
    return list(pool)


def popularity_weights(n: int, exponent: float = 1.0) -> list[float]:
    """Cumulative Zipf weights: the question at rank r is asked in proportion to 1/r**exponent."""
    total, out = 0.0, []
    for r in range(1, n + 1):
        total += r ** -exponent
        out.append(total)
    return out


def _tree_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by process `pid` and its descendants (Linux /proc)."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    raw = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = raw[raw.rindex(")") + 2:].split()
                stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    except (OSError, ValueError):
        return None
    if pid not in stats:
        return None
    tree, total, frontier = {pid}, 0.0, [pid]
    while frontier:
        parent = frontier.pop()
        total += stats[parent][1]
        for child, (ppid, _) in stats.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return total


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, extra_env: dict | None = None, log_path: Path | None = None,
                 ui: bool = False, workers: int = 1) -> subprocess.Popen:
    """`rag serve` on 127.0.0.1:port in a child process (its output to `log_path`, or discarded);
    `workers` > 1: `rag serve --workers`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(extra_env or {})}
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning"]
    if not ui:
        cmd.append("--no-ui")
    if workers > 1:
        cmd += ["--workers", str(workers)]
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
                   timeout: float = 30.0, seed: int = 0, stop: asyncio.Event | None = None,
                   popularity: float | None = None, workers: int = 1, server_pid: int | None = None) -> dict:
    """Closed-loop load: `clients` concurrent requesters for `duration` seconds after `warmup`, or until
    `stop` is set (then the measured window ends there: `duration_s` in the report is what was measured).

    Each client cycles through `questions` in its own shuffled order, or with `popularity` (a Zipf
    exponent) draws each question by its rank in one shuffled ranking shared by every client.
    `workers`: server processes behind `url`, whose counters are summed; `server_pid`: the server's
    process, whose CPU time (with its children's) is reported per request."""
    questions = questions or QUESTIONS
    ranking = questions[:]
    random.Random(seed).shuffle(ranking)
    cum = popularity_weights(len(ranking), popularity) if popularity else None
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
            q = rng.choices(ranking, cum_weights=cum)[0] if cum else order[n % len(order)]
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

    cpu: dict[str, tuple] = {}

    def cpu_now() -> tuple:
        return (_tree_cpu_s(server_pid) if server_pid else None, time.process_time(), os.getloadavg())

    async def snapshot() -> None:
        await asyncio.sleep(max(0.0, measure_from - loop.time()))
        cpu["start"] = cpu_now()
        counters["start"] = await worker_counters(url, headers, workers)

    # Counters are read on connections of their own, not queued behind the clients' requests.
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=httpx.Timeout(timeout)) as http:
        await asyncio.gather(snapshot(), *(client(i, http) for i in range(clients)))
    cpu["end"] = cpu_now()
    counters["end"] = await worker_counters(url, headers, workers)
    n_ok, n_err = len(latencies), sum(errors.values())
    if stopped_at:
        duration = max(0.0, min(stop_at, stopped_at[0]) - measure_from)
    report = {
        "url": url, "endpoint": endpoint, "clients": clients, "duration_s": round(duration, 1), "warmup_s": warmup,
        "distinct_questions": len(set(questions)), "draw": f"zipf {popularity:g}" if popularity else "cycle",
        "workers": workers,
        "requests": n_ok + n_err, "ok": n_ok, "errors": n_err, "error_kinds": dict(errors),
        "error_examples": error_examples,
        "throughput_rps": round(n_ok / duration, 2) if duration else 0.0,
        "latency_ms": {name: round(percentile(latencies, p), 1) for name, p in
                       (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("max", 100))},
    }
    report["latency_ms"]["mean"] = round(sum(latencies) / n_ok, 1) if n_ok else float("nan")
    if "start" in cpu and "end" in cpu:
        (s0, c0, l0), (s1, c1, l1) = cpu["start"], cpu["end"]
        per = max(1, n_ok + n_err)
        report["cpu_ms_per_request"] = {"server": round((s1 - s0) * 1000 / per, 2) if s0 is not None and s1 is not None
                                        else None, "load_generator": round((c1 - c0) * 1000 / per, 2)}
        report["load_average"] = {"start": [round(x, 2) for x in l0], "end": [round(x, 2) for x in l1]}
    start, end = counters.get("start") or {}, counters.get("end") or {}
    if start and end and start.keys() == end.keys():
        d = {k: end[k] - start[k] for k in end}
        asked = d["model"] + d["cache_hits"]
        report["answer_cache_hits"] = int(d.get("answer_cache_hits", 0))
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
    """The query-embedding counters from /metrics of the process that answered, with its `pid` (None if it
    does not export them)."""
    try:
        text = (await http.get("/metrics")).text
    except httpx.HTTPError:
        return None
    names = {"rag_query_embedding_batches_total": "batches", "rag_query_embeddings_total": "model",
             "rag_query_embedding_cache_hits_total": "cache_hits", "rag_worker_pid": "pid",
             "rag_answer_cache_hits_total": "answer_cache_hits"}
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[names[name]] = float(value)
    return out if len(out) >= 3 else None


async def worker_counters(url: str, headers: dict, workers: int = 1, tries: int = 60) -> dict | None:
    """The counters summed over every worker: /metrics asked on fresh connections (the kernel gives each to
    some worker) until `workers` distinct processes have answered; None if they never all do."""
    seen: dict[float, dict] = {}
    for _ in range(max(1, tries if workers > 1 else 1)):
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=httpx.Timeout(10.0)) as http:
            got = await _embedding_counters(http)
        if got is None:
            return None
        seen[got.pop("pid", 0.0)] = got
        if len(seen) >= workers:
            return {k: sum(c.get(k, 0.0) for c in seen.values())
                    for k in ("batches", "model", "cache_hits", "answer_cache_hits")}
    return None


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
        f"HTTP load test: POST {r['endpoint']} at {r['url']}"
        + (f" ({r['workers']} worker processes)" if r.get("workers", 1) > 1 else ""),
        f"  {r['clients']} concurrent clients, closed loop, {r['duration_s']:g} s measured after "
        f"{r['warmup_s']:g} s warm-up, {r['distinct_questions']} distinct questions"
        + (f" drawn by popularity ({r['draw']})" if r.get("draw", "cycle") != "cycle" else ""),
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
                     f"({q['cache_hit_share']:.0%} of queries)"
                     + (f"; {r['answer_cache_hits']} answers from the answer cache "
                        f"({r['answer_cache_hits'] / max(1, r['requests']):.0%} of requests)"
                        if "answer_cache_hits" in r else ""))
    if "cpu_ms_per_request" in r:
        c, la = r["cpu_ms_per_request"], r["load_average"]
        lines.append(f"  CPU per request: server {c['server'] if c['server'] is not None else '?'} ms (all its "
                     f"processes), load generator {c['load_generator']} ms; load average "
                     f"{' '.join(f'{x:.2f}' for x in la['start'])} at the start, "
                     f"{' '.join(f'{x:.2f}' for x in la['end'])} at the end ({os.cpu_count()} cores)")
    for kind, example in r.get("error_examples", {}).items():
        lines.append(f"  e.g. {kind}: {example}")
    return "\n".join(lines)


TARGETS = {"on": {"p95": 150.0}, "off": {"rps": 80.0, "p95": 300.0}}  # issue #12, at 20 clients


def target_lines(runs: dict) -> list[str]:
    """Each run against issue #12's targets (met or not, as measured)."""
    out = []
    for mode, r in runs.items():
        t = TARGETS.get(mode)
        if not t or not r.get("ok"):
            continue
        checks = []
        if "rps" in t:
            checks.append(f"{r['throughput_rps']:.1f} req/s (target >= {t['rps']:g}: "
                          f"{'met' if r['throughput_rps'] >= t['rps'] else 'NOT met'})")
        checks.append(f"p95 {r['latency_ms']['p95']} ms (target <= {t['p95']:g}: "
                      f"{'met' if r['latency_ms']['p95'] <= t['p95'] else 'NOT met'})")
        out.append(f"cache {mode}: " + ", ".join(checks))
    return out


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
    url = args.url.rstrip("/") if args.url else None
    during = getattr(args, "during_upload", None)
    cache = getattr(args, "cache", None) or ("off" if getattr(args, "no_cache", False) else "both")
    if url is not None:
        modes = [None]  # someone else's server: its cache is as it was started
    elif cache == "both" and not during:
        modes = ["on", "off"]
    else:
        modes = ["off" if cache == "off" else "on"]
    workers = max(1, int(getattr(args, "workers", None) or 1))
    pool = questions or question_pool()
    runs: dict = {}
    upload_report = None
    scratch = tempfile.mkdtemp(prefix="rag-bench-") if url is None else None
    try:
        for mode in modes:
            proc, run_url, log = None, url, None
            try:
                if url is None:
                    # The server under load gets a copy of the index (document store included): a load test
                    # must never write to, repair or rebuild the project's real index/.
                    index_copy = Path(scratch) / f"index-{mode}"
                    copy_index(Settings().index_dir, index_copy)
                    port = _free_port()
                    run_url = f"http://127.0.0.1:{port}"
                    print(f"starting `rag serve`{f' --workers {workers}' if workers > 1 else ''} with the query "
                          f"cache {mode} on {run_url} (on a copy of the index in {index_copy}) ...",
                          file=sys.stderr, flush=True)
                    env = {"RAG_INDEX_DIR": str(index_copy)}
                    if mode == "off":
                        env["RAG_QUERY_CACHE"] = env["RAG_ANSWER_CACHE"] = "0"
                    log = Path(scratch) / f"serve-{mode}.log"
                    proc = start_server(port, env, log_path=log, workers=workers)
                health = wait_healthy(run_url, proc)
                n = (health.get("worker") or {}).get("workers", workers) if url is not None else workers
                if n > 1:
                    _wait_workers(run_url, args.api_key, n)
                print(f"server healthy: {health.get('chunks')} chunks, model {health.get('model')}, {n} worker(s); "
                      f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr, flush=True)
                report = asyncio.run(run_load(run_url, args.endpoint, args.clients, args.duration, args.warmup,
                                              pool, args.api_key, args.timeout, popularity=1.0, workers=n,
                                              server_pid=proc.pid if proc is not None else None))
                report["cache"] = mode or "as configured"
                if report.get("errors") and log is not None and log.exists():
                    report["server_log_tail"] = log.read_text(encoding="utf-8", errors="replace")[-3000:]
                runs[mode or "server"] = report
                if during:
                    if during == "large":
                        text, nchunks = large_document()
                        content, filename = text.encode("utf-8"), f"large-{nchunks}-chunks.txt"
                    else:
                        content, filename = Path(during).read_bytes(), Path(during).name
                    print(f"idle: p50 {report['latency_ms']['p50']} ms, p95 {report['latency_ms']['p95']} ms; "
                          f"uploading {filename} ({len(content)} bytes) as a job and loading the server while it "
                          "runs ...", file=sys.stderr, flush=True)
                    busy = asyncio.run(run_during_upload(run_url, content, filename,
                                                         f"压力测试 {time.strftime('%H%M%S')}", args.clients,
                                                         args.duration, args.api_key, pool, args.timeout))
                    upload_report = {"idle": report, "during_upload": busy["load"], "upload": busy["upload"]}
            finally:
                if proc is not None:
                    stop_server(proc)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if upload_report is not None:
        report = upload_report
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
    if args.json:
        print(json.dumps(runs if len(runs) > 1 else next(iter(runs.values())), ensure_ascii=False, indent=2))
    else:
        for mode, r in runs.items():
            print((f"query cache {mode}\n" if mode in ("on", "off") else "") + format_report(r) + "\n")
            if r.get("server_log_tail"):
                print("  server log (tail):\n    " + r["server_log_tail"].replace("\n", "\n    "))
        for line in target_lines(runs):
            print(line)
    return 0 if all(r.get("errors") == 0 and r.get("ok", 0) > 0 for r in runs.values()) else 1


def _wait_workers(url: str, api_key: str | None, workers: int, timeout: float = 300.0) -> None:
    """Wait until every worker process answers (each loads the model and the index at its own pace)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout
    seen: set = set()
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/healthz", headers=headers, timeout=5.0)
            seen.add((r.json().get("worker") or {}).get("pid"))
        except (httpx.HTTPError, ValueError):
            pass
        if len(seen) >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"only {len(seen)} of {workers} worker processes answered within {timeout:.0f}s")
