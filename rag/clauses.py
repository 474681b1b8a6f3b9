"""Parse a plan into clauses along its own heading hierarchy.

Headings in plans: 一、 (level 1) / （一） or (一) (level 2) / 1、 1. 1． (level 3) /
（1） (level 4, inside 专栏 boxes and lists) / 专栏 N boxes / 前言.  Regulations and
办法: 第X章 / 第X节 / 第X条, with （一） items inside an article nesting under it
(`第二章.第八条.(三)`); an article's paragraphs (款) are its `.p1`, `.p2` clauses.  A heading is
either a title line of its own ("（一）产业规模") or opens its paragraph
("(一) 产业规模持续增长。到2025年，…").  A clause is the smallest numbered
unit, or one paragraph of a unit that has several.  Clause ids are the heading
markers joined by dots (`四.(二).1`, `专栏1.(2)`, `三.(一).p2`), so they stay
stable when chunk sizes change.  Over-long clauses are split into chunks at
sentence ends for retrieval (`Chunk`), never across sections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .cleaning import Line, body_lines, ends_paragraph, join_wrapped, split_sentences, tidy_spaces

CN_NUMERALS = "一二三四五六七八九十"
_CN_BIG = "零〇一二三四五六七八九十百千两"
PREAMBLE_ID, PREAMBLE_TITLE = "导语", "导语（文件开头）"
CLOSING_ID, CLOSING_TITLE = "落款", "落款及抄送"
MAX_CHUNK_CHARS = 360

_L1 = re.compile(rf"^([{CN_NUMERALS}]{{1,3}})、\s*(.*)$")
_L2 = re.compile(rf"^[（(]([{CN_NUMERALS}]{{1,3}})[）)]\s*(.*)$")
# "1.5亿元…" wrapped onto a new line is no item; "1.2017年度申请表" is (a year follows the marker)
_L3 = re.compile(r"^(\d{1,2})\s*[、.．﹒]\s*(?!(?!(?:19|20)\d\d年)\d)(.*)$")
_L4 = re.compile(r"^[（(](\d{1,2})[）)]\s*(.*)$")
_BOX = re.compile(r"^专栏\s*(\d{1,2})\s*[：:]?\s*(.*)$")
_FOREWORD = re.compile(r"^前\s*言$")
# An appendix restarts the numbering of everything: "附件", "附件2", "附件2：…名单" on a line of its own.
_APPENDIX = re.compile(r"^附\s*件\s*(\d{1,2})?\s*(?:[：:]\s*(.*))?$")
# Regulations: 第一章 总则 / 第一节 … / 第十二条 (article text follows on the same line).
_CHAPTER = re.compile(rf"^第\s*([{_CN_BIG}]{{1,6}}|\d{{1,3}})\s*(编|章|部分)\s*(.*)$")
_SECTION = re.compile(rf"^第\s*([{_CN_BIG}]{{1,6}}|\d{{1,3}})\s*节\s*(.*)$")
_ARTICLE = re.compile(rf"^第\s*([{_CN_BIG}]{{1,8}}|\d{{1,3}})\s*条(?![件款例])\s*(.*)$")
# Paragraphs that start the signature block once the body has begun.
_CLOSING = re.compile(r"^(抄送[：:]|再次感谢|区政府分管领导[：:]|承办单位|联系电话[：:]|（此件|\(此件"
                      r"|\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日)")
# （责任单位：…）/（市发展改革委…按职责分工负责） notes that close a clause.
_NOTE = re.compile(r"[（(]((?:责任单位|责任部门)[：:][^（）()]*|[^（）()]*按职责分工负责)[）)]\s*$")


def cn_to_int(numeral: str) -> int:
    """一 -> 1, 十 -> 10, 十二 -> 12, 二十 -> 20, 一百零五 -> 105, 12 -> 12."""
    if numeral.isdigit():
        return int(numeral)
    if any(c in numeral for c in "百千零〇两"):
        digits = {"零": 0, "〇": 0, "两": 2, **{c: i + 1 for i, c in enumerate(CN_NUMERALS[:9])}}
        total, current = 0, 0
        for c in numeral:
            if c in digits:
                current = digits[c]
            elif c in "十百千":
                total += (current or 1) * {"十": 10, "百": 100, "千": 1000}[c]
                current = 0
        return total + current
    values = {c: i + 1 for i, c in enumerate(CN_NUMERALS)}
    if numeral == "十":
        return 10
    if numeral.startswith("十"):
        return 10 + values[numeral[1]]
    if "十" in numeral:
        tens, _, ones = numeral.partition("十")
        return values[tens] * 10 + (values[ones] if ones else 0)
    return values[numeral]


@dataclass
class Heading:
    """A node of the document outline."""

    id: str
    marker: str  # "四", "(二)", "1", "(1)", "专栏1", "前言"
    title: str
    level: float  # 1..4; a box sits half a level below the unit it follows
    path: list[str]  # titles from the top, this heading's included
    line: int
    title_only: bool  # the heading line holds no clause text


@dataclass
class Clause:
    doc_id: str
    clause_id: str
    section: list[str]  # heading titles from the top down
    text: str
    line_start: int
    line_end: int
    responsible: str | None = None  # （责任单位：…） note, when the clause has one

    @property
    def section_path(self) -> str:
        return " > ".join(self.section)


@dataclass
class Chunk:
    """A retrieval unit: a whole clause, or one part of an over-long clause."""

    doc_id: str
    clause_id: str
    part: int
    parts: int
    section: list[str]
    text: str
    line_start: int
    line_end: int

    @property
    def chunk_id(self) -> str:
        return self.clause_id if self.parts == 1 else f"{self.clause_id}#{self.part}"

    @property
    def section_path(self) -> str:
        return " > ".join(self.section)


@dataclass
class ParsedDocument:
    doc_id: str
    headings: list[Heading]
    clauses: list[Clause]
    artifacts: dict[int, str] = field(default_factory=dict)


@dataclass
class _Paragraph:
    text: str
    line_start: int
    line_end: int
    heading: Heading | None = None  # set when the paragraph opens with a heading


@dataclass
class _Unit:
    heading: Heading
    paragraphs: list[_Paragraph] = field(default_factory=list)


class _Outline:
    """Tracks open headings and decides whether a line really is a heading.

    A numbered heading is accepted only when it continues its sequence (二 after
    一; 1 may restart anywhere), and 1.-style or （1）-style headings only at a
    paragraph boundary: this keeps wrapped lines such as "5亿以上…" or a year in
    parentheses from being mistaken for headings.
    """

    def __init__(self) -> None:
        self.stack: list[Heading] = []
        self.last_number: dict[str, int] = {}
        self.seen_body = False
        self.appendices: set[str] = set()
        self.outer_l2 = 0  # last （N） opened above the articles ("(二)绩效奖励" then 第4条 …)

    def _continues(self, kind: str, number: int) -> bool:
        last = self.last_number.get(kind, 0)
        if kind in ("CH", "ART"):  # chapters and articles number through the whole document
            # a regulation may open with its articles and no "第一章 总则" heading: 第二章 then follows 第九条
            return number == last + 1 or (kind == "CH" and last == 0 and self.last_number.get("ART", 0) > 0)
        return number == last + 1 or (number == 1 and kind != "L1")

    def match(self, text: str, at_boundary: bool) -> tuple[str, str, str, str] | None:
        """(kind, marker, shown marker, rest of line) if `text` opens a heading here."""
        text = tidy_spaces(text)  # text from a PDF: "第 1 0 条", "二 、"
        if _FOREWORD.match(text):
            return ("FW", "前言", "", "前言")
        m = _APPENDIX.match(text)
        # a bare "附件：" (or "附件：1．…") in the notice only lists the appendices; the appendix itself
        # starts with "附件" or "附件N" alone, or "附件N：title"
        if m and self.seen_body and (m.group(1) or m.group(2) is None):
            marker = f"附件{m.group(1) or ''}"
            if marker in self.appendices:  # "附件" twice: the later one is the appendix itself
                marker = f"{marker}#{len(self.appendices) + 1}"
            return ("APX", marker, marker + " ", m.group(2) or "")
        m = _BOX.match(text)
        if m:
            return ("BOX", f"专栏{int(m.group(1))}", f"专栏{int(m.group(1))} ", m.group(2))
        for kind, pattern in (("CH", _CHAPTER), ("SEC", _SECTION), ("ART", _ARTICLE)):
            m = pattern.match(text)
            if m and (at_boundary or not self.seen_body) and self._continues(kind, cn_to_int(m.group(1))):
                unit = m.group(2) if kind == "CH" else {"SEC": "节", "ART": "条"}[kind]
                marker = f"第{m.group(1)}{unit}"
                rest = m.group(3) if kind == "CH" else m.group(2)
                return (kind, marker, marker if kind == "ART" else marker + " ", rest)
        m = _L1.match(text)
        if m and self._continues("L1", cn_to_int(m.group(1))):
            return ("L1", m.group(1), text[: m.start(2)].strip(), m.group(2))
        if not (self.seen_body and at_boundary):
            return None
        for kind, pattern, to_int in (("L2", _L2, cn_to_int), ("L3", _L3, int), ("L4", _L4, int)):
            m = pattern.match(text)
            if m and m.group(2) and self._continues(kind, to_int(m.group(1))):
                marker = f"({m.group(1)})" if kind != "L3" else m.group(1)
                return (kind, marker, text[: m.start(2)].strip(), m.group(2))
            if m and m.group(2) and kind == "L2" and self._in_article() and to_int(m.group(1)) == self.outer_l2 + 1:
                # "(二)绩效奖励" after 第3条: the next group of articles, not an item of 第3条
                return ("OL2", f"({m.group(1)})", text[: m.start(2)].strip(), m.group(2))
        return None

    def _in_article(self) -> bool:
        return any(h.marker.startswith("第") and h.marker.endswith("条") for h in self.stack)

    def open(self, kind: str, marker: str, shown: str, title: str, line: int, title_only: bool) -> Heading:
        is_box = lambda h: h.marker.startswith("专栏")  # noqa: E731
        if kind == "BOX":
            # A box belongs to the unit it follows and closes at the next heading of level <= 3.
            while self.stack and is_box(self.stack[-1]):
                self.stack.pop()
            # Half a level below its parent, so （1） items inside the box nest under it.
            level = (self.stack[-1].level if self.stack else 0) + 0.5
        else:
            if kind == "ART" and self.stack and self.stack[-1].marker.startswith("(") and self.stack[-1].title_only \
                    and not self._in_article():
                self.stack[-1].level = 1.3  # "(一)固定资产投资奖励" titles the articles that follow it
            level = {"APX": 0.5, "FW": 1, "L1": 1, "CH": 1, "SEC": 1.3, "OL2": 1.3, "ART": 1.6, "L2": 2, "L3": 3, "L4": 4}[kind]
            while self.stack and (self.stack[-1].level >= level or (is_box(self.stack[-1]) and level <= 3)):
                self.stack.pop()
        if kind in ("L1", "FW", "CH", "SEC", "ART", "APX"):
            self.seen_body = True
        # A new heading restarts the numbering of everything below it; 1. runs on across
        # （一）（二）, and （六） across 一、二、, in plans that number them through, which
        # _continues allows (it accepts a restart at 1 as well).
        if kind == "APX":
            self.appendices.add(marker)
        below = {"APX": ("L1", "L2", "L3", "L4", "CH", "SEC", "ART"), "FW": ("L2", "L3", "L4"),
                 "L1": ("L4",), "L2": ("L4",), "L3": ("L4",), "L4": (), "BOX": ("L4",),
                 "CH": ("SEC", "L2", "L3", "L4"), "SEC": ("L2", "L3", "L4"),
                 "ART": ("L2", "L3", "L4"), "OL2": ("L2", "L3", "L4")}[kind]
        for k in below:
            self.last_number[k] = 0
        if kind == "L1":
            self.outer_l2 = 0
        if kind == "OL2" or (kind == "L2" and not self._in_article()):
            self.outer_l2 = cn_to_int(marker.strip("()"))
        if kind in ("L1", "L2"):
            self.last_number[kind] = cn_to_int(marker.strip("()"))
        elif kind in ("CH", "SEC", "ART"):
            self.last_number[kind] = cn_to_int(re.sub(r"^第|[编章部分节条]+$", "", marker))
        elif kind in ("L3", "L4"):
            self.last_number[kind] = int(marker.strip("()"))
        box = next((h.marker for h in reversed(self.stack) if is_box(h)), None)
        if kind == "BOX":
            heading_id = marker
        elif box:
            heading_id = f"{box}.{marker}"
        else:
            heading_id = ".".join([h.marker for h in self.stack] + [marker])
        parent_path = self.stack[-1].path if self.stack else []
        heading = Heading(id=heading_id, marker=marker, title=title, level=level,
                          path=parent_path + [f"{shown}{title}".strip()], line=line, title_only=title_only)
        self.stack.append(heading)
        return heading


_OPEN_CLOSE = ("“”", "（）", "()", "《》", "「」")
# A wrapped line, not a title, ends like this.
_WRAPPED_END = tuple("，、；：的和及与或对在将把为")


def _balanced(text: str) -> bool:
    return all(text.count(a) == text.count(b) for a, b in _OPEN_CLOSE)


def _split_title(rest: str) -> tuple[str, bool]:
    """Title of a heading and whether the line is nothing but the title."""
    rest = tidy_spaces(rest)
    if ("。" not in rest and len(rest) <= 40 and not rest.endswith(_WRAPPED_END + ("；", ";"))
            and _balanced(rest)):
        return rest, True
    # An inline heading's title is its first sentence, or its first phrase when that is short.
    for stop in ("。", "，"):
        head = rest.split(stop, 1)[0]
        if stop in rest and len(head) <= 30:
            return head, False
    return rest[:20] + "…", False


# Before the body starts, title lines of the notice end a paragraph too.
_PREAMBLE_LINE_END = ("文件", "号", "通知", "函", "日", "类", "）", ")")
_NOTE_END = ("）", ")")


_SHORT_LINE = 20  # in the signature block, a short line (name, date, phone) stands alone


def _at_boundary(previous: str, in_body: bool, in_closing: bool) -> bool:
    return ends_paragraph(previous) or previous.endswith(_NOTE_END) or (
        not in_body and previous.endswith(_PREAMBLE_LINE_END)) or (
        in_closing and len(previous) <= _SHORT_LINE)


# A contact line stands alone, not joined to the name line above it.
_CONTACT_LINE = re.compile(r"^(联系电话|联系人|电话|传真|邮箱|电子邮箱|邮箱地址|地址|窗口地址)[：:]")
# Headings that continue the body's own numbering: a signature block does not come before them.
_BODY_GOES_ON = ("L1", "CH", "ART")


def _paragraphs(lines: list[Line], outline: _Outline, preamble: Heading) -> list[_Unit]:
    """Group body lines into units (heading + paragraphs), joining wrapped lines."""
    units: list[_Unit] = [_Unit(preamble)]
    closing: _Unit | None = None
    buf: list[Line] = []
    opened: Heading | None = None

    def flush(body_goes_on: bool = False) -> None:
        nonlocal buf, opened, closing
        if not buf:
            return
        para = _Paragraph(join_wrapped([l.text for l in buf]), buf[0].number, buf[-1].number, opened)
        buf, opened = [], None
        if closing is None and outline.seen_body and not body_goes_on and _CLOSING.match(para.text):
            closing = _Unit(Heading(CLOSING_ID, CLOSING_ID, CLOSING_TITLE, 1, [CLOSING_TITLE],
                                    para.line_start, True))
            units.append(closing)
        (closing or units[-1]).paragraphs.append(para)

    for line in lines:
        boundary = not buf or _at_boundary(buf[-1].text, outline.seen_body, closing is not None) or bool(
            _CONTACT_LINE.match(line.text))
        hit = outline.match(line.text, boundary)
        if hit and hit[0] == "APX":
            closing = None  # an appendix ends the signature block
        elif closing and hit and hit[0] in _BODY_GOES_ON:
            # the body's numbering goes on ("七、业务主管部门" after "联系电话：…" under 六、受理部门):
            # that line was the body's, not a signature block
            units.remove(closing)
            for para in closing.paragraphs:  # each back to the heading it follows
                [u for u in units if u.heading.line <= para.line_start][-1].paragraphs.append(para)
            closing = None
        elif closing:
            hit = None  # in the signature block only an appendix is a heading
        if hit:
            flush(body_goes_on=hit[0] in _BODY_GOES_ON)
            kind, marker, shown, rest = hit
            if kind == "FW":
                title, title_only = "前言", True
            elif kind == "ART":  # an article has no title: it is cited by its number
                title, title_only = "", not rest.strip()
            else:
                title, title_only = _split_title(rest)
            heading = outline.open(kind, marker, shown, title, line.number, title_only)
            units.append(_Unit(heading))
            if not title_only:
                opened = heading
                buf.append(line)
            continue
        if boundary:
            flush()
        buf.append(line)
    flush()
    return units


def _note(text: str) -> str | None:
    m = _NOTE.search(text)
    return m.group(1) if m else None


def parse_document(doc_id: str, raw_text: str) -> ParsedDocument:
    """Parse one plan's raw text into its outline and clauses."""
    lines, artifacts = body_lines(raw_text)
    outline = _Outline()
    preamble = Heading(PREAMBLE_ID, PREAMBLE_ID, PREAMBLE_TITLE, 1, [PREAMBLE_TITLE],
                       lines[0].number if lines else 1, True)
    units = _paragraphs(lines, outline, preamble)
    # A heading line with nothing under it ("8.出质专利的专利证书（复印件，加盖公章）" in a list of
    # materials) is itself the clause: otherwise its words are in no clause and cannot be found.
    line_text = {l.number: l.text for l in lines}
    for unit, after in zip(units, units[1:] + [None]):
        h = unit.heading
        if (h is not preamble and not unit.paragraphs and h.level >= 1 and h.marker != "前言"
                and (after is None or after.heading.level <= h.level) and h.line in line_text):
            unit.paragraphs.append(_Paragraph(tidy_spaces(line_text[h.line]).strip(), h.line, h.line, h))

    # A note paragraph （责任单位：…） belongs to the paragraph before it.
    for unit in units:
        merged: list[_Paragraph] = []
        for para in unit.paragraphs:
            if merged and para.heading is None and _NOTE.fullmatch(para.text.strip()):
                prev = merged[-1]
                merged[-1] = _Paragraph(prev.text + para.text, prev.line_start, para.line_end, prev.heading)
            else:
                merged.append(para)
        unit.paragraphs = merged

    clauses: list[Clause] = []
    headings: list[Heading] = []
    for unit in units:
        if unit.heading is not preamble:
            headings.append(unit.heading)
        paras = unit.paragraphs
        for i, para in enumerate(paras, start=1):
            clause_id = unit.heading.id if len(paras) == 1 else f"{unit.heading.id}.p{i}"
            clauses.append(Clause(
                doc_id=doc_id, clause_id=clause_id, section=list(unit.heading.path), text=para.text,
                line_start=para.line_start, line_end=para.line_end, responsible=_note(para.text),
            ))
    return ParsedDocument(doc_id=doc_id, headings=headings, clauses=clauses, artifacts=artifacts)


def chunk_clause(clause: Clause, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Split an over-long clause at sentence ends, greedily packing up to `max_chars`."""
    pieces: list[str] = []
    if len(clause.text) <= max_chars:
        pieces = [clause.text]
    else:
        current = ""
        for sentence in split_sentences(clause.text):
            if current and len(current) + len(sentence) > max_chars:
                pieces.append(current)
                current = ""
            current += sentence
        if current:
            pieces.append(current)
    return [
        Chunk(doc_id=clause.doc_id, clause_id=clause.clause_id, part=i, parts=len(pieces),
              section=clause.section, text=piece, line_start=clause.line_start, line_end=clause.line_end)
        for i, piece in enumerate(pieces, start=1)
    ]
