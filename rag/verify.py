"""Verification of generated answers against the clauses they were given.

A language model can cite a clause it was never shown or write a figure that
no clause contains.  Nothing generated reaches the user unchecked: the answer
is cut into sentences, and a sentence survives only when

- every [n] it carries points to one of the numbered clauses of the prompt;
- it is cited (its own [n], or the [n] of the next cited sentence — so an
  introductory "主要措施包括：" followed by cited items is kept);
- every figure in it (a number with a unit, a percentage, a year, any number of
  two or more digits) occurs in one of the clauses it cites (or in the question);
- for a Chinese sentence with its own [n], at least a third of its content words
  occur in the clauses it cites (a sentence invented around a valid [n] shares
  almost no words with it; a paraphrase keeps most of the terms).

The surviving sentences are renumbered [1], [2], … in the order of first
citation.  When none survives the caller falls back to the extractive answer.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .keywords import tokens

# [1] ［1］ 【1】 [1,2] [1、2] [1-2] are all read as citations.
_CITATION = re.compile(r"[\[［【]\s*(\d{1,3}(?:\s*[,，、\-–~]\s*\d{1,3})*)\s*[\]］】]")
# Sentence ends; an English full stop only before whitespace, and not after a digit ("1. " numbers a list).
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=\.)(?<!\d\.)(?=\s)|(?<=\n)")
_LEADING_MARKERS = re.compile(r"^(\s*\[\d+\])+")
_MARKER = re.compile(r"\[(\d+)\]")

_UNITS = ("hundred million|trillion|billion|million|thousand|percent|个百分点|百分点|亿美元|万美元|亿元|万元|千元|元|美元|万平方米|平方米|平方公里|万亩|亩|万片|片|纳米|nm|英寸|"
          "亿颗|颗|万人|人次|人|名|家|个|项|条|座|所|台|套|倍|款|件|位|批|栋|GW|MW|亿|万|千|百|年|月|日|天|%|‰")
# A figure: a number (digits, optional decimals / thousands separators) with an optional unit.
_FIGURE = re.compile(rf"(?<![\d.])(\d+(?:,\d{{3}})*(?:\.\d+)?)\s*({_UNITS})?", re.I)
_ENUMERATION = re.compile(r"^\s*(\d{1,2})[.、)）]\s*(?!\d)")
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Equivalent spellings of a unit when looking for a figure in a clause.
_UNIT_ALTERNATIVES = {"亿元": ("亿元", "亿"), "亿": ("亿", "亿元"), "万元": ("万元", "万"), "万": ("万", "万元"),
                      "%": ("%", "％"), "百分点": ("百分点", "个百分点")}
# English magnitudes are checked by value against the clause's Chinese ones: a model that
# turns "1000亿" (100 billion) into "1000 billion" has invented a figure.
_EN_MAGNITUDE = {"hundredmillion": 1e8, "trillion": 1e12, "billion": 1e9, "million": 1e6, "thousand": 1e3}
_ZH_MAGNITUDE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(万亿|千亿|百亿|亿|千万|百万|万|千)")
_ZH_VALUE = {"万亿": 1e12, "千亿": 1e11, "百亿": 1e10, "亿": 1e8, "千万": 1e7, "百万": 1e6, "万": 1e4, "千": 1e3}
MIN_OVERLAP = 0.34
MIN_WORDS_FOR_OVERLAP = 3


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def normalize_citations(text: str) -> str:
    """Rewrite every citation spelling as [n] markers: 【1、2】 -> [1][2], [1-3] -> [1][2][3]."""
    def repl(m: re.Match) -> str:
        out = []
        for part in re.split(r"\s*[,，、]\s*", m.group(1)):
            bounds = re.split(r"\s*[\-–~]\s*", part)
            if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit() and \
                    0 <= int(bounds[1]) - int(bounds[0]) <= 10:
                out += [f"[{i}]" for i in range(int(bounds[0]), int(bounds[1]) + 1)]
            else:
                out += [f"[{int(b)}]" for b in bounds if b.isdigit()]
        return "".join(out)
    return _CITATION.sub(repl, text)


def parse_citations(text: str) -> list[int]:
    """The clause numbers cited in `text`, in order of first appearance."""
    seen: list[int] = []
    for m in _MARKER.finditer(normalize_citations(text)):
        n = int(m.group(1))
        if n not in seen:
            seen.append(n)
    return seen


def strip_citations(text: str) -> str:
    return _MARKER.sub("", normalize_citations(text))


@dataclass
class Claim:
    """One sentence of the answer with the [n] it carries."""

    text: str
    markers: list[int]


def _before_end(sentence: str, markers: str) -> str:
    """Insert markers before the sentence's closing punctuation: "坚持应用牵引。" -> "坚持应用牵引[1]。"."""
    stripped = sentence.rstrip()
    body = stripped.rstrip("。！？!?；;.")
    return body + markers + stripped[len(body):] + sentence[len(stripped):]


def split_claims(text: str) -> list[Claim]:
    """Sentences with their markers.

    A marker written after the full stop on the same line ("…亿元。[1]") belongs to that
    sentence; markers that open a line or the answer ("[2]坚持创新驱动。…") cover the
    sentences of that line that carry none of their own.
    """
    text = normalize_citations(text)
    pieces = [p for p in _SENTENCE_END.split(text) if p]
    sentences: list[str] = []
    line_markers = ""
    for p in pieces:
        at_line_start = not sentences or sentences[-1].endswith("\n")
        if at_line_start:
            line_markers = ""
        lead = _LEADING_MARKERS.match(p)
        if lead:
            markers, rest = re.sub(r"\s+", "", lead.group(0)), p[lead.end():]
            if not at_line_start:
                sentences[-1] += markers
                p = rest
            elif rest.strip():
                line_markers, p = markers, rest
        if p.strip():
            if line_markers and not _MARKER.search(p):
                p = _before_end(p, line_markers)
            sentences.append(p)
        elif p and sentences:
            sentences[-1] += p
    return [Claim(s, [int(n) for n in _MARKER.findall(s)]) for s in sentences]


def figures(sentence: str) -> list[str]:
    """Figures a sentence states: numbers with units, percentages, years, numbers of two or more digits.

    Citation markers and list numbering ("1. ", "2、") are not figures.
    """
    body = _ENUMERATION.sub("", strip_citations(_nfkc(sentence)))
    out = []
    for m in _FIGURE.finditer(body):
        number, unit = m.group(1).replace(",", ""), re.sub(r"\s+", "", (m.group(2) or "").lower())
        unit = "%" if unit == "percent" else unit
        if not unit and len(number.replace(".", "")) < 2:
            continue
        out.append(number + unit)
    return out


def _matching_text(text: str) -> str:
    return re.sub(r"\s+", "", _nfkc(text)).replace(",", "")


def figure_in(figure: str, clause_text: str) -> bool:
    """Does the (normalized) clause state this figure?  "500亿元" is not found in "2500亿元"."""
    m = re.match(r"(\d+(?:\.\d+)?)(.*)", figure)
    number, unit = m.group(1), m.group(2)
    hay = _matching_text(clause_text)
    if unit in _EN_MAGNITUDE:
        value = float(number) * _EN_MAGNITUDE[unit]
        return any(abs(float(n) * _ZH_VALUE[u] - value) < 1e-6 * value for n, u in _ZH_MAGNITUDE.findall(hay))
    for u in _UNIT_ALTERNATIVES.get(unit, (unit,)):
        if u == "年" and re.search(rf"(?<![\d.]){re.escape(number)}(?![\d.])", hay):
            return True  # "2025年" in the answer, "2025" (e.g. "2022-2025") in the clause
        if re.search(rf"(?<![\d.]){re.escape(number + u)}" + (r"(?![\d.])" if not u else ""), hay):
            return True
    return False


def _mostly_chinese(sentence: str) -> bool:
    letters = [ch for ch in sentence if ch.isalpha()]
    return bool(letters) and sum(1 for ch in letters if _CJK.match(ch)) > len(letters) / 2


def overlap(sentence: str, clause_texts: list[str]) -> float:
    """Share of the sentence's content words that occur in the cited clauses (1.0 for a
    short sentence: too few words to judge)."""
    words = {t for t in tokens(strip_citations(sentence)) if not t.isdigit()}
    if len(words) < MIN_WORDS_FOR_OVERLAP:
        return 1.0
    hay = _nfkc("".join(clause_texts)).lower()
    return sum(1 for w in words if w in hay) / len(words)


@dataclass
class Verification:
    text: str                     # surviving sentences, markers renumbered
    cited: list[int]              # prompt clause numbers, cited[i] is the new [i+1]
    kept: int = 0
    sentences: list[str] = field(default_factory=list)  # the surviving sentences (text == "".join(...).strip())
    last_cited: int = -1          # index in `sentences` of the last one with its own [n]
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (sentence, reason)
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.refused or self.kept > 0

    @property
    def failure(self) -> str | None:
        """Why nothing survived (None when the answer is usable)."""
        if self.ok:
            return None
        if not self.dropped:
            return "empty_answer"
        return self.dropped[0][1]


def is_refusal(text: str, refusal_sentences: tuple[str, ...]) -> bool:
    """The answer is (only) the fixed refusal sentence, perhaps with a stray marker or punctuation."""
    body = re.sub(r"[\s。.！!]", "", strip_citations(_nfkc(text))).lower()
    return any(body == re.sub(r"[\s。.！!]", "", _nfkc(r)).lower() for r in refusal_sentences)


def _check(claim: Claim, sentence: str, markers: list[int], clauses: list[str],
           refusal_sentences: tuple[str, ...], min_overlap: float, question: str = "") -> str | None:
    """Why this sentence must be dropped, or None."""
    if len(re.sub(r"[\W_]+", "", strip_citations(sentence))) < 2:
        return "no_content"  # a bare "[1] [2]" or a stray "和[2]" says nothing
    if is_refusal(sentence, refusal_sentences):
        return "refusal_mixed_with_answer"
    bad = [n for n in claim.markers if not 1 <= n <= len(clauses)]
    if bad:
        return f"bad_citation:[{bad[0]}]"
    cited_texts = [clauses[n - 1] for n in markers if 1 <= n <= len(clauses)]
    if not cited_texts:
        return "uncited"
    missing = [f for f in figures(sentence) if not any(figure_in(f, t) for t in cited_texts)
               and not (question and figure_in(f, question))]
    if missing:
        return f"unsupported_figure:{missing[0]}"
    if claim.markers and _mostly_chinese(sentence) and overlap(sentence, cited_texts) < min_overlap:
        return "unsupported_wording"
    return None


def verify_answer(answer: str, clauses: list[str], refusal_sentences: tuple[str, ...] = (),
                  min_overlap: float = MIN_OVERLAP, question: str = "") -> Verification:
    """Check a generated answer against the prompt's clauses (clauses[i] is [i+1]).

    A figure the question itself states ("到2015年…") may be echoed: the retrieval gate
    has already checked that the question's years and figures occur in the clauses.
    """
    if is_refusal(answer, refusal_sentences):
        return Verification(text=answer.strip(), cited=[], refused=True)
    claims = split_claims(answer)
    # A sentence without its own marker borrows those of the next cited sentence (its
    # "lender"), and survives only if the lender does.  Walk backwards so the lender's
    # fate is known first.
    kept_rev: list[tuple[str, list[int]]] = []
    dropped_rev: list[tuple[str, str]] = []
    lender: int | None = None  # index of the next cited claim
    lender_kept = False
    for i in range(len(claims) - 1, -1, -1):
        claim = claims[i]
        sentence = claim.text.strip()
        markers = claim.markers or (claims[lender].markers if lender is not None else [])
        reason = _check(claim, sentence, markers, clauses, refusal_sentences, min_overlap, question)
        if reason is None and not claim.markers and not lender_kept:
            reason = "uncited"
        if claim.markers:
            lender, lender_kept = i, reason is None
        if reason is None:
            kept_rev.append((claim.text, claim.markers))
        else:
            dropped_rev.append((sentence, reason))
    kept, dropped = kept_rev[::-1], dropped_rev[::-1]

    # Renumber in order of first citation; the clause list of the answer is exactly what is cited.
    order: list[int] = []
    for _, markers in kept:
        for n in markers:
            if n not in order:
                order.append(n)
    new = {old: i + 1 for i, old in enumerate(order)}
    # Markers that repeat in a row ("[1][1]") read badly.
    sentences = [re.sub(r"(\[\d+\])\1+", r"\1", _MARKER.sub(lambda m: f"[{new[int(m.group(1))]}]", s))
                 for s, _ in kept]
    last_cited = max((i for i, (_, markers) in enumerate(kept) if markers), default=-1)
    return Verification(text="".join(sentences).strip(), cited=order, kept=len(kept), sentences=sentences,
                        last_cited=last_cited, dropped=dropped)
