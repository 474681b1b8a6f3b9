"""The extractive answerer: cited sentences from the retrieved clauses, or a plain refusal.

No language model: it picks the sentences of the top clauses that best cover
the question's key terms (weighted by IDF, with the plans' synonyms), prefers
phrases holding a figure for "how much" questions, and writes every sentence
with a [n] marker pointing at the clause it was copied verbatim from.  A
question about a whole section ("保障措施有哪些？") is answered with that
section's items, each cited.  It refuses when retrieval is weak, or when the
question names a constraint (a year outside the plan, a place, an
organisation, a figure) that no retrieved clause holds, and then still lists
the closest clauses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import jieba.posseg as pseg

from .catalog import DocumentInfo
from .cleaning import normalize_for_matching, split_sentences
from .index import KnowledgeIndex
from .keywords import STOPWORDS, english_terms, key_terms, normalize, variants
from .retrieve import Hit, RetrievalResult

REFUSAL_PREFIX = "文件中未找到"
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
_FIGURE = re.compile(r"(\d+(?:\.\d+)?)\s*(%|％|亿元|万元|亿|万|家|个|名|人|亩|纳米|英寸|项|条)")
# A figure that is not just a year: "2500亿元", "15%", "10家", "5000名".
_NON_YEAR_FIGURE = re.compile(r"(?:\d+(?:\.\d+)?|[一两二三四五六七八九十百千万]+)\s*(?:余|多)?\s*"
                              r"(?:%|％|亿|万|家|个|名|人|项|条|纳米|英寸|亩|倍|块|所|批|次|元|位)|\d{5,}|\d+-\d+家")
_QUANTITY = re.compile(r"多少|(?<!哪)几[家个名项条所]|比例|规模|目标|数量|金额|产值|产量|营收|收入|人数|占比|增长|"
                       r"how (many|much)|target|revenue|percentage|number of", re.I)
_LIST = re.compile(r"哪些|有什么|有哪些|包括|包含|主要措施|举措|哪[一二两三四五六七八九十几]+[个项条家类种方]|"
                   r"what are|which|list", re.I)
_SUMMARY = re.compile(r"哪些|有什么|包括|包含|主要|概括|总结|介绍|内容|what (are|does)|summar|main", re.I)
_ENGLISH = re.compile(r"^[\x00-\x7f\s’‘“”]+$")
# Asks for a number, so an answer without one in the asked-about phrase does not answer it.
_ASKS_NUMBER = re.compile(r"多少|(?<!哪)几[家个名项条所年次]|比例|多大|多高|多长|哪一年|哪年|何时|标准是|"
                          r"how (many|much|large|big)|what (percentage|share|proportion)|which year|when", re.I)
# A plan's goals and its review of the past live in different sections.
_TARGET = re.compile(r"目标|希望|力争|要达到|要做到|将达到|到20\d\d年|预期|预计|计划|target|aim|goal|by 20\d\d", re.I)
_REVIEW = re.compile(r"十一五|回顾|目前|现状|现在|现有|已经|已有|实现了|过去|去年|成效|取得|情况", re.I)
_RESPONSIBLE = re.compile(r"负责|责任单位|责任部门|牵头|哪些部门|哪些单位|哪个部门|who is responsible|responsible", re.I)
_HOW = re.compile(r"如何|怎么|怎样|做了什么|做了哪些|采取|安排|部署|举措|措施|方面|how (does|do|did|will|is)|"
                  r"what (measures|steps|actions)", re.I)
_NOTE_SENTENCE = re.compile(r"^[（(].*(负责|责任单位|责任部门)")
_HEADING_SENTENCE = re.compile(r"^\s*([（(][一二三四五六七八九十\d]+[）)]|[一二三四五六七八九十]+、|\d+[、.．])")
_PHRASE = re.compile(r"[，,：:（）()]")
_UNIT_WORD = re.compile(r"[亿万千百]?[元个家名人项条次位]?|%|亿元|万元|万人|个人")
# Proper-noun parts of speech whose absence from the clauses means "the plans don't say".
_NAMED_POS = {"ns", "nt", "nr", "nrt", "nz"}
# Named words that are generic in this corpus and must not trigger a refusal.
_GENERIC_NAMED = {"中国", "我国", "国家", "全国", "国内", "国际", "全球", "世界", "园区", "集成电路", "长三角",
                  "中央", "国务院", "政府", "市", "省", "区", "科技", "工信", "产业园", "上海市"}
# Capitalised English words that are not names of places or organisations.
_ENGLISH_COMMON = set("""
what which who whom whose when where why how is are was were do does did the a an of in on for to by and or
according plan plans ic integrated circuit circuits industry industrial park district city province government
china chinese national ministry information technology five year five-year twelfth 12th fyp target targets
revenue talent talents policy policies measures action program programme by semiconductor semiconductors
please tell me list give compare between about i we you they it its their there
""".split())

# Refusal thresholds on retrieval strength (cosine of the best clause; share of
# the question's keyword weight that the best clause covers).
# A further sentence joins the answer when it scores this close to the best one: from the
# same clause freely, from another clause (another citation) only when nearly as good.
SAME_CLAUSE_RATIO = 0.85
OTHER_CLAUSE_RATIO = 0.95
SECOND_WHOLE_CLAUSE_RATIO = 0.85
MIN_DENSE = 0.80
MIN_COVERAGE = 0.34
ENGLISH_DENSE_MARGIN = 0.06  # cross-language similarities run lower


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
    # Generative backends (rag.generate): whether the model's answer passed rag.verify
    # (False = this is the extractive fallback), why it fell back, how many sentences were cut.
    verified: bool | None = None
    fallback_reason: str | None = None
    dropped_sentences: int = 0
    generation: str | None = field(default=None, repr=False)  # raw model output, never sent to clients

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
        if self.verified is not None:
            out["verified"] = self.verified
        if self.fallback_reason:
            out["fallback_reason"] = self.fallback_reason
        if self.dropped_sentences:
            out["dropped_sentences"] = self.dropped_sentences
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
    summary: bool
    english: bool
    asks_number: bool = False
    target: bool = False
    review: bool = False
    responsible: bool = False
    how: bool = False


def _english_names(question: str, known: set[str]) -> list[str]:
    """Capitalised words of an English question that look like names we don't know."""
    out = []
    for m in re.finditer(r"[A-Za-z][A-Za-z\-]+", question):
        w = m.group(0)
        lw = w.lower().removesuffix("'s")
        sentence_start = not question[: m.start()].strip() or question[: m.start()].rstrip()[-1] in ".?!"
        if (not w[0].isupper() or w.isupper() or sentence_start or lw in _ENGLISH_COMMON
                or english_terms(lw) or any(lw in k or k in lw for k in known if k)):
            continue  # acronyms (MIIT, CPPCC), glossary words and known places are not unknown names
        out.append(w)
    return out


def analyze(question: str, documents: list[DocumentInfo]) -> QuestionAnalysis:
    known = set()
    for d in documents:
        known.update(normalize(a) for a in d.aliases + d.weak_aliases)
        known.update(normalize(x) for x in (d.region, d.issuer))
    english = bool(_ENGLISH.match(question))
    named = []
    for word, flag in pseg.cut(question):
        w = normalize(word.strip())
        if flag in _NAMED_POS and len(w) >= 2 and w not in _GENERIC_NAMED and w not in STOPWORDS:
            if not re.fullmatch(r"[a-z\-]+", w) and not any(w in k or k in w for k in known if k):
                named.append(word.strip())
    if english:
        named += _english_names(question, known)
    return QuestionAnalysis(
        text=question,
        # Place names are handled by routing; as keywords they would favour any sentence naming the place.
        keywords=(english_terms(question) if english else
                  [t for t in key_terms(question) if not any(t in k or k in t for k in known if len(k) >= 2)]),
        years=_YEAR.findall(question),
        figures=["".join(m) for m in _FIGURE.findall(question)],
        named=named,
        quantity=bool(_QUANTITY.search(question)),
        listing=bool(_LIST.search(question)),
        summary=bool(_SUMMARY.search(question)),
        english=english,
        asks_number=bool(_ASKS_NUMBER.search(question)),
        target=bool(_TARGET.search(question)),
        review=bool(_REVIEW.search(question)),
        responsible=bool(_RESPONSIBLE.search(question)),
        how=bool(_HOW.search(question)),
    )


def _contains(haystack_norm: str, needle: str) -> bool:
    return normalize_for_matching(needle).lower() in haystack_norm.lower()


SYNONYM_WEIGHT = 0.7  # a synonym is good evidence, the question's own word better


def _coverage(keywords: list[str], text: str, index: KnowledgeIndex) -> float:
    """Share of the question's keyword IDF weight present in `text` (synonyms count less)."""
    if not keywords:
        return 0.0
    text_n = normalize(text)
    total = sum(index.idf(k) for k in set(keywords)) or 1.0
    found = 0.0
    for k in set(keywords):
        if normalize(k) in text_n:
            found += index.idf(k)
        elif any(v in text_n for v in variants(k)):
            found += SYNONYM_WEIGHT * index.idf(k)
    return found / total


def _year_covered(year: str, hits: list[Hit], documents: list[DocumentInfo], text_norm: str) -> bool:
    """A year is covered when a retrieved clause says it, or it lies in a retrieved plan's period."""
    if year in text_norm:
        return True
    periods = {d.doc_id: d.period for d in documents if d.period}
    return any(periods.get(h.chunk.doc_id) and periods[h.chunk.doc_id][0] <= int(year) <= periods[h.chunk.doc_id][1]
               for h in hits)


def check_constraints(qa: QuestionAnalysis, hits: list[Hit], documents: list[DocumentInfo]) -> tuple[str, str] | None:
    """(Chinese, English) name of the first constraint of the question that no retrieved clause holds."""
    text = normalize_for_matching(" ".join(h.chunk.section_path + h.chunk.text for h in hits))
    for name in qa.named:
        if not _contains(text, name):
            return f"“{name}”", f"nothing about {name}"
    for year in qa.years:
        if not _year_covered(year, hits, documents, text):
            return f"{year}年的相关内容", f"nothing for the year {year}"
    for fig in qa.figures:
        if not _contains(text, fig):
            return f"“{fig}”这一数字", f"the figure {fig} does not appear"
    return None


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
    score = (0.3 * _coverage(qa.keywords, sentence, index) + 0.3 * _coverage(qa.keywords, context, index)
             + 0.4 * best_phrase)
    if qa.quantity and _NON_YEAR_FIGURE.search(sentence):
        score += 0.1
    for year in qa.years:
        if year in sentence:
            score += 0.1
    if qa.target and not qa.review and ("目标" in context or re.search(r"到20\d\d年|力争", sentence)):
        score += 0.1
    if qa.review and not qa.target and re.search(r"回顾|现状|成效|情况|目前", context):
        score += 0.1
    if qa.responsible and _NOTE_SENTENCE.match(sentence.strip()):
        score += 0.6
    bare = normalize_for_matching(sentence)
    if _HEADING_SENTENCE.match(sentence) and len(bare) < 24:
        score -= 0.5  # a heading title such as "(三) 落实环保配套措施。" answers nothing by itself
    if _NOTE_SENTENCE.match(sentence.strip()) and not qa.responsible:
        score -= 0.3  # the （责任单位：…） note answers only "who is responsible"
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
            prior = 0.15 / (rank + 1)
            picks.append(_Pick(rank, i, sent.strip(), _sentence_score(sent, context, qa, index) + prior))
    if not picks:
        return []
    if qa.asks_number:
        # A "how much" question is answered only by a phrase giving a figure for what was asked.
        supported = [p for p in picks if _number_support(p.sentence, qa, index)]
        picks = supported or picks
    picks.sort(key=lambda p: -p.score)
    best = picks[0].score
    chosen = [picks[0]]
    for p in picks[1:]:
        if len(chosen) >= max_sentences:
            break
        if qa.quantity and not _NON_YEAR_FIGURE.search(p.sentence):
            continue
        # Another clause costs a citation: it must be nearly as good as the best sentence.
        if hits[p.hit_rank].chunk.doc_id != hits[chosen[0].hit_rank].chunk.doc_id:
            continue  # one plan answers a question that names at most one (comparisons go per document)
        other_clause = p.hit_rank not in {c.hit_rank for c in chosen}
        ratio = OTHER_CLAUSE_RATIO if other_clause else SAME_CLAUSE_RATIO
        if p.score >= best * ratio and p.score > 0.3 and p.sentence not in {c.sentence for c in chosen}:
            chosen.append(p)
    chosen.sort(key=lambda p: (p.hit_rank, p.sentence_index))
    return chosen


_CHANGE_PHRASE = re.compile(r"^(由|从|比|较|同比|年均)")


def _number_support(sentence: str, qa: QuestionAnalysis, index: KnowledgeIndex) -> bool:
    """Does a phrase of `sentence` hold a figure *and* the specific thing the question asks about?

    "深圳人才总量目标是多少人？" answered with "产业营收突破2500亿元" has a figure,
    but not for 人才: that is a refusal, not an answer.
    """
    if any(not _contains(normalize_for_matching(sentence), name) for name in qa.named):
        return False  # a figure about someone else ("长电科技" asked, "海思半导体" answered)
    # Units are what every figure carries ("亿元"): they say nothing about *which* figure.
    asked = [k for k in qa.keywords if not _YEAR.fullmatch(k) and not _UNIT_WORD.fullmatch(k)]
    specific = [k for k in asked if index.idf(k) >= GENERIC_IDF] or asked
    wants_year = bool(re.search(r"哪一年|哪年|何时|which year|when", qa.text, re.I))
    phrases = _PHRASE.split(sentence)
    for i, phrase in enumerate(phrases):
        has_figure = bool(_YEAR.search(phrase)) if wants_year else bool(_NON_YEAR_FIGURE.search(phrase))
        # the figure's own phrase, or the one before it when the figure phrase only states a
        # change ("设计业销售收入占全行业比重逐年提高，由2005年的17.7%提高到2010年的25.3%")
        window = phrase if i == 0 or not _CHANGE_PHRASE.match(phrase.strip()) else phrases[i - 1] + phrase
        if has_figure and (not specific or _coverage(specific, window, index) > 0):
            return True
    return False


def _best_clauses(hits: list[Hit], qa: QuestionAnalysis, index: KnowledgeIndex,
                  per_document: list[str] | None) -> list[_Pick]:
    """For "how"/"which measures" questions: the best clause(s), every sentence of them."""
    def clause_score(rank: int, hit: Hit) -> float:
        context = hit.chunk.section_path + hit.chunk.text
        best = max((_sentence_score(s, context, qa, index) for s in split_sentences(hit.chunk.text)), default=0.0)
        return best + 0.5 * _coverage(qa.keywords, context, index) + 0.3 / (rank + 1)

    scored = sorted(((clause_score(r, h), r) for r, h in enumerate(hits[:5])), reverse=True)
    chosen: list[int] = []
    if per_document:
        for doc_id in per_document:
            best = next((r for _, r in scored if hits[r].chunk.doc_id == doc_id), None)
            if best is not None:
                chosen.append(best)
    elif scored:
        top_score, top = scored[0]
        chosen = [top]
        if (len(scored) > 1 and scored[1][0] >= SECOND_WHOLE_CLAUSE_RATIO * top_score
                and hits[scored[1][1]].chunk.doc_id == hits[top].chunk.doc_id):
            chosen.append(scored[1][1])
    picks = []
    for r in sorted(chosen):
        for i, sent in enumerate(split_sentences(hits[r].chunk.text)):
            bare = normalize_for_matching(sent)
            if i == 0 and _HEADING_SENTENCE.match(sent) and len(bare) < 24:
                continue  # the clause's own heading title
            if _NOTE_SENTENCE.match(sent.strip()):
                continue  # the （责任单位：…） note: shown with the cited clause, not part of the answer
            picks.append(_Pick(r, i, sent.strip(), 1.0))
    return picks


def _doc_label(chunk, english: bool) -> str:
    return f"{'According to' if english else '根据'}《{chunk.doc_title}》{': ' if english else '：'}"


def _compose(picks: list[_Pick], hits: list[Hit], qa: QuestionAnalysis) -> tuple[str, list[Citation]]:
    """Verbatim sentences, each followed by its clause's [n]; one line per document."""
    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    lines: list[str] = []
    current_doc = None
    for p in picks:
        if p.hit_rank not in numbers:
            numbers[p.hit_rank] = len(numbers) + 1
            citations.append(Citation(numbers[p.hit_rank], hits[p.hit_rank]))
        n = numbers[p.hit_rank]
        chunk = hits[p.hit_rank].chunk
        sentence = p.sentence if p.sentence.endswith(("。", "；", "！", "？")) else p.sentence + "。"
        body, end = sentence[:-1], sentence[-1]
        if chunk.doc_id != current_doc:
            lines.append(_doc_label(chunk, qa.english))
            current_doc = chunk.doc_id
        lines[-1] += f"{body}[{n}]{end}"
    return "\n".join(lines), citations


# -- questions about a whole section ----------------------------------------------

def _title_words(title: str) -> str:
    """A heading title without its marker: "六、保障措施" -> "保障措施"."""
    return re.sub(r"^(专栏\s*\d+|[（(][一二三四五六七八九十\d]+[）)]|[一二三四五六七八九十]+、|\d+[、.．])\s*", "",
                  title).strip()


# Words that ask for a section's items rather than adding a topic of their own.
_SECTION_WORDS = {"措施", "工程", "任务", "举措", "政策", "方面", "内容", "事项", "重点", "哪些", "包括", "包含",
                  "一共", "共", "总共", "部署", "提出", "设置", "安排", "几个", "哪几个", "哪几", "方式", "方法", "形式",
                  "主要", "概括", "总结", "介绍", "专栏", "条", "项", "几", "部分", "章节", "芯片", "期间", "时期",
                  "我国", "国家", "全国", "当前", "未来", "今后"}
GENERIC_IDF = 2.0  # words in more than ~1 chunk in 8 say nothing about which section is meant


def _matched_section(question: str, qa: QuestionAnalysis, index: KnowledgeIndex,
                     route_aliases: list[str], documents: list[str] | None) -> tuple[str, list[str]] | None:
    """(doc_id, section prefix) of the heading the question is about as a whole, e.g. "保障措施", "专栏1".

    Only when the question adds no topic of its own beyond the heading's words
    ("保障措施中关于环保…" asks about one item, not the list).
    """
    if not getattr(index, "chunks", None):
        return None
    q = normalize_for_matching(question)
    place_words = {t for a in route_aliases for t in key_terms(a)}
    best = None
    for ch in index.chunks:
        if documents and ch.doc_id not in documents:
            continue
        for depth, title in enumerate(ch.section):
            box = re.match(r"专栏\s*(\d+)", title)
            title_tokens = set(key_terms(_title_words(title)))
            if box:
                matched = f"专栏{box.group(1)}" in q
            else:
                matched = (bool(title_tokens) and sum(map(len, title_tokens)) >= 4
                           and len(title_tokens & set(qa.keywords)) / len(title_tokens) >= 0.75)
            if not matched:
                continue
            extra = set(qa.keywords) - title_tokens - place_words - _SECTION_WORDS
            extra = {t for t in extra if index.idf(t) >= GENERIC_IDF
                     and not any(t in w or w in t for w in title_tokens | place_words)}
            if extra:
                continue
            key = (10 if box else len(title_tokens), -depth)
            if best is None or key > best[0]:
                best = (key, ch.doc_id, ch.section[: depth + 1])
    if best is None:
        return None
    return best[1], best[2]


def _item_label(text: str) -> str:
    """The lead phrase of an item's text ("高端通用芯片：…" -> "高端通用芯片")."""
    m = re.match(r"^([^。；：:，]{2,30})[：:。，]", text)
    label = m.group(1) if m else split_sentences(text)[0]
    return label.strip().rstrip("。；，")


def _section_answer(section: tuple[str, list[str]], index: KnowledgeIndex, qa: QuestionAnalysis,
                    max_items: int = 12) -> tuple[str, list[Citation]] | None:
    """List a section's items: its sub-headings, or its paragraphs' lead phrases when it has none."""
    doc_id, prefix = section
    rows = [i for i, ch in enumerate(index.chunks)
            if ch.doc_id == doc_id and ch.section[: len(prefix)] == prefix and ch.part == 1]
    items: list[tuple[str, int]] = []
    seen: set[str] = set()
    for row in rows:
        ch = index.chunks[row]
        if len(ch.section) > len(prefix):  # an item with its own heading
            child = ch.section[len(prefix)]
            if child not in seen:
                seen.add(child)
                items.append((child, row))
        else:
            items.append((_item_label(ch.text), row))
    if len(items) < 2:
        return None
    citations, parts = [], []
    for n, (label, row) in enumerate(items[:max_items], start=1):
        citations.append(Citation(n, Hit(index.chunks[row], 1.0, 0.0, 0.0, row)))
        parts.append(f"{label}[{n}]")
    head = _doc_label(index.chunks[rows[0]], qa.english)
    more = f"（另有{len(items) - max_items}项）" if len(items) > max_items else ""
    return f"{head}「{prefix[-1]}」包括：" + "；".join(parts) + f"。{more}", citations


_NOUN_POS = {"n", "nz", "nt", "ns", "nr", "vn", "eng"}
# Words that ask *how much* of something rather than naming it: plans state the figure
# ("给予50%补助") without the word ("比例"), so their absence proves nothing.
_MEASURE_WORDS = {"比例", "比重", "占比", "数量", "规模", "金额", "标准", "目标", "水平", "情况", "要求", "幅度",
                  "额度", "上限", "期限", "时间", "程度", "速度", "增速", "总量", "人数", "个数", "家数"}


def _absent_terms(qa: QuestionAnalysis, index: KnowledgeIndex, scope: list[str] | None) -> list[str]:
    """Nouns of the question that other plans use but the searched plan never does.

    "苏州工业园区…研发投入强度" — 深圳 sets a 研发投入强度 target, 苏州工业园区's plan never
    mentions 强度: it does not answer.  A word no plan uses at all proves nothing (users
    paraphrase), so only a contrast with the rest of the corpus counts.
    """
    if qa.english or not scope or not getattr(index, "chunks", None):
        return []
    texts = index.normalized_doc_texts
    inside = " ".join(t for d, t in texts.items() if d in scope)
    outside = " ".join(t for d, t in texts.items() if d not in scope)
    nouns = {normalize(w.word) for w in pseg.cut(qa.text) if w.flag in _NOUN_POS}
    out = []
    for k in qa.keywords:
        if k not in nouns or _YEAR.fullmatch(k) or k in _SECTION_WORDS or k in _MEASURE_WORDS or len(k) < 2:
            continue
        if any(v in inside for v in variants(k)):
            continue
        if k in outside:
            out.append(k)
    return out


# -- questions about the document itself (number, date) ----------------------------

_DOC_NUMBER_Q = re.compile(r"文号|字号|发文号|document number|reference number", re.I)
_DATE_Q = re.compile(r"哪天|哪一天|日期|(什么时候|何时|哪年|哪一年)(发布|印发|出台|发的|印发的|发布的)|发布时间|印发时间|成文|"
                     r"when was .*(issued|published|released)|(issue|publication) date", re.I)
_DATE = re.compile(r"\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日")


def _metadata_answer(qa: QuestionAnalysis, index: KnowledgeIndex, documents: list[DocumentInfo],
                     scope: list[str] | None) -> tuple[str, list[Citation]] | None:
    """Answer "哪个文号" / "哪天印发" from the document's own header or signature clauses."""
    if (not scope or len(scope) != 1 or not getattr(index, "chunks", None)
            or not (_DOC_NUMBER_Q.search(qa.text) or _DATE_Q.search(qa.text))):
        return None
    info = next((d for d in documents if d.doc_id == scope[0]), None)
    rows = [i for i, ch in enumerate(index.chunks) if ch.doc_id == scope[0]]
    found = None
    if _DOC_NUMBER_Q.search(qa.text) and info and info.doc_number:
        target = normalize_for_matching(info.doc_number)
        found = next((r for r in rows if target in normalize_for_matching(index.chunks[r].text)), None)
    elif _DATE_Q.search(qa.text):
        dated = [r for r in rows if _DATE.search(index.chunks[r].text) and len(index.chunks[r].text) < 80]
        # prefer the signature date of issue ("印发"), then any date in the header or closing
        dated.sort(key=lambda r: ("印发" not in index.chunks[r].text, r))
        found = dated[0] if dated else None
    if found is None:
        return None
    chunk = index.chunks[found]
    return f"{_doc_label(chunk, qa.english)}{chunk.text.rstrip('。')}[1]。", [Citation(1, Hit(chunk, 1.0, 0.0, 0.0, found))]


# -- the answerer -------------------------------------------------------------------

def refusal_text(what_zh: str, what_en: str, english: bool) -> str:
    if english:
        return (f"{REFUSAL_PREFIX} (not found in the plans): the documents do not answer this question "
                f"({what_en}). The closest clauses are listed below.")
    return f"{REFUSAL_PREFIX}{what_zh}。以下列出最接近的条款供参考。"


def answer_question(question: str, retrieval: RetrievalResult, index: KnowledgeIndex,
                    documents: list[DocumentInfo], min_dense: float = MIN_DENSE,
                    min_coverage: float = MIN_COVERAGE) -> Answer:
    """Compose a cited extractive answer, or refuse with the closest clauses."""
    hits = retrieval.hits
    qa = analyze(question, documents)
    closest = [Citation(i + 1, h) for i, h in enumerate(hits[:3])]

    def refuse(zh: str, en: str, reason: str) -> Answer:
        return Answer(question, refusal_text(zh, en, qa.english), True, closest, reason=reason)

    if not hits:
        return refuse("相关条款", "no matching clause", "no_hits")
    missing = check_constraints(qa, hits, documents)
    if missing:
        return refuse(*missing, "constraint")

    absent = _absent_terms(qa, index, retrieval.searched_documents)
    if absent:
        return refuse(f"“{absent[0]}”的相关内容", f"nothing about {absent[0]}", "absent_term")

    best_dense = max(h.dense for h in hits)
    best_cov = max(_coverage(qa.keywords, h.chunk.section_path + h.chunk.text, index) for h in hits)
    if qa.english:  # English keywords never match the Chinese text: judge by the embedding alone
        best_cov, min_dense = 0.0, min_dense - ENGLISH_DENSE_MARGIN
    if best_dense < min_dense and best_cov < min_coverage:
        return refuse("与该问题直接相关的内容", "no clause is close enough", "weak_retrieval")

    meta = _metadata_answer(qa, index, documents, retrieval.searched_documents)
    if meta:
        return Answer(question, meta[0], False, meta[1])

    if qa.summary and not qa.quantity:
        section = _matched_section(question, qa, index, list(retrieval.route.aliases.values()),
                                   retrieval.searched_documents)
        composed = _section_answer(section, index, qa) if section else None
        if composed:
            return Answer(question, composed[0], False, composed[1])

    whole_clause = (qa.how or qa.listing or qa.summary) and not (qa.asks_number or qa.responsible or qa.quantity)
    compare_docs = retrieval.searched_documents if retrieval.route.compare else None
    if whole_clause:
        picks = _best_clauses(hits, qa, index, compare_docs if compare_docs and len(compare_docs) >= 2 else None)
    elif compare_docs and len(compare_docs) >= 2:
        picks: list[_Pick] = []
        for doc_id in compare_docs:
            doc_hits = [(i, h) for i, h in enumerate(hits) if h.chunk.doc_id == doc_id]
            for p in _best_sentences([h for _, h in doc_hits], qa, index, max_sentences=2, max_hits=3):
                picks.append(_Pick(doc_hits[p.hit_rank][0], p.sentence_index, p.sentence, p.score))
    else:
        max_sentences = 3 if qa.listing else (1 if qa.quantity else 2)
        picks = _best_sentences(hits, qa, index, max_sentences)
    text, citations = _compose(picks, hits, qa)
    if not citations:
        return refuse("相关条款", "no matching clause", "no_sentence")
    if qa.asks_number and not whole_clause and not any(_number_support(p.sentence, qa, index) for p in picks):
        return refuse("该问题所问的具体数字", "no figure for what was asked", "no_figure")
    # A named place or organisation must be in what we cite, not merely somewhere in the hits.
    cited = normalize_for_matching(" ".join(c.hit.chunk.section_path + c.hit.chunk.text for c in citations))
    for name in qa.named:
        if not _contains(cited, name):
            return refuse(f"“{name}”的相关内容", f"nothing about {name}", "constraint")
    return Answer(question, text, False, citations)
