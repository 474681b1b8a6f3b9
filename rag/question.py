"""Question analysis: what a question asks for, and which constraints it names.

Pure functions of the question text and the document list (whose aliases and
regions come from the documents themselves, see `rag.vocabulary`).  The
answerer reads the result; nothing here looks at the index.
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field


from .catalog import DocumentInfo
from .keywords import STOPWORDS, english_terms, key_terms, normalize, pos_cut
from .vocabulary import COUNTRY_WORDS, is_pinyin, is_place

YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
_FIGURE = re.compile(r"(\d+(?:\.\d+)?)\s*(%|％|亿元|万元|亿|万|家|个|名|人|亩|纳米|英寸|项|条)")
# A figure that is not just a year: "2500亿元", "15%", "10家", "5000名"; never an article's
# number ("第十六条", "第3条").
_NUMBER_START = r"(?<![第一两二三四五六七八九十百千万\d.])"  # a whole number, not the tail of 第十六 or 2025
NON_YEAR_FIGURE = re.compile(r"百分之[零〇一两二三四五六七八九十百点]+|千分之[零〇一两二三四五六七八九十百点]+|"
                             rf"{_NUMBER_START}(?:\d+(?:\.\d+)?|[一两二三四五六七八九十百千万]+)\s*(?:余|多)?\s*"
                             r"(?:%|％|亿|万|家|个|名|人|项|条|纳米|英寸|亩|倍|块|所|次|元|位|岁|周岁)|\d{5,}|\d+-\d+家|"
                             rf"{_NUMBER_START}\d+(?:\.\d+)?\s*分(?![之钟])|"  # a score: "满150分", "计2分"
                             # things counted in their own measure word ("年产50发火箭、600颗卫星"), after
                             # digits only ("一张网", "一座城" are no figures)
                             rf"{_NUMBER_START}\d+(?:\.\d+)?\s*(?:余|多)?\s*(?:发|颗|台|套|辆|架|艘|座|张|件|户|吨|"
                             r"千瓦|兆瓦|公里|千米|平方米|平方公里|公顷|米|篇|部|场|届|款|种|类|批)")
# A duration ("10年内", "三个月", "15个工作日", "三十日内", "2小时"): the figure of a "how long",
# never a year or a date's day ("6月1日").
DURATION = re.compile(rf"(?<!月){_NUMBER_START}(?:\d{{1,3}}|[一两二三四五六七八九十]+)\s*(?:年(?!度|级)|个月|个?工作日|天|周|日(?!期)|个?小时|分钟)")
_QUANTITY = re.compile(r"多少|(?<!哪)几[家个名项条所]|比例|规模|目标|数量|金额|产值|产量|营收|收入|人数|占比|增长|"
                       r"how (many|much)|target|revenue|percentage|number of", re.I)
_LIST = re.compile(r"哪些|有什么|有哪些|包括|包含|主要措施|举措|哪[一二两三四五六七八九十几]+[个项条家类种方件]|"
                   r"what are|which|list", re.I)
_SUMMARY = re.compile(r"哪些|有什么|包括|包含|主要|概括|总结|介绍|内容|what (are|does)|summar|main", re.I)
# Asks for a whole section in the user's words: "主要抓哪几件事", "下一步打算怎么做", "概括一下".
_BROAD = re.compile(r"概括|总结|归纳|梳理|几件事|哪几件|哪几块|几个方面|哪几个方面|主要内容|几大[块类部方]|几个?部分|"
                    r"[分划]为哪几|[分划]成哪几|分了哪几|讲了?些什么|说了?些什么|讲的是什么|"
                    r"下一步|打算怎么|准备怎么|怎么做|如何做|讲了什么|说了什么|规定了什么|"
                    r"summari[sz]e|overview|main (points|measures|tasks)", re.I)
_ENGLISH = re.compile(r"^[\x00-\x7f\s’‘“”]+$")
# Asks for a number, so an answer without one in the asked-about phrase does not answer it.
_ASKS_NUMBER = re.compile(r"率[^，,。？?]{0,6}(?:目标|要求|是|达到|提高|为|多)|面积|多少|(?<!哪)几[家个名项条所年次]|比例|多大|多高|多长|多久|哪一年|哪年|何时|标准是|"
                          r"how (many|much|large|big)|what (percentage|share|proportion)|which year|when", re.I)
# "几条原则是什么", "几大任务分别是": the count names items the question asks to be listed
NAMES_THE_ITEMS = re.compile(r"几[^，,。？?；;]{0,12}?(?:是什么|是哪些|分别是|分别为|分别指|指什么|指的是|包括哪些|有哪些|包括什么)")
WANTS_YEAR = re.compile(r"哪一年|哪年|何时|which year|when", re.I)
WANTS_DURATION = re.compile(r"多少年|几年|多少个月|几个月|多少天|几天|多久|多长时间|期限|how long|how many (years|months|days)",
                            re.I)

# A plan's goals and its review of the past live in different sections.
_TARGET = re.compile(r"目标|希望|力争|要达到|要做到|将达到|到20\d\d年|预期|预计|计划|target|aim|goal|by 20\d\d", re.I)
_REVIEW = re.compile(r"十一五|回顾|目前|现状|现在|现有|已经|已有|实现了|过去|去年|成效|取得|情况", re.I)
_RESPONSIBLE = re.compile(r"负责|责任单位|责任部门|牵头|哪些部门|哪些单位|哪个部门|哪个单位|主管部门|"
                          r"who is responsible|responsible|which (department|agency)", re.I)
_HOW = re.compile(r"如何|怎么|怎样|做了什么|做了哪些|采取|安排|部署|举措|措施|方面|how (does|do|did|will|is)|"
                  r"what (measures|steps|actions)", re.I)
# jieba's proper-noun tags are too noisy to refuse on (新建/ns, 安家费/nr, 上市公司/nt): a named
# place is one the gazetteer knows, or a jieba place name of three or more characters.
# Capitalised English words that are not names of places or organisations.
_ENGLISH_COMMON = set("""
what which who whom whose when where why how is are was were do does did the a an of in on for to by and or
according plan plans ic integrated circuit circuits industry industrial park district city province government
china chinese national ministry information technology five year five-year twelfth 12th fyp target targets
revenue talent talents policy policies measures action program programme by semiconductor semiconductors
please tell me list give compare between about i we you they it its their there regulation regulations
article chapter free trade zone
""".split())
# Where a question asks a second thing: "…是多少？由哪个部门负责？", "目标是什么，到哪一年？".
_PART_SPLIT = re.compile(r"[？?；;]+|[，,]\s*(?=(?:另外|以及|并且|同时|还有|其中|分别由|由哪|谁|哪个部门|到哪一年|哪一年|何时))")
# what asks (not what is asked about): "下一步打算怎么做", "概括一下", "有哪些"
ASKING_PATTERNS = (_LIST, _SUMMARY, _BROAD, _HOW)


# The unit a question names for its figure ("多少万片", "几间", "多少钱", "几月份"), and what a figure
# in the text must be written in to be one in that unit.  Generic classifiers (个) and durations
# (年, 天: `DURATION`) are not units here.  Money may be stated as a share ("按投资额的10%").
_MONEY = r"(?:元|万|亿|%|％)"
_UNIT_FAMILIES = {
    **dict.fromkeys(("钱", "块钱", "元", "块", "万元", "亿元", "美元"), _MONEY),
    **dict.fromkeys(("人", "名", "位", "万人"), r"(?:人|名|位)"),
    # a count may be written with the general classifier 个 ("新增多少项发明专利" → "发明专利200个")
    **{u: rf"(?:万|亿)?(?:{u[-1]}|个)" for u in ("间", "片", "万片", "件", "项", "台", "套", "辆", "座", "栋", "张",
                                               "户", "所", "家", "条")},
    **{u: rf"(?:万|亿)?{u[-1]}" for u in ("亩", "万亩", "平方米", "吨", "万吨", "千瓦")},  # measures
    "分": r"分(?![之钟])",  # a score, in digits: "十分重要" is no score
}
_NUMERAL = r"(?:\d+(?:\.\d+)?|[零〇一两二三四五六七八九十百千万]+)\s*(?:余|多)?\s*"
_MONTH = re.compile(r"(?<![个\d])(?:\d{1,2}|[一二三四五六七八九十]{1,3})月(?!份?以[来后])")


_UNIT_AFTER = re.compile(r"(?:(?<!哪)几|多少)\s*(" + "|".join(sorted([*_UNIT_FAMILIES, "月份", "月"], key=len, reverse=True))
                         + ")")


@lru_cache(maxsize=1024)
def asked_unit(question: str) -> str | None:
    """The unit named right after the question's 多少 or 几 ("多少万片" → 万片, "几间" → 间,
    "几月份" → 月), if it is one a figure is written in; "多少人才" names none (人 begins a word),
    nor does "哪几条原则" (a list).  Read from the text, not from jieba's cut, which the
    documents' registered names can change."""
    from jieba import dt

    dt.check_initialized()
    for m in _UNIT_AFTER.finditer(question):
        unit, after = m.group(1), question[m.end():m.end() + 1]
        if after and dt.FREQ.get(unit[-1] + after):
            continue  # the unit's character begins a word: "多少人才", "几分钟"
        return "月" if unit in ("月", "月份") else unit
    return None


def gives_figure(text: str, question: str) -> bool:
    """Does `text` hold the kind of figure `question` asks for: a year for "哪一年", a duration
    for "多久", a figure in the unit it names ("多少万片" is not answered by "10家"), an amount,
    share or count otherwise."""
    if WANTS_YEAR.search(question):
        return bool(YEAR.search(text))
    if WANTS_DURATION.search(question) and DURATION.search(text):
        return True
    unit = asked_unit(question)
    if unit == "月":
        return bool(_MONTH.search(text))
    if unit is not None:
        numeral = r"(?<![\d.])\d+(?:\.\d+)?\s*" if unit == "分" else _NUMERAL
        return bool(re.search(numeral + _UNIT_FAMILIES[unit], text))
    return bool(NON_YEAR_FIGURE.search(text))


@dataclass
class QuestionAnalysis:
    text: str
    keywords: list[str]
    years: list[str]
    figures: list[str]
    named: list[str]  # proper nouns (places, organisations) to find in the documents
    quantity: bool
    listing: bool
    summary: bool
    english: bool
    asks_number: bool = False
    target: bool = False
    review: bool = False
    responsible: bool = False
    how: bool = False
    broad: bool = False  # asks for a section as a whole, in the user's own words
    measured: list[str] = field(default_factory=list)  # what a "how much" asks the figure of ("安家补贴")
    # keywords in most clauses of the one searched document (its topic: 生物医药 in a biomedicine
    # plan): they tell its sentences apart by chance, so choosing a sentence weighs them little
    common: frozenset[str] = frozenset()


def known_names(documents: list[DocumentInfo]) -> set[str]:
    known = set()
    for d in documents:
        known.update(normalize(a) for a in d.aliases + d.weak_aliases)
        known.update(normalize(x) for x in (d.region, d.issuer) if x)
    return {k for k in known if k}


def _english_names(question: str, known: set[str]) -> list[str]:
    """Capitalised words of an English question that look like names we don't know."""
    out = []
    for m in re.finditer(r"[A-Za-z][A-Za-z\-]+", question):
        w = m.group(0)
        lw = w.lower().removesuffix("'s")
        sentence_start = not question[: m.start()].strip() or question[: m.start()].rstrip()[-1] in ".?!"
        if (not w[0].isupper() or w.isupper() or sentence_start or lw in _ENGLISH_COMMON
                or english_terms(lw) or any(lw in k or k in lw for k in known if k) or not is_pinyin(lw)):
            continue  # acronyms (MIIT), glossary words, known places and non-Chinese names are not checked
        out.append(w)
    return out


def named_words(question: str, known: set[str]) -> list[str]:
    """Places and organisations the question names that no document alias covers."""
    out = []
    for word, flag in pos_cut(question):
        w = normalize(word.strip())
        named = is_place(w) or (flag == "ns" and len(w) >= 3)
        if (named and len(w) >= 2 and w not in COUNTRY_WORDS and w not in STOPWORDS
                and not re.fullmatch(r"[a-z\-]+", w) and not any(w in k or k in w for k in known)):
            out.append(word.strip())
    return out


# Words that only say "a figure of" something.
MEASURE_WORDS = {"比例", "比重", "占比", "数量", "规模", "金额", "标准", "目标", "水平", "情况", "要求", "幅度",
                 "额度", "上限", "期限", "时间", "程度", "速度", "增速", "总量", "人数", "个数", "家数", "数字", "多少",
                 "达到", "提出", "计划", "预计", "力争", "最高", "最多", "至少", "一共", "总共", "共", "分别", "现在", "目前"}


_COPULA = {"是", "有", "为", "要", "达到", "达", "占", "能", "会", "将", "可", "约", "大约", "共", "共有", "一共", "总共",
           "到", "了", "提高", "提高到", "提升到", "增加到", "突破", "超过", "给予", "又", "还", "都", "要有", "留"}
_NOUNISH = ("n", "vn", "an", "j", "eng", "b", "l", "nz", "ng")


def _question_word(words: list[str]) -> tuple[int, int] | None:
    """(start, end) token span of the question word of a "how much" question."""
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if re.fullmatch(r"多少|几|多大|多高|多长|多久|哪一年|哪年|何时|几成|百分之几|几[家个名项条所年次倍]", w):
            return i, i + 1
        if (w == "多" and nxt in ("大", "高", "长", "久", "少")) or (w == "哪" and nxt in ("一年", "年")) \
                or (w == "百分之" and nxt == "几"):
            return i, i + 2
    return None


_CLASSIFIERS = frozenset("家个名项条所位")  # what a count of things is counted in ("几家", "多少个")
_DURATION_UNIT = re.compile(r"^(天|日|个工作日|工作日|个月|月|周|小时|分钟)")


def measured_terms(question: str, known: set[str]) -> list[str]:
    """The thing a "how much" question asks the figure of: the nouns just before the question
    word ("安家补贴是多少" -> 安家, 补贴), or just after it ("有多少家企业" -> 企业); places,
    years and words that only say "a figure" (目标, 规模, 比例) left out."""
    toks = list(pos_cut(normalize(question)))
    words = [w for w, _ in toks]
    span = _question_word(words)
    if span is None:  # "良率提出了什么目标": a rate is a number
        return [w for w, f in toks if len(w) >= 2 and w.endswith("率") and w not in MEASURE_WORDS][:1]
    qi, q_end = span
    # a count with its classifier ("几家…", "多少个…") counts the noun that follows it
    counted = (len(words[qi]) == 2 and words[qi][0] == "几" and words[qi][1] in _CLASSIFIERS) or (
        q_end < len(toks) and (toks[q_end][1] == "q" or words[q_end] in _CLASSIFIERS))

    def keep(word: str, flag: str) -> bool:
        return (flag.startswith(_NOUNISH) and word not in MEASURE_WORDS and word not in STOPWORDS
                and len(word) >= 2 and not any(word in k or k in word for k in known if len(k) >= 2))

    def part_of_name(i: int) -> bool:  # walking back over the asked-about phrase ("…的月产能")
        w, f = toks[i]
        return (re.fullmatch(r"[\u4e00-\u9fa5A-Za-z]+", w) is not None and f[:1] not in "pcrmtfdqux"
                and not (f == "ns" and is_place(w)) and w not in ("的", "之")
                and not any(w in k or k in w for k in known if len(k) >= 2))

    def time_phrase(i: int) -> bool:  # "产值2025年要达到多少": the year is not the thing measured
        return words[i] in ("年", "到", "在", "于", "至") or bool(re.fullmatch(r"\d{4}", words[i]))

    def walk_back(i: int, skip_verbs: bool) -> list[str]:
        out: list[str] = []
        while i >= 0 and (words[i] in _COPULA or time_phrase(i) or (skip_verbs and toks[i][1] == "v")):
            i -= 1  # "比例提升到了多少": the change verb is not the thing measured
        while i >= 0 and ((part_of_name(i) and words[i] not in _COPULA) or (not out and time_phrase(i))):
            w = words[i]
            if len(w) >= 2 and w not in MEASURE_WORDS and w not in STOPWORDS and not time_phrase(i):
                out.insert(0, w)
            i -= 1
        return out

    def walk_forward(i: int) -> list[str]:
        out: list[str] = []
        while i < len(toks) and (toks[i][1] in ("q", "m", "uj") or words[i] in ("家", "个", "名", "的")):
            i += 1
        while i < len(toks) and (toks[i][1].startswith(_NOUNISH) or words[i] in MEASURE_WORDS or toks[i][1] == "a"):
            if keep(*toks[i]):
                out.append(words[i])
            i += 1
        # what a count counts may be a noun phrase with a verb or "的" inside it ("几家年收入过百亿的
        # 芯片设计公司", "几家骨干芯片制造企业"): its nouns up to the end of the clause
        while counted and i < len(toks) and not re.fullmatch(r"[，,。？?！!；;、]", words[i]) \
                and words[i] not in _COPULA and len(out) < 6:
            if words[i] == "的" and i + 1 < len(toks) and toks[i + 1][1].startswith(_NOUNISH):
                out = []  # what stands before 的 only qualifies the counted thing that follows
            elif keep(*toks[i]):
                out.append(words[i])
            i += 1
        return out

    i = qi - 1
    while i >= 0 and words[i] in _COPULA:
        i -= 1
    verb_first = i >= 0 and toks[i][1].startswith("v") and toks[i][1] != "vn" and i == qi - 1
    unit = q_end + 1 if q_end < len(words) and words[q_end] == "个" else q_end
    if words[qi] == "多久" or (unit < len(words) and _DURATION_UNIT.match(words[unit])):
        # a time limit is the time of what is done, said after it ("机构多少天内会发补正通知"):
        # those words, verbs too, not the actor before it ("有效期几年" has none after it)
        start = q_end if words[qi] == "多久" else unit + 1
        action = [w for w, f in toks[start:] if len(w) >= 2 and w not in _COPULA and w not in STOPWORDS
                  and re.fullmatch(r"[\u4e00-\u9fa5A-Za-z]+", w) and f[:1] in "vna"]
        if action:
            return action[:4]
    if verb_first or counted:  # "引进多少高层次人才", "培育多少家IDM企业": the counted thing follows
        return walk_forward(q_end) or walk_back(qi - 1, skip_verbs=True)
    return walk_back(qi - 1, skip_verbs=True) or walk_forward(q_end)


_CAPITALISED_RUN = re.compile(r"(?:[A-Z][\w'’\-]*|\d+(?:st|nd|rd|th)?)(?:\s+(?:[A-Z][\w'’\-]*|\d+(?:st|nd|rd|th)?))*")


def without_document_names(question: str, known: set[str]) -> str:
    """An English question without the names of documents it names: a run of capitalised words holding
    a document's alias ("Suzhou Industrial Park", "Qingpu's") is that document's name, so none of its
    words ("Industrial Park" → 工业园区, 产业园) is something asked about."""
    def drop(m: re.Match) -> str:
        words = {w.lower().removesuffix("'s").removesuffix("’s") for w in m.group(0).split()}
        return " " if words & known else m.group(0)
    return _CAPITALISED_RUN.sub(drop, question)


def analyze(question: str, documents: list[DocumentInfo], index=None) -> QuestionAnalysis:
    known = known_names(documents)
    english = bool(_ENGLISH.match(question)) or (not re.search(r"[\u3400-\u9fff]", question)
                                                  and len(re.findall(r"[A-Za-z]", question)) >= 6)
    named = named_words(question, known)
    if english:
        named += _english_names(question, known)
    return QuestionAnalysis(
        text=question,
        # Place names are handled by routing; as keywords they would favour any sentence naming the place.
        keywords=(english_terms(without_document_names(question, known), index) if english else
                  [t for t in key_terms(question) if not any(t in k or k in t for k in known if len(k) >= 2)]),
        years=YEAR.findall(question),
        figures=["".join(m) for m in _FIGURE.findall(question)],
        named=named,
        quantity=bool(_QUANTITY.search(question)),
        listing=bool(_LIST.search(question) or NAMES_THE_ITEMS.search(question)),
        summary=bool(_SUMMARY.search(question)),
        english=english,
        asks_number=(bool(_ASKS_NUMBER.search(question)) or asked_unit(question) is not None) and not (
            NAMES_THE_ITEMS.search(question) and "多少" not in question),
        target=bool(_TARGET.search(question)),
        review=bool(_REVIEW.search(question)),
        responsible=bool(_RESPONSIBLE.search(question)),
        how=bool(_HOW.search(question)),
        broad=bool(_BROAD.search(question)),
        measured=measured_terms(question, known) if not english else [],
    )


# The kinds of document a question names ("这份规划", "北京的…条例").
DOCUMENT_KINDS = ("规划", "计划", "方案", "政策", "措施", "条例", "办法", "意见", "细则", "文件", "通知")
_ASKING = re.compile(r"多少|几|多大|多高|多长|多久|哪|什么|怎么|怎样|如何|是否|吗|谁")


def _asking_clauses(part: str) -> list[str]:
    """`part` cut at its commas when every piece asks something of its own, else `part` whole."""
    pieces = [x.strip() for x in re.split(r"[，,]", part) if x.strip()]
    if len(pieces) >= 2 and all(_ASKING.search(x) and len(normalize(x)) >= 3 for x in pieces):
        return pieces
    return [part]


# "X和Y…有什么不同 / 差多少 / 各是多少": two things of one document compared
_COMPARING = re.compile(r"区别|不同|不一样|差异|差别|差多少|差几|相比|相较|比较|对比|分别|各自|各是|各为|哪个更")
_ITEM_BEFORE = re.compile(r"[^，,。？?；;：:对在把将从按为就里中的和与跟及、]{2,12}$")
_ITEM_AFTER = re.compile(r"^[^，,。？?；;：:的在之有分各相比差哪和与跟及、]{2,12}")


_ENUM_ITEM = r"[^，,。？?；;：:、和与及跟对在把将从按为就里中的\s]{1,8}?"
_ENUMERATION = re.compile(rf"{_ENUM_ITEM}(?:、{_ENUM_ITEM})+(?:(?:和|与|及){_ENUM_ITEM})?"
                          r"(?=分别|各自|各|的|在|方面|上|等|有|，|,|？|\?|$)")


def compared_items(question: str) -> list[str]:
    """"周一到周四和周五的受理时间有什么区别" -> ["周一到周四的受理时间有什么区别", "周五的受理时间有什么区别"]:
    the question once for each of the two things it compares, so each is searched and answered in its
    own clause.  [] when it compares nothing or the two things cannot be told apart."""
    if not _COMPARING.search(question):
        return []
    enum = _ENUMERATION.search(question)  # "针对设计、制造、封测分别实施了什么计划"
    if enum:
        items = re.split(r"、|和|与|及", enum.group(0))
        if len(items) >= 2 and all(items):
            return [question[: enum.start()] + item + question[enum.end():] for item in items]
    for m in re.finditer(r"和|与|跟|以及", question):
        before = _ITEM_BEFORE.search(question[: m.start()])
        after = _ITEM_AFTER.match(question[m.end():])
        if before and after:
            x, y = before.group(0), after.group(0)
            head, tail = question[: m.start() - len(x)], question[m.end() + len(y):]
            return [head + x + tail, head + y + tail]
    return []


def asked_parts(question: str) -> list[tuple[str, str]]:
    """The separate things a question asks, each made to stand alone, with its own words as asked.

    "无锡营收目标是多少？由哪个部门负责？" -> [("无锡营收目标是多少", same),
    ("无锡营收目标的由哪个部门负责", "由哪个部门负责")]: a later part without a subject of its own
    borrows the first part's topic words, joined by 的 (they stay context: "…联系人" + "电话多少"
    measures 电话).  See `part_queries` for which of the two is searched and read.
    """
    parts = [p.strip(" ，,。") for p in _PART_SPLIT.split(question) if p and p.strip(" ，,。")]
    # "培育几家骨干企业，收入要多大": a comma between two clauses that each ask something
    parts = [piece for p in parts for piece in _asking_clauses(p)]
    parts = [p for p in parts if len(normalize(p)) >= 3]
    if len(parts) < 2:
        items = compared_items(question)
        return [(p, p) for p in items] if items else [(question, question)]
    first_topic = "".join(t for t in key_terms(parts[0]) if not _ASKS_NUMBER.search(t) and not _TARGET.fullmatch(t))
    out = [(parts[0], parts[0])]
    for p in parts[1:]:
        own = [t for t in key_terms(p) if not _RESPONSIBLE.search(t)]
        out.append((p if len("".join(own)) >= 4 else f"{first_topic}的{p}", p))
    return out


def part_queries(question: str) -> list[str]:
    """Each part as it is searched and read: in its own words when it has any ("由哪个部门牵头"; the
    whole question keeps the context), else as it stands alone with the borrowed topic ("…的到哪一年")."""
    return [own if key_terms(own) else text for text, own in asked_parts(question)]
