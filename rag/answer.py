"""The extractive answerer: cited sentences from the retrieved clauses, or a plain refusal.

No language model: it picks the sentences of the top clauses that best cover
the question's key terms (weighted by IDF), prefers sentences with figures for
"how much" questions, and writes every sentence with a [n] marker pointing at
the clause it was copied from.  It refuses when retrieval is weak, or when the
question names a constraint (a year, a place, an organisation, a figure) that no
retrieved clause contains, and then still lists the closest clauses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import jieba.posseg as pseg

from .catalog import DocumentInfo
from .cleaning import normalize_for_matching, split_sentences
from .index import KnowledgeIndex
from .keywords import STOPWORDS, normalize, tokens, variants
from .retrieve import Hit, RetrievalResult

REFUSAL_PREFIX = "文件中未找到"
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
_FIGURE = re.compile(r"(\d+(?:\.\d+)?)\s*(%|％|亿元|万元|亿|万|家|个|名|人|亩|纳米|英寸|项|条)")
_QUANTITY = re.compile(r"多少|几[家个名项条所]|比例|规模|目标|数量|金额|产值|营收|收入|人数|占比|增长|"
                       r"how (many|much)|target|revenue|percentage|number of", re.I)
_LIST = re.compile(r"哪些|有什么|有哪些|包括|主要措施|举措|任务|工程|重点|what are|which|list", re.I)
_HAS_NUMBER = re.compile(r"\d")
_ENGLISH = re.compile(r"^[\x00-\x7f\s]+$")
# Proper-noun parts of speech whose absence from the clauses means "the plans don't say".
_NAMED_POS = {"ns", "nt", "nr", "nrt", "nz"}
# Named words that are generic in this corpus and must not trigger a refusal.
_GENERIC_NAMED = {"中国", "我国", "国家", "全国", "国内", "国际", "全球", "世界", "园区", "集成电路", "长三角",
                  "中央", "国务院", "政府", "市", "省", "区", "科技", "工信", "产业园"}

# Refusal thresholds on retrieval strength (cosine of the best clause; share of
# the question's keyword weight that the best clause covers).  Tuned on the gold set.
MIN_DENSE = 0.80
MIN_COVERAGE = 0.34


@dataclass
class Citation:
    n: int
    hit: Hit

    def to_dict(self) -> dict:
        return {"n": self.n, **self.hit.to_dict()}


@dataclass
class Answer:
    question: str
    answer: str
    refused: bool
    citations: list[Citation]
    reason: str = ""
    rewritten_question: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    backend: str = "extractive"

    def to_dict(self) -> dict:
        out = {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "citations": [c.to_dict() for c in self.citations],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "backend": self.backend,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.rewritten_question and self.rewritten_question != self.question:
            out["rewritten_question"] = self.rewritten_question
        return out


@dataclass
class QuestionAnalysis:
    text: str
    keywords: list[str]
    years: list[str]
    figures: list[str]
    named: list[str]  # proper nouns (places, organisations) to find in the clauses
    quantity: bool
    listing: bool
    english: bool


def analyze(question: str, documents: list[DocumentInfo]) -> QuestionAnalysis:
    known = set()
    for d in documents:
        known.update(normalize(a) for a in d.aliases + d.weak_aliases)
        known.update(normalize(x) for x in (d.region, d.issuer))
    named = []
    for word, flag in pseg.cut(question):
        w = normalize(word.strip())
        if flag in _NAMED_POS and len(w) >= 2 and w not in _GENERIC_NAMED and w not in STOPWORDS:
            if not any(w in k or k in w for k in known if k):
                named.append(word.strip())
    return QuestionAnalysis(
        text=question,
        keywords=tokens(question),
        years=_YEAR.findall(question),
        figures=["".join(m) for m in _FIGURE.findall(question)],
        named=named,
        quantity=bool(_QUANTITY.search(question)),
        listing=bool(_LIST.search(question)),
        english=bool(_ENGLISH.match(question)),
    )


def _contains(haystack_norm: str, needle: str) -> bool:
    return normalize_for_matching(needle) in haystack_norm


def _coverage(keywords: list[str], text: str, index: KnowledgeIndex) -> float:
    """Share of the question's keyword IDF weight present in `text` (synonyms count)."""
    if not keywords:
        return 0.0
    text_n = normalize(text)
    total = sum(index.idf(k) for k in set(keywords)) or 1.0
    return sum(index.idf(k) for k in set(keywords) if any(v in text_n for v in variants(k))) / total


# A figure that is not just a year: "2500亿元", "15%", "10家", "5000名".
_NON_YEAR_FIGURE = re.compile(r"\d+(?:\.\d+)?\s*(?:%|％|亿|万|家|个|名|人|项|条|纳米|英寸|亩|倍|块|所|批)")


def check_constraints(qa: QuestionAnalysis, hits: list[Hit]) -> str | None:
    """Name the first constraint of the question that no retrieved clause holds."""
    corpus = normalize_for_matching(" ".join(h.chunk.section_path + h.chunk.text for h in hits))
    for name in qa.named:
        if not _contains(corpus, name):
            return f"“{name}”"
    for year in qa.years:
        if year not in corpus:
            return f"{year}年的相关内容"
    for fig in qa.figures:
        if not _contains(corpus, fig):
            return f"“{fig}”这一数字"
    return None


_PHRASE = re.compile(r"[，,：:（）()]")


def _sentence_score(sentence: str, context: str, qa: QuestionAnalysis, index: KnowledgeIndex) -> float:
    """How well one sentence answers the question.

    Mixes the sentence's keyword coverage, its clause's, and its best phrase
    (between commas): a phrase holding the asked-about terms *and* a figure is
    what "how much" questions want ("封测业产值超500亿").
    """
    best_phrase = 0.0
    for phrase in _PHRASE.split(sentence):
        if not phrase.strip():
            continue
        value = _coverage(qa.keywords, phrase, index)
        if qa.quantity and value > 0 and _NON_YEAR_FIGURE.search(phrase):
            value += 0.3
        best_phrase = max(best_phrase, value)
    score = (0.35 * _coverage(qa.keywords, sentence, index) + 0.25 * _coverage(qa.keywords, context, index)
             + 0.4 * best_phrase)
    if qa.quantity and _NON_YEAR_FIGURE.search(sentence):
        score += 0.1
    if len(normalize_for_matching(sentence)) < 12:  # bare headings such as "(一) 发展现状。"
        score -= 0.5
    return score


@dataclass
class _Pick:
    hit_rank: int
    sentence_index: int
    sentence: str
    score: float


def _best_sentences(hits: list[Hit], qa: QuestionAnalysis, index: KnowledgeIndex,
                    max_sentences: int, max_hits: int = 3) -> list[_Pick]:
    picks: list[_Pick] = []
    for rank, hit in enumerate(hits[:max_hits]):
        context = hit.chunk.section_path + hit.chunk.text
        for i, sent in enumerate(split_sentences(hit.chunk.text)):
            prior = 0.1 / (rank + 1)
            picks.append(_Pick(rank, i, sent.strip(), _sentence_score(sent, context, qa, index) + prior))
    if not picks:
        return []
    picks.sort(key=lambda p: -p.score)
    best = picks[0].score
    chosen = [picks[0]]
    for p in picks[1:]:
        if len(chosen) >= max_sentences:
            break
        if qa.quantity and not _NON_YEAR_FIGURE.search(p.sentence):
            continue
        if p.score >= best * 0.85 and p.score > 0.3 and p.sentence not in {c.sentence for c in chosen}:
            chosen.append(p)
    chosen.sort(key=lambda p: (p.hit_rank, p.sentence_index))
    return chosen


def _compose(picks: list[_Pick], hits: list[Hit], qa: QuestionAnalysis,
             label_docs: bool) -> tuple[str, list[Citation]]:
    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for p in picks:
        if p.hit_rank not in numbers:
            numbers[p.hit_rank] = len(numbers) + 1
            citations.append(Citation(numbers[p.hit_rank], hits[p.hit_rank]))
        n = numbers[p.hit_rank]
        sentence = p.sentence
        if not sentence.endswith(("。", "；", "！", "？", ".", ";")):
            sentence += "。"
        parts.append((sentence[:-1], sentence[-1], n))
    lines = []
    current_doc = None
    for (body, end, n) in parts:
        doc = citations[n - 1].hit.chunk
        prefix = ""
        if label_docs and doc.doc_id != current_doc:
            prefix = f"{'According to' if qa.english else '根据'}《{doc.doc_title}》{':' if qa.english else '：'}"
            current_doc = doc.doc_id
        lines.append(f"{prefix}{body}[{n}]{end}")
    return ("\n".join(lines) if label_docs else "".join(lines)), citations


def refusal_text(what: str, english: bool) -> str:
    if english:
        return f"{REFUSAL_PREFIX}：the plans in the corpus do not answer this ({what} not found). The closest clauses are listed below."
    return f"{REFUSAL_PREFIX}{what}。以下列出最接近的条款供参考。"


def answer_question(question: str, retrieval: RetrievalResult, index: KnowledgeIndex,
                    documents: list[DocumentInfo], min_dense: float = MIN_DENSE,
                    min_coverage: float = MIN_COVERAGE) -> Answer:
    """Compose a cited extractive answer, or refuse with the closest clauses."""
    hits = retrieval.hits
    qa = analyze(question, documents)
    closest = [Citation(i + 1, h) for i, h in enumerate(hits[:3])]
    if not hits:
        return Answer(question, refusal_text("相关条款", qa.english), True, [], reason="no_hits")

    missing = check_constraints(qa, hits)
    if missing:
        return Answer(question, refusal_text(missing, qa.english), True, closest, reason="constraint")

    best_dense = max(h.dense for h in hits)
    best_cov = max(_coverage(qa.keywords, h.chunk.section_path + h.chunk.text, index) for h in hits)
    if best_dense < min_dense and best_cov < min_coverage:
        return Answer(question, refusal_text("与该问题直接相关的内容", qa.english), True, closest, reason="weak_retrieval")

    max_sentences = 3 if qa.listing else (1 if qa.quantity else 2)
    if retrieval.route.compare and retrieval.searched_documents and len(retrieval.searched_documents) >= 2:
        picks_all: list[_Pick] = []
        for doc_id in retrieval.searched_documents:
            doc_hits = [(i, h) for i, h in enumerate(hits) if h.chunk.doc_id == doc_id]
            if not doc_hits:
                continue
            sub = [h for _, h in doc_hits]
            for p in _best_sentences(sub, qa, index, max_sentences=2, max_hits=3):
                picks_all.append(_Pick(doc_hits[p.hit_rank][0], p.sentence_index, p.sentence, p.score))
        text, citations = _compose(picks_all, hits, qa, label_docs=True)
    else:
        picks = _best_sentences(hits, qa, index, max_sentences)
        text, citations = _compose(picks, hits, qa, label_docs=True)
    if not citations:
        return Answer(question, refusal_text("相关条款", qa.english), True, closest, reason="no_sentence")
    return Answer(question, text, False, citations)
