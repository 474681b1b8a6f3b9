"""When to refuse: each refusal is a named rule that needs evidence.

A question is refused only when
- `no_hits`: nothing was retrieved;
- `off_topic`: none of its content words occurs in the searched documents and
  no clause is semantically close (greetings, gibberish, weather);
- `constraint`: it names a place or organisation, a year or a figure that the
  searched documents verifiably do not contain (a year counts as covered when it
  lies in a document's period);
- `unknown_name`: it names something jieba cannot cut into known words (a
  company such as "某电科技") that occurs in no searched document;
- `weak_retrieval`: the best clause is neither close in meaning nor covers
  the question's key words (thresholds calibrated on the dev split);
- `no_document`: it asks about a place's own document ("北京经开区的…规划") and no
  indexed document is about that place (a passing mention is not);
- `no_figure` (in `rag.answer`): a "how much" question whose best sentences give
  no figure at all.
The absence of an ordinary word is never a reason: users paraphrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jieba

from .catalog import DocumentInfo
from .cleaning import normalize_for_matching
from .index import KnowledgeIndex, documents_text
from .keywords import STOPWORDS, normalize, pos_cut, variants
from .question import DOCUMENT_KINDS, QuestionAnalysis
from .retrieve import Hit
from .vocabulary import COUNTRY_WORDS, document_pinyin, gazetteer_pinyin, is_place

REFUSAL_PREFIX = "文件中未找到"
# Retrieval strength below which a question is not answered (calibrated on the dev split):
# cosine of the best clause, and share of the question's keyword weight it covers.
MIN_DENSE = 0.80
MIN_COVERAGE = 0.34
ENGLISH_DENSE_MARGIN = 0.06  # cross-language similarities run lower
OFF_TOPIC_DENSE = 0.88  # a question sharing no word with the documents needs this much similarity
ENGLISH_OFF_TOPIC_DENSE = 0.85  # an English question with no glossary word needs this much
_FUNCTION_CHARS = set("的了和与及或在是对为以等有上下把被将从由其该这那之于并而也都就又各个年月日元亿万吗呢吧啊么请问你我他她它们"
                      "要会能可应给让向")
# Single characters of these parts of speech are ordinary words, never pieces of a name.
_NOT_NAME_POS = {"v", "vd", "vg", "d", "dg", "m", "mq", "q", "r", "rr", "rz", "p", "c", "u", "uj", "ul", "uz", "ud",
                 "ug", "uv", "y", "e", "o", "zg", "a", "ad", "ag", "an", "z"}


def refusal_text(what_zh: str, what_en: str, english: bool) -> str:
    if english:
        return (f"{REFUSAL_PREFIX} (not found in the plans): the documents do not answer this question "
                f"({what_en}). The closest clauses are listed below.")
    return f"{REFUSAL_PREFIX}{what_zh}。以下列出最接近的条款供参考。"


def _year_covered(year: str, scope: list[str], documents: list[DocumentInfo], text_norm: str) -> bool:
    """A year is covered when a searched document says it, or it lies in a searched plan's period."""
    if year in text_norm:
        return True
    return any(d.period and d.period[0] <= int(year) <= d.period[1] for d in documents if d.doc_id in scope)


def _place_covered(name: str, scope: list[str], documents: list[DocumentInfo]) -> bool:
    """A broader region of a searched document ("广东" for a Shenzhen plan) is covered."""
    n = normalize(name)
    return n in COUNTRY_WORDS or any(n in normalize(d.region or "") or n in normalize(d.issuer or "")
                                     for d in documents if d.doc_id in scope)


def _latin_covered(name: str, index: KnowledgeIndex, scope: list[str], text: str) -> bool:
    """An English name is covered when the documents write it, or write a name spelled so in
    pinyin; a name that spells no Chinese place ("Hong Kong", "Nobel") cannot be checked, so it
    is never a reason to refuse."""
    n = name.lower().removesuffix("'s").replace("-", "")
    if n in text:
        return True
    places = gazetteer_pinyin().get(n, frozenset()) | gazetteer_pinyin().get(n + "shi", frozenset())
    if not places:
        return True
    if any(normalize(p) in text for p in places):
        return True
    texts = index.normalized_doc_texts
    spellings = set().union(*(document_pinyin(t) for d, t in texts.items() if d in scope)) if scope else set()
    return any(p == n or (len(n) >= 4 and p.startswith(n)) for p in spellings)


def _hits_text(hits: list[Hit]) -> str:
    """The retrieved clauses with their headings, normalized for matching."""
    return normalize(normalize_for_matching(" ".join(h.chunk.section_path + h.chunk.text for h in hits)))


def check_constraints(qa: QuestionAnalysis, hits: list[Hit], index: KnowledgeIndex, documents: list[DocumentInfo],
                      scope: list[str] | None) -> tuple[str, str] | None:
    """(Chinese, English) name of the first constraint of the question the searched documents lack."""
    scope = scope or [d.doc_id for d in documents]
    text = documents_text(index, scope, matching=True)
    hit_text = _hits_text(hits)
    for name in qa.named:
        if re.fullmatch(r"[A-Za-z\-']+", name):
            if not _latin_covered(name, index, scope, text):
                return f"“{name}”", f"nothing about {name}"
        elif normalize(normalize_for_matching(name)) not in text and not _place_covered(name, scope, documents):
            return f"“{name}”", f"nothing about {name}"
    for year in qa.years:
        if not _year_covered(year, scope, documents, text):
            return f"{year}年的相关内容", f"nothing for the year {year}"
    for fig in qa.figures:
        if normalize(normalize_for_matching(fig)) not in hit_text and not _within_stated_tiers(fig, hit_text):
            return f"“{fig}”这一数字", f"the figure {fig} does not appear"
    return None


_MONEY = re.compile(r"(\d+(?:\.\d+)?)\s*(亿|万)")


def _within_stated_tiers(figure: str, text: str) -> bool:
    """An amount the asker gives of their own case ("我们一年投3000万，能补多少") is answered by
    tiers that bracket it ("1000万元（含）至5000万元…"), not by the same figure written out."""
    value = _MONEY.fullmatch(figure.removesuffix("元"))
    if not value:
        return False
    scale = {"亿": 1e8, "万": 1e4}
    amount = float(value.group(1)) * scale[value.group(2)]
    stated = [float(n) * scale[u] for n, u in _MONEY.findall(text)]
    return any(x <= amount for x in stated) and any(x >= amount for x in stated)


# Words naming a document of one's own: "北京经开区的集成电路产业规划" asks for 北京's plan.
_DOCUMENT_WORD = re.compile("|".join(DOCUMENT_KINDS))
PLACE_MENTIONS = 3  # a place a document names this often is one it is about, not one it lists in passing


def _names_of(doc: DocumentInfo) -> str:
    """What names the document itself: its region, title and issuer, normalized for matching."""
    return normalize(normalize_for_matching(f"{doc.region or ''}{doc.title or ''}{doc.issuer or ''}"))


def _place_stem(bare: str) -> str:
    """"上海市" -> "上海": a document is about where its text says 上海."""
    return re.sub(r"(?<=..)[省市区县]$", "", bare)


def is_about(name: str, doc: DocumentInfo, index: KnowledgeIndex) -> bool:
    """Is the document about `name`: an organisation it names anywhere (an upload may write its
    issuer's full name once and its short name once), or a place it is about (its region or title,
    or one it names again and again)?"""
    bare = normalize(normalize_for_matching(name))
    if not is_place(bare):
        return bare in _names_of(doc) or bare in documents_text(index, [doc.doc_id], matching=True)
    bare = _place_stem(bare)
    return bare in _names_of(doc) or documents_text(index, [doc.doc_id], matching=True).count(bare) >= PLACE_MENTIONS


def no_such_document(qa: QuestionAnalysis, hits: list[Hit], index: KnowledgeIndex,
                     documents: list[DocumentInfo]) -> str | None:
    """The place whose own document the question asks about ("北京经开区的…规划有什么目标") when no
    indexed document is about that place: a plan that names 北京 once, among cities to court, is
    not 北京's plan.  Checked on the documents' names, then on the retrieved documents' text."""
    retrieved = {h.chunk.doc_id for h in hits}
    for name in qa.named:
        bare = normalize(normalize_for_matching(name))
        at = qa.text.find(name)
        if at < 0 or not is_place(bare) or bare in COUNTRY_WORDS:
            continue
        asked = re.split(r"[，,。？?；;]", qa.text[at + len(name):])[0]
        if not _DOCUMENT_WORD.search(asked) or any(_place_stem(bare) in _names_of(d) for d in documents):
            continue
        if not any(is_about(name, d, index) for d in documents if d.doc_id in retrieved):
            return name
    return None


def outside_the_filter(route, scope: list[str] | None, hits: list[Hit], index: KnowledgeIndex,
                       documents: list[DocumentInfo]) -> str | None:
    """The place the question names by another document's name when the caller searched only
    documents not about it: "北京对…给多少补助" asked of a 上海 measure is not answered by 上海's
    subsidy.  None when a searched document is about the place or its best clauses name it."""
    if not scope or not route.named or set(route.documents) & set(scope):
        return None
    hit_text = _hits_text(hits)
    for doc_id in route.documents:
        alias = route.aliases.get(doc_id, "")
        bare = normalize(normalize_for_matching(alias))
        if not is_place(bare) or bare in COUNTRY_WORDS or _place_stem(bare) in hit_text:
            continue
        if not any(is_about(alias, d, index) for d in documents if d.doc_id in scope):
            return alias
    return None


# Words that close a company's or institution's name: "中芯"+"国际", "长电"+"科技".
_ORG_WORD = re.compile(r"^(科技|国际|集团|公司|股份|电子|微电子|半导体|存储|光电|实业|控股|技术|信息|智能|芯片|研究院|大学)")


@dataclass(frozen=True)
class _Token:
    word: str
    flag: str


def unknown_names(question: str, index: KnowledgeIndex, scope: list[str] | None) -> list[str]:
    """Company or institution names the documents never mention, recognised without a list:
    a word jieba's dictionary does not know ("中芯", guessed by its HMM) or a run of single
    characters ("台积"+"电"), standing before a word that ends names ("国际", "科技"), or
    three characters long on its own; and absent from every searched document."""
    text = documents_text(index, scope)
    toks = [_Token(w, f) for w, f in pos_cut(normalize(question))] + [_Token("", "x")]
    out = []
    i = 0
    while i < len(toks) - 1:
        w = toks[i]
        if re.fullmatch(r"[\u4e00-\u9fa5]+", w.word) and not set(w.word) & _FUNCTION_CHARS \
                and (len(w.word) == 1 or w.word not in STOPWORDS) and w.flag not in _NOT_NAME_POS:
            j, piece = i, ""
            while j < len(toks) - 1 and (len(toks[j].word) == 1 or jieba.dt.FREQ.get(toks[j].word) is None) \
                    and re.fullmatch(r"[\u4e00-\u9fa5]+", toks[j].word) and not set(toks[j].word) & _FUNCTION_CHARS \
                    and toks[j].flag not in _NOT_NAME_POS and toks[j].word not in ("里", "内", "外"):
                piece += toks[j].word
                j += 1
            if len(piece) >= 2 and piece not in text:
                nxt = toks[j].word
                if _ORG_WORD.match(nxt) or len(piece) >= 3:
                    out.append(piece + (nxt if _ORG_WORD.match(nxt) else ""))
            i = max(j, i + 1)
        else:
            i += 1
    return out


def off_topic(qa: QuestionAnalysis, hits: list[Hit], index: KnowledgeIndex, scope: list[str] | None,
              names_a_document: bool = False) -> bool:
    """No content word of the question occurs in the searched documents, and nothing is close in meaning.
    Naming a document is not a topic: "明天某某区会下雨吗" names a plan's place and asks the weather;
    only a question that names a document and asks nothing else ("某某区那个规划") is never off topic."""
    best_dense = max((h.dense for h in hits), default=0.0)
    if best_dense >= (ENGLISH_OFF_TOPIC_DENSE if qa.english else OFF_TOPIC_DENSE):
        return False
    text = documents_text(index, scope)
    # a place is a constraint, not a topic: "北京今天天气怎么样" has no topic the documents share
    words = [k for k in qa.keywords if not re.fullmatch(r"\d+", k) and not is_place(k)]
    if names_a_document and (not words or qa.english):  # the glossary lacks many English words
        return False
    return not any(v in text for k in words for v in variants(normalize(k)))
