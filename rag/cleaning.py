"""Undo PDF-extraction artifacts without touching the words of the plan.

The seed texts were extracted from PDFs: sentences wrap across lines and pages,
page numbers and a table of contents are mixed in, and numbers carry stray
spaces ("3300 亿元").  Cleaning here only ever *drops whole artifact lines* and
*removes or adds whitespace*; every other character of the body survives, which
the tests check character by character.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Artifact kinds a source line can be classified as.
PAGE_NUMBER = "page_number"
TOC = "toc"
URL = "url"

_PAGE_NUMBER = re.compile(r"^[—\-－–]{0,2}\s*\d{1,3}\s*[—\-－–]{0,2}$")
_TOC_HEADER = re.compile(r"^目\s*录$")
_TOC_ENTRY = re.compile(r"(\t|\.{3,}|…{2,}|[(（]?\d{1,3}[)）]\s*$)")
_URL = re.compile(r"^(https?://|www\.)\S+$")

# Characters that close a sentence or a paragraph in these plans.
PARAGRAPH_END = tuple("。；！？：!?;:")
SENTENCE_END = re.compile(r"(?<=[。；！？!?;])")


@dataclass(frozen=True)
class Line:
    """One source line (1-based number) with surrounding whitespace stripped."""

    number: int
    text: str


def classify_artifacts(raw_lines: list[str]) -> dict[int, str]:
    """Return {line_number: artifact_kind} for lines that are not plan text."""
    artifacts: dict[int, str] = {}
    in_toc = False
    for number, raw in enumerate(raw_lines, start=1):
        text = raw.strip()
        if in_toc:
            # Match the raw line: a wrapped entry keeps only its trailing tab.
            if not text or _TOC_ENTRY.search(raw.rstrip("\r\n")):
                if text:
                    artifacts[number] = TOC
                continue
            in_toc = False
        if not text:
            continue
        if _TOC_HEADER.match(text):
            artifacts[number] = TOC
            in_toc = True
        elif _PAGE_NUMBER.match(text):
            artifacts[number] = PAGE_NUMBER
        elif _URL.match(text):
            artifacts[number] = URL
    return artifacts


def body_lines(raw_text: str) -> tuple[list[Line], dict[int, str]]:
    """Non-blank, non-artifact lines in order, and the artifacts that were dropped."""
    raw_lines = raw_text.splitlines()
    artifacts = classify_artifacts(raw_lines)
    lines = [
        Line(n, raw.strip())
        for n, raw in enumerate(raw_lines, start=1)
        if raw.strip() and n not in artifacts
    ]
    return lines, artifacts


_ASCII_WORD = re.compile(r"[A-Za-z0-9%]")
# A space between a CJK character (or CJK punctuation) and a digit/letter is a PDF artifact.
_CJK = r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef\u2e80-\u2fdf“”‘’—…、]"
_SPACED_ARTICLE = re.compile(r"第 *\d(?: *\d)* *条")  # "第 1 0 条" in text taken from a PDF
_STRAY_SPACE = re.compile(rf"(?<={_CJK})[ \t\u3000]+(?=[0-9A-Za-z])|(?<=[0-9A-Za-z%])[ \t\u3000]+(?={_CJK})"
                          rf"|(?<={_CJK})[ \t\u3000]+(?={_CJK})")


def tidy_spaces(text: str) -> str:
    """Remove stray spaces around numbers and between CJK characters; keep spaces between Latin words."""
    text = _SPACED_ARTICLE.sub(lambda m: m.group(0).replace(" ", ""), text)
    return _STRAY_SPACE.sub("", text)


def join_wrapped(parts: list[str]) -> str:
    """Join lines of one paragraph; a space survives only between two Latin/digit characters."""
    out = ""
    for part in parts:
        if out and _ASCII_WORD.match(out[-1]) and _ASCII_WORD.match(part[0]):
            out += " "
        out += part
    return tidy_spaces(out)


def ends_paragraph(text: str) -> bool:
    return text.endswith(PARAGRAPH_END)


def normalize_for_matching(text: str) -> str:
    """NFKC (full-width -> half-width, ⼀ -> 一), no whitespace: for comparing, never for display."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def split_sentences(text: str) -> list[str]:
    """Split at 。；！？ keeping the punctuation; whitespace-only pieces are dropped."""
    return [s for s in SENTENCE_END.split(text) if s.strip()]
