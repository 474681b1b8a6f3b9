"""The evaluation's scoring, report and CLI; the slow test runs every configuration for real."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag.answer import Answer, Citation
from rag.config import PROJECT_ROOT
from rag.evaluate import (CONFIG_NAMES, GOLD_PATH, GoldItem, aggregate, evaluate_item, failure_kind,
                          load_gold, missing_facts, norm, run_eval, select, write_report)
from rag.index import IndexedChunk
from rag.retrieve import Hit


def _chunk(doc, cid, text):
    return IndexedChunk(doc_id=doc, doc_title=doc, clause_id=cid, part=1, parts=1, section=[], text=text,
                        line_start=0, line_end=0)


class _Scripted:
    """A fixed retrieval list and answer: the input the scorer works on, not a stand-in for the system."""

    answer_k = 2

    def __init__(self, chunks, answer_text, refused=False, cited=(0,)):
        self.chunks = chunks
        self.answer_text, self.refused, self.cited = answer_text, refused, cited

    def ask(self, item):
        hits = [Hit(c, 1.0, 0.9, 0.0, i) for i, c in enumerate(self.chunks)]
        return Answer(item.question, self.answer_text, self.refused,
                      [Citation(n + 1, hits[i]) for n, i in enumerate(self.cited)],
                      timings_ms={"retrieve": 1.0, "answer": 2.0, "total": 3.0})

    def search(self, query, k):
        return [(c.doc_id, c.clause_id, c.text) for c in self.chunks[:k]]


ITEM = GoldItem(id="t1", question="两地目标？", type="compare", answerable=True,
                gold=[{"doc_id": "a", "clause_id": "1", "quote": "营收突破 2500亿元"},
                      {"doc_id": "b", "clause_id": "2", "quote": "规模突破1000亿"}],
                must_include=["2500亿元", "1000亿"], reference_answer="r")


def test_norm_and_missing_facts():
    assert norm("２５００ 亿元\n") == norm("2500亿元")
    assert missing_facts("营收突破２５００亿元[1]，规模突破1000\n亿[2]。", ["2500亿元", "1000亿"]) == []
    assert missing_facts("依据（国发[2011]4号）[1]。", ["国发[2011]4号"]) == []
    assert missing_facts("突破2500亿元[1]。", ["2500亿元", "1000亿"]) == ["1000亿"]


def test_scoring_of_one_question():
    chunks = [_chunk("c", "9", "无关条款"), _chunk("a", "1", "产业营收突破2500亿元，形成……"),
              _chunk("b", "2", "集成电路产业规模突破1000亿。"), _chunk("a", "1#2", "下一部分")]
    rec = evaluate_item(_Scripted(chunks, "产业营收突破2500亿元[1]。", cited=(1, 0)), ITEM)
    assert rec["recall@1"] == 0.0 and rec["recall@5"] == 1.0 and rec["rr"] == 0.5
    assert rec["recall@2"] == 0.5  # answer_k: only one of two gold clauses in the top 2
    assert rec["missing"] == ["1000亿"] and rec["key_fact"] is False
    assert rec["citation_precision"] == 0.5 and rec["citation_recall"] == 0.5
    assert rec["failure"] == "retrieval miss"

    rec = evaluate_item(_Scripted(chunks[1:], "营收突破2500亿元[1]；规模突破1000亿[2]。", cited=(0, 1)), ITEM)
    assert rec["passed"] and rec["citation_precision"] == 1.0 and rec["recall@1"] == 1.0

    rec = evaluate_item(_Scripted(chunks[1:], "营收突破2500亿元[1]。", cited=(0,)), ITEM)
    assert rec["failure"] == "wrong sentence"
    rec = evaluate_item(_Scripted(chunks[1:], "文件中未找到。", refused=True), ITEM)
    assert rec["failure"] == "false refusal" and rec["missing"] == ITEM.must_include


def test_refusal_scoring_and_aggregate():
    una = GoldItem(id="u", question="杭州？", type="unanswerable", answerable=False, gold=[], must_include=[],
                   reference_answer="r")
    chunks = [_chunk("a", "1", "产业营收突破2500亿元")]
    refused = evaluate_item(_Scripted(chunks, "文件中未找到", refused=True), una)
    answered = evaluate_item(_Scripted(chunks, "产业营收突破2500亿元[1]"), una)
    assert refused["passed"] and failure_kind(answered) == "missed refusal"
    good = evaluate_item(_Scripted(chunks + [_chunk("b", "2", "规模突破1000亿")], "2500亿元；1000亿", cited=(0, 1)),
                         ITEM)
    m = aggregate([refused, answered, good])
    assert m["refusal_accuracy"] == 0.5 and m["false_refusal_rate"] == 0.0 and m["key_fact_accuracy"] == 1.0
    assert m["failures"] == {"missed refusal": 1}
    assert m["latency_ms"]["total"]["p50"] == 3.0


def test_select_spreads_over_types():
    items = load_gold(GOLD_PATH)
    picked = select(items, 20)
    assert len(picked) == 20 and len({i.type for i in picked}) >= 5


def _rag(*args):
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_rejects_unknown_config_and_bad_gold_before_loading_anything(tmp_path):
    r = _rag("eval", "--config", "nope")
    assert r.returncode == 2 and "unknown configuration" in r.stderr and "hybrid-routed" in r.stderr
    bad = tmp_path / "g.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    r = _rag("eval", "--gold", str(bad))
    assert r.returncode == 2 and "g.jsonl:1" in r.stderr


@pytest.mark.slow
def test_all_configurations_side_by_side_and_report(assistant, tmp_path):
    from matplotlib.image import imread

    items = select(load_gold(GOLD_PATH), 12)
    run = run_eval(assistant, items, list(CONFIG_NAMES), progress=False, gold_path=GOLD_PATH)
    for c in CONFIG_NAMES:
        m = run.metrics[c]
        assert m["n"] == 12 and 0 <= m["recall@5"] <= 1 and m["latency_ms"]["total"]["p95"] > 0
    assert run.meta["baseline_chunks"] > 0
    assert all(r["backend"].endswith("(baseline)") for r in run.records["baseline-langchain"])

    folder = write_report(run, tmp_path)
    report = (folder / "report.md").read_text(encoding="utf-8")
    for needle in ("| retrieval recall@5 |", "cores", "GiB RAM", run.meta["corpus_fingerprint"],
                   "multilingual-e5-small", "git commit", "## Questions each configuration got wrong",
                   "chart.png", "LLM-judged faithfulness"):
        assert needle in report
    lines = (folder / "per_question.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12 * len(CONFIG_NAMES)
    assert {json.loads(x)["config"] for x in lines} == set(CONFIG_NAMES)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["metrics"]) == set(CONFIG_NAMES) and "by_type" in metrics
    image = imread(folder / "chart.png")
    assert image.shape[0] > 500 and image.shape[1] > 800
