"""Quality of the default configuration on every question set: dev, test, fresh, uploaded, leave-one-out.

Two kinds of check.  Regression floors (asserted): a little under what was last
measured on each set (closing note of the generalisation issue), so a change
that makes answers worse anywhere fails here.  Targets (the issue's; xfail
until reached, so the run shows how far each set is): key facts ≥ 0.85 (uploaded
≥ 0.80), false refusals ≤ 0.05, refusal accuracy ≥ 0.85, citation precision ≥ 0.90,
recall@5 ≥ 0.95.  Never tune on a test set to pass these: tune on dev, dev-fresh and uploaded-dev.
"""

from __future__ import annotations

import pytest

from rag.eval_sets import run_sets
from rag.evaluate import aggregate

pytestmark = pytest.mark.slow

SETS = ("dev", "dev-fresh", "test", "fresh", "uploaded-dev", "uploaded-test", "loo")
# Measured at the commit that set them (rag eval --sets …, closing note of 2026-12-07), minus 0.03 of headroom
# for ties (false refusals: plus 0.03; refusal accuracy: minus one unanswerable question when that is more);
# a floor is only ever raised.  The default embedding backend is fp32
# (onnx), whose answers are the same on every CPU; int8's moved by up to 0.04 between two machines.
FLOORS = {
    "dev": {"key_fact_accuracy": 0.87, "false_refusal_rate": 0.03, "refusal_accuracy": 0.97, "recall@5": 0.91},
    "dev-fresh": {"key_fact_accuracy": 0.80, "false_refusal_rate": 0.03, "refusal_accuracy": 0.88, "recall@5": 0.92},
    "test": {"key_fact_accuracy": 0.9, "false_refusal_rate": 0.05, "refusal_accuracy": 0.56, "recall@5": 0.94},
    "fresh": {"key_fact_accuracy": 0.74, "false_refusal_rate": 0.04, "refusal_accuracy": 0.81, "recall@5": 0.85},
    # uploaded-dev grew on 2026-12-07 by six documents (101 questions, 18 unanswerable): refusal accuracy
    # on the larger set was .744 before that day's work and .860 after, hence a floor below the old .89
    "uploaded-dev": {"key_fact_accuracy": 0.79, "false_refusal_rate": 0.04, "refusal_accuracy": 0.83, "recall@5": 0.81},
    "uploaded-test": {"key_fact_accuracy": 0.71, "false_refusal_rate": 0.12, "refusal_accuracy": 0.54, "recall@5": 0.87},
    "loo": {"key_fact_accuracy": 0.84, "false_refusal_rate": 0.04, "recall@5": 0.89},
}
TARGETS = {"key_fact_accuracy": 0.85, "false_refusal_rate": 0.05, "refusal_accuracy": 0.85,
           "citation_precision": 0.90, "recall@5": 0.95}
LOWER_IS_BETTER = {"false_refusal_rate"}


@pytest.fixture(scope="module")
def metrics(assistant):
    records = run_sets(assistant, list(SETS), progress=False)
    return {s: aggregate(r) for s, r in records.items()}


def _ok(metric: str, value: float | None, bound: float) -> bool:
    if value is None:
        return True  # e.g. leave-one-out has no unanswerable questions
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


@pytest.mark.parametrize("name, metric", [(s, m) for s, f in FLOORS.items() for m in f])
def test_no_regression(metrics, name, metric):
    value, floor = metrics[name][metric], FLOORS[name][metric]
    assert _ok(metric, value, floor), f"{name}: {metric} = {value}, floor {floor}"


@pytest.mark.parametrize("name, metric", [(s, m) for s in SETS for m in TARGETS])
def test_target(metrics, name, metric):
    target = TARGETS[metric] - (0.05 if metric == "key_fact_accuracy" and name.startswith("uploaded") else 0)
    value = metrics[name][metric]
    if not _ok(metric, value, target):
        pytest.xfail(f"{name}: {metric} = {value}, target {target} not reached yet")
