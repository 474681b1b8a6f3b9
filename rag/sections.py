"""Answers built from a document's structure: a section's items, or its header fields.

"保障措施有哪些？", "第三章讲了什么？", "下一步打算怎么做？" ask for a section as a
whole: the answer lists the section's items (sub-headings, articles, or the
lead phrases of its paragraphs) in the document's order, each cited.  "文号是
什么？" / "哪天印发的？" are answered from the header and signature clauses.
Works over every heading scheme the parser knows (一、/（一）/1./专栏, 第X章/第X条).
"""

from __future__ import annotations

import re

from .catalog import DocumentInfo
from .clauses import CLOSING_TITLE, PREAMBLE_TITLE, cn_to_int
from .cleaning import normalize_for_matching, split_sentences
from .index import IndexedChunk, KnowledgeIndex, announces_list, documents_text
from .keywords import key_terms, normalize
from .question import ASKING_PATTERNS, DOCUMENT_KINDS, QuestionAnalysis
from .retrieve import Hit

GENERIC_IDF = 2.0
TOPIC_IDF = 1.5  # a word in most clauses (集成电路, 产业 in an IC plan) is no topic of its own
MAX_ITEMS = 15
DETAIL_ITEMS = 6  # a section of at most this many items is answered with what each item says
DETAIL_CHARS = 160  # of each item's own text, in whole sentences
# In a long list, an item this short is given whole rather than by its label (a heading cut with
# "…"): "（二）投融资、空间场地、信息化、科技服务、展览展示等服务；" is all the item says.
WHOLE_ITEM_CHARS = 80
LEAD_CHARS = 60  # a section's own sentence announcing its sub-headings ("具体措施如下：") is not an item
_NOTE_ONLY = re.compile(r"^[（(][^（）()]*(负责|责任单位|责任部门|牵头)[^（）()]*[）)][。；]?$")
_MARKER = re.compile(r"^(专栏\s*\d+|第[零〇一二三四五六七八九十百千两\d]+[编章节条]|[（(][一二三四五六七八九十\d]+[）)]|"
                     r"[一二三四五六七八九十]+、|\d+[、.．﹒])\s*")
_ARTICLE = re.compile(r"^第[零〇一二三四五六七八九十百千两\d]+条$")
# Words that ask for a section's items rather than adding a topic of their own.
SECTION_WORDS = {"措施", "工程", "任务", "举措", "政策", "方面", "内容", "事项", "重点", "哪些", "包括", "包含",
                 "一共", "共", "总共", "部署", "提出", "设置", "安排", "几个", "哪几个", "哪几", "方式", "方法", "形式",
                 "主要", "概括", "总结", "介绍", "专栏", "条", "项", "几", "部分", "章节", "期间", "时期",
                 "我国", "国家", "全国", "当前", "未来", "今后", "章", "节", "规定", "讲", "归纳", "梳理"}


def title_words(title: str) -> str:
    """A heading title without its marker: "六、保障措施" -> "保障措施"."""
    return _MARKER.sub("", title).strip()


def _section_text(index: KnowledgeIndex, doc_id: str, prefix: tuple[str, ...]) -> str:
    """A section's text, normalized like keywords (cached on the index: an index never changes)."""
    cache = index.__dict__.setdefault("_section_texts", {})
    key = (doc_id, prefix)
    if key not in cache:
        cache[key] = normalize("".join(c.text for c in _doc_chunks(index, doc_id)
                                       if tuple(c.section[: len(prefix)]) == prefix))
    return cache[key]


def _doc_chunks(index: KnowledgeIndex, doc_id: str):
    """One document's chunks in order, through its rows: never a scan of the whole corpus."""
    rows = getattr(index, "doc_rows", None)
    if rows is None:
        return [c for c in index.chunks if c.doc_id == doc_id]
    return [index.chunks[r] for r in rows.get(doc_id, ())]


def _chapter_ref(question: str) -> str | None:
    """"第三章" as written; "第八部分" / "第八项" of a plan numbered 一、二、 as its heading's "八、"."""
    m = re.search(r"第[零〇一二三四五六七八九十百千两\d]+[章节编]", question)
    if m:
        return m.group(0)
    m = re.search(r"第([一二三四五六七八九十]+)(?:部分|项|方面|大项)", question)
    return f"{m.group(1)}、" if m else None


def matched_section(question: str, qa: QuestionAnalysis, index: KnowledgeIndex,
                    route_aliases: list[str], documents: list[str] | None) -> tuple[str, list[str]] | None:
    """(doc_id, section prefix) of the heading the question names as a whole ("保障措施", "专栏1", "第三章").

    Only when the question adds no topic of its own beyond the heading's words
    ("保障措施中关于环保…" asks about one item, not the list).
    """
    if not getattr(index, "chunks", None):
        return None
    q = normalize_for_matching(question)
    chapter = _chapter_ref(q)
    place_words = {t for a in route_aliases for t in key_terms(a)}
    best = None
    chunks = [c for d in documents for c in _doc_chunks(index, d)] if documents else index.chunks
    for ch in chunks:
        for depth, title in enumerate(ch.section):
            box = re.match(r"专栏\s*(\d+)", title)
            title_tokens = set(key_terms(title_words(title)))
            if box:
                matched = f"专栏{box.group(1)}" in q
            elif chapter and normalize_for_matching(title).startswith(chapter):
                matched = True
            else:
                matched = (bool(title_tokens) and sum(map(len, title_tokens)) >= 4
                           and len(title_tokens & set(qa.keywords)) / len(title_tokens) >= 0.75)
            if not matched:
                continue
            extra = set(qa.keywords) - title_tokens - place_words - SECTION_WORDS
            extra = {t for t in extra if index.idf(t) >= GENERIC_IDF
                     and not any(t in w or w in t for w in title_tokens | place_words)
                     and not (chapter and chapter in t)}
            if extra:
                # only a word the section itself uses narrows the question to one of its items
                # ("保障措施中关于环保…"); "涵盖", "领域" are the asker's words
                body = _section_text(index, ch.doc_id, tuple(ch.section[: depth + 1]))
                extra = {t for t in extra if t in body}
            if extra:
                continue
            key = (10 if box or chapter else len(title_tokens), -depth)
            if best is None or key > best[0]:
                best = (key, ch.doc_id, ch.section[: depth + 1])
    if best is None:
        return None
    return best[1], best[2]


# What part of a document's story a question asks for, in the asker's words, and the words by
# which headings of any government document name that part: "接下来有什么打算" is its "今后推进计划"
# or "下一步工作", "已经做了哪些、效果怎么样" its "措施与成效" or "工作进展", "怎么回顾" its "回顾".
SECTION_ROLES = (
    (re.compile(r"接下来|下一步|下一阶段|下阶段|今后|往后|后续|打算|将来|准备怎么"),
     re.compile(r"今后|下一步|下阶段|下一阶段|推进计划|工作计划|工作打算|工作思路|工作安排|展望")),
    (re.compile(r"已经|做了|干了|取得|成效|效果|成绩|进展|回顾|开展了"),
     re.compile(r"成效|成绩|进展|回顾|取得|开展情况|工作情况|主要做法|工作成果")),
)


def role_section(qa: QuestionAnalysis, index: KnowledgeIndex, scope: list[str] | None,
                 route_aliases: list[str]) -> tuple[str, list[str]] | None:
    """The one heading of the searched document that plays the part of its story the question asks
    about (`SECTION_ROLES`), when the question adds no topic the document uses narrowly: "某区
    接下来在集成电路集群上有什么打算" is the whole "三、今后推进计划", not its first clause."""
    if not scope or len(scope) != 1 or not getattr(index, "chunks", None):
        return None
    chunks = _doc_chunks(index, scope[0])
    if not chunks:
        return None
    question = normalize_for_matching(qa.text)
    headings: dict[tuple[str, ...], None] = {}
    for c in chunks:
        for depth in range(len(c.section)):
            if c.section[0] not in _OUTSIDE_BODY:
                headings.setdefault(tuple(c.section[: depth + 1]), None)
    for asked, named in SECTION_ROLES:
        if not asked.search(question):
            continue
        found = [h for h in headings if named.search(title_words(h[-1]))]
        found = [h for h in found if not any(o != h and h[: len(o)] == o for o in found)]  # outermost
        if len(found) != 1 or len(section_items((scope[0], list(found[0])), index)) < 2:
            continue
        prefix = found[0]
        topic = [k for k in _asked_of_document(qa, chunks[0].doc_title, route_aliases)
                 if k not in SECTION_WORDS and index.idf(k) >= TOPIC_IDF and index.has_token(k)
                 and not asked.search(k) and not any(p.search(k) for p in ASKING_PATTERNS)
                 and not any(k in title_words(t) for t in prefix)]
        body = _section_text(index, scope[0], prefix)
        if any(normalize(k) in body for k in topic):  # a topic the section names asks inside it ("人才方面")
            continue
        return scope[0], list(prefix)
    return None


_OUTSIDE_BODY = {PREAMBLE_TITLE, CLOSING_TITLE}  # a whole document's parts are its body's
# Words by which a question points at a whole document ("这份办法讲了什么").
_DOCUMENT_WORDS = {*DOCUMENT_KINDS, "这份", "这个", "若干政策", "若干措施", "行动计划", "实施方案", "实施意见",
                   "实施细则", "全文", "整体", "总体", "大概", "大致", "讲了", "说了", "写了"}


def _asked_of_document(qa: QuestionAnalysis, doc_title: str, route_aliases: list[str]) -> list[str]:
    """The question's keywords minus those naming the document (its title, its place, "这份规划")."""
    title_tokens = set(key_terms(doc_title))
    place_words = {t for a in route_aliases for t in key_terms(a)}
    return [k for k in qa.keywords if k not in _DOCUMENT_WORDS and k not in place_words
            and not any(k in t or t in k for t in title_tokens)]


def document_outline(qa: QuestionAnalysis, index: KnowledgeIndex, scope: list[str] | None,
                     route_aliases: list[str]) -> tuple[str, list[str]] | None:
    """("doc_id", []) when a summary question points at one whole document and asks nothing narrower
    ("这份若干政策主要讲了些什么", "概括一下这个条例"): its top-level parts are the answer."""
    rows = getattr(index, "doc_rows", {}).get(scope[0], ()) if scope and len(scope) == 1 else ()
    if not len(rows):
        return None
    chunks = [index.chunks[r] for r in rows]
    asked = _asked_of_document(qa, chunks[0].doc_title, route_aliases)
    if any(k not in SECTION_WORDS for k in asked):
        return None  # a topic of its own
    # a section word that is in one of its headings ("主要任务", "采取了哪些措施") asks for that part
    headings = {title_words(t) for c in chunks for t in c.section}
    if any(k in h for k in asked for h in headings):
        return None
    return scope[0], []


def _too_broad(prefix: list[str], top: IndexedChunk, qa: QuestionAnalysis, index: KnowledgeIndex) -> bool:
    """Is a whole top-level part ("三、主要任务") the answer to a question with a topic of its own
    that its heading does not name?  "在人才方面打算怎么做" is answered by the talent clause, not by
    every task beside it; "主要抓哪几件事" has no such topic."""
    if len(prefix) != 1 or normalize(prefix[0].strip()) in normalize(qa.text):
        return False  # a deeper section, or the part the question names ("第五条讲的是…")
    doc_text = documents_text(index, [top.doc_id])
    topic = [k for k in _asked_of_document(qa, top.doc_title, [])
             if k not in SECTION_WORDS and index.has_token(k) and normalize(k) in doc_text
             and index.idf(k) >= TOPIC_IDF
             and not any(p.search(k) for p in ASKING_PATTERNS)]
    heading = title_words(prefix[0])
    return bool(topic) and not any(k in heading for k in topic)


def enclosing_section(hits: list[Hit], index: KnowledgeIndex,
                      qa: QuestionAnalysis | None = None) -> tuple[str, list[str]] | None:
    """For a broad question ("主要抓哪几件事"): the section holding the best clause and its siblings
    (not a whole part for a question on one topic, see `_too_broad`)."""
    if not hits or not getattr(index, "chunks", None):
        return None
    top = hits[0].chunk
    for depth in range(len(top.section) - 1, 0, -1):
        prefix = top.section[:depth]
        children = {tuple(c.section[:depth + 1]) for c in _doc_chunks(index, top.doc_id)
                    if c.section[:depth] == prefix and len(c.section) > depth}
        if len(children) >= 2:
            if qa is not None and _too_broad(prefix, top, qa, index):
                return None
            return top.doc_id, prefix
    return None


SIBLING_HITS = 4  # of the top SIBLING_TOP clauses, this many under one heading (the best among them)
SIBLING_TOP = 6
_ASKED_COUNT = re.compile(r"哪([两二三四五六七八九十]|\d{1,2})[个项类条家种大件块方]|([两二三四五六七八九十]|\d{1,2})大")


def _asked_count(question: str) -> int | None:
    """"具体是哪十个" -> 10, "六大主赛道" -> 6."""
    m = _ASKED_COUNT.search(question)
    if not m:
        return None
    n = m.group(1) or m.group(2)
    return cn_to_int("二" if n == "两" else n)


def sibling_section(hits: list[Hit], qa: QuestionAnalysis, index: KnowledgeIndex) -> tuple[str, list[str]] | None:
    """For a list question ("分别有什么奖励", "具体是哪十个", "招商引资有哪些路径"): the deepest heading
    holding the best clause and most of the next ones.  When retrieval spreads over sibling items,
    the answer is their list, not the one item that ranked first.  Not when the question names the
    best item itself ("产业平台强基工程要建哪些平台" asks inside that item), nor when it asks for a
    count ("哪三类") the heading's items do not have: that list is inline, in one clause."""
    if not getattr(index, "chunks", None) or not hits:
        return None
    top = hits[0].chunk
    if announces_list(top.text):
        return None  # "…提供下列服务：" announces its own items (see rag.answer)
    own = set(key_terms(title_words(top.section[-1]))) if top.section else set()
    if own and len(own & set(qa.keywords)) / len(own) >= 0.5:
        return None
    count = _asked_count(qa.text)
    for depth in range(len(top.section), 0, -1):
        prefix = top.section[:depth]
        if prefix[0] in _OUTSIDE_BODY:
            return None
        inside = sum(h.chunk.doc_id == top.doc_id and h.chunk.section[:depth] == prefix
                     for h in hits[:SIBLING_TOP])
        if count is not None:
            if inside >= 2 and len(section_items((top.doc_id, list(prefix)), index)) == count:
                return top.doc_id, list(prefix)
        elif inside >= SIBLING_HITS:
            return None if _too_broad(list(prefix), top, qa, index) else (top.doc_id, list(prefix))
    return None


def _item_label(text: str) -> str:
    """The lead phrase of an item's text ("高端通用芯片：…" -> "高端通用芯片")."""
    text = _MARKER.sub("", text.strip())
    m = re.match(r"^([^。；：:，]{2,40})[：:。，；]", text)
    label = m.group(1) if m else (split_sentences(text)[0] if text else "")
    return label.strip().rstrip("。；，")


def section_items(section: tuple[str, list[str]], index: KnowledgeIndex) -> list[tuple[str, int]]:
    """(label, chunk row) of each item of the section, in document order."""
    doc_id, prefix = section
    doc_rows = getattr(index, "doc_rows", None)
    candidates = doc_rows.get(doc_id, ()) if doc_rows is not None else range(len(index.chunks))
    rows = [int(i) for i in candidates if (ch := index.chunks[i]).doc_id == doc_id
            and ch.section[: len(prefix)] == prefix and ch.part == 1 and (prefix or ch.section[0] not in _OUTSIDE_BODY)]
    items: list[tuple[str, int]] = []
    seen: set[str] = set()
    for row in rows:
        ch = index.chunks[row]
        if len(ch.section) > len(prefix):  # an item with its own heading
            child = ch.section[len(prefix)]
            if child in seen:
                continue
            seen.add(child)
            if _ARTICLE.match(child.strip()):  # an article has no title: its first phrase says what it is
                items.append((f"{child.strip()}：{_item_label(ch.text[len(child.strip()):])}", row))
            else:
                items.append((title_words(child).rstrip("。；，") or child, row))
        elif not (announces_list(ch.text) and len(ch.text) <= LEAD_CHARS and prefix
                  and not _ARTICLE.match(prefix[-1].strip())  # an untitled article's lead is what it says
                  and any(len(index.chunks[r].section) > len(prefix) for r in rows)):  # "具体措施如下：" leads in
            label = _item_label(ch.text)
            if label:
                items.append((label, row))
    return items


def _item_detail(label: str, text: str, n: int, max_chars: int = DETAIL_CHARS) -> str:
    """The first sentences of an item after its label, verbatim, each with its [n]: what the item
    does, not only what it is called."""
    body = _MARKER.sub("", text.strip())
    head, colon, rest = label.partition("：")
    lead = rest if colon and _ARTICLE.match(head) else label  # "第四条：省…负责…" leads with "省…负责…"
    if body.startswith(lead):
        body = body[len(lead):].lstrip("。；：:，, ")
    out, used = [], 0
    for sentence in split_sentences(body):
        bare = sentence.strip()
        if not bare or _NOTE_ONLY.match(bare):
            continue
        if out and used + len(bare) > max_chars:
            break
        out.append(bare)
        used += len(bare)
    return "".join(_cited(x, n) for x in out)


def _cited(sentence: str, n: int) -> str:
    """A sentence with its [n] before its closing punctuation."""
    if sentence[-1] in "。；！？":
        return f"{sentence[:-1]}[{n}]{sentence[-1]}"
    return f"{sentence}[{n}]。"


def _bare(text: str) -> str:
    return _MARKER.sub("", text.strip()).strip().rstrip("。；;：:，,")


def _next_under(row: int, item_row: int, index: KnowledgeIndex) -> int | None:
    """The clause after `row`, if it is still under item `item_row`'s heading."""
    item, nxt = index.chunks[item_row], row + 1
    if nxt < len(index.chunks):
        c = index.chunks[nxt]
        if c.doc_id == item.doc_id and c.section[: len(item.section)] == item.section:
            return nxt
    return None


def section_answer(section: tuple[str, list[str]], index: KnowledgeIndex, label_prefix: str,
                   max_items: int = MAX_ITEMS):
    """List a section's items, each cited: (text, [(n, Hit)]).  A short list (at most DETAIL_ITEMS)
    gives each item's first sentences too, one item a line; a long one its labels."""
    items = section_items(section, index)
    if len(items) < 2:
        return None
    cited, parts = [], []
    detailed = len(items) <= DETAIL_ITEMS
    for n, (label, row) in enumerate(items[:max_items], start=1):
        cited.append((n, Hit(index.chunks[row], 1.0, 0.0, 0.0, row)))
        if not detailed:
            head, colon, _ = label.partition("：")
            if colon and _ARTICLE.match(head):  # an untitled article: its label is only its first words
                rest = _item_detail(label, index.chunks[row].text, n, max_chars=0)  # the rest of its first sentence
                parts.append(f"{label}，{rest.rstrip('。；')}" if rest else f"{label}[{n}]")
            elif (len(body := _MARKER.sub("", index.chunks[row].text.strip()).strip()) <= WHOLE_ITEM_CHARS
                  and not re.match(rf"{re.escape(label)}\s*[：:]", body)):  # "高端芯片：…" keeps its label
                parts.append(f"{body.rstrip('。；;，,：:')}[{n}]")  # an enumeration's short item, whole
            else:
                parts.append(f"{label}[{n}]")
            continue
        detail = _item_detail(label, index.chunks[row].text, n)
        child = row
        names_only = _bare(index.chunks[row].text) == _bare(label)  # not "第四条：…", which said its sentence
        for _ in range(3 if names_only else 0):  # "（一）管理创新能力提升工程。" / "1．应急救援指挥中心建设。"
            if detail or (child := _next_under(child, row, index)) is None:
                break
            detail = _item_detail(_MARKER.sub("", index.chunks[child].section[-1]).strip(), index.chunks[child].text, n)
            if detail:  # what its first item says, cited from that item's clause
                cited[-1] = (n, Hit(index.chunks[child], 1.0, 0.0, 0.0, child))
        parts.append(f"{label}：{detail}" if detail else _cited(label, n))
    more = f"（另有{len(items) - max_items}项）" if len(items) > max_items else ""
    head = f"{label_prefix}「{section[1][-1]}」包括：" if section[1] else f"{label_prefix}全文包括："
    if detailed:
        return head + "\n" + "\n".join(f"{i}. {p}" for i, p in enumerate(parts, start=1)), cited
    return head + "；".join(parts) + f"。{more}", cited


_DOC_NUMBER_Q = re.compile(r"文号|字号|发文号|document number|reference number", re.I)
_DATE_Q = re.compile(r"哪天|哪一天|日期|(什么时候|何时|哪年|哪一年)(发布|印发|出台|发的|印发的|发布的)|发布时间|印发时间|成文|"
                     r"when was .*(issued|published|released)|(issue|publication) date", re.I)
# "什么时候开始施行、有效期到哪天" is answered by the text's own 施行 clause, not the signature date
_IN_FORCE_Q = re.compile(r"施行|实施|实行|执行|生效|有效期|失效|到期|come into (force|effect)|effective|valid|expire", re.I)
_WHEN_Q = re.compile(r"什么时候|何时|哪天|哪一天|哪年|日期|多久|几年|多长|管到|适用到|起止|截止|when|how long|until", re.I)
_DOCUMENT_WORD = re.compile("|".join(DOCUMENT_KINDS) + r"|regulation|measures|policy|plan\b|rules", re.I)
_IN_FORCE_CLAUSE = re.compile(r"自.{0,30}?(?:起|之日起)(?:施行|实施|执行|生效)|有效期(?:至|为|\d|[一二三四五六七八九十两]+年)")
_DATE = re.compile(r"\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日")


def asks_in_force(qa: QuestionAnalysis) -> bool:
    """"这个办法管到什么时候", "A条例是从哪天开始施行的": when a document takes effect or ends."""
    return bool(_IN_FORCE_Q.search(qa.text) and _WHEN_Q.search(qa.text) and _DOCUMENT_WORD.search(qa.text))


def _in_force_row(index: KnowledgeIndex, rows: list[int]) -> int | None:
    """The document's own clause saying when it takes effect or how long it holds (its last one)."""
    stated = [r for r in rows if _IN_FORCE_CLAUSE.search(index.chunks[r].text)]
    return stated[-1] if stated else None


def in_force_rows(qa: QuestionAnalysis, index: KnowledgeIndex, scope: list[str]) -> list[int] | None:
    """For each document of `scope`, its clause saying when it takes effect; None unless every one has it."""
    if not asks_in_force(qa) or not getattr(index, "doc_rows", None):
        return None
    found = [_in_force_row(index, [int(r) for r in index.doc_rows.get(d, ())]) for d in scope]
    return found if all(r is not None for r in found) else None


def metadata_answer(qa: QuestionAnalysis, index: KnowledgeIndex, documents: list[DocumentInfo],
                    scope: list[str] | None):
    """Answer "哪个文号" / "哪天印发" from the document's own header or signature clauses: (row) or None."""
    if (not scope or len(scope) != 1 or not getattr(index, "chunks", None)
            or not (_DOC_NUMBER_Q.search(qa.text) or _DATE_Q.search(qa.text))):
        return None
    info = next((d for d in documents if d.doc_id == scope[0]), None)
    doc_rows = getattr(index, "doc_rows", None)
    rows = ([int(r) for r in doc_rows.get(scope[0], ())] if doc_rows is not None
            else [i for i, ch in enumerate(index.chunks) if ch.doc_id == scope[0]])
    if _DOC_NUMBER_Q.search(qa.text) and info and info.doc_number:
        target = normalize_for_matching(info.doc_number)
        return next((r for r in rows if target in normalize_for_matching(index.chunks[r].text)), None)
    if asks_in_force(qa):
        return _in_force_row(index, rows)
    if _DATE_Q.search(qa.text) and not _IN_FORCE_Q.search(qa.text):
        dated = [r for r in rows if _DATE.search(index.chunks[r].text) and len(index.chunks[r].text) < 80]
        # prefer the signature date of issue ("印发"), then any date in the header or closing
        dated.sort(key=lambda r: ("印发" not in index.chunks[r].text, r))
        return dated[0] if dated else None
    return None


def list_items_after(row: int, index: KnowledgeIndex, max_items: int = MAX_ITEMS) -> list[int]:
    """Rows of the items a clause introduces ("…提供下列服务：" then （一）（二）…): the clauses one
    heading level below it that follow it in the document."""
    lead = index.chunks[row]
    out = []
    for r in range(row + 1, len(index.chunks)):
        c = index.chunks[r]
        if c.doc_id != lead.doc_id or c.section[: len(lead.section)] != lead.section:
            break
        if len(c.section) == len(lead.section) + 1 and c.part == 1:
            out.append(r)
        if len(out) >= max_items:
            break
    return out


def list_lead_of(row: int, index: KnowledgeIndex) -> int | None:
    """The clause that announces the list a clause is an item of ("景区内禁止下列行为：" for its
    （三）), or None: the clause one heading level up, before it in the document, ending in a colon."""
    item = index.chunks[row]
    if len(item.section) < 2:
        return None
    for r in range(row - 1, max(-1, row - MAX_ITEMS - 2), -1):
        c = index.chunks[r]
        if c.doc_id != item.doc_id or c.section[: len(item.section) - 1] != item.section[:-1]:
            return None
        if len(c.section) == len(item.section) - 1:
            return r if announces_list(c.text) else None
    return None
