"""What the chat page shows, as plain functions of the core `Assistant` and its `Answer`s.

Gradio only wires these to components (ui/app.py), so everything a user sees
-- answer bubbles with citation markers, the citation panel with the quoted
sentence highlighted, refusals, follow-up rewrites, a clause in its context,
the document outlines, the upload progress -- is built and unit-tested here
against the real assistant.  All text from the plans or the user is
HTML-escaped before it reaches the page.
"""

from __future__ import annotations

import hmac
import html
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.ingest import default_title
from rag.service import QuestionError, validate_question

log = logging.getLogger(__name__)

UPLOAD_EXTENSIONS = (".txt", ".pdf", ".docx")
MAX_HISTORY_MESSAGES = 20  # the rewriter only needs recent turns; keeps the state small
_SENTENCE_END = re.compile(r"(?<=[。；！？!?;])")
_MARKERS = re.compile(r"((?:\[\d+\])+)")
_DOC_LABEL = re.compile(r"^\s*(根据|According to)\s*《[^》]*》\s*[：:,，]?\s*")
_EDGE_PUNCT = " \t\r\n。；！？!?;，,：:、"

esc = html.escape


# -- sentences and the quoted ("supporting") sentence ------------------------------


def split_sentences(text: str) -> list[str]:
    """Split after 。；！？!?; -- the unit the extractive answerer quotes."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _core(text: str) -> str:
    return re.sub(r"\s+", "", text).strip(_EDGE_PUNCT)


def quoted_segments(answer_text: str) -> dict[int, list[str]]:
    """Map citation number -> the answer sentences that carry its marker.

    "根据《…》：A[1]。B[1][2]。" gives {1: ["A", "B"], 2: ["B"]}; the document
    label the answerer puts in front of a document's first sentence is dropped.
    """
    quotes: dict[int, list[str]] = {}
    for line in answer_text.splitlines():
        start = 0
        for m in _MARKERS.finditer(line):
            segment = _DOC_LABEL.sub("", line[start:m.start()].lstrip(_EDGE_PUNCT))
            start = m.end()
            pieces = [_core(s) for s in split_sentences(segment)] or [_core(segment)]
            pieces = [p for p in pieces if p]
            for n in (int(x) for x in re.findall(r"\d+", m.group(1))):
                quotes.setdefault(n, []).extend(p for p in pieces if p not in quotes.get(n, []))
    return quotes


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)} or ({text} if text else set())


def _support(sentence: str, quotes: list[str]) -> float:
    """1.0 when the answer quotes the sentence verbatim, else the share of its bigrams the answer uses."""
    core = _core(sentence)
    if not core:
        return 0.0
    best = 0.0
    grams = _bigrams(core)
    for q in quotes:
        if q == core or (len(q) >= 6 and q in core) or (len(core) >= 6 and core in q):
            return 1.0
        shared = len(grams & _bigrams(q))
        if shared >= 3:  # a word or two in common is chance, not support
            best = max(best, shared / len(grams))
    return best


def supporting_sentences(text: str, quotes: list[str]) -> set[int]:
    """Indexes (into `split_sentences(text)`) of the sentences the answer rests on.

    Verbatim quotes (the extractive answerer) match exactly; a paraphrasing
    backend still gets its closest sentence highlighted when the overlap is clear.
    """
    if not quotes:
        return set()
    scores = [_support(s, quotes) for s in split_sentences(text)]
    strong = {i for i, s in enumerate(scores) if s >= 0.6}
    if strong or not scores:
        return strong
    best = max(range(len(scores)), key=scores.__getitem__)
    return {best} if scores[best] >= 0.3 else set()


def highlight(text: str, quotes: list[str]) -> str:
    """Clause text as HTML with the supporting sentence(s) in <mark>."""
    marked = supporting_sentences(text, quotes)
    out = []
    for i, sentence in enumerate(split_sentences(text)):
        out.append(f'<mark class="zc-support">{esc(sentence)}</mark>' if i in marked else esc(sentence))
    return "".join(out)


# -- the answer bubble ---------------------------------------------------------------


def _inline_html(text: str) -> str:
    """Escape a piece of the answer and set its [n] markers as superscripts."""
    parts = _MARKERS.split(text)
    return "".join(f'<sup class="zc-mark">{esc(p)}</sup>' if i % 2 else esc(p) for i, p in enumerate(parts))


# A line that is an item of a list: "1. …" (the section answer's numbering; not "1.5倍") or "- …", "• …".
_NUMBERED = re.compile(r"^\s*(\d{1,3})\s*[.．](?!\d)\s*")
_BULLET = re.compile(r"^\s*[-•·*]\s+")
# "…「三、重点任务」包括：A[1]；B[2]；C[3]。（另有N项）": a long section listed on one line
_INLINE_LIST = re.compile(r"^(?P<head>.*?包括[：:])(?P<items>.+)$")
_LABEL_LINE = re.compile(r"^\s*(?:根据|According to)\s*《(?P<title>[^》]*)》\s*[：:,，]?\s*")
_PERIOD_BRACKETS = re.compile(r"\s*[（(][^（）()]*\d{4}[^（）()]*[）)]\s*$")


def _item_kind(line: str) -> str | None:
    if _NUMBERED.match(line):
        return "ol"
    if _BULLET.match(line):
        return "ul"
    return "cited" if _MARKERS.search(line) else None


def _list_html(tag: str, items: list[str], start: int | None = None) -> str:
    first = f' start="{start}"' if tag == "ol" and start and start != 1 else ""
    return (f'<{tag} class="zc-list"{first}>' + "".join(f"<li>{_inline_html(x)}</li>" for x in items)
            + f"</{tag}>")


def _inline_list(line: str) -> tuple[str, list[str], str] | None:
    """(head, items, tail) when one line lists two or more cited items after "包括：", split at "]；"."""
    m = _INLINE_LIST.match(line)
    if not m:
        return None
    items = re.split(r"(?<=\])\s*[；;]\s*", m.group("items").strip())
    last = re.match(r"^(?P<item>.*\])\s*[。.]?(?P<tail>.*)$", items[-1])
    if len(items) < 2 or not last or not all(_MARKERS.search(x) for x in items):
        return None
    items[-1] = last.group("item")
    return m.group("head"), items, last.group("tail").strip()


def _lines_html(lines: list[str]) -> str:
    """Lines of the answer as HTML: text lines kept apart by <br>; the lines that list items -- numbered
    or bulleted lines, a run of two or more lines each with its [n] marker, one line's "包括：A[1]；B[2]"
    -- as a real list (<ol>/<ul>), each item keeping its markers."""
    out: list[str] = []  # (html, is_block) pieces
    blocks: list[bool] = []

    def text(html_: str) -> None:
        out.append(html_)
        blocks.append(False)

    def block(html_: str) -> None:
        out.append(html_)
        blocks.append(True)

    i = 0
    while i < len(lines):
        kind = _item_kind(lines[i])
        j = i + 1
        while kind and j < len(lines) and _item_kind(lines[j]) == kind:
            j += 1
        run = lines[i:j]
        if kind in ("ol", "ul") and len(run) >= 2:
            pattern = _NUMBERED if kind == "ol" else _BULLET
            start = int(_NUMBERED.match(run[0]).group(1)) if kind == "ol" else None
            block(_list_html(kind, [pattern.sub("", x, count=1) for x in run], start))
        elif kind == "cited" and len(run) >= 2:
            label = _LABEL_LINE.match(run[0])
            if label:  # "根据《…》：" starts the first item: it introduces the list instead
                text(_inline_html(run[0][:label.end()].rstrip()))
                run = [run[0][label.end():]] + run[1:]
            block(_list_html("ul", [x.strip() for x in run]))
        else:
            j = i + 1
            split = _inline_list(lines[i])
            if split:
                head, items, tail = split
                text(_inline_html(head))
                block(_list_html("ul", items))
                if tail:
                    text(_inline_html(tail))
            else:
                text(_inline_html(lines[i]))
        i = j
    html_ = ""
    for k, piece in enumerate(out):
        if k and not blocks[k] and not blocks[k - 1]:
            html_ += "<br>"
        html_ += piece
    return html_


def short_title(title: str, titles: dict[str, str] | None = None) -> str:
    """A document's short name for a column header: its catalog short title, else its title without
    a trailing period in brackets ("…行动计划（2022-2025年）" -> "…行动计划")."""
    short = (titles or {}).get(title)
    if short and short != title:
        return short
    return _PERIOD_BRACKETS.sub("", title) or title


def short_titles(corpus) -> dict[str, str]:
    """title -> short title for every document of the corpus (the comparison table's headers)."""
    if corpus is None:
        return {}
    return {d.title: d.short_title or d.title for d in corpus.documents}


def document_sections(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The answer's lines before any "根据《title》：" label, and per document (in order of first
    appearance, a document's lines merged) the lines that follow its label, label removed."""
    preamble: list[str] = []
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LABEL_LINE.match(line)
        if m:
            current = m.group("title")
            rest = line[m.end():]
            sections.setdefault(current, [])
            if rest.strip():
                sections[current].append(rest)
        elif current is None:
            preamble.append(line)
        else:
            sections[current].append(line)
    return preamble, list(sections.items())


def comparison_html(text: str, titles: dict[str, str] | None = None, full: str | None = None) -> str | None:
    """An answer quoting two or more documents (one "根据《title》：" line each) as a table: one column
    per document, headed by its short title, each cell that document's sentences with their [n]
    markers.  None when the answer quotes fewer than two documents.  While it streams, `full` (the
    whole answer) gives the columns, so the table stands from the start and its cells fill in."""
    preamble, sections = document_sections(text)
    if full is not None:
        columns = [title for title, _ in document_sections(full)[1]]
        shown = dict(sections)
        sections = [(title, shown.get(title, [])) for title in columns]
    if len(sections) < 2:
        return None
    heads = "".join(f'<th scope="col" title="{esc(title)}">{esc(short_title(title, titles))}</th>'
                    for title, _ in sections)
    cells = "".join(f"<td>{_lines_html(lines)}</td>" for _, lines in sections)
    cols = min(len(sections), 4)
    table = (f'<div class="zc-compare-wrap"><table class="zc-compare zc-cols-{cols}"><thead><tr>{heads}</tr>'
             f"</thead><tbody><tr>{cells}</tr></tbody></table></div>")
    return (_lines_html(preamble) if preamble else "") + table


def _answer_body_html(text: str, titles: dict[str, str] | None = None, full: str | None = None) -> str:
    """The answer as HTML: escaped, [n] markers as superscripts, line breaks kept; listed items as a
    list, and an answer quoting several documents as a table with a column per document (`full`: the
    whole answer, when `text` is the part streamed so far)."""
    return comparison_html(text, titles, full) or _lines_html(text.splitlines())


def rewrite_note(answer) -> str:
    """The 'your follow-up was read as …' line, or '' when the question stood alone."""
    rewritten = getattr(answer, "rewritten_question", None)
    if not rewritten or rewritten.strip() == answer.question.strip():
        return ""
    return f'<div class="zc-rewrite"><span class="zc-chip">追问改写</span>已结合上文理解为：<b>{esc(rewritten)}</b></div>'


BACKEND_LABELS = {"extractive": "摘录原文（默认，不用模型）", "llamacpp": "本地模型生成（llama.cpp）",
                  "openai": "模型接口生成（OpenAI 兼容）"}
FALLBACK_LABELS = {"unsupported_figure": "含条款中没有的数字", "bad_citation": "引用了不存在的条款",
                   "uncited": "没有标注引用", "unsupported_wording": "内容与所引条款不符",
                   "no_content": "没有实际内容", "refusal_mixed_with_answer": "拒答与回答混杂",
                   "empty_answer": "模型没有输出", "model_refused": "模型认为条款不能回答",
                   "model_error": "模型出错", "model_unavailable": "模型不可用"}


def backend_choices(status: dict[str, str | None] | None = None) -> list[tuple[str, str]]:
    """(label, backend) for each backend that can answer now; extractive is always first."""
    if status is None:
        from rag.generate import backend_status

        status = backend_status()
    return [(BACKEND_LABELS.get(name, name), name) for name, why in status.items() if why is None]


def default_backend(assistant, choices: list[tuple[str, str]]) -> str:
    """The server's RAG_BACKEND when it can answer, else extractive."""
    try:
        wanted = assistant.resolve_backend(None)
    except (QuestionError, AttributeError):
        wanted = "extractive"
    return wanted if any(value == wanted for _, value in choices) else "extractive"


def generation_note(answer) -> str:
    """What a generative backend did: verified, or why the extractive answer replaced it ('' for extractive)."""
    verified = getattr(answer, "verified", None)
    if verified is None:
        return ""
    if verified:
        cut = getattr(answer, "dropped_sentences", 0)
        extra = f"，删去 {cut} 句无依据的内容" if cut else ""
        return (f'<div class="zc-gen zc-gen-ok">由模型生成，已逐句核对引用和数字{extra}。</div>')
    reason = (getattr(answer, "fallback_reason", "") or "").split(":", 1)[0]
    label = FALLBACK_LABELS.get(reason, reason or "未通过核验")
    return (f'<div class="zc-gen zc-gen-fallback">模型回答未通过核验（{esc(label)}），'
            f'以下为从条款中摘录的答案。</div>')


def streaming_html(shown: str, titles: dict[str, str] | None = None) -> str:
    """The bubble while a model is still writing (verified sentences only)."""
    return (f'<div class="zc-answer"><div class="zc-body">{_answer_body_html(shown, titles)}'
            '<span class="zc-cursor">▍</span></div></div>')


def copy_text(answer) -> str:
    """The answer as plain text for the copy button and screen readers: its [n] markers, then
    one line per cited clause ("[1] 《title》 section · clause id")."""
    lines = [("未找到答案：" if answer.refused else "") + answer.answer.strip()]
    if answer.citations:
        lines += ["", "最接近的条款：" if answer.refused else "引用条款："]
        for c in answer.citations:
            ch = c.hit.chunk
            where = " · ".join(x for x in (ch.section_path, f"条款 {ch.clause_id}") if x)
            lines.append(f"[{c.n}] 《{ch.doc_title}》 {where}")
    return "\n".join(lines)


def _copy_source(answer) -> str:
    """copy_text in a never-shown element (the chat's sanitizer drops data-* attributes); its line
    breaks as &#10;, so the bubble stays one line of HTML for the chat's markdown renderer."""
    return f'<span class="zc-copy" hidden>{esc(copy_text(answer)).replace(chr(10), "&#10;")}</span>'


def format_answer(answer, shown: str | None = None, note: str = "", titles: dict[str, str] | None = None) -> str:
    """The assistant's chat bubble (HTML).  `shown` is the part streamed so far; None = complete.

    Answers and refusals look different: a refusal carries a warning title,
    an amber frame and says the panel lists only the closest clauses.  Listed
    items show as a list, an answer quoting several documents as a table whose
    columns `titles` (title -> short title, `short_titles`) names; the copy
    button's plain text is the answer's own lines either way.
    """
    done = shown is None
    text = answer.answer if done else shown
    body = _answer_body_html(text, titles, None if done else answer.answer) + ("" if done else '<span class="zc-cursor">▍</span>')
    n = len(answer.citations)
    if answer.refused:
        meta = (f"“最接近的条款”中列出 {n} 条，仅供参考，不构成答案依据。" if n else "没有检索到相关条款。")
        inner = (f'<div class="zc-refusal-title">⚠ 未找到答案</div><div class="zc-body">{body}</div>')
        if done:
            inner += f'<div class="zc-meta">{meta}</div>'
        return (f'{rewrite_note(answer)}{note}{generation_note(answer) if done else ""}'
                f'<div class="zc-refusal">{inner}{_copy_source(answer) if done else ""}</div>')
    inner = f'<div class="zc-body">{body}</div>'
    if done:
        total = (answer.timings_ms or {}).get("total")
        took = f" · 用时 {total / 1000:.2f} 秒" if total else ""
        inner += f'<div class="zc-meta">依据 {n} 条条款（见“引用条款”，点击条款可看上下文）{took}</div>'
    return (f'{rewrite_note(answer)}{note}{generation_note(answer) if done else ""}'
            f'<div class="zc-answer">{inner}{_copy_source(answer) if done else ""}</div>')


def stream_pieces(text: str, steps: int = 30, min_chars: int = 3) -> Iterator[str]:
    """Growing prefixes of `text`, so the answer arrives progressively; the last one is `text`."""
    if not text:
        yield ""
        return
    size = max(min_chars, -(-len(text) // steps))
    for end in range(size, len(text), size):
        yield text[:end]
    yield text


def scope_note(corpus, question: str, documents: list[str] | None) -> str:
    """When the document filter leaves out a place the question names, a line saying so ('' otherwise)."""
    if not documents or corpus is None:
        return ""
    from rag.routing import route

    named = route(question, corpus.documents)
    left_out = [d for d in named.documents if d not in documents]
    if not left_out:
        return ""
    places = "、".join(f"“{named.aliases.get(d, d)}”" for d in left_out)
    chosen = "、".join(f"《{label}》" for label, doc_id in doc_choices(corpus) if doc_id in documents)
    return (f'<div class="zc-scope">问题提到的{esc(places)}不在检索范围内：只在限定的文件{esc(chosen)}中检索，'
            '回答不涉及该地的规划。清空“限定文件”可在全部文件中检索。</div>')


# Seconds each generative backend took for a whole answer in this process (the "usually takes" note).
_GENERATION_SECONDS: dict[str, list[float]] = {}


def record_generation(backend: str, seconds: float) -> None:
    _GENERATION_SECONDS.setdefault(backend, []).append(seconds)
    del _GENERATION_SECONDS[backend][:-20]


def generating_message(backend: str) -> str:
    """The wait note while a model writes: what is happening and how long it usually takes here."""
    label = {"llamacpp": "本地模型", "openai": "模型接口"}.get(backend, "模型")
    times = sorted(_GENERATION_SECONDS.get(backend, []))
    if times:
        usual = times[len(times) // 2]
        return (f"已检索到条款，{label}正在生成回答…本机最近 {len(times)} 次回答的中位用时约 {usual:.0f} 秒，"
                "生成后逐句核对引用和数字")
    if backend == "llamacpp":
        return "已检索到条款，本地模型正在生成回答…首次回答需加载模型，在 CPU 上通常要 30–90 秒，生成后逐句核对引用和数字"
    return f"已检索到条款，{label}正在生成回答…通常需要数秒到数十秒，生成后逐句核对引用和数字"


def pending_html(message: str = "正在检索条款…") -> str:
    return f'<div class="zc-pending"><span class="zc-spinner"></span>{esc(message)}</div>'


def error_html(message: str) -> str:
    return f'<div class="zc-error" role="alert">⚠ {esc(message)}</div>'


# -- citation panel and context ----------------------------------------------------------

EMPTY_CITATIONS = ('<div class="zc-cites zc-empty"><div class="zc-panel-title">引用条款</div>'
                   '<p>提问后，这里会列出回答所依据的条款：文件标题、章节路径、条款编号和原文，'
                   '回答摘录的句子以黄色标出。点击条款可查看它在原文中的上下文。</p></div>')
EMPTY_CONTEXT = ""


def citation_panel_html(answer) -> str:
    """Cards for the cited clauses (or, for a refusal, the closest ones), each clickable for context."""
    quotes = {} if answer.refused else quoted_segments(answer.answer)
    if answer.refused:
        head = (f'<div class="zc-panel-title">最接近的条款 <span class="zc-count">{len(answer.citations)}</span></div>'
                '<div class="zc-panel-note">文件中没有直接回答该问题的内容，以下条款仅供参考。</div>')
    else:
        head = f'<div class="zc-panel-title">引用条款 <span class="zc-count">{len(answer.citations)}</span></div>'
    if not answer.citations:
        return (f'<div class="zc-cites{" zc-cites-refused" if answer.refused else ""}">{head}'
                '<p>没有可列出的条款。</p></div>')
    cards = []
    for c in answer.citations:
        ch = c.hit.chunk
        part = f"（第 {ch.part}/{ch.parts} 段）" if getattr(ch, "parts", 1) > 1 else ""
        cards.append(
            f'<div class="zc-card" role="button" tabindex="0" title="点击查看上下文" data-n="{c.n}" '
            f'data-doc="{esc(ch.doc_id)}" data-clause="{esc(ch.clause_id)}">'
            f'<div class="zc-card-top"><span class="zc-badge">[{c.n}]</span>'
            f'<span class="zc-doc">《{esc(ch.doc_title)}》</span></div>'
            f'<div class="zc-path">{esc(ch.section_path) or "（无章节标题）"}</div>'
            f'<div class="zc-clause-id">条款编号 <code>{esc(ch.clause_id)}</code>{part}</div>'
            f'<div class="zc-text">{highlight(ch.text, quotes.get(c.n, []))}</div>'
            f'<div class="zc-more">查看上下文 ›</div></div>')
    cls = "zc-cites zc-cites-refused" if answer.refused else "zc-cites"
    return f'<div class="{cls}">{head}{"".join(cards)}</div>'


def citation_quotes(answer) -> dict[str, list[str]]:
    """Per citation number (as str: it travels through the page's JSON state), the quoted sentences."""
    if answer.refused:
        return {}
    return {str(n): q for n, q in quoted_segments(answer.answer).items()}


def _doc_title(corpus, doc_id: str) -> str:
    for d in corpus.documents:
        if d.doc_id == doc_id:
            return d.title
    return doc_id


def _clause_html(clause, target: bool, quotes: list[str]) -> str:
    text = highlight(clause.text, quotes) if target else esc(clause.text)
    note = f'<div class="zc-resp">{esc(clause.responsible)}</div>' if getattr(clause, "responsible", None) else ""
    cls = "zc-ctx-clause zc-ctx-target" if target else "zc-ctx-clause"
    return (f'<div class="{cls}"><div class="zc-clause-id"><code>{esc(clause.clause_id)}</code>'
            f'{"<span class=zc-here>本条</span>" if target else ""}</div>'
            f'<div class="zc-text">{text}</div>{note}</div>')


def context_html(corpus, doc_id: str, clause_id: str, quotes: list[str] | None = None, radius: int = 2) -> str:
    """The clause between its `radius` neighbours on each side, with section headings where they change."""
    clause_id = clause_id.split("#", 1)[0]  # a chunk id names a part of its clause
    parsed = corpus.parsed.get(doc_id)
    if parsed is None:
        return error_html(f"未知文档：{doc_id}")
    ids = [c.clause_id for c in parsed.clauses]
    if clause_id not in ids:
        return error_html(f"《{_doc_title(corpus, doc_id)}》中没有条款 {clause_id}")
    i = ids.index(clause_id)
    window = parsed.clauses[max(0, i - radius): i + radius + 1]
    parts = [f'<div class="zc-ctx"><div class="zc-panel-title">条款上下文</div>'
             f'<div class="zc-ctx-doc">《{esc(_doc_title(corpus, doc_id))}》 · 条款 <code>{esc(clause_id)}</code>'
             f' · 原文第 {i + 1}/{len(ids)} 条，前后各列 {radius} 条</div>']
    section = None
    for c in window:
        if c.section != section:
            section = c.section
            parts.append(f'<div class="zc-ctx-section">{esc(" › ".join(section)) or "（无章节标题）"}</div>')
        parts.append(_clause_html(c, c.clause_id == clause_id, quotes or []))
    parts.append("</div>")
    return "".join(parts)


# -- documents and outlines ---------------------------------------------------------------


@dataclass
class OutlineEntry:
    id: str
    title: str
    level: float
    path: list[str] = field(default_factory=list)


def outline(parsed) -> list[OutlineEntry]:
    """The document's headings, plus the unheaded opening text (导语) when it has clauses."""
    entries = [OutlineEntry(h.id, h.title, h.level, list(h.path)) for h in parsed.headings]
    tops = {tuple(e.path[:1]) for e in entries}
    for c in parsed.clauses:
        if c.section and (c.section[0],) not in tops:
            tops.add((c.section[0],))
            position = next((k for k, e in enumerate(entries) if parsed.clauses.index(c) < _first_clause(parsed, e)),
                            len(entries))
            entries.insert(position, OutlineEntry(c.clause_id.split(".")[0], c.section[0], 1, [c.section[0]]))
    return entries


def _first_clause(parsed, entry: OutlineEntry) -> int:
    for k, c in enumerate(parsed.clauses):
        if c.section[:len(entry.path)] == entry.path:
            return k
    return len(parsed.clauses)


def section_clauses(parsed, heading_id: str):
    """The clauses under a heading (its own text, sub-clauses and boxes), in document order."""
    entry = next((e for e in outline(parsed) if e.id == heading_id), None)
    if entry is None:
        return None
    return [c for c in parsed.clauses if c.section[:len(entry.path)] == entry.path]


def doc_choices(corpus) -> list[tuple[str, str]]:
    """(label, doc_id) pairs for the document filter."""
    return [(d.short_title or d.title, d.doc_id) for d in corpus.documents]


def documents_html(corpus) -> str:
    """One card per plan: title, issuer, number, date, region, clause count, and a clickable outline."""
    cards = []
    for d in corpus.documents:
        parsed = corpus.parsed.get(d.doc_id)
        n_clauses = len(parsed.clauses) if parsed else 0
        meta = [("发文机关", d.issuer), ("文号", d.doc_number), ("日期", d.date), ("地区", d.region),
                ("条款", f"{n_clauses} 条"), ("编号", d.doc_id)]
        meta_html = "".join(f'<span><b>{k}</b> {esc(str(v))}</span>' for k, v in meta if v)
        items = []
        for e in outline(parsed) if parsed else []:
            depth = max(0, int(round((e.level - 1) * 2)))  # 专栏 boxes sit half a level deeper
            items.append(f'<li class="zc-ol-item zc-depth-{min(depth, 6)}" role="button" tabindex="0" '
                         f'data-doc="{esc(d.doc_id)}" data-heading="{esc(e.id)}">'
                         f'<code>{esc(e.id)}</code> {esc(e.title)}</li>')
        note = f'<div class="zc-doc-note">{esc(d.note)}</div>' if d.note else ""
        cards.append(f'<div class="zc-doc-card"><div class="zc-doc-title">{esc(d.title)}</div>'
                     f'<div class="zc-doc-meta">{meta_html}</div>{note}'
                     f'<details><summary>目录（{len(items)} 个标题，点击标题查看原文）</summary>'
                     f'<ul class="zc-outline">{"".join(items)}</ul></details></div>')
    return f'<div class="zc-docs">{"".join(cards)}</div>'


EMPTY_SECTION = ('<div class="zc-ctx zc-empty"><div class="zc-panel-title">原文</div>'
                 '<p>展开左侧某个文件的目录，点击标题即可在此阅读该部分的条款原文。</p></div>')


def section_html(corpus, doc_id: str, heading_id: str) -> str:
    parsed = corpus.parsed.get(doc_id)
    if parsed is None:
        return error_html(f"未知文档：{doc_id}")
    clauses = section_clauses(parsed, heading_id)
    if clauses is None:
        return error_html(f"《{_doc_title(corpus, doc_id)}》中没有标题 {heading_id}")
    entry = next(e for e in outline(parsed) if e.id == heading_id)
    parts = [f'<div class="zc-ctx"><div class="zc-panel-title">{esc(entry.title)}</div>'
             f'<div class="zc-ctx-doc">《{esc(_doc_title(corpus, doc_id))}》 · {esc(" › ".join(entry.path))}'
             f' · {len(clauses)} 条</div>']
    if not clauses:
        parts.append("<p>该标题下没有正文条款。</p>")
    section = entry.path
    for c in clauses:
        if c.section != section:
            section = c.section
            below = c.section[len(entry.path):]  # headings under the chosen one
            if below:
                parts.append(f'<div class="zc-ctx-section">{esc(" › ".join(below))}</div>')
        parts.append(_clause_html(c, False, []))
    parts.append("</div>")
    return "".join(parts)


# -- a chat turn -------------------------------------------------------------------------


@dataclass
class TurnUpdate:
    """One state of the page during a question: what each output component shows."""

    chat: list[dict]
    history: list[dict]
    citations: str | None  # None: leave the panel as it was (an error must not wipe what is shown)
    quotes: dict | None
    status: str
    question: str  # what stays in the input box (kept on errors, so nothing typed is lost)
    done: bool = False
    answer: object = None


def chat_turn(assistant, question: str | None, chat: list[dict] | None, history: list[dict] | None,
              documents: list[str] | None, k: int | float | None, delay: float = 0.02,
              backend: str | None = None) -> Iterator[TurnUpdate]:
    """Ask, then stream the answer into the chat and fill the citation panel.

    `chat` is what the Chatbot shows (formatted HTML); `history` is the plain
    conversation handed to the assistant for follow-ups.  A follow-up is stored
    under its rewritten, standalone form, so a chain of follow-ups
    ("那苏州工业园区呢？" then "那青浦呢？") keeps its topic.
    """
    chat = list(chat or [])
    history = list(history or [])
    question = (question or "").strip()
    corpus = getattr(assistant, "corpus", None)  # the documents this turn's filter note speaks of
    titles = short_titles(corpus)  # a comparison table's column headers
    k = int(k) if k else None
    try:
        question = validate_question(question, k)
    except QuestionError as exc:
        yield TurnUpdate(chat, history, None, None, error_html(str(exc)), question or "", done=True)
        return
    asked = chat + [{"role": "user", "content": esc(question)},
                    {"role": "assistant", "content": pending_html()}]
    yield TurnUpdate(asked, history, None, None, "", "")  # the panel changes only once there is an answer
    generative = bool(backend) and backend != "extractive"
    try:
        if generative:  # the model's verified sentences appear as it writes them
            answer = None
            shown = ""
            stream = assistant.ask_stream(question, k=k, documents=list(documents) if documents else None,
                                          history=history[-MAX_HISTORY_MESSAGES:], backend=backend)
            # retrieval is done once ask_stream returns: the rest is the model writing
            asked = asked[:-1] + [{"role": "assistant", "content": pending_html(generating_message(backend))}]
            yield TurnUpdate(asked, history, None, None, "", "")
            started = time.perf_counter()
            for item in stream:
                if isinstance(item, str):
                    shown += item
                    yield TurnUpdate(asked[:-1] + [{"role": "assistant", "content": streaming_html(shown, titles)}],
                                     history, None, None, pending_html("模型正在作答…"), "")
                else:
                    answer = item
            record_generation(backend, time.perf_counter() - started)
        else:
            answer = assistant.ask(question, k=k, documents=list(documents) if documents else None,
                                   history=history[-MAX_HISTORY_MESSAGES:])
    except QuestionError as exc:
        yield TurnUpdate(chat, history, None, None, error_html(str(exc)), question, done=True)
        return
    except Exception as exc:  # never a traceback on the page; the log has it
        log.exception("ask failed")
        yield TurnUpdate(chat, history, None, None,
                         error_html(f"内部错误，问题未能回答（{type(exc).__name__}），请稍后重试。"), question, done=True)
        return
    standalone = answer.rewritten_question or question
    note = scope_note(corpus, standalone, documents)
    for shown in ([] if generative else stream_pieces(answer.answer)):
        # a new list per state: each update is a snapshot, not a view of the next one
        yield TurnUpdate(asked[:-1] + [{"role": "assistant", "content": format_answer(answer, shown, note, titles)}],
                         history, pending_html("正在整理引用条款…"), {}, "", "")
        if delay:
            time.sleep(delay)
    asked = asked[:-1] + [{"role": "assistant", "content": format_answer(answer, note=note, titles=titles)}]
    history = (history + [{"role": "user", "content": standalone},
                          {"role": "assistant", "content": answer.answer}])[-MAX_HISTORY_MESSAGES:]
    yield TurnUpdate(asked, history, citation_panel_html(answer), citation_quotes(answer), "", "",
                     done=True, answer=answer)


# -- uploads -------------------------------------------------------------------------------


def admin_keys() -> list[str]:
    """Admin keys from RAG_ADMIN_KEYS (comma or whitespace separated); none = uploads disabled."""
    return [k for k in re.split(r"[,\s]+", os.environ.get("RAG_ADMIN_KEYS", "")) if k]


def check_admin_key(key: str | None) -> bool:
    key = (key or "").strip()
    return bool(key) and any(hmac.compare_digest(key.encode(), k.encode()) for k in admin_keys())


def upload_access(user: str | None) -> tuple[bool, bool]:
    """(show 上传规划, ask for the admin key there) for a page user: the role the page's login gave
    ("admin"/"user", rag/api/login.py), or None without that login (then RAG_ADMIN_KEYS decides)."""
    if user:
        return user == "admin", False
    return bool(admin_keys()), True


def upload_available(assistant) -> bool:
    return callable(getattr(assistant, "add_document", None))


def _progress_html(stage: str, elapsed: float) -> str:
    return (f'<div class="zc-progress"><div class="zc-progress-bar"><span></span></div>'
            f'<div>{esc(stage)} · 已用 {elapsed:.0f} 秒</div></div>')


def _added_id(result) -> str | None:
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        return result.get("doc_id")
    return getattr(result, "doc_id", None)


def corpus_version(assistant) -> str:
    """Names the published document list: a page whose state holds another value refreshes
    its header, document filter and documents tab (after an upload or a delete, in any session)."""
    return "|".join(f"{d.doc_id}:{d.title}" for d in assistant.corpus.documents)


def run_upload(assistant, key: str | None, file_path: str | None, title: str = "", issuer: str = "",
               date: str = "", region: str = "", poll: float = 0.5, aliases: str = "",
               doc_id: str = "", admin: bool = False) -> Iterator[tuple[str, str | None]]:
    """Check the key and file, then add the plan while reporting progress.

    Yields (status HTML, doc_id of the added plan or None).  Bad input and a
    rejected upload (`ValueError` from `add_document`) end in a message; the
    index is left as it was (the assistant guarantees that).  `admin`: the page's
    login already took an admin key, none is asked again.
    """
    if not admin:  # else the page's login already checked an admin key
        if not admin_keys():
            yield error_html("未配置管理员密钥（RAG_ADMIN_KEYS），不能上传。"), None
            return
        if not check_admin_key(key):
            yield error_html("管理员密钥不正确。"), None
            return
    if not upload_available(assistant):
        yield error_html("当前版本的服务不支持上传文件。"), None
        return
    if not file_path:
        yield error_html("请先选择要上传的文件（.txt、.pdf 或 .docx）。"), None
        return
    path = Path(file_path)
    if path.suffix.lower() not in UPLOAD_EXTENSIONS:
        yield error_html(f"不支持的文件类型“{path.suffix or '无扩展名'}”：只接受 .txt、.pdf、.docx。"), None
        return
    content = path.read_bytes()
    fields = {name: value.strip() for name, value in
              (("title", title), ("issuer", issuer), ("date", date), ("region", region), ("aliases", aliases),
               ("doc_id", doc_id)) if value and value.strip()}
    fields.setdefault("title", default_title(path.name))
    outcome: dict = {}

    def work():
        try:
            outcome["result"] = assistant.add_document(path.name, content, **fields)
        except BaseException as exc:  # handed to the page below
            outcome["error"] = exc

    started = time.perf_counter()
    worker = threading.Thread(target=work, name="ui-upload", daemon=True)
    worker.start()
    yield _progress_html(f"正在解析并索引《{fields.get('title', path.name)}》（{len(content) / 1024:.0f} KB）",
                         0.0), None
    while worker.is_alive():
        worker.join(poll)
        if worker.is_alive():
            yield _progress_html("正在切分条款、计算向量并写入索引", time.perf_counter() - started), None
    elapsed = time.perf_counter() - started
    error = outcome.get("error")
    if isinstance(error, ValueError):
        yield error_html(f"上传未被接受：{error}"), None
        return
    if error is not None:
        log.error("upload failed", exc_info=error)
        yield error_html(f"上传失败（{type(error).__name__}），索引保持不变。"), None
        return
    doc_id = _added_id(outcome.get("result"))
    parsed = assistant.corpus.parsed.get(doc_id) if doc_id else None
    count = f"，共 {len(parsed.clauses)} 条条款" if parsed else ""
    yield (f'<div class="zc-ok"><b>上传完成</b> · 已加入索引：<b>{esc(fields.get("title", path.name))}</b>'
           f'（编号 <code>{esc(doc_id or "?")}</code>{count}），用时 {elapsed:.1f} 秒，现在即可提问。</div>'), doc_id
