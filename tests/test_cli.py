"""The `rag` command line: JSON output, batch mode from stdin, clear errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from rag import cli


@pytest.fixture
def run_cli(assistant, monkeypatch, capsys):
    """Run `rag …` in-process on the session's real assistant (no second model load)."""
    monkeypatch.setattr(cli, "_assistant", lambda args, **kw: assistant)

    def run(argv, stdin=None):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = cli.main(argv)
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_ask_json(run_cli):
    code, out, _ = run_cli(["ask", "深圳到2025年集成电路产业营收目标是多少？", "--json"])
    data = json.loads(out)
    assert code == 0 and not data["refused"] and "2500亿元" in data["answer"]
    assert data["citations"][0]["clause_id"] == "二.(一)"


def test_ask_human_output_lists_cited_clauses(run_cli):
    code, out, _ = run_cli(["ask", "深圳到2025年集成电路产业营收目标是多少？"])
    assert code == 0 and "引用条款" in out and "二.(一)" in out


def test_search_json(run_cli):
    code, out, _ = run_cli(["search", "第三代半导体", "-k", "10", "--json"])
    hits = json.loads(out)
    assert code == 0 and len(hits) == 10
    assert set(hits[0]) >= {"doc_id", "doc_title", "clause_id", "section", "text", "score"}


def test_batch_mode_one_json_per_line(run_cli):
    code, out, _ = run_cli(["ask", "-", "--json"], stdin="深圳到2025年营收目标是多少？\n\n青浦区人才目标是多少？\n")
    lines = [json.loads(l) for l in out.splitlines()]
    assert code == 0 and len(lines) == 2 and all("answer" in l for l in lines)
    code, out, _ = run_cli(["search", "-", "-k", "3", "--json"], stdin="人才\n封测\n")
    assert [len(json.loads(l)) for l in out.splitlines()] == [3, 3]


def test_batch_mode_reports_bad_lines_and_fails(run_cli):
    code, out, _ = run_cli(["ask", "-", "--json"], stdin="深圳营收目标？\n" + "问" * 1001 + "\n")
    rows = [json.loads(l) for l in out.splitlines()]
    assert code == 2 and "answer" in rows[0] and "error" in rows[1]


@pytest.mark.parametrize("bad", ["", "   ", "问" * 1001])
def test_bad_question_is_a_clear_error(run_cli, bad):
    code, out, err = run_cli(["ask", bad])
    assert code == 2 and "错误" in err and "Traceback" not in err


@pytest.mark.slow
def test_installed_console_script_end_to_end(session_index_dir, assistant):
    env = dict(os.environ, RAG_INDEX_DIR=str(session_index_dir))
    proc = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "湖里区2023年集成电路集群产值是多少？", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "22.1亿元" in json.loads(proc.stdout)["answer"]


HEAVY = ("torch", "sentence_transformers", "transformers", "gradio", "fastapi", "starlette", "uvicorn",
         "langchain_core", "langchain", "langchain_community", "langsmith", "matplotlib")


def test_one_shot_ask_imports_no_torch_gradio_fastapi_or_langchain(session_index_dir, assistant):
    """`rag ask` in a fresh process on the default backend (onnx): the answer, what it imported
    (`python -X importtime`), and its peak memory (the issue's target: 400 MB)."""
    env = dict(os.environ, RAG_INDEX_DIR=str(session_index_dir))
    env.pop("RAG_EMBED_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "rag.cli", "ask",
                             "湖里区2023年集成电路集群产值是多少？", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "22.1亿元" in json.loads(out)["answer"]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in err.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "onnxruntime" in imported and "rag" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_one_shot_search_stays_under_400_mb(session_index_dir, assistant):
    """Peak memory of the process after exec (VmHWM; ru_maxrss would count the forking parent's pages)."""
    env = dict(os.environ, RAG_INDEX_DIR=str(session_index_dir))
    env.pop("RAG_EMBED_BACKEND", None)
    code = ("import runpy, sys; sys.argv = ['rag', 'search', '第三代半导体', '-k', '3', '--json']\n"
            "try:\n    runpy.run_module('rag.cli', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
            "print(hwm, file=sys.stderr)\nsys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout)) == 3
    peak_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
    assert peak_mb <= 400, f"rag search peaked at {peak_mb:.0f} MB"


def test_jiebas_dictionary_is_cached_in_our_cache_dir(assistant):
    import jieba

    from rag.config import jieba_cache_dir

    jieba.initialize()
    assert jieba.dt.tmp_dir == jieba_cache_dir()
    assert jieba_cache_dir() and os.path.exists(os.path.join(jieba_cache_dir(), "jieba.cache"))


@pytest.mark.slow
def test_bench_times_the_langchain_recipe_beside_ours():
    """`rag bench` measures the common LangChain recipe on the same questions (issue: a peer side by side)."""
    from rag.bench import load_questions, measure_peer

    peer = measure_peer(load_questions(None)[:3], 6)
    assert peer["chunks"] > 0 and "RecursiveCharacterTextSplitter(500, 50)" in peer["recipe"]
    assert peer["cold_build_s"]["embed_and_index"] > 0 and 0 < peer["ask_ms"]["p50"] <= peer["ask_ms"]["p95"]
