"""Generative vs extractive answers on a stratified sample of the gold set.

    PYTHONPATH=. .venv/bin/python scripts/eval_generative.py --gold evals/gold.jsonl -n 20 \
        --backend extractive --backend llamacpp [--model embedded:qwen2.5-coder-1.5b] [--out report.json]

Per backend: key-fact accuracy (every must_include figure/term in the answer,
answerable questions), citation validity (every [n] in the text is a listed
citation and every citation is referenced), citation precision (cited clauses
that are gold clauses), refusal accuracy on unanswerable questions, false
refusals on answerable ones, verified/fallback counts, latency p50/p95 (and
time to the first streamed delta).  Slow with a local model: ~20-40 s a question.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer import Answer  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.service import Assistant  # noqa: E402

QUOTAS = {"fact": 5, "list": 3, "compare": 2, "english": 3, "followup": 2, "summary": 2, "unanswerable": 3}


def norm(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def sample(rows: list[dict], n: int) -> list[dict]:
    """A deterministic spread: per type, evenly spaced items (quotas scaled to n)."""
    scale = n / sum(QUOTAS.values())
    out = []
    for kind, quota in QUOTAS.items():
        items = [r for r in rows if r["type"] == kind]
        take = max(1, round(quota * scale))
        step = max(1, len(items) // take)
        out += items[::step][:take]
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run(assistant: Assistant, rows: list[dict], backend: str) -> list[dict]:
    results = []
    for i, row in enumerate(rows, 1):
        started = time.perf_counter()
        first = None
        final: Answer | None = None
        for item in assistant.ask_stream(row["question"], history=row.get("history"), backend=backend):
            if isinstance(item, Answer):
                final = item
            elif first is None:
                first = time.perf_counter() - started
        elapsed = time.perf_counter() - started
        text = norm(final.answer)
        gold = {(g["doc_id"], g["clause_id"]) for g in row.get("gold", [])}
        cited = [(c.hit.chunk.doc_id, c.hit.chunk.clause_id) for c in final.citations]
        markers = {int(m) for m in re.findall(r"\[(\d+)\]", final.answer)}
        numbers = {c.n for c in final.citations}
        res = {
            "id": row["id"], "type": row["type"], "answerable": row["answerable"], "question": row["question"],
            "answer": final.answer, "refused": final.refused, "verified": final.verified,
            "fallback_reason": final.fallback_reason, "dropped": final.dropped_sentences,
            "generation": final.generation,
            "key_facts": all(norm(f) in text for f in row.get("must_include", [])) if row["answerable"] else None,
            "missing": [f for f in row.get("must_include", []) if norm(f) not in text],
            "citations_valid": final.refused or (markers == numbers and bool(markers)),
            "cited": cited, "cited_gold": sum(1 for c in cited if c in gold),
            "seconds": elapsed, "first_delta_s": first,
        }
        results.append(res)
        print(f"[{backend} {i}/{len(rows)}] {row['id']} {elapsed:.1f}s key={res['key_facts']} "
              f"refused={final.refused} verified={final.verified} {final.fallback_reason or ''}", file=sys.stderr)
    return results


def summarize(results: list[dict]) -> dict:
    answerable = [r for r in results if r["answerable"]]
    unanswerable = [r for r in results if not r["answerable"]]
    answered = [r for r in results if not r["refused"]]
    cites = sum(len(r["cited"]) for r in answered)
    secs = [r["seconds"] for r in results]
    firsts = [r["first_delta_s"] for r in results if r["first_delta_s"] is not None]
    return {
        "questions": len(results),
        "key_fact_accuracy": sum(bool(r["key_facts"]) for r in answerable) / max(1, len(answerable)),
        "citation_validity": sum(r["citations_valid"] for r in results) / max(1, len(results)),
        "citation_precision": sum(r["cited_gold"] for r in answered if r["answerable"]) /
                              max(1, sum(len(r["cited"]) for r in answered if r["answerable"])),
        "refusal_accuracy": sum(r["refused"] for r in unanswerable) / max(1, len(unanswerable)),
        "false_refusals": sum(r["refused"] for r in answerable) / max(1, len(answerable)),
        "verified": sum(r["verified"] is True for r in results),
        "fallbacks": dict(Counter((r["fallback_reason"] or "").split(":")[0] for r in results
                                  if r["verified"] is False)),
        "dropped_sentences": sum(r["dropped"] for r in results),
        "latency_p50_s": percentile(secs, 0.5), "latency_p95_s": percentile(secs, 0.95),
        "first_delta_p50_s": percentile(firsts, 0.5),
        "answered_citations": cites,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gold", default="evals/gold.jsonl")
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--backend", action="append", default=[])
    p.add_argument("--model", help="RAG_LLAMACPP_MODEL for the llamacpp backend")
    p.add_argument("--out", help="write per-question results and summaries here (JSON)")
    args = p.parse_args()
    if args.model:
        os.environ["RAG_LLAMACPP_MODEL"] = args.model
    rows = sample([json.loads(line) for line in open(args.gold, encoding="utf-8") if line.strip()], args.n)
    assistant = Assistant(Settings())
    report = {}
    for backend in args.backend or ["extractive", "llamacpp"]:
        results = run(assistant, rows, backend)
        report[backend] = {"summary": summarize(results), "results": results}
        print(json.dumps({backend: report[backend]["summary"]}, ensure_ascii=False, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
