"""The extractive answerer: cited sentences from the retrieved clauses, or a plain refusal.

No language model.  The steps, one module each:
- `rag.question`: what is asked (intent, named constraints, the parts of a
  multi-part question);
- `rag.answerability`: whether to refuse, by named rules that need evidence;
- `rag.sections`: questions about a section as a whole, or the header fields;
- `rag.selection`: which sentences answer, by meaning and key-word coverage;
- here: composing the verbatim sentences with a [n] after each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .answerability import (ENGLISH_DENSE_MARGIN, MIN_COVERAGE, MIN_DENSE, REFUSAL_PREFIX, check_constraints,
                            is_about, no_such_document, off_topic, outside_the_filter, refusal_text, unknown_names)
from .catalog import DocumentInfo
from .cleaning import normalize_for_matching
from .index import KnowledgeIndex, announces_list, chunk_sentences
from .keywords import normalize
from .question import QuestionAnalysis, analyze, compared_items, part_queries
from .retrieve import RRF_K, Hit, RetrievalResult
from .sections import (document_outline, enclosing_section, list_items_after, list_lead_of, matched_section,
                       in_force_rows, metadata_answer, role_section, section_answer, sibling_section)
from .selection import (FORM_BLANK, Pick, best_clauses, best_sentences, common_words, coverage, is_heading_line,
                        missing_names, number_support, sentence_figures)
from .vocabulary import is_place

__all__ = ["Answer", "Citation", "REFUSAL_PREFIX", "answer_question", "refusal_text", "QuestionAnalysis"]
SECOND_WHOLE_CLAUSE_RATIO = 0.85
SHORT_ITEM = 150  # characters: an item of an enumeration ("（三）擅自摆摊、圈地、占点；"), not a sub-section
# A clause this short is read whole: the sentence after the best one often holds the rest of the
# answer ("主板…300万元。科创板…200万元。"), the second part of a two-part question, or the
# condition of a figure.  rag eval --sets dev,dev-fresh,uploaded-dev,loo, key facts, against
# the best sentences alone: 160 chars +.009/+.009/+.037/+.012, 250 +.026/+.019/+.037/+.024,
# 400 +.035/+.028/+.037/+.028, refusals unchanged; median answer 130 -> 201 (250) or 218 (400)
# characters.  400 would read every chunk whole (rag.clauses cuts them at 360): a long paragraph
# of a plan keeps its focused sentences.
WHOLE_CLAUSE_CHARS = 250


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


def _doc_label(chunk, english: bool) -> str:
    return f"{'According to' if english else '根据'}《{chunk.doc_title}》{': ' if english else '：'}"


def _compose(picks: list[Pick], hits: list[Hit], qa: QuestionAnalysis) -> tuple[str, list[Citation]]:
    """Verbatim sentences, each followed by its clause's [n]; one line per document."""
    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    lines: list[str] = []
    current_doc = None
    seen: set[str] = set()
    for p in picks:
        if p.sentence in seen:
            continue
        seen.add(p.sentence)
        if p.hit_rank not in numbers:
            numbers[p.hit_rank] = len(numbers) + 1
            citations.append(Citation(numbers[p.hit_rank], hits[p.hit_rank]))
        n = numbers[p.hit_rank]
        chunk = hits[p.hit_rank].chunk
        sentence = p.sentence if p.sentence.endswith(("。", "；", "！", "？", "：")) else p.sentence + "。"
        body, end = sentence[:-1], sentence[-1]
        if chunk.doc_id != current_doc:
            lines.append(_doc_label(chunk, qa.english))
            current_doc = chunk.doc_id
        lines[-1] += f"{body}[{n}]{end}"
    return "\n".join(lines), citations


def _structured(text_and_cites) -> tuple[str, list[Citation]]:
    text, cited = text_and_cites
    return text, [Citation(n, hit) for n, hit in cited]


def _part_analyses(question: str, documents: list[DocumentInfo]) -> list[QuestionAnalysis]:
    """The analysis of each part of a multi-part question ("是多少？由哪个部门负责？"); [] for one part.
    A part is read as it was searched (`part_queries`): in its own words ("由哪个部门牵头"), since the
    borrowed topic would choose the first part's sentence again."""
    parts = part_queries(question)
    return [analyze(p, documents) for p in parts] if len(parts) > 1 else []


def _whole_short_clauses(picks: list[Pick], hits: list[Hit]) -> list[Pick]:
    """The picks with every other sentence of each picked clause of at most WHOLE_CLAUSE_CHARS
    (not its heading line or a form's blank), in the clauses' order and each clause's own order."""
    clauses = list(dict.fromkeys(p.hit_rank for p in picks))
    out = list(picks)
    have = {(p.hit_rank, p.sentence_index) for p in picks}
    for rank in clauses:
        chunk = hits[rank].chunk
        if len(chunk.text) > WHOLE_CLAUSE_CHARS:
            continue
        for i, sentence in enumerate(chunk_sentences(chunk)):
            if (rank, i) in have or FORM_BLANK.fullmatch(sentence.strip()) or is_heading_line(sentence):
                continue
            out.append(Pick(rank, i, sentence, 0.0))
    out.sort(key=lambda p: (clauses.index(p.hit_rank), p.sentence_index))
    return out


def _with_common_words(qa: QuestionAnalysis, index: KnowledgeIndex, scope: list[str] | None) -> QuestionAnalysis:
    """The question as its sentence is chosen inside one searched document (see `common_words`)."""
    common = common_words(qa.keywords, index, scope)
    return replace(qa, common=common) if common else qa


def _how_many(qa: QuestionAnalysis, least: int = 1) -> int:
    """Sentences to choose: a figure is one sentence, a list three, anything else two."""
    return max(least, 3 if qa.listing else (1 if qa.quantity else 2))


def _sentence_picks(qa: QuestionAnalysis, part_qas: list[QuestionAnalysis], hits: list[Hit],
                    index: KnowledgeIndex, qvec, part_rankings=(), least: int = 1) -> list[Pick]:
    """Best sentences for each part of the question ("是多少？由哪个部门负责？" gets both), each
    part's among the clauses its own search ranked first (`part_rankings`: rows and query vector
    per part), when retrieval searched part by part."""
    if not part_qas:
        return best_sentences(hits, qa, index, qvec, _how_many(qa, least))
    own = list(part_rankings) if len(part_rankings) == len(part_qas) else [([], None)] * len(part_qas)
    picks: list[Pick] = []
    given: frozenset[str] = frozenset()  # figures the earlier parts were answered with
    at = {h.row: i for i, h in enumerate(hits)}
    for pa, (rows, vector) in zip(part_qas, own):
        own_rank = {at[r]: n for n, r in enumerate(r for r in rows if r in at)}
        # the whole question's order and the part's own, fused: the part's topic may be the whole's
        order = sorted(range(len(hits)), key=lambda i: -(1 / (RRF_K + i) + 1 / (RRF_K + own_rank.get(i, len(hits)))))
        mine = [hits[i] for i in order]
        for p in best_sentences(mine, pa, index, qvec if vector is None else vector,
                                _how_many(pa, least), given=given):
            given |= sentence_figures(p.sentence)
            p = replace(p, hit_rank=order[p.hit_rank])
            if all((p.hit_rank, p.sentence_index) != (c.hit_rank, c.sentence_index) for c in picks):
                picks.append(p)
    if len({hits[p.hit_rank].chunk.doc_id for p in picks}) > 1:  # one plan answers a one-plan question
        first = hits[picks[0].hit_rank].chunk.doc_id
        picks = [p for p in picks if hits[p.hit_rank].chunk.doc_id == first]
    picks.sort(key=lambda p: (p.hit_rank, p.sentence_index))
    return picks


def _whole_clauses(question: str, rows: list[int], index: KnowledgeIndex, qa: QuestionAnalysis) -> Answer:
    """An answer that is whole clauses of the documents' own (a date, a validity clause), one line each."""
    cites = [Citation(n, Hit(index.chunks[r], 1.0, 0.0, 0.0, r)) for n, r in enumerate(rows, start=1)]
    return Answer(question, "\n".join(f"{_doc_label(c.hit.chunk, qa.english)}{c.hit.chunk.text.rstrip('。')}[{c.n}]。"
                                      for c in cites), False, cites)


def _with_each_items_clause(picks: list[Pick], hits: list[Hit], part_rankings) -> list[Pick]:
    """"周一到周四和周五的受理时间有什么区别": each compared thing's own best clause is read whole too,
    when it is in the document the answer is from."""
    if not picks:
        return picks
    at = {h.row: i for i, h in enumerate(hits)}
    doc = hits[picks[0].hit_rank].chunk.doc_id
    have = {p.hit_rank for p in picks}
    for rows, _ in part_rankings:
        rank = next((at[r] for r in rows if r in at), None)
        if rank is None or rank in have or hits[rank].chunk.doc_id != doc:
            continue
        have.add(rank)
        picks += [Pick(rank, i, sent, 1.0) for i, sent in enumerate(chunk_sentences(hits[rank].chunk))
                  if not (i == 0 and is_heading_line(sent))]
    return sorted(picks, key=lambda p: (p.hit_rank, p.sentence_index))


def _gives_asked_figure(qa: QuestionAnalysis, part_qas: list[QuestionAnalysis], picks: list[Pick],
                        hits: list[Hit], index: KnowledgeIndex) -> bool:
    """Does a chosen sentence give a figure for what was asked, for the question or any of its
    parts ("按什么比例奖补？封顶多少？" is answered when the ratio is there)?"""
    return any(number_support(p.sentence, a, index, hits[p.hit_rank].chunk.doc_id)
               for a in [qa, *part_qas] if a.asks_number for p in picks)


def _indexed(hit: Hit, index: KnowledgeIndex) -> bool:
    """Is the hit the index's own clause at its row (so its neighbours can be read from the index)?"""
    return hit.row < len(index.chunks) and index.chunks[hit.row] is hit.chunk


def _hit_rank(hits: list[Hit], row: int, index: KnowledgeIndex) -> int:
    """The rank of the clause at `row` among the hits, added (unscored) when it was not retrieved."""
    rank = next((i for i, h in enumerate(hits) if h.row == row), None)
    if rank is None:
        hits.append(Hit(index.chunks[row], 0.0, 0.0, 0.0, row))
        rank = len(hits) - 1
    return rank


def _with_list_leads(hits: list[Hit], picks: list[Pick], index: KnowledgeIndex) -> list[Pick]:
    """For a list question, a chosen item of an announced list ("（三）擅自摆摊…" under
    "景区内禁止下列行为：") brings in its lead sentence, so the whole list is answered."""
    out = list(picks)
    for p in picks:
        if not _indexed(hits[p.hit_rank], index):
            continue
        lead = list_lead_of(hits[p.hit_rank].row, index)
        if lead is None or any(len(index.chunks[r].text) > SHORT_ITEM for r in list_items_after(lead, index)):
            continue  # items that are sections of their own are answered as a section, not listed whole
        rank = _hit_rank(hits, lead, index)
        sentences = chunk_sentences(index.chunks[lead])
        if all((q.hit_rank, q.sentence_index) != (rank, len(sentences) - 1) for q in out):
            out.append(Pick(rank, len(sentences) - 1, sentences[-1], 0.0))
    return out


def _with_announced_items(hits: list[Hit], picks: list[Pick], index: KnowledgeIndex, listing: bool = False):
    """A chosen sentence that announces a list ("…为中小企业提供下列服务：") is answered with the list:
    its items follow, each cited, in the document's order."""
    if not getattr(index, "chunks", None):
        return hits, picks  # an index without clause structure (the LangChain baseline)
    hits = list(hits)
    if listing:
        picks = _with_list_leads(hits, picks, index)
    out = list(picks)
    for p in picks:
        if not announces_list(p.sentence) or not _indexed(hits[p.hit_rank], index):
            continue
        for r in list_items_after(hits[p.hit_rank].row, index):
            rank = _hit_rank(hits, r, index)
            first = chunk_sentences(index.chunks[r])[0]
            if all((q.hit_rank, q.sentence_index) != (rank, 0) for q in out):
                out.append(Pick(rank, 0, first, 0.0))
    if len(out) == len(picks):
        return hits, picks
    order = {id(p): i for i, p in enumerate(out)}
    out.sort(key=lambda p: (hits[p.hit_rank].row, p.sentence_index, order[id(p)]))
    return hits, out


# Words that ask to compare: each document's own answer is what a comparison lines up.
_COMPARING = re.compile(r"(有)?(什么|何|哪些)(不同|区别|差异|异同)|的?(不同|区别|差异|异同)(是什么|在哪里?|有哪些)?|"
                        r"(比起来|相比|对比|比较)(起来)?(怎么样|如何|怎样)|分别|各自|相比|对比|比较|哪个更\w{0,2}")
_DANGLING = re.compile(r"[和与及、，,]+(?=[在的对于上是都，,？?。]|$)|^[和与及、，,]+")


def one_document_question(query: str) -> str:
    """A comparison's question as asked of one document, once the other names are gone:
    "绵阳市和在化合物半导体上的布局有什么区别" -> "绵阳市在化合物半导体上的布局是什么"."""
    asked = _COMPARING.sub(lambda m: "是什么" if m.group(2) or m.group(4) or m.group(8) else "", query)
    return re.sub(r"([？?。])[？?。]+", r"\1", _DANGLING.sub("", asked)).strip(" ，,") or query


def _per_document_answer(question: str, retrieval: RetrievalResult, index: KnowledgeIndex,
                         documents: list[DocumentInfo], qa: QuestionAnalysis, refuse) -> Answer:
    """A comparison answered one document at a time, each by the whole answerer over its own
    search (its sections, figures and refusals), then lined up: a document that does not answer
    says so on its own line, and only when none answers is the question refused."""
    lines: list[str] = []
    citations: list[Citation] = []
    refusals: list[Answer] = []
    for doc_id, sub in retrieval.per_document.items():
        # a document's side of a comparison: two sentences even for a figure (its neighbour may hold it)
        one = answer_question(one_document_question(sub.query or question), sub, index, documents,
                              least_sentences=2)
        if one.refused:
            refusals.append(one)
            rows = getattr(index, "doc_rows", {}).get(doc_id, ())
            # labelled like an answer's line, so the chat page's comparison table gives it its column
            label = _doc_label(index.chunks[rows[0]], qa.english) if len(rows) else f"《{doc_id}》"
            lines.append(label + ("nothing in this document answers this." if qa.english
                                  else "未找到与该问题直接相关的内容。"))
            continue
        offset = len(citations)
        lines.append(re.sub(r"\[(\d+)\]", lambda m: f"[{int(m.group(1)) + offset}]", one.answer))
        citations += [Citation(c.n + offset, c.hit) for c in one.citations]
    if not citations:
        first = refusals[0]
        return Answer(question, first.answer, True, first.citations, reason=first.reason)
    return Answer(question, "\n".join(lines), False, citations)


def answer_question(question: str, retrieval: RetrievalResult, index: KnowledgeIndex,
                    documents: list[DocumentInfo], min_dense: float = MIN_DENSE,
                    min_coverage: float = MIN_COVERAGE, least_sentences: int = 1) -> Answer:
    """Compose a cited extractive answer, or refuse with the closest clauses."""
    # a form's blank line ("年月日（章）") is retrieved for its words and answers nothing
    hits = [h for h in retrieval.hits if not FORM_BLANK.fullmatch(h.chunk.text.strip())]
    qa = analyze(question, documents, index)
    closest = [Citation(i + 1, h) for i, h in enumerate(hits[:3])]
    scope = retrieval.searched_documents
    qvec = retrieval.query_vector

    def refuse(zh: str, en: str, reason: str) -> Answer:
        return Answer(question, refusal_text(zh, en, qa.english), True, closest, reason=reason)

    if not hits:
        return refuse("相关条款", "no matching clause", "no_hits")
    if off_topic(qa, hits, index, scope, retrieval.route.named):
        return refuse("与该问题相关的内容", "nothing related to this question", "off_topic")
    missing = check_constraints(qa, hits, index, documents, scope)
    if missing:
        return refuse(*missing, "constraint")
    place = no_such_document(qa, hits, index, documents)
    if place:
        return refuse(f"关于“{place}”的文件", f"no document about {place}", "no_document")
    place = outside_the_filter(retrieval.route, scope, hits, index, documents)
    if place:
        return refuse(f"关于“{place}”的内容", f"nothing about {place} in the documents searched",
                      "other_place")
    unknown = [] if qa.english else unknown_names(question, index, scope)
    if unknown:
        return refuse(f"“{unknown[0]}”", f"nothing about {unknown[0]}", "unknown_name")

    best_dense = max(h.dense for h in hits)
    best_cov = max(coverage(qa.keywords, h.chunk.section_path + h.chunk.text, index) for h in hits)
    if qa.english:  # English keywords never match the Chinese text: judge by the embedding alone
        best_cov, min_dense = 0.0, min_dense - ENGLISH_DENSE_MARGIN
    if best_dense < min_dense and best_cov < min_coverage:
        return refuse("与该问题直接相关的内容", "no clause is close enough", "weak_retrieval")

    if retrieval.route.compare and len(retrieval.per_document) >= 2:
        return _per_document_answer(question, retrieval, index, documents, qa, refuse)

    # "哪天印发的" of a document the question names by words no alias has: the one its best clauses are in
    one_doc = list({h.chunk.doc_id for h in hits[:3]})
    row = metadata_answer(qa, index, documents, scope or (one_doc if len(one_doc) == 1 else None))
    if row is not None:
        return _whole_clauses(question, [row], index, qa)
    # "A条例和B条例分别是从哪天开始施行的": each document's own clause saying so, one line each
    rows = in_force_rows(qa, index, scope) if scope and len(scope) >= 2 else None
    if rows:
        return _whole_clauses(question, rows, index, qa)

    compare_docs = scope if retrieval.route.compare and scope and len(scope) >= 2 else None
    aliases = list(retrieval.route.aliases.values())
    section = None
    of_section = qa.summary or qa.broad or qa.listing  # "怎么回顾…" asks for a section only by its role
    if (of_section or qa.how) and not qa.quantity and not compare_docs:
        if of_section or qa.how:  # "办理流程大概是怎样的" names a heading as a whole too
            section = matched_section(question, qa, index, aliases, scope)
        if section is None and not qa.asks_number:
            section = role_section(qa, index, scope, aliases)
        if section is None and not qa.asks_number and of_section:
            section = document_outline(qa, index, scope, aliases)
        if section is None and not qa.asks_number and not qa.responsible and of_section:
            section = sibling_section(hits, qa, index)
        if section is None and qa.broad and not qa.asks_number:
            section = enclosing_section(hits, index, qa)
        composed = section_answer(section, index, _doc_label(index.chunks[index.doc_rows[section[0]][0]],
                                                               qa.english)) if section else None
        if composed:
            text, citations = _structured(composed)
            return Answer(question, text, False, citations)

    part_qas = _part_analyses(question, documents)
    whole_clause = (qa.how or qa.listing or qa.summary) and not (qa.asks_number or qa.responsible or qa.quantity)
    if whole_clause:
        picks = best_clauses(hits, _with_common_words(qa, index, scope), index, qvec, compare_docs,
                             SECOND_WHOLE_CLAUSE_RATIO)
        if not compare_docs and compared_items(question):
            picks = _with_each_items_clause(picks, hits, retrieval.parts)
    elif compare_docs:
        picks = []
        for doc_id in compare_docs:
            doc_hits = [(i, h) for i, h in enumerate(hits) if h.chunk.doc_id == doc_id]
            for p in best_sentences([h for _, h in doc_hits], qa, index, qvec, max_sentences=2, max_hits=3):
                picks.append(Pick(doc_hits[p.hit_rank][0], p.sentence_index, p.sentence, p.score))
    else:
        picks = _sentence_picks(_with_common_words(qa, index, scope),
                                [_with_common_words(pa, index, scope) for pa in part_qas], hits, index, qvec,
                                retrieval.parts, least_sentences)
    hits, picks = _with_announced_items(hits, picks, index, listing=qa.listing and not qa.asks_number)
    # The checks below judge the sentences chosen as the answer; the rest of a short clause is shown
    # with them only when they pass (a place named in the next sentence does not make it an answer).
    shown = picks if whole_clause or compare_docs else _whole_short_clauses(picks, hits)
    text, citations = _compose(shown, hits, qa)
    if not citations:
        return refuse("相关条款", "no matching clause", "no_sentence")
    if qa.asks_number and not whole_clause and not _gives_asked_figure(qa, part_qas, picks, hits, index):
        return refuse("该问题所问的具体数字", "no figure for what was asked", "no_figure")
    # A named place must be in what we cite, not merely somewhere in the corpus: in the sentences
    # we answer with (or their headings), or be a place the cited plan is about (its region or
    # title, or a name it uses again and again).  "武汉作为侧翼…目标是多少" is not answered by the
    # national target of a plan that lists 武汉 once among its regions, nor by the sentence after
    # the one naming it.  An organisation need only be in the cited clauses.
    cited_docs = sorted({c.hit.chunk.doc_id for c in citations})
    cited = " ".join(c.hit.chunk.section_path + c.hit.chunk.text for c in citations)
    said = " ".join([*(c.hit.chunk.section_path for c in citations), *(p.sentence for p in picks)])
    in_clause = set(qa.named) - set(missing_names(qa, cited, index))
    for name in missing_names(qa, said, index):
        if name in in_clause and not is_place(normalize(normalize_for_matching(name))):
            continue  # an organisation the cited clause names
        if not any(is_about(name, d, index) for d in documents if d.doc_id in cited_docs):
            return refuse(f"“{name}”的相关内容", f"nothing about {name}", "constraint")
    return Answer(question, text, False, citations)
