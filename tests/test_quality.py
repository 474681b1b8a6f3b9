"""Quality floors of the default configuration on the whole gold set.

Not timing tests: they fail when retrieval or answering gets worse.  When one
fails, improve the core — never the gold set's difficulty or these floors.
"""

from __future__ import annotations

import pytest

from rag.evaluate import DEFAULT_CONFIG, GOLD_PATH, load_gold, run_eval

pytestmark = pytest.mark.slow

FLOORS = {"recall@5": 0.95, "key_fact_accuracy": 0.85, "refusal_accuracy": 0.85, "citation_precision": 0.9}
MAX_FALSE_REFUSALS = 0.05


@pytest.fixture(scope="module")
def default_run(assistant):
    return run_eval(assistant, load_gold(GOLD_PATH), [DEFAULT_CONFIG], progress=False, gold_path=GOLD_PATH)


def _failures(run, kinds: tuple[str, ...]) -> str:
    rows = [f"{r['id']} [{r['failure']}] {r['question']} -> {' '.join(r['answer'].split())[:90]}"
            for r in run.records[DEFAULT_CONFIG] if r["failure"] in kinds]
    return "\n".join(rows[:40])


@pytest.mark.parametrize("metric", list(FLOORS))
def test_floor(default_run, metric):
    value = default_run.metrics[DEFAULT_CONFIG][metric]
    kinds = {"recall@5": ("retrieval miss",), "key_fact_accuracy": ("retrieval miss", "wrong sentence"),
             "refusal_accuracy": ("missed refusal",), "citation_precision": ("wrong sentence",)}[metric]
    assert value is not None and value >= FLOORS[metric], (
        f"{metric} = {value} < {FLOORS[metric]}\n{_failures(default_run, kinds)}")


def test_false_refusals(default_run):
    value = default_run.metrics[DEFAULT_CONFIG]["false_refusal_rate"]
    assert value is not None and value <= MAX_FALSE_REFUSALS, (
        f"false_refusal_rate = {value} > {MAX_FALSE_REFUSALS}\n{_failures(default_run, ('false refusal',))}")
