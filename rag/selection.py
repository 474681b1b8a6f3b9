"""Which sentences of the retrieved clauses answer the question.

Two signals, combined: meaning (the cosine of the question to each sentence's
own vector, computed at index time with its heading path) and lexical
coverage (the question's key words, IDF-weighted, with the plans' synonyms and
a partial credit for shared characters, so 营业收入 still meets 营收).  Intent
adds small preferences: a figure for "how much", the target section for goals,
the （责任单位：…） note for "who is responsible".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .cleaning import normalize_for_matching
from .index import KnowledgeIndex, chunk_sentences, documents_text, in_corpus
from .keywords import is_verbal, normalize, variants
from .question import DURATION, MEASURE_WORDS, NON_YEAR_FIGURE, YEAR, QuestionAnalysis, gives_figure
from .retrieve import Hit

SYNONYM_WEIGHT = 0.7  # a synonym is good evidence, the question's own word better
PARTIAL_WEIGHT = 0.35  # a word sharing two characters with the sentence ("营收" ~ "营业收入")
MEASURE_WORD_WEIGHT = 0.3  # a word that only says "a figure of" (数量, 目标) next to what is measured
SEMANTIC_WEIGHT = 3.0  # per unit of cosine above the best sentence's (tuned on the dev split)
GENERIC_IDF = 2.0  # words in more than ~1 chunk in 8 say nothing about which figure is meant
SAME_CLAUSE_RATIO = 0.85
OTHER_CLAUSE_RATIO = 0.95
NUMBER_HITS = 5  # how deep a "how much" question looks for a sentence giving its figure
_NOTE_SENTENCE = re.compile(r"^[（(].*(负责|责任单位|责任部门)")
HEADING_SENTENCE = re.compile(r"^\s*([（(][一二三四五六七八九十\d]+[）)]|[一二三四五六七八九十]+、|\d+[、.．﹒])")
PHRASE = re.compile(r"[，,：:（）()]")
# A figure's phrase runs on through brackets: "培育5家以上垂直整合制造型（IDM）企业" counts IDM 企业.
FIGURE_PHRASE = re.compile(r"[，,：:；;]")
_UNIT_WORD = re.compile(r"[亿万千百]?[元个家名人项条次位]?|%|亿元|万元|万人|个人")
_CHANGE_PHRASE = re.compile(r"^(由|从|比|较|同比|年均)")
FORM_BLANK = re.compile(r"[年月日章签字盖印名（）()\s：:_＿。．.、]*")


def _partial(word: str, text_n: str) -> bool:
    """Shares a two-character piece with the text, or (two-character words) both characters."""
    if len(word) == 2:
        return word[0] in text_n and word[1] in text_n and not word.isascii()
    return len(word) > 2 and any(word[i:i + 2] in text_n for i in range(len(word) - 1))


def _weight(keyword: str, index: KnowledgeIndex) -> float:
    """IDF, but a word that only says "a figure of" (数量, 目标, 规模) weighs little: in
    "人才数量的目标" the thing asked about is 人才."""
    return index.idf(keyword) * (MEASURE_WORD_WEIGHT if keyword in MEASURE_WORDS else 1.0)


def coverage(keywords: list[str], text: str, index: KnowledgeIndex, synonyms: bool = True,
             common: frozenset[str] = frozenset()) -> float:
    """Share of the question's keyword weight present in `text` (`common` words weigh COMMON_WEIGHT)."""
    if not keywords:
        return 0.0
    text_n = normalize(text)
    weight = {k: _weight(k, index) * (COMMON_WEIGHT if k in common else 1.0) for k in set(keywords)}
    total = sum(weight.values()) or 1.0
    found = 0.0
    for k, w in weight.items():
        if normalize(k) in text_n:
            found += w
        elif synonyms and any(v in text_n for v in variants(k)):
            found += SYNONYM_WEIGHT * w
        elif _partial(normalize(k), text_n):
            found += PARTIAL_WEIGHT * w
    return found / total


COMMON_SHARE = 0.5  # a keyword in at least this share of the searched document's clauses is its topic
COMMON_WEIGHT = 0.3


def common_words(keywords: list[str], index: KnowledgeIndex, scope: list[str] | None) -> frozenset[str]:
    """The keywords of the one searched document's title or of most of its clauses: its own topic,
    which a corpus-wide IDF rates high when few other documents share it (生物医药 among IC plans)."""
    rows = getattr(index, "doc_rows", {}).get(scope[0], ()) if scope and len(scope) == 1 else ()
    if len(rows) < 4:
        return frozenset()
    cache = index.__dict__.setdefault("_clause_texts", {})  # an index never changes
    if scope[0] not in cache:
        cache[scope[0]] = [normalize(index.chunks[r].section_path + index.chunks[r].text) for r in rows]
    texts = cache[scope[0]]
    title = normalize(index.chunks[rows[0]].doc_title)
    return frozenset(k for k in keywords if normalize(k) in title
                     or sum(normalize(k) in t for t in texts) >= COMMON_SHARE * len(texts))


def lexical_score(sentence: str, context: str, qa: QuestionAnalysis, index: KnowledgeIndex) -> float:
    """Keyword coverage of the sentence, its clause and its best phrase, plus intent preferences."""
    best_phrase = 0.0
    for phrase in PHRASE.split(sentence):
        if not phrase.strip():
            continue
        value = coverage(qa.keywords, phrase, index, common=qa.common)
        if qa.quantity and value > 0 and gives_figure(phrase, qa.text):
            value += 0.3
        best_phrase = max(best_phrase, value)
    score = (0.3 * coverage(qa.keywords, sentence, index, common=qa.common)
             + 0.3 * coverage(qa.keywords, context, index, common=qa.common) + 0.4 * best_phrase)
    if qa.quantity and gives_figure(sentence, qa.text):
        score += 0.1
    for year in qa.years:
        if year in sentence:
            score += 0.1
    if qa.target and not qa.review and ("目标" in context or re.search(r"到20\d\d年|力争", sentence)):
        score += 0.1
    if qa.review and not qa.target and re.search(r"回顾|现状|成效|情况|目前", context):
        score += 0.1
    if qa.responsible and (_NOTE_SENTENCE.match(sentence.strip()) or re.search(r"负责|牵头|主管部门", sentence)):
        score += 0.6
    if is_heading_line(sentence):
        score -= 0.5  # a heading title such as "(三) 落实环保配套措施。" answers nothing by itself
    if _NOTE_SENTENCE.match(sentence.strip()) and not qa.responsible:
        score -= 0.3  # the （责任单位：…） note answers only "who is responsible"
    if FORM_BLANK.fullmatch(sentence.strip()):
        score -= 1.0  # a form's blank line ("年月日（章）", "签字：") says nothing
    return score


def is_heading_line(sentence: str) -> bool:
    """A numbered heading's title on its own ("(三) 落实环保配套措施。"), not a sentence that says something."""
    return bool(HEADING_SENTENCE.match(sentence)) and len(normalize_for_matching(sentence)) < 24


@dataclass
class Pick:
    hit_rank: int
    sentence_index: int
    sentence: str
    score: float
    semantic: float = 0.0


def sentence_semantics(hits: list[Hit], index: KnowledgeIndex, query_vector) -> list[np.ndarray]:
    """Cosine of the question to each sentence of each hit (zeros when there is no vector)."""
    out = []
    for h in hits:
        n = len(chunk_sentences(h.chunk))
        if query_vector is None or not hasattr(index, "sentence_scores") or h.row >= len(index.chunks) \
                or index.chunks[h.row] is not h.chunk:
            out.append(np.full(n, h.dense, dtype=np.float32))
        else:
            out.append(index.sentence_scores(h.row, query_vector))
    return out


def score_sentences(hits: list[Hit], qa: QuestionAnalysis, index: KnowledgeIndex, query_vector,
                    max_hits: int = 3) -> list[Pick]:
    sem = sentence_semantics(hits[:max_hits], index, query_vector)
    best_sem = max((float(s.max()) for s in sem if len(s)), default=0.0)
    picks: list[Pick] = []
    for rank, hit in enumerate(hits[:max_hits]):
        context = hit.chunk.section_path + hit.chunk.text
        for i, sent in enumerate(chunk_sentences(hit.chunk)):
            cos = float(sem[rank][i]) if i < len(sem[rank]) else hit.dense
            score = (lexical_score(sent, context, qa, index) + 0.15 / (rank + 1)
                     + SEMANTIC_WEIGHT * (cos - best_sem))
            picks.append(Pick(rank, i, sent, score, cos))
    return picks


def _share_found(words: list[str], text: str, synonyms: bool = True) -> float:
    """Share of `words` (unweighted: a rare paraphrase must not outweigh the rest) in `text`."""
    text_n = normalize(text)
    found = 0.0
    for w in words:
        w = normalize(w)
        if w in text_n or _partial(w, text_n):
            found += 1.0
        elif synonyms and any(v in text_n for v in variants(w)):
            found += SYNONYM_WEIGHT
    return found / len(words)


def missing_names(qa: QuestionAnalysis, text: str, index: KnowledgeIndex, bare: bool = False) -> list[str]:
    """Specific names of the question (not words every clause uses, like 集成电路) absent from `text`
    (`bare`: already normalized for matching)."""
    bare_text = text if bare else normalize_for_matching(text).lower()
    return [n for n in qa.named if index.idf(normalize(n)) >= GENERIC_IDF and not n.isascii()
            and normalize_for_matching(n).lower() not in bare_text]  # English names were checked by pinyin


def _figure_phrases(sentence: str, qa: QuestionAnalysis) -> list[tuple[str, str, bool]]:
    """(phrase, the phrase before it, whether it holds the kind of figure asked for) per phrase."""
    phrases = FIGURE_PHRASE.split(sentence)
    return [(p, phrases[i - 1] if i else "", gives_figure(p, qa.text))
            for i, p in enumerate(phrases)]


def number_support(sentence: str, qa: QuestionAnalysis, index: KnowledgeIndex, doc_id: str | None = None,
                   every_word: bool = False) -> bool:
    """Does `sentence` give a figure for the thing asked about?

    "无锡人才总量目标是多少人？" answered with "产业营收突破2500亿元" has a figure,
    but not for 人才.  The asked-about words may be in the figure's phrase, the
    phrase before it (change phrases "由…提高到…"), or in other words
    (synonyms, shared characters) anywhere in the sentence.  `every_word`: all the measured
    words must be there, not most (for clauses retrieval ranked lower).
    """
    # a figure about someone else (one company asked, another answered): the names must be in the
    # sentence's document (a district's plan need not repeat the district in every sentence)
    doc_text = documents_text(index, [doc_id], matching=True) if doc_id else None
    if doc_id and doc_id in index.normalized_doc_texts:
        if missing_names(qa, doc_text, index, bare=True):
            return False
    elif missing_names(qa, sentence, index):
        return False
    if qa.english:  # the Chinese text cannot be matched word for word: any figure of the chosen sentence
        return gives_figure(sentence, qa.text)
    figures = _figure_phrases(sentence, qa)
    # a verb the document never uses is the asker's way of saying what the clause says in its
    # own words ("借给别人" for 出借, "会扣" for 少加): it cannot be found, so it is not looked for
    measured_words = qa.measured if doc_text is None else [
        k for k in qa.measured if normalize_for_matching(k) in doc_text or not is_verbal(k)]
    if measured_words:
        # The figure's phrase (or the one before it) must name the measured thing, mostly.  Words
        # no document uses ("门槛" for 入围条件) are the asker's paraphrase: they count only when
        # they are all there is to go on, and then a partial match is enough.
        specific = [k for k in measured_words if index.idf(k) >= GENERIC_IDF] or measured_words  # not 集成电路, 产业
        known = [k for k in specific if in_corpus(index, k)]
        measured, need = (known, 1.0 if every_word else 0.5) if known else (specific, 1e-9)
        # when part of the asked phrase is the asker's own word, the rest must be there as written
        strict = len(known) < len(specific)
        if any(has and _share_found(measured, before + phrase, synonyms=not strict) >= need
               for phrase, before, has in figures):
            return True
        # all of them the asker's own words ("会扣" for 少加, "补差" for 奖补): their synonyms may
        # say them, but then most of them ("安家补贴" is not any 支持 the text names), and only
        # when the document has every other thing the question names ("流片的补贴": no 流片)
        others_there = doc_text is not None and all(
            normalize_for_matching(k) in doc_text for k in qa.keywords
            if k not in qa.measured and not is_verbal(k) and not YEAR.fullmatch(k))
        return not known and others_there and any(has and _share_found(measured, before + phrase) >= 0.5
                                                  for phrase, before, has in figures)
    asked = [k for k in qa.keywords if not YEAR.fullmatch(k) and not _UNIT_WORD.fullmatch(k)]
    if doc_text is not None:  # here no thing is named as measured: no absent word is looked for
        asked = [k for k in asked if normalize_for_matching(k) in doc_text] or asked
    specific = [k for k in asked if index.idf(k) >= GENERIC_IDF] or asked
    for phrase, before, has in figures:
        window = before + phrase if _CHANGE_PHRASE.match(phrase.strip()) else phrase
        if has and (not specific or coverage(specific, window, index) > 0):
            return True
    return any(has for _, _, has in figures) and (not specific or coverage(specific, sentence, index) >= 0.5)


def sentence_figures(sentence: str) -> frozenset[str]:
    """The figures a sentence gives (amounts, shares, counts, durations), as written."""
    return frozenset(m.group(0) for pattern in (NON_YEAR_FIGURE, DURATION) for m in pattern.finditer(sentence))


def best_sentences(hits: list[Hit], qa: QuestionAnalysis, index: KnowledgeIndex, query_vector,
                   max_sentences: int, max_hits: int = 3, given: frozenset[str] = frozenset()) -> list[Pick]:
    """`given`: figures an earlier part of the question was answered with; a "how much" part is
    answered by a sentence with another figure when one supports it ("多长时间内决定受理？受理后
    多久办完？" asks two durations, not the first one twice)."""
    picks = score_sentences(hits, qa, index, query_vector, max_hits)
    if not picks:
        return []
    if qa.asks_number:
        # A "how much" question is answered by a sentence giving a figure for what was asked.
        below: list[Pick] | None = None

        def supported_below() -> list[Pick]:
            """Sentences of the clauses after the best ones giving that figure (a penalty clause ranked
            below the duty it enforces; a part's other figure); scored once, when first needed."""
            nonlocal below
            if below is None:
                below = [p for p in score_sentences(hits, qa, index, query_vector, NUMBER_HITS)
                         if p.hit_rank >= max_hits and number_support(p.sentence, qa, index,
                                                                        hits[p.hit_rank].chunk.doc_id,
                                                                        every_word=True)
                         ] if len(hits) > max_hits else []
            return below

        supported = [p for p in picks if number_support(p.sentence, qa, index, hits[p.hit_rank].chunk.doc_id)]
        if not supported:
            supported = supported_below()
        if given:
            fresh = [p for p in supported if sentence_figures(p.sentence) - given] or [
                p for p in supported_below() if sentence_figures(p.sentence) - given]
            supported = fresh or supported
        picks = supported or picks
    picks.sort(key=lambda p: -p.score)
    best = picks[0].score
    chosen = [picks[0]]
    for p in picks[1:]:
        if len(chosen) >= max_sentences:
            break
        if qa.quantity and not gives_figure(p.sentence, qa.text):
            continue
        if hits[p.hit_rank].chunk.doc_id != hits[chosen[0].hit_rank].chunk.doc_id:
            continue  # one plan answers a question that names at most one (comparisons go per document)
        other_clause = p.hit_rank not in {c.hit_rank for c in chosen}
        ratio = OTHER_CLAUSE_RATIO if other_clause else SAME_CLAUSE_RATIO
        if p.score >= best * ratio and p.score > 0.3 and p.sentence not in {c.sentence for c in chosen}:
            chosen.append(p)
    chosen.sort(key=lambda p: (p.hit_rank, p.sentence_index))
    return chosen


def best_clauses(hits: list[Hit], qa: QuestionAnalysis, index: KnowledgeIndex, query_vector,
                 per_document: list[str] | None, second_ratio: float = 0.85) -> list[Pick]:
    """For "how"/"which measures" questions: the best clause(s), every sentence of them."""
    sem = sentence_semantics(hits[:5], index, query_vector)
    best_sem = max((float(s.max()) for s in sem if len(s)), default=0.0)

    def clause_score(rank: int, hit: Hit) -> float:
        context = hit.chunk.section_path + hit.chunk.text
        best = max((lexical_score(s, context, qa, index) for s in chunk_sentences(hit.chunk)), default=0.0)
        clause_sem = float(sem[rank].max()) if len(sem[rank]) else hit.dense
        return (best + 0.5 * coverage(qa.keywords, context, index, common=qa.common) + 0.3 / (rank + 1)
                + SEMANTIC_WEIGHT * (clause_sem - best_sem))

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
        if (len(scored) > 1 and scored[1][0] >= second_ratio * top_score
                and hits[scored[1][1]].chunk.doc_id == hits[top].chunk.doc_id):
            chosen.append(scored[1][1])
    picks = []
    for r in sorted(chosen):
        for i, sent in enumerate(chunk_sentences(hits[r].chunk)):
            if i == 0 and is_heading_line(sent):
                continue  # the clause's own heading title
            if _NOTE_SENTENCE.match(sent.strip()):
                continue  # the （责任单位：…） note: shown with the cited clause, not part of the answer
            picks.append(Pick(r, i, sent, 1.0))
    return picks
