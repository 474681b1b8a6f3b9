"""`rag` command line: a thin layer over `rag.service.Assistant`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _settings(args):
    from .config import Settings

    settings = Settings()
    if getattr(args, "model", None):
        settings.embed_model = args.model
    return settings


def _assistant(args, **kwargs):
    from .service import Assistant

    return Assistant(_settings(args), **kwargs)


def _reading_assistant(args):
    """The Assistant of a read command (ask, search, chat): the index exactly as it is on disk.

    A missing, damaged or stale index is never rebuilt here: the error says what
    is wrong and that `rag index build` fixes it, and the command exits 1.
    """
    from .index import IndexError_

    try:
        assistant = _assistant(args, allow_rebuild=False)
    except IndexError_ as exc:
        print(f"错误：索引不可用 (index at {_settings(args).index_dir} unusable): {exc}", file=sys.stderr)
        return None
    health = assistant.health()
    if health["status"] != "ok":
        print(f"注意：索引曾受损并已修复 (index degraded): {health['reason']} — check it, then run `rag index build`",
              file=sys.stderr)
    return assistant


def _questions(arg: str) -> list[str] | None:
    """'-' means one question per line on stdin (batch mode)."""
    if arg != "-":
        return None
    return [line.rstrip("\n") for line in sys.stdin if line.strip()]


def _print_answer(answer, as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
        return
    if answer.rewritten_question and answer.rewritten_question != answer.question:
        print(f"（理解为：{answer.rewritten_question}）")
    print(answer.answer)
    if answer.verified is False:
        print(f"（{answer.backend} 生成的答案未通过校验，已改用摘录答案：{answer.fallback_reason}）")
    print()
    print("未找到答案，最接近的条款：" if answer.refused else "引用条款：")
    for c in answer.citations:
        ch = c.hit.chunk
        print(f"[{c.n}] 《{ch.doc_title}》 {ch.chunk_id}  {ch.section_path}")
        print(f"    {ch.text}")


def cmd_ask(args) -> int:
    from .service import QuestionError

    batch = _questions(args.question)
    assistant = _reading_assistant(args)
    if assistant is None:
        return 1
    failed = 0
    for q in batch if batch is not None else [args.question]:
        try:
            answer = assistant.ask(q, k=args.k, documents=args.doc or None, mode=args.mode, backend=args.backend)
        except QuestionError as exc:
            failed += 1
            if batch is not None and args.json:
                print(json.dumps({"question": q, "error": str(exc)}, ensure_ascii=False), flush=True)
            else:
                print(f"错误：{exc}", file=sys.stderr)
            continue
        _print_answer(answer, args.json)
    return 2 if failed else 0


def cmd_search(args) -> int:
    from .service import QuestionError

    batch = _questions(args.query)
    assistant = _reading_assistant(args)
    if assistant is None:
        return 1
    failed = 0
    for q in batch if batch is not None else [args.query]:
        try:
            result = assistant.search(q, k=args.k, documents=args.doc or None, mode=args.mode)
        except QuestionError as exc:
            failed += 1
            if batch is not None and args.json:
                print(json.dumps({"query": q, "error": str(exc)}, ensure_ascii=False), flush=True)
            else:
                print(f"错误：{exc}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps([h.to_dict() for h in result.hits], ensure_ascii=False), flush=True)
        else:
            for i, h in enumerate(result.hits, 1):
                print(f"{i:2d}. {h.score:.4f} 《{h.chunk.doc_title}》 {h.chunk.chunk_id}  {h.chunk.section_path}")
                print(f"    {h.chunk.text[:160]}")
    return 2 if failed else 0


def cmd_index(args) -> int:
    """`status`: read-only check (exit 1 when unusable or degraded).  `build`: load, repair or rebuild;
    without --if-needed it also acknowledges recorded damage (an operator has looked).  `compact`: merge
    the index's segments into one version (rag/segments.py)."""
    from .corpus import load_corpus
    from .index import IndexError_
    from .service import open_index, read_damage

    settings = _settings(args)
    if args.action == "compact":
        from .service import compact_index

        try:
            done = compact_index(settings)
        except IndexError_ as exc:
            print(f"index unusable: {exc}; run `rag index build`", file=sys.stderr)
            return 1
        b = done["before"]
        print(f"index compacted: {b['segments']} segments ({len(b['tombstoned'])} deleted documents) of {b['version']} "
              f"-> 1 segment {done['version']}, {done['chunks']} chunks, {done['bytes_written']:,} bytes written, "
              f"{done['seconds']}s")
        return 0
    if args.action == "status":
        try:
            index, _ = open_index(settings, load_corpus(settings.seeds_dir), None, allow_rebuild=False)
        except IndexError_ as exc:
            print(f"index unusable: {exc}")
            return 1
        print(json.dumps(index.manifest, ensure_ascii=False, indent=2))
        damage = read_damage(settings.index_dir)
        if damage:
            print("index degraded (damage found and repaired earlier):", file=sys.stderr)
            for reason in damage:
                print(f"  - {reason}", file=sys.stderr)
            print("check it, then run `rag index build` to acknowledge", file=sys.stderr)
            return 1
        return 0
    started = time.perf_counter()
    assistant = _assistant(args, rebuild=args.force, show_progress=not args.quiet)
    m = assistant.index.manifest
    print(f"index {assistant.index_status}: {m['chunk_count']} chunks from {m['clause_count']} clauses, "
          f"{len(assistant.index.uploads.entries)} uploaded documents, model {m['model']}, "
          f"{time.perf_counter() - started:.1f}s")
    damage = assistant.health().get("reasons", [])
    if damage:
        print("damage found and repaired:" if args.if_needed else "damage found and repaired (acknowledged):")
        for reason in damage:
            print(f"  - {reason}")
        if args.if_needed:
            print("/healthz reports degraded until `rag index build` (without --if-needed) acknowledges it")
        else:
            assistant.acknowledge_damage()
    return 0


def cmd_documents(args) -> int:
    """`rag documents add|list|show|remove` (rag/bulk.py for add)."""
    return {"add": _documents_add, "list": _documents_list, "show": _documents_show,
            "remove": _documents_remove}[args.action](args)


def _writing_assistant(args, **kwargs):
    """The Assistant of a write command: it may repair or build the index, as `rag index build` does."""
    from .index import IndexError_

    try:
        return _assistant(args, **kwargs)
    except IndexError_ as exc:
        print(f"错误：索引不可用 (index at {_settings(args).index_dir} unusable): {exc}", file=sys.stderr)
        return None


def _documents_add(args) -> int:
    from .bulk import BulkImport, collect, summary
    from .ingest import DocumentError, check_metadata

    meta = {"title": args.title, "issuer": args.issuer, "date": args.date, "region": args.region,
            "doc_id": args.id, "aliases": args.alias}
    try:  # the flags are checked once, before the model is loaded
        check_metadata("x.txt", b"", args.title or "x", args.issuer, args.date, args.region, args.id, args.alias)
    except DocumentError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 1
    files, missing = collect(args.paths)
    if (args.title or args.id) and len(files) + len(missing) > 1:
        print(f"错误：--title 和 --id 只能用于单个文件，多个文件请用同名的 .json 元数据文件 (--title and --id name one "
              f"file; {len(files)} files given: put a NAME.json sidecar next to each file instead)", file=sys.stderr)
        return 1
    if not files:
        for o in missing:
            print(f"错误：{o.path}: {o.message}", file=sys.stderr)
        return 1
    assistant = _writing_assistant(args, show_progress=not args.quiet)
    if assistant is None:
        return 1
    importer = BulkImport(assistant, meta, checkpoint=args.checkpoint, progress=not (args.quiet or args.json))
    started = time.perf_counter()
    outcomes = missing + importer.run(files)
    if args.json:
        print(json.dumps({s: [o.to_dict() for o in outcomes if o.status == s] for s in ("added", "skipped", "failed")},
                         ensure_ascii=False, indent=1))
    else:
        print(summary(outcomes, time.perf_counter() - started))
    if importer.interrupted:
        left = len(files) - len(importer.outcomes)
        print(f"已中断：已添加的文档已保存，{left} 个文件未处理，重新运行同一命令即可继续 (interrupted: what was added "
              f"is kept, {left} files left; run the same command again to add them)", file=sys.stderr)
        return 130
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _documents_list(args) -> int:
    from .catalog import describe_document

    assistant = _reading_assistant(args)
    if assistant is None:
        return 1
    snap = assistant.snapshot
    docs = [describe_document(snap, d.doc_id) for d in snap.corpus.documents]
    if args.json:
        print(json.dumps(docs, ensure_ascii=False, indent=1))
        return 0
    width = max([len(d["doc_id"]) for d in docs] + [2])
    print(f"{'id':<{width}}  {'条款':>4}  {'来源/上传时间':<16}  标题")
    for d in docs:
        uploaded = (d["upload"] or {}).get("uploaded_at", "")[:16].replace("T", " ")
        source = "种子 (seed)" if d["source"] == "seed" else uploaded or "upload"
        print(f"{d['doc_id']:<{width}}  {d['clause_count']:>4}  {source:<16}  {d['title']}")
    print(f"{len(docs)} 个文档 (documents), {sum(d['source'] == 'upload' for d in docs)} 个上传 (uploaded)")
    return 0


def _documents_show(args) -> int:
    from .catalog import describe_document, outline_of

    assistant = _reading_assistant(args)
    if assistant is None:
        return 1
    snap = assistant.snapshot
    try:
        doc = describe_document(snap, args.doc_id)
    except KeyError:
        print(f"错误：未知文档 (unknown doc_id {args.doc_id!r}); `rag documents list` lists them", file=sys.stderr)
        return 1
    outline = outline_of(snap.corpus.parsed[args.doc_id])
    if args.json:
        print(json.dumps({**doc, "outline": outline}, ensure_ascii=False, indent=1))
        return 0
    upload = doc.pop("upload") or {}
    for key in ("doc_id", "title", "issuer", "date", "region", "doc_number", "aliases", "period", "source",
                "clause_count", "chunk_count"):
        if doc.get(key) not in (None, "", []):
            value = "、".join(map(str, doc[key])) if isinstance(doc[key], list) else doc[key]
            print(f"{key:<13} {value}")
    for key in ("filename", "kind", "bytes", "uploaded_at"):
        if upload.get(key) not in (None, ""):
            print(f"{key:<13} {upload[key]}")
    print("目录 (outline):")
    for h in outline:
        print(f"{'  ' * len(h['path'])}{h['id']}  {h['title']}".rstrip() + f"  [{len(h['clause_ids'])} 条]")
    return 0


def _documents_remove(args) -> int:
    from .ingest import DocumentError

    assistant = _writing_assistant(args, show_progress=False)
    if assistant is None:
        return 1
    failed = 0
    for doc_id in dict.fromkeys(args.doc_ids):
        try:
            assistant.remove_document(doc_id)
        except DocumentError as exc:
            failed += 1
            print(f"错误：{exc}", file=sys.stderr)
            continue
        print(f"已删除 (removed) {doc_id}")
    return 1 if failed else 0


def cmd_models(args) -> int:
    from .config import Settings
    from .embedded_model import prepare_e5_folder

    if args.action == "fetch":
        from .llm_models import ModelFetchError, fetch_llm

        if args.what != "llm":
            print("usage: rag models fetch llm [--size 1.5b|0.5b]", file=sys.stderr)
            return 2
        started = time.perf_counter()
        try:
            path = fetch_llm(args.size, force=args.force)
        except ModelFetchError as exc:
            print(f"错误：{exc}", file=sys.stderr)
            return 1
        print(f"local language model ready at {path} ({time.perf_counter() - started:.1f}s)")
        return 0
    from .onnx_embedder import onnx_dir
    from .onnx_export import export_onnx

    settings = Settings()
    started = time.perf_counter()
    folder = prepare_e5_folder(settings.models_dir / "multilingual-e5-small", force=args.force)
    print(f"embedded embedding model ready at {folder} ({time.perf_counter() - started:.1f}s)")
    started = time.perf_counter()
    out = export_onnx(folder, onnx_dir(settings.models_dir), force=args.force)
    print(f"ONNX exports (fp32, int8) ready at {out} ({time.perf_counter() - started:.1f}s)")
    return 0


def cmd_chat(args) -> int:
    """Interactive ask loop with conversation history (follow-ups work)."""
    from .service import QuestionError

    assistant = _reading_assistant(args)
    if assistant is None:
        return 1
    history: list[dict] = []
    print("政策问答 — 输入问题，空行退出。")
    while True:
        try:
            q = input("问> ").strip()
        except EOFError:
            break
        if not q:
            break
        try:
            answer = assistant.ask(q, history=history)
        except QuestionError as exc:
            print(f"错误：{exc}")
            continue
        _print_answer(answer, False)
        history += [{"role": "user", "content": q}, {"role": "assistant", "content": answer.answer}]
    return 0


def cmd_bench(args) -> int:
    if args.scale is not None:
        from .bench_scale import run_scale_bench

        return run_scale_bench(args)
    if args.http:
        from .bench_http import run_http_bench

        return run_http_bench(args)
    from .bench import run_bench

    return run_bench(args)


def cmd_eval(args) -> int:
    """Gold-set evaluation: configurations side by side, report under evals/reports/<timestamp>/."""
    from .evaluate import ConfigError, GoldError, main as run_evaluation

    if args.sets:
        from .eval_sets import main as run_sets

        try:
            run_sets(lambda: _assistant(args), [s.strip() for s in args.sets.split(",") if s.strip()], args.out,
                     progress=not args.quiet)
        except (GoldError, ValueError) as exc:
            print(f"错误：{exc}", file=sys.stderr)
            return 2
        return 0
    try:
        run_evaluation(lambda: _assistant(args), args.config, args.gold, args.out, limit=args.limit,
                       progress=not args.quiet)
    except (GoldError, ConfigError) as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    return 0


def cmd_serve(args) -> int:
    """HTTP API (+ chat page at / when the UI is installed) with uvicorn; see rag/api.py.
    `--workers N` (N > 1): N server processes on one listening socket (`_serve_workers`)."""
    if args.workers > 1 and args.worker_fd is None:
        return _serve_workers(args)
    import uvicorn

    from .api import create_app
    from .embed_backend import make_embedder, threads_for_serving
    from .security import KeyConfig, allowed_hosts, bind_host

    keys = KeyConfig.from_env()
    host, message = bind_host(args.host, keys)
    worker = args.worker_fd is not None
    if not worker:
        print(f"rag serve: {message}", file=sys.stderr, flush=True)
    hosts = allowed_hosts(host)
    # One intra-op thread per model call (RAG_TORCH_THREADS, torch or onnxruntime): requests run
    # concurrently (and queries are micro-batched), so a second thread only contends for the same two cores.
    assistant = _assistant(args, embedder=make_embedder(_settings(args), threads=threads_for_serving()))
    # Repeated questions: the extractive answer kept per index snapshot (RAG_ANSWER_CACHE answers, 0 = off).
    app = create_app(assistant, keys=keys, with_ui=not args.no_ui, allowed_hosts=hosts,
                     answer_cache=_env_int("RAG_ANSWER_CACHE", 1024, minimum=0), warm_answers=True)
    if not worker:
        print(f"rag serve: http://{host}:{args.port}  (API docs: /docs, health: /healthz, metrics: /metrics)",
              file=sys.stderr, flush=True)
        if hosts == ["*"]:
            print("rag serve: any Host header accepted (bound to a wildcard address); set RAG_ALLOWED_HOSTS to "
                  "the names clients use", file=sys.stderr, flush=True)
    server = uvicorn.Server(server_config(app, host, args.port, log_level=args.log_level,
                                          access_log=args.access_log))
    if worker:  # a worker of `rag serve --workers`: the parent's listening socket
        import socket

        server.run(sockets=[socket.socket(fileno=args.worker_fd)])
    else:
        server.run()
    return 0 if server.started else 3  # as uvicorn.run: 3 = could not start (e.g. the port is taken)


WORKER_RESTART_LIMIT = 5  # workers that die within a minute of their start, in a row, before the server gives up


def _serve_workers(args) -> int:
    """`rag serve --workers N`: the index is opened (repaired or built if need be) once here, then N worker
    processes (`rag serve --worker-fd`) each load the model and the index and serve on the one socket
    bound here; the kernel hands each connection to one of them.

    They share the index folder as any processes do (rag/service.py): uploads and deletes take
    index/LOCK and start from the version on disk, and every worker loads a version another one
    published within RAG_INDEX_CHECK_S (1 s).  Upload jobs are run by one process each (rag/jobs.py:
    a lock per job); a worker that dies is started again, and its replacement resumes the jobs it left.
    SIGTERM or SIGINT stops the workers (each finishes its requests, a running job stops at its next
    batch and is resumed at the next start).
    """
    import signal
    import subprocess

    import uvicorn

    from .embed_backend import make_embedder, threads_for_serving
    from .security import KeyConfig, bind_host

    keys = KeyConfig.from_env()
    host, message = bind_host(args.host, keys)
    print(f"rag serve: {message}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    assistant = _assistant(args, embedder=make_embedder(_settings(args), threads=threads_for_serving()))
    status = assistant.index_status
    del assistant  # the workers open the index themselves; this process only supervises them
    try:
        sock = uvicorn.Config(app=None, host=host, port=args.port).bind_socket()
    except SystemExit:  # uvicorn logged why (e.g. the port is taken)
        return 3
    sock.set_inheritable(True)
    cmd = [sys.executable, "-m", "rag.cli"] + (["-v"] if args.verbose else []) + [
        "serve", "--host", args.host, "--port", str(args.port), "--log-level", args.log_level,
        "--worker-fd", str(sock.fileno())] + (["--no-ui"] if args.no_ui else []) + (
        ["--model", args.model] if args.model else []) + (["--access-log"] if args.access_log else [])
    env = {**os.environ, "RAG_SERVE_WORKERS": str(args.workers)}

    def spawn():
        return subprocess.Popen(cmd, env=env, pass_fds=[sock.fileno()]), time.monotonic()

    stopping = []
    previous = {sig: signal.signal(sig, lambda signum, frame: stopping.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    workers = [spawn() for _ in range(args.workers)]
    print(f"rag serve: index {status} ({time.perf_counter() - started:.1f}s); {args.workers} worker processes "
          f"({', '.join(str(p.pid) for p, _ in workers)}) on http://{host}:{args.port}  (API docs: /docs, health: "
          "/healthz, metrics: /metrics: each worker's own)", file=sys.stderr, flush=True)
    failures, code = 0, 0
    try:
        while not stopping:
            time.sleep(0.2)
            for i, (proc, since) in enumerate(workers):
                if proc.poll() is None or stopping:
                    continue
                quick = time.monotonic() - since < 60
                failures = failures + 1 if quick else 0
                if failures > WORKER_RESTART_LIMIT:
                    print(f"rag serve: worker {proc.pid} exited with {proc.returncode}; {failures} workers died "
                          "soon after starting: stopping", file=sys.stderr, flush=True)
                    stopping.append(None)
                    code = 1
                    break
                print(f"rag serve: worker {proc.pid} exited with {proc.returncode}: starting another",
                      file=sys.stderr, flush=True)
                workers[i] = spawn()
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc, _ in workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def server_config(app, host: str, port: int, **kw):
    """uvicorn's settings for `rag serve`: slow or idle clients are cut off, connections are capped.

    RAG_HTTP_KEEPALIVE_S (5) idle keep-alive; RAG_HTTP_HEADER_TIMEOUT_S (10) for a request head;
    RAG_HTTP_BODY_TIMEOUT_S (30) between pieces of a request body; RAG_HTTP_MAX_CONNECTIONS (200)
    connections and requests at once (beyond that: 503); no `server` header.
    """
    import uvicorn

    from .security import env_float, guarded_http_protocol

    return uvicorn.Config(
        app, host=host, port=port, timeout_graceful_shutdown=5, server_header=False,
        timeout_keep_alive=env_float("RAG_HTTP_KEEPALIVE_S", 5.0),
        limit_concurrency=int(env_float("RAG_HTTP_MAX_CONNECTIONS", 200)) or None,
        h11_max_incomplete_event_size=64 * 1024,
        http=guarded_http_protocol(env_float("RAG_HTTP_HEADER_TIMEOUT_S", 10.0),
                                   env_float("RAG_HTTP_BODY_TIMEOUT_S", 30.0)), **kw)


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    try:
        return max(minimum, int(os.environ.get(name, "") or default))
    except ValueError:
        return default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rag", description="政策问答: cited answers from Chinese IC industry plans")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, default_k):
        sp.add_argument("-k", type=int, default=default_k, help="how many clauses to retrieve")
        sp.add_argument("--doc", action="append", help="restrict to this doc_id (repeatable)")
        sp.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "bm25"])
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        sp.add_argument("--model", help="embedding model (sentence-transformers name or path)")

    sp = sub.add_parser("ask", help="answer a question with cited clauses ('-' = one per line on stdin)")
    sp.add_argument("question")
    common(sp, 5)
    sp.add_argument("--backend", choices=["extractive", "openai", "llamacpp"],
                    help="answer writer (default: env RAG_BACKEND, else extractive)")
    sp.set_defaults(func=cmd_ask)

    sp = sub.add_parser("search", help="rank clauses for a query ('-' = one per line on stdin)")
    sp.add_argument("query")
    common(sp, 10)
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("index", help="build or inspect the index")
    sp.add_argument("action", choices=["build", "status", "compact"],
                    help="compact: merge the index's segments into one (uploads and deletes add segments)")
    sp.add_argument("--force", action="store_true", help="rebuild even if up to date")
    sp.add_argument("--if-needed", action="store_true",
                    help="build only when missing or stale (the default), and leave recorded damage unacknowledged")
    sp.add_argument("--quiet", action="store_true")
    sp.add_argument("--model", help="embedding model (sentence-transformers name or path)")
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("documents", help="add, list, show or remove documents (uploads)")
    dsub = sp.add_subparsers(dest="action", required=True)
    add = dsub.add_parser("add", help="add .txt/.pdf/.docx files, folders (recursively) or globs; reruns skip "
                                      "what is already indexed")
    add.add_argument("paths", nargs="+", metavar="PATH")
    add.add_argument("--title", help="title (one file only; default: the file name)")
    add.add_argument("--alias", action="append", help="a name that routes questions here (repeatable)")
    add.add_argument("--issuer", default="", help="issuing body")
    add.add_argument("--date", default="", help="YYYY, YYYY-MM or YYYY-MM-DD")
    add.add_argument("--region", default="", help="region, e.g. 省/市/区")
    add.add_argument("--id", help="document id (one file only; default: from the file name and content)")
    add.add_argument("--checkpoint", type=int, default=20, metavar="N",
                     help="publish a new index version every N documents (default 20)")
    add.add_argument("--json", action="store_true", help="the report as JSON")
    add.add_argument("--quiet", action="store_true", help="no progress bar")
    lst = dsub.add_parser("list", help="the documents: id, clauses, source or upload time, title")
    lst.add_argument("--json", action="store_true")
    show = dsub.add_parser("show", help="a document's metadata and outline")
    show.add_argument("doc_id")
    show.add_argument("--json", action="store_true")
    rm = dsub.add_parser("remove", help="remove uploaded documents (seed documents cannot be removed)")
    rm.add_argument("doc_ids", nargs="+", metavar="ID")
    for sp2 in (add, lst, show, rm):
        sp2.add_argument("--model", help="embedding model (sentence-transformers name or path)")
    sp.set_defaults(func=cmd_documents)

    sp = sub.add_parser("models", help="prepare the embedded models; `fetch llm` assembles the optional GGUF")
    sp.add_argument("action", choices=["prepare", "fetch"])
    sp.add_argument("what", nargs="?", choices=["llm"], help="with fetch: the local language model")
    sp.add_argument("--size", default="1.5b", choices=["1.5b", "0.5b"], help="which embedded GGUF to fetch")
    sp.add_argument("--force", action="store_true")
    sp.set_defaults(func=cmd_models)

    sp = sub.add_parser("chat", help="interactive question loop")
    sp.add_argument("--model")
    sp.set_defaults(func=cmd_chat)

    sp = sub.add_parser("bench", help="measure build time and query latency")
    sp.add_argument("--questions", help="file with one question per line (default: evals questions)")
    sp.add_argument("-n", type=int, default=60, help="number of queries to time")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--backends", metavar="LIST",
                    help="embedding backends to time (default all: onnx,onnx-int8,torch)")
    sp.add_argument("--passages", type=int, default=200,
                    help="300-character passages embedded to measure build throughput (default 200)")
    sp.add_argument("--batch-sizes", metavar="N,N...",
                    help="also measure build throughput at these passages per model call (ONNX backends)")
    sp.add_argument("--no-peer", action="store_true",
                    help="skip timing the common LangChain recipe beside ours")
    sp.add_argument("--scale", nargs="?", const="", metavar="N[,N...]",
                    help="retrieval at scale on synthetic corpora of N chunks replicated from the index "
                         "(default 10000,100000; 1000000 only when asked: ~8 GB; see rag/bench_scale.py)")
    sp.add_argument("--milvus", action="store_true",
                    help="with --scale: also fill a Milvus Lite collection and search through it (rag/milvus_store.py)")
    http = sp.add_argument_group("HTTP load test (--http; see rag/bench_http.py)")
    http.add_argument("--http", action="store_true", help="load-test the HTTP API instead of the library")
    http.add_argument("--url", help="server to test (default: start `rag serve` on a free loopback port)")
    http.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    http.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    http.add_argument("--warmup", type=float, default=5.0, help="seconds of unmeasured warm-up (default 5)")
    http.add_argument("--endpoint", default="/v1/ask", choices=["/v1/ask", "/v1/search", "/v1/chat/completions"])
    http.add_argument("--api-key", default=os.environ.get("RAG_BENCH_API_KEY"), help="bearer key, if required")
    http.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    http.add_argument("--cache", choices=["both", "on", "off"],
                      help="runs with the server's query-vector cache on and off (default both; off: every "
                           "request embeds its query)")
    http.add_argument("--no-cache", action="store_true", help="the same as --cache off")
    http.add_argument("--workers", type=int, default=_env_int("RAG_BENCH_WORKERS", 2), metavar="N",
                      help="`rag serve --workers N` for the server it starts (default 2; RAG_BENCH_WORKERS)")
    http.add_argument("--during-upload", metavar="FILE|large",
                      help="after the idle run, upload FILE as a job (`large`: a generated document of 1000+ chunks "
                           "from seeds/ and evals/documents/) and measure again while it is indexed")
    sp.set_defaults(func=cmd_bench)

    from .evaluate import CONFIG_NAMES, CONFIGS

    sp = sub.add_parser("eval", help="evaluate on the gold set, configurations side by side")
    sp.add_argument("--config", action="append", metavar="NAME",
                    help=f"configuration to run (repeatable; default all): {', '.join(CONFIG_NAMES)}; "
                         f"optional: {', '.join(n for n in CONFIGS if n not in CONFIG_NAMES)}")
    sp.add_argument("--gold", help="gold questions file (default evals/gold.jsonl)")
    sp.add_argument("--sets", metavar="LIST",
                    help="comma-separated question sets, reported side by side with the gap to dev: "
                         "dev,test,fresh,uploaded,loo (the default configuration only)")
    sp.add_argument("--out", help="reports folder (default evals/reports); the run goes in <out>/<timestamp>/")
    sp.add_argument("--limit", type=int, help="evaluate only N questions, spread over the gold set")
    sp.add_argument("--model", help="embedding model (sentence-transformers name or path)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("serve", help="run the HTTP API and chat page (uvicorn)")
    sp.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1; without API keys always loopback)")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--model", help="embedding model (sentence-transformers name or path)")
    sp.add_argument("--no-ui", action="store_true", help="API only, no chat page at /")
    sp.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    sp.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False,
                    help="log every request (default off)")
    sp.add_argument("--workers", type=int, default=_env_int("RAG_SERVE_WORKERS", 1), metavar="N",
                    help="server processes sharing the index (default RAG_SERVE_WORKERS, else 1); see README")
    sp.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)  # a worker of --workers: the socket
    sp.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from .embed_backend import EmbedBackendError
    from .onnx_embedder import OnnxModelMissing

    try:
        return args.func(args) or 0
    except (OnnxModelMissing, EmbedBackendError) as exc:  # the embedding model cannot be loaded as configured
        print(f"错误：{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
