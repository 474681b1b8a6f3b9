"""Turn a follow-up ("那天河区呢？") into a standalone question before retrieval.

Only elliptical questions are rewritten.  A question that names a place of its
own (any document's alias, or any place in the gazetteer: "广州市…") stands
alone, so no stale place is glued onto it.  Document names come from the
documents (uploads included, see `rag.vocabulary`).
"""

from __future__ import annotations

import re

from .catalog import DocumentInfo
from .keywords import tokens
from .routing import mentions
from .question import YEAR, named_words, known_names

_FOLLOWUP = re.compile(r"^(那|那么|那末|还有|另外|同样|而|and\b|what about|how about|and what about)|呢[？?]?$|^它|^其", re.I)
# Words pointing back at the previous question's topic: "某某区在这方面的目标呢？" asks the same for 某某区.
_ANAPHOR = re.compile(r"这方面|这一方面|这个方面|这块|这一块|这项|这一项|此项|同样的|相应的|in this (area|respect)|the same", re.I)
_PRONOUNS = {"它", "它们", "其", "该", "这个", "那个", "这", "那", "呢", "那么", "还有", "另外", "同样", "about", "how"}


def last_user_message(history: list[dict] | None) -> str | None:
    for turn in reversed(history or []):
        if turn.get("role") == "user" and str(turn.get("content", "")).strip():
            return str(turn["content"]).strip()
    return None


_ACROSS_PLANS = re.compile(r"哪些文件|哪个文件|哪份|哪几份|各地|各个|所有|全部|哪些地方|哪个地方|哪里|which (plan|document|city)s?",
                           re.I)


def is_followup(question: str) -> bool:
    q = question.strip()
    return bool(_FOLLOWUP.search(q)) or len(q) <= 8


def names_own_place(question: str, documents: list[DocumentInfo]) -> bool:
    """Names a document, or a place or organisation of its own ("广州市的目标呢？")."""
    return bool(mentions(question, documents)) or bool(named_words(question, known_names(documents)))


def continues_topic(question: str, documents: list[DocumentInfo]) -> bool:
    """A question in a conversation that names no plan or place and does not ask across plans
    ("主营业务收入超百亿的企业要有几家？" after a question about one district) stays with the plan discussed."""
    return not names_own_place(question, documents) and not _ACROSS_PLANS.search(question)


def _swap(text: str, old: str, new: str) -> str:
    """Replace one place name by another, without doubling a suffix ("天河区" -> "南沙区", not "…区区")."""
    out = text.replace(old, new, 1)
    for suffix in ("区", "市", "县", "省"):
        out = out.replace(new + suffix, new) if new.endswith(suffix) else out
    return out


def _names(found) -> str:
    """The places of `mentions`, each once ("在广州…广州市…" names 广州 once, not "广州广州")."""
    out: list[str] = []
    for _, alias, _ in found:
        if not any(alias in a or a in alias for a in out):
            out.append(alias)
    return "".join(out)


def rewrite_followup(question: str, history: list[dict] | None, documents: list[DocumentInfo]) -> str:
    """Standalone form of `question` given the conversation; unchanged when it already stands alone."""
    previous = last_user_message(history)
    if not previous:
        return question
    if not is_followup(question):
        before = mentions(previous, documents)
        if len(before) == 1 and continues_topic(question, documents):
            return before[0][1] + question.strip()
        return question
    now = mentions(question, documents)
    before = mentions(previous, documents)
    content = [t for t in tokens(question) if t not in _PRONOUNS
               and not any(t in a.lower() or a.lower() in t for _, a, _ in now)]
    if now and content and not (before and _ANAPHOR.search(question)):
        return question  # names its own place and asks its own thing: it stands alone
    if not now and named_words(question, known_names(documents)):
        return question  # a place no document covers: answered (or refused) on its own
    years = YEAR.findall(question)
    if not now and years and all(YEAR.fullmatch(t) or t == "年" for t in content):
        # "那2023年呢？": the same question for another year
        old_years = YEAR.findall(previous)
        if old_years:
            return previous.replace(old_years[0], years[0], 1)
    if now and before:
        # Same question about another place: swap the place names in order.
        rewritten = previous
        for (_, old, _), (_, new, _) in zip(before, now):
            rewritten = _swap(rewritten, old, new)
        if len(now) > len(before):
            rewritten = "、".join(a for _, a, _ in now[len(before):]) + rewritten
        for _, old, _ in before[len(now):]:
            # "甲市和乙市…分别…？" then "那丙区呢？": the question is now about 丙区 alone
            rewritten = re.sub(rf"[和与及、]?{re.escape(old)}|{re.escape(old)}[和与及、]?", "", rewritten, count=1)
        if len(now) == 1 and len(before) > 1:
            rewritten = re.sub(r"分别|各自|有什么不同|有何不同|有什么区别", "", rewritten)
        return rewritten
    if now:
        return "".join(a for _, a, _ in now) + previous
    if before and content:
        # A new aspect of the same document(s): keep the place, drop the old question.
        return _names(before) + re.sub(r"^(那么|那|还有|另外|它的?|其)", "", question.strip())
    return f"{previous} {question.strip()}"
