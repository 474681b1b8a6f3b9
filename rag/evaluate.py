"""Evaluation on the gold set: deterministic metrics for several configurations side by side.

Why this exists: to know how far the answers can be trusted, and to see as a
number what each design choice (BM25, dense, hybrid, routing, clause
structure) adds before changing it.  Everything here is deterministic string
matching against hand-written gold (`evals/gold.jsonl`); no language model is
needed.  An LLM-judged faithfulness score can be added through `Judge` once a
generative backend exists; it is reported apart and never mixed in.

Definitions (all matching is NFKC, whitespace-free and case-folded, see `norm`):
- a retrieved chunk *holds* a gold clause when its text contains one of that
  clause's gold quotes;
- recall@k: gold clauses held by the top k chunks / min(k, number of gold
  clauses) ("capped" recall, so a ten-clause list question can still reach 1
  at k=5); MRR: 1 / rank of the first chunk holding any gold clause;
- key-fact accuracy: the answer (citation markers removed) contains every
  `must_include` string; a refusal never does;
- citation precision: cited chunks holding a gold clause / cited chunks;
  citation recall: gold clauses held by a cited chunk / gold clauses (both over
  answerable questions that were answered);
- refusal accuracy: unanswerable questions refused; false-refusal rate:
  answerable questions refused.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Protocol

from .config import PROJECT_ROOT

GOLD_PATH = PROJECT_ROOT / "evals" / "gold.jsonl"
REPORTS_DIR = PROJECT_ROOT / "evals" / "reports"
TYPES = ("fact", "list", "compare", "summary", "unanswerable", "english", "followup")
SEARCH_K = 10
RECALL_KS = (1, 5, 10)
_MARKER = re.compile(r"\[\d{1,2}\]")


class GoldError(ValueError):
    """The gold file is malformed: which line, and what is wrong with it."""


class ConfigError(ValueError):
    """An unknown configuration name."""


# --------------------------------------------------------------------------- gold


@dataclass
class GoldItem:
    id: str
    question: str
    type: str
    answerable: bool
    gold: list[dict]
    must_include: list[str]
    reference_answer: str
    history: list[dict] = field(default_factory=list)

    @property
    def gold_clauses(self) -> dict[tuple[str, str], list[str]]:
        """(doc_id, clause_id) -> its gold quotes, in gold order."""
        out: dict[tuple[str, str], list[str]] = {}
        for g in self.gold:
            out.setdefault((g["doc_id"], g["clause_id"]), []).append(g["quote"])
        return out


_REQUIRED = {"id": str, "question": str, "type": str, "answerable": bool, "gold": list,
             "must_include": list, "reference_answer": str}


def _check_item(obj: object, where: str) -> GoldItem:
    if not isinstance(obj, dict):
        raise GoldError(f"{where}: expected a JSON object")
    for key, typ in _REQUIRED.items():
        if key not in obj:
            raise GoldError(f"{where}: missing field {key!r}")
        if not isinstance(obj[key], typ):
            raise GoldError(f"{where}: field {key!r} must be {typ.__name__}")
    if obj["type"] not in TYPES:
        raise GoldError(f"{where}: unknown type {obj['type']!r} (one of {', '.join(TYPES)})")
    if not obj["question"].strip():
        raise GoldError(f"{where}: empty question")
    for g in obj["gold"]:
        if not isinstance(g, dict) or not all(isinstance(g.get(k), str) and g.get(k) for k in
                                              ("doc_id", "clause_id", "quote")):
            raise GoldError(f"{where}: each gold entry needs non-empty doc_id, clause_id and quote")
    if not all(isinstance(m, str) and m.strip() for m in obj["must_include"]):
        raise GoldError(f"{where}: must_include holds non-empty strings only")
    if obj["answerable"] and (not obj["gold"] or not obj["must_include"]):
        raise GoldError(f"{where}: an answerable question needs gold clauses and must_include")
    if not obj["answerable"] and (obj["gold"] or obj["must_include"]):
        raise GoldError(f"{where}: an unanswerable question has empty gold and must_include")
    history = obj.get("history", [])
    if not isinstance(history, list) or not all(
            isinstance(t, dict) and t.get("role") in ("user", "assistant") and isinstance(t.get("content"), str)
            for t in history):
        raise GoldError(f"{where}: history is a list of {{role: user|assistant, content: str}}")
    return GoldItem(id=obj["id"], question=obj["question"], type=obj["type"], answerable=obj["answerable"],
                    gold=obj["gold"], must_include=obj["must_include"],
                    reference_answer=obj["reference_answer"], history=history)


def load_gold(path: Path | str = GOLD_PATH) -> list[GoldItem]:
    """Read and check the gold file; any problem raises `GoldError` naming the line."""
    path = Path(path)
    if not path.is_file():
        raise GoldError(f"gold file not found: {path}")
    items: list[GoldItem] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
        item = _check_item(obj, f"{path}:{n}")
        if item.id in seen:
            raise GoldError(f"{path}:{n}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise GoldError(f"{path}: no questions")
    return items


# --------------------------------------------------------------------------- matching


def norm(text: str) -> str:
    """For comparing only: NFKC (full-width -> half-width), no whitespace, case-folded."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def held_clauses(text: str, item: GoldItem) -> set[tuple[str, str]]:
    """Gold clauses of `item` whose quote occurs in `text`."""
    t = norm(text)
    return {key for key, quotes in item.gold_clauses.items() if any(norm(q) in t for q in quotes)}


def missing_facts(answer_text: str, must_include: list[str]) -> list[str]:
    """The must_include strings the answer lacks.

    A string counts as present in the answer as written, or once citation
    markers ("[1]") are removed — a marker may sit inside a key string, and
    bracketed numbers of the plans themselves ("国发[2011]4号") must survive.
    """
    plain, unmarked = norm(answer_text), norm(_MARKER.sub("", answer_text))
    return [m for m in must_include if norm(m) not in plain and norm(m) not in unmarked]


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Config:
    name: str
    description: str
    mode: str = "hybrid"
    use_routing: bool = True
    baseline: bool = False
    backend: str = "extractive"  # answer writer (rag.generate)
    optional: bool = False       # not in the default run: needs a language model, and is slow


CONFIGS: dict[str, Config] = {c.name: c for c in (
    Config("bm25", "BM25 (jieba tokens) only, no document routing", mode="bm25", use_routing=False),
    Config("dense", "dense (FAISS, embedding model) only, no document routing", mode="dense", use_routing=False),
    Config("hybrid", "dense + BM25 fused by RRF, no document routing", mode="hybrid", use_routing=False),
    Config("hybrid-routed", "the default: hybrid, routed to the documents a question names", mode="hybrid",
           use_routing=True),
    Config("baseline-langchain", "common LangChain recipe: 500/50 character chunks, FAISS top-4, "
           "no clause structure (rag/baseline.py)", baseline=True),
    Config("llamacpp", "hybrid-routed; answers written by the local GGUF (RAG_LLAMACPP_MODEL) and verified "
           "(rag/verify.py), extractive fallback", backend="llamacpp", optional=True),
    Config("openai", "hybrid-routed; answers written by an OpenAI-compatible endpoint (RAG_OPENAI_*) and "
           "verified, extractive fallback", backend="openai", optional=True),
)}
CONFIG_NAMES = tuple(n for n, c in CONFIGS.items() if not c.optional)  # the default run
DEFAULT_CONFIG = "hybrid-routed"


class System(Protocol):
    answer_k: int

    def ask(self, item: GoldItem): ...
    def search(self, query: str, k: int) -> list[tuple[str, str, str]]: ...


class AssistantSystem:
    """One configuration of the real `Assistant` (shared model and index)."""

    def __init__(self, assistant, config: Config):
        self.assistant = assistant
        self.config = config
        self.answer_k = assistant.settings.top_k

    def ask(self, item: GoldItem):
        return self.assistant.ask(item.question, history=item.history or None, mode=self.config.mode,
                                  use_routing=self.config.use_routing, backend=self.config.backend)

    def search(self, query: str, k: int) -> list[tuple[str, str, str]]:
        res = self.assistant.search(query, k=k, mode=self.config.mode, use_routing=self.config.use_routing)
        return [(h.chunk.doc_id, h.chunk.chunk_id, held_text(h.chunk)) for h in res.hits]


def held_text(chunk) -> str:
    """What a gold quote is looked for in: the clause text and its own heading (a list item's
    title often lives only in the heading)."""
    return (chunk.section[-1] + " " if getattr(chunk, "section", None) else "") + chunk.text


class BaselineSystem:
    def __init__(self, baseline):
        self.baseline = baseline
        self.answer_k = baseline.k

    def ask(self, item: GoldItem):
        return self.baseline.ask(item.question, history=item.history or None)

    def search(self, query: str, k: int) -> list[tuple[str, str, str]]:
        return [(h.chunk.doc_id, h.chunk.clause_id, h.chunk.text) for h in self.baseline.search(query, k)]


def build_systems(assistant, names: list[str]) -> dict[str, System]:
    names = check_configs(names)
    systems: dict[str, System] = {}
    for name in names:
        cfg = CONFIGS[name]
        if cfg.baseline:
            from .baseline import LangChainBaseline

            systems[name] = BaselineSystem(LangChainBaseline(assistant.corpus, assistant.embedder,
                                                             assistant.settings.seeds_dir))
        else:
            systems[name] = AssistantSystem(assistant, cfg)
    return systems


# --------------------------------------------------------------------------- one question


def failure_kind(rec: dict) -> str | None:
    """None when the question passed; otherwise what went wrong, for the lead to act on."""
    if not rec["answerable"]:
        return None if rec["refused"] else "missed refusal"
    if rec["refused"]:
        return "false refusal"
    if not rec["missing"]:
        return None
    return "retrieval miss" if rec["recall_at_answer_k"] < 1.0 else "wrong sentence"


def evaluate_item(system: System, item: GoldItem) -> dict:
    """Ask, search (with the rewritten question, as the answerer did) and score one question."""
    answer = system.ask(item)
    query = answer.rewritten_question or item.question
    started = time.perf_counter()
    retrieved = system.search(query, SEARCH_K)
    search_ms = (time.perf_counter() - started) * 1000

    gold_keys = list(item.gold_clauses)
    held = [held_clauses(text, item) for _, _, text in retrieved]
    rec: dict = {"id": item.id, "type": item.type, "answerable": item.answerable, "question": item.question,
                 "rewritten_question": query if query != item.question else None,
                 "answer": answer.answer, "refused": bool(answer.refused), "reason": answer.reason or None,
                 "backend": answer.backend}
    rec["retrieved"] = [{"doc_id": d, "id": cid, "gold": bool(h)} for (d, cid, _), h in zip(retrieved, held)]
    if gold_keys:
        for k in RECALL_KS + (system.answer_k,):
            found = set().union(*held[:k]) if held[:k] else set()
            rec[f"recall@{k}"] = len(found) / min(k, len(gold_keys))
        rec["recall_at_answer_k"] = rec[f"recall@{system.answer_k}"]
        first = next((i for i, h in enumerate(held) if h), None)
        rec["rr"] = 0.0 if first is None else 1.0 / (first + 1)
    else:
        rec["recall_at_answer_k"] = None
    cites = [(c.hit.chunk.doc_id, c.hit.chunk.chunk_id, held_text(c.hit.chunk)) for c in answer.citations]
    cite_held = [held_clauses(text, item) for _, _, text in cites]
    rec["citations"] = [{"doc_id": d, "id": cid, "gold": bool(h)} for (d, cid, _), h in zip(cites, cite_held)]
    if item.answerable:
        rec["missing"] = list(item.must_include) if answer.refused else missing_facts(answer.answer,
                                                                                       item.must_include)
        rec["key_fact"] = not answer.refused and not rec["missing"]
        if not answer.refused and cites:
            rec["citation_precision"] = sum(bool(h) for h in cite_held) / len(cites)
            rec["citation_recall"] = len(set().union(*cite_held)) / len(gold_keys)
    else:
        rec["missing"] = []
    # every [n] in the text is a listed citation and every citation is referenced
    markers = {int(m[1:-1]) for m in _MARKER.findall(answer.answer)}
    rec["citations_valid"] = bool(answer.refused) or (bool(markers) and markers == {c.n for c in answer.citations})
    if getattr(answer, "verified", None) is not None:  # generative backends
        rec["verified"], rec["fallback_reason"] = answer.verified, answer.fallback_reason
    rec["timings_ms"] = {**{k: round(v, 2) for k, v in answer.timings_ms.items()}, "search": round(search_ms, 2)}
    rec["failure"] = failure_kind(rec)
    rec["passed"] = rec["failure"] is None
    return rec


# --------------------------------------------------------------------------- aggregation


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 6) if values else None


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * p / 100
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return round(s[lo] + (s[hi] - s[lo]) * (pos - lo), 2)


def aggregate(records: list[dict]) -> dict:
    """Metrics over a list of per-question records (one configuration)."""
    ans = [r for r in records if r["answerable"]]
    una = [r for r in records if not r["answerable"]]
    with_gold = [r for r in ans if "rr" in r]
    answered = [r for r in ans if not r["refused"]]
    m = {"n": len(records), "n_answerable": len(ans), "n_unanswerable": len(una)}
    for k in RECALL_KS:
        m[f"recall@{k}"] = _mean([r[f"recall@{k}"] for r in with_gold])
    m["mrr"] = _mean([r["rr"] for r in with_gold])
    m["key_fact_accuracy"] = _mean([float(r["key_fact"]) for r in ans])
    m["citation_precision"] = _mean([r["citation_precision"] for r in answered if "citation_precision" in r])
    m["citation_recall"] = _mean([r["citation_recall"] for r in answered if "citation_recall" in r])
    m["refusal_accuracy"] = _mean([float(r["refused"]) for r in una])
    m["false_refusal_rate"] = _mean([float(r["refused"]) for r in ans])
    m["pass_rate"] = _mean([float(r["passed"]) for r in records])
    stages = sorted({s for r in records for s in r["timings_ms"]})
    m["latency_ms"] = {s: {"p50": _pct([r["timings_ms"][s] for r in records if s in r["timings_ms"]], 50),
                           "p95": _pct([r["timings_ms"][s] for r in records if s in r["timings_ms"]], 95)}
                       for s in stages}
    failures: dict[str, int] = {}
    for r in records:
        if r["failure"]:
            failures[r["failure"]] = failures.get(r["failure"], 0) + 1
    m["failures"] = failures
    m["citation_validity"] = _mean([float(r["citations_valid"]) for r in records if "citations_valid" in r])
    generated = [r for r in records if "verified" in r]
    if generated:  # generative backends: how often the model's answer passed verification, and why not
        m["verified_rate"] = _mean([float(r["verified"]) for r in generated])
        reasons: dict[str, int] = {}
        for r in generated:
            if r["fallback_reason"]:
                kind = r["fallback_reason"].split(":")[0]
                reasons[kind] = reasons.get(kind, 0) + 1
        m["fallbacks"] = reasons
    return m


def aggregate_by_type(records: list[dict]) -> dict[str, dict]:
    out = {}
    for t in TYPES:
        rs = [r for r in records if r["type"] == t]
        if not rs:
            continue
        full = aggregate(rs)
        out[t] = {k: full[k] for k in ("n", "pass_rate", "recall@5", "mrr", "key_fact_accuracy",
                                        "refusal_accuracy", "false_refusal_rate")}
    return out


# --------------------------------------------------------------------------- optional LLM judge


class Judge(Protocol):
    """Hook for an LLM-judged faithfulness score, once a generative backend is configured.

    Called with the question, the answer text and the texts of the cited
    clauses; returns the share (0..1) of the answer's statements the cited
    clauses support.  Not part of the deterministic metrics.
    """

    def __call__(self, question: str, answer: str, cited_texts: list[str]) -> float: ...


def judge_faithfulness(system: System, items: list[GoldItem], judge: Judge, runs: int = 3) -> dict:
    """Mean judged faithfulness over answered questions, averaged over `runs` runs (judges are noisy)."""
    per_run = []
    for _ in range(runs):
        scores = []
        for item in items:
            a = system.ask(item)
            if not a.refused:
                scores.append(float(judge(item.question, a.answer, [c.hit.chunk.text for c in a.citations])))
        per_run.append(statistics.fmean(scores) if scores else 0.0)
    return {"runs": runs, "per_run": [round(s, 4) for s in per_run], "mean": round(statistics.fmean(per_run), 4)}


# --------------------------------------------------------------------------- runner


@dataclass
class EvalRun:
    configs: list[str]
    records: dict[str, list[dict]]
    metrics: dict[str, dict]
    by_type: dict[str, dict[str, dict]]
    meta: dict
    faithfulness: dict[str, dict] = field(default_factory=dict)


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head or "unknown") + (" (uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict:
    info = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    info.setdefault("cpu", platform.processor() or "unknown")
    return info


def run_eval(assistant, items: list[GoldItem], configs: list[str] | None = None, progress: bool = True,
             judge: Judge | None = None, gold_path: Path | None = None) -> EvalRun:
    """Run every configuration over every question, reusing the assistant's loaded model and index."""
    from tqdm import tqdm

    configs = list(configs or CONFIG_NAMES)
    started = time.perf_counter()
    systems = build_systems(assistant, configs)
    records: dict[str, list[dict]] = {c: [] for c in configs}
    bar = tqdm(total=len(items) * len(configs), disable=not progress, unit="q", dynamic_ncols=True)
    for name, system in systems.items():
        bar.set_description(name)
        for item in items:
            records[name].append(evaluate_item(system, item))
            bar.update(1)
    bar.close()
    faith = {}
    if judge is not None:
        faith = {name: judge_faithfulness(system, items, judge) for name, system in systems.items()}
    manifest = assistant.index.manifest
    meta = {
        "timestamp": datetime.now().isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "machine": machine_info(),
        "embedding_model": assistant.settings.embed_model,
        "reranker": assistant.settings.reranker or None,
        "top_k": assistant.settings.top_k,
        "corpus_fingerprint": manifest.get("corpus_fingerprint"),
        "index_chunks": len(assistant.index),
        "gold_path": str(gold_path) if gold_path else None,
        "gold_questions": len(items),
        "gold_types": {t: sum(1 for i in items if i.type == t) for t in TYPES},
        "configs": {c: asdict(CONFIGS[c]) for c in configs},
        "baseline_chunks": next((len(s.baseline.chunks) for s in systems.values()
                                 if isinstance(s, BaselineSystem)), None),
        "seconds": None,
    }
    meta["seconds"] = round(time.perf_counter() - started, 1)
    return EvalRun(configs=configs, records=records,
                   metrics={c: aggregate(records[c]) for c in configs},
                   by_type={c: aggregate_by_type(records[c]) for c in configs}, meta=meta, faithfulness=faith)


# --------------------------------------------------------------------------- report


METRIC_ROWS = [
    ("recall@1", "retrieval recall@1"), ("recall@5", "retrieval recall@5"), ("recall@10", "retrieval recall@10"),
    ("mrr", "MRR@10"), ("key_fact_accuracy", "key-fact accuracy"), ("citation_precision", "citation precision"),
    ("citation_recall", "citation recall"), ("refusal_accuracy", "refusal accuracy (unanswerable)"),
    ("false_refusal_rate", "false-refusal rate (answerable)"), ("pass_rate", "questions passed"),
]


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def comparison_table(run: EvalRun) -> str:
    lines = ["| metric | " + " | ".join(run.configs) + " |", "| --- |" + " ---: |" * len(run.configs)]
    for key, label in METRIC_ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(run.metrics[c][key]) for c in run.configs) + " |")
    return "\n".join(lines)


def type_table(run: EvalRun) -> str:
    lines = ["| type | n | " + " | ".join(f"{c} pass / R@5" for c in run.configs) + " |",
             "| --- | ---: |" + " ---: |" * len(run.configs)]
    for t in TYPES:
        rows = [run.by_type[c].get(t) for c in run.configs]
        if not rows[0]:
            continue
        cells = [f"{_fmt(r['pass_rate'])} / {_fmt(r['recall@5'])}" for r in rows]
        lines.append(f"| {t} | {rows[0]['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_table(run: EvalRun) -> str:
    stages = ["rewrite", "retrieve", "answer", "total", "search"]
    lines = ["| stage (ms) | " + " | ".join(f"{c} p50 / p95" for c in run.configs) + " |",
             "| --- |" + " ---: |" * len(run.configs)]
    for s in stages:
        cells = []
        for c in run.configs:
            lat = run.metrics[c]["latency_ms"].get(s)
            cells.append(f"{lat['p50']:.1f} / {lat['p95']:.1f}" if lat and lat["p50"] is not None else "–")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def failures_section(run: EvalRun) -> str:
    out = []
    for c in run.configs:
        wrong = [r for r in run.records[c] if not r["passed"]]
        out.append(f"### {c}: {len(wrong)} of {len(run.records[c])} wrong\n")
        if not wrong:
            continue
        out.append("| id | failure | question | missing | top retrieved | answered |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for r in sorted(wrong, key=lambda r: (r["failure"], r["id"])):
            top = ", ".join(f"{x['doc_id'].split('-')[0]}:{x['id']}{'*' if x['gold'] else ''}"
                            for x in r["retrieved"][:3])
            cells = [r["id"], r["failure"], _short(r["question"], 60), "、".join(r["missing"]) or "–", top,
                     _short(r["answer"])]
            out.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in cells) + " |")
        out.append("")
    return "\n".join(out)


def plot(run: EvalRun, path: Path) -> Path:
    """Grouped bars: the metrics per configuration, and pass rate per question type (English labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = [(k, label) for k, label in METRIC_ROWS if k != "pass_rate"]
    types = [t for t in TYPES if t in run.by_type[run.configs[0]]]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 10))
    width = 0.8 / len(run.configs)
    colors = plt.get_cmap("tab10").colors
    for ax, groups, value in (
        (ax1, metrics, lambda c, g: run.metrics[c][g[0]]),
        (ax2, [(t, t) for t in types], lambda c, g: run.by_type[c][g[0]]["pass_rate"]),
    ):
        x = np.arange(len(groups))
        for i, c in enumerate(run.configs):
            vals = [value(c, g) for g in groups]
            bars = ax.bar(x + (i - (len(run.configs) - 1) / 2) * width, [v or 0 for v in vals], width,
                          label=c, color=colors[i % len(colors)])
            for b, v in zip(bars, vals):
                if v is not None:
                    ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, f"{v:.2f}", ha="center",
                            va="bottom", fontsize=6, rotation=90)
        ax.set_xticks(x)
        ax.set_ylim(0, 1.15)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    ax1.set_xticklabels([label.replace(" (", "\n(") for _, label in metrics], fontsize=8)
    ax1.set_title("Metrics per configuration (false-refusal rate: lower is better)")
    ax2.set_xticklabels([f"{t}\n(n={run.by_type[run.configs[0]][t]['n']})" for t in types], fontsize=9)
    ax2.set_title("Questions passed per question type")
    ax1.legend(ncol=len(run.configs), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.suptitle(f"Gold-set evaluation: {run.meta['gold_questions']} questions, "
                 f"model {run.meta['embedding_model']}, corpus {run.meta['corpus_fingerprint']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_report(run: EvalRun) -> str:
    m = run.meta
    mach = m["machine"]
    lines = [
        "# Evaluation report", "",
        f"- run: {m['timestamp']}, {m['seconds']} s for {len(run.configs)} configurations",
        f"- git commit: `{m['git_commit']}`",
        f"- machine: {mach.get('cores')} cores, {mach.get('ram_gib', '?')} GiB RAM, {mach.get('cpu')}, "
        f"{mach.get('platform')}, Python {mach.get('python')}",
        f"- embedding model: `{m['embedding_model']}`; reranker: {m['reranker'] or 'none'}; "
        f"answer top-k: {m['top_k']}",
        f"- corpus fingerprint: `{m['corpus_fingerprint']}`; index chunks: {m['index_chunks']}; "
        f"baseline chunks: {m['baseline_chunks'] if m['baseline_chunks'] is not None else '–'}",
        f"- gold set: {m['gold_questions']} questions "
        f"({', '.join(f'{t} {n}' for t, n in m['gold_types'].items())}), `{m['gold_path']}`",
        "", "## Configurations", "",
    ]
    lines += [f"- **{c}**: {CONFIGS[c].description}" for c in run.configs]
    lines += ["", "## Comparison", "", comparison_table(run), "",
              "Recall is capped (gold clauses found in the top k / min(k, gold clauses)); citation metrics "
              "cover answerable questions that were answered. Definitions: `rag/evaluate.py`.", "",
              "## Per question type (questions passed / recall@5)", "", type_table(run), "",
              "## Latency per stage", "", latency_table(run), "",
              "`search` is a separate k=10 retrieval used for the recall metrics.", "",
              "## Failures by kind", "",
              "| config | " + " | ".join(("retrieval miss", "wrong sentence", "false refusal", "missed refusal"))
              + " |", "| --- | ---: | ---: | ---: | ---: |"]
    for c in run.configs:
        f = run.metrics[c]["failures"]
        lines.append(f"| {c} | " + " | ".join(str(f.get(k, 0)) for k in
                                              ("retrieval miss", "wrong sentence", "false refusal",
                                               "missed refusal")) + " |")
    lines += ["", "## LLM-judged faithfulness", ""]
    if run.faithfulness:
        lines += [f"- {c}: {v['mean']:.3f} (runs: {', '.join(f'{s:.3f}' for s in v['per_run'])})"
                  for c, v in run.faithfulness.items()]
    else:
        lines.append("Not run: no generative backend / judge is configured (deterministic metrics only).")
    lines += ["", "![chart](chart.png)", "", "## Questions each configuration got wrong", "",
              "`*` marks a retrieved chunk holding a gold quote.", "", failures_section(run)]
    return "\n".join(lines)


def write_report(run: EvalRun, out_dir: Path | str = REPORTS_DIR) -> Path:
    """Write report.md, metrics.json, per_question.jsonl and chart.png into out_dir/<timestamp>/."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(out_dir) / stamp
    n = 1
    while folder.exists():
        n += 1
        folder = Path(out_dir) / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(
        {"meta": run.meta, "metrics": run.metrics, "by_type": run.by_type, "faithfulness": run.faithfulness},
        ensure_ascii=False, indent=2), encoding="utf-8")
    with open(folder / "per_question.jsonl", "w", encoding="utf-8") as f:
        for c in run.configs:
            for r in run.records[c]:
                f.write(json.dumps({"config": c, **r}, ensure_ascii=False) + "\n")
    plot(run, folder / "chart.png")
    (folder / "report.md").write_text(render_report(run), encoding="utf-8")
    return folder


def select(items: list[GoldItem], limit: int | None) -> list[GoldItem]:
    """An evenly spread subset (every type represented), for quick runs."""
    if not limit or limit >= len(items):
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def check_configs(configs: list[str] | None) -> list[str]:
    names = list(dict.fromkeys(configs or CONFIG_NAMES))
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ConfigError(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIG_NAMES)}")
    return names


def main(assistant_factory: Callable[[], object], configs: list[str] | None, gold: str | None,
         out: str | None, limit: int | None = None, progress: bool = True,
         echo: Callable[[str], None] = print) -> Path:
    """What `rag eval` does: check the gold file and configurations first (before loading any
    model), then run, write the report and print the comparison tables."""
    gold_path = Path(gold) if gold else GOLD_PATH
    items = select(load_gold(gold_path), limit)
    configs = check_configs(configs)
    assistant = assistant_factory()
    run = run_eval(assistant, items, configs, progress=progress, gold_path=gold_path)
    folder = write_report(run, Path(out) if out else REPORTS_DIR)
    echo(comparison_table(run))
    echo("")
    echo(type_table(run))
    echo(f"\nreport: {folder / 'report.md'}")
    return folder
