"""Which documents a question is about, and whether it compares several."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .catalog import DocumentInfo

_COMPARE = re.compile(r"比较|对比|区别|不同|差异|异同|相比|相较|分别|各自|哪个更|哪一个|哪家|谁更|两地|三地|"
                      r"\bcompare\b|\bcomparison\b|\bdiffer|\bversus\b|\bvs\.?\b|\bboth\b", re.I)


@dataclass
class Route:
    documents: list[str]  # named documents, in order of first mention
    compare: bool
    aliases: dict[str, str] = field(default_factory=dict)  # doc_id -> the name as written in the question

    @property
    def named(self) -> bool:
        return bool(self.documents)


def _is_latin(alias: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9 .\-]+", alias))


def _find(alias: str, text: str) -> int:
    """Position of `alias` in `text` (-1 if absent); Latin aliases match whole words, any case."""
    if _is_latin(alias):
        m = re.search(rf"(?<![A-Za-z]){re.escape(alias)}(?![A-Za-z])", text, re.I)
        return m.start() if m else -1
    return text.find(alias)


def _words(question: str) -> set[str]:
    from .keywords import segment

    return set(segment(question))


def _is_word(alias: str, words: set[str]) -> bool:
    """A weak alias is a generic word: it names a plan only as a word of its own, never inside
    another ("园区" in "产业园区", "国家" in "国家级")."""
    return _is_latin(alias) or alias in words


def mentions(question: str, documents: list[DocumentInfo]) -> list[tuple[str, str, int]]:
    """(doc_id, alias as written, position) for each named document, in order of mention.

    Weak aliases count only when no strong alias matched anywhere, and only as whole words.
    """
    found: dict[str, tuple[str, int]] = {}
    for attr in ("aliases", "weak_aliases"):
        words = _words(question) if attr == "weak_aliases" else None
        for doc in documents:
            hits = [(p, a) for a in getattr(doc, attr) if (p := _find(a, question)) >= 0
                    and (words is None or _is_word(a, words))]
            if hits:
                pos, alias = min(hits, key=lambda h: (h[0], -len(h[1])))
                found[doc.doc_id] = (question[pos:pos + len(alias)], pos)
        if found:
            break
    return sorted(((d, a, p) for d, (a, p) in found.items()), key=lambda m: m[2])


def route(question: str, documents: list[DocumentInfo]) -> Route:
    """Documents the question names, and whether it compares them."""
    found = mentions(question, documents)
    ordered = [d for d, _, _ in found]
    return Route(documents=ordered, aliases={d: a for d, a, _ in found},
                 compare=len(ordered) >= 2 or (len(ordered) != 1 and bool(_COMPARE.search(question))))
