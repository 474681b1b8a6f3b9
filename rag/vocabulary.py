"""Vocabulary taken from the indexed documents themselves, never from code.

Why: an uploaded plan must be treated like a seed.  Everything the answerer
needs to know about a document's names — how users refer to it (无锡 for
"无锡市集成电路产业发展三年行动计划"), the years it covers, its 文号, the organisations it
mentions — is derived here from the document's title, catalog fields and
text, the same way for seeds and uploads.  `register` teaches jieba these
words so questions naming them are cut as one word.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import lru_cache

import jieba
import jieba.posseg as pseg

from .catalog import DocumentInfo
from .config import _cache_dir
from .store import write_atomic

# Words that name the whole country or the world: every document is "about" them.
COUNTRY_WORDS = frozenset({"中国", "我国", "全国", "国家", "国内", "国际", "全球", "世界", "中央", "国务院", "中华人民共和国"})
# Administrative suffixes: "无锡市" is also called "无锡", "天河区" stays "天河区" and "天河".
_SUFFIXES = ("特别行政区|自治区|自治州|自治县|工业园区|经济技术开发区|高新技术产业开发区|开发区|高新区|新区|"
             "省|市|区|县|镇|乡|街道")
_ADMIN_SUFFIX = re.compile(rf"({_SUFFIXES})$")
_PLACE_PREFIX = re.compile(rf"^((?:[\u4e00-\u9fa5]{{2,8}}?(?:{_SUFFIXES})){{1,3}})")
_YEAR_SPAN = re.compile(r"[（(]?\s*((?:19|20)\d{2})\s*[-—－~～至到]\s*((?:19|20)\d{2})\s*年?\s*[)）]?")
_FIVE_YEAR = {"十一五": (2006, 2010), "十二五": (2011, 2015), "十三五": (2016, 2020), "十四五": (2021, 2025),
              "十五五": (2026, 2030)}
_DOC_NUMBER = re.compile(r"[\u4e00-\u9fa5]{1,12}[〔\[［(（]\s*(?:19|20)\d{2}\s*[〕\]］)）]\s*\d{1,4}\s*号")
# Organisations a text names: a run of CJK characters ending in an organisation word.
_ORG = re.compile(r"([\u4e00-\u9fa5]{2,12}(?:有限公司|股份公司|集团|公司|大学|学院|研究院|研究所|实验室|"
                  r"委员会|管委会|人民政府|办公室|办公厅))")
_ORG_SUFFIX = re.compile(r"(有限公司|股份公司|集团|公司|大学|学院|研究院|研究所|实验室|委员会|管委会|人民政府|办公室|办公厅)$")
_NAMED_POS = {"ns", "nt", "nr", "nrt", "nz"}


def place_aliases(name: str) -> list[str]:
    """"江苏省无锡市" -> ["无锡市", "无锡"]; "江苏省无锡市新吴区" -> ["新吴区", "新吴"]."""
    name = name.strip()
    if not name:
        return []
    parts = re.findall(rf"[\u4e00-\u9fa5]+?(?:{_SUFFIXES})", name)
    last = parts[-1] if parts else name
    out = [last]
    short = _ADMIN_SUFFIX.sub("", last)
    if len(short) >= 2 and short != last:
        out.append(short)
    return [a for a in out if a not in COUNTRY_WORDS and len(a) >= 2]


def title_place(title: str) -> str:
    """The place a title opens with: "无锡市集成电路…" -> "无锡市", "天河区深化…" -> "天河区"."""
    title = re.sub(r"^(关于|印发|转发)+", "", title.strip())
    m = _PLACE_PREFIX.match(title)
    if not m:
        return ""
    place = m.group(1)
    # jieba confirms the place: its first word must be a place name ("无锡市", not "培育发展区")
    first = next(iter(pseg.cut(place)), None)
    return place if first is not None and first.flag == "ns" else ""


def dominant_place(text: str) -> str:
    """The place a document is about when its title does not say: the county- or city-level
    place it names most, clearly more than any other (a district in its reply letter)."""
    from collections import Counter

    counts = Counter()
    for name in gazetteer():
        if len(name) >= 3 and _ADMIN_SUFFIX.search(name) and name in text:
            counts[name] = text.count(name)
    # the most local place named at least three times: a district's letter names its city too
    level = lambda n: 0 if n.endswith(("区", "县")) else 1 if n.endswith("市") else 2  # noqa: E731
    named = [n for n, c in counts.items() if c >= 3]
    return min(named, key=lambda n: (level(n), -counts[n])) if named else ""


def derive_period(title: str, text: str = "") -> list[int] | None:
    """The years a document covers, from its title ("（2022-2025年）", "十四五")."""
    m = _YEAR_SPAN.search(title)
    if m and int(m.group(1)) <= int(m.group(2)):
        return [int(m.group(1)), int(m.group(2))]
    for word, span in _FIVE_YEAR.items():
        if word in title:
            return list(span)
    return None


def derive_doc_number(text: str) -> str | None:
    """The 文号 in the document's first lines ("青府办发〔2023〕25号")."""
    head = "\n".join(text.splitlines()[:12])
    m = _DOC_NUMBER.search(head)
    return re.sub(r"\s+", "", m.group(0)) if m else None


def organisations(text: str) -> set[str]:
    """Organisation names the text mentions ("某某材料实验室", "区财政局")."""
    out = set()
    for m in _ORG.finditer(text):
        words = [w for w in pseg.cut(m.group(1))]
        # drop leading words that are not part of a name (verbs, prepositions, pronouns: "依托某某大学")
        while words and (words[0].flag[:1] in "vpcdurmfq" or len(words[0].word) == 1):
            words.pop(0)
        name = "".join(w.word for w in words)
        if 3 <= len(name) <= 14 and not _ORG_SUFFIX.fullmatch(name) and len(_ORG_SUFFIX.sub("", name)) >= 2:
            out.add(name)
    return out


@lru_cache(maxsize=4096)
def _named_words(text: str) -> frozenset[str]:
    return frozenset(w.word for w in pseg.cut(text) if w.flag in _NAMED_POS and len(w.word) >= 2)


_ALIAS_PINYIN: dict[str, str] | None = None  # read from the cache file on first use
_ALIAS_PINYIN_FILE = "alias-pinyin-v1.json"


def alias_pinyin(names: list[str]) -> list[str]:
    """Capitalised pinyin of place names ("长沙" -> "Changsha"), kept in a small file of the cache
    folder: pypinyin's phrase dictionary (right for polyphonic 长, 重) costs ~50 MB to load, too much for
    every one-shot `rag ask`, so it is loaded only for names never spelled before."""
    global _ALIAS_PINYIN
    path = _cache_dir() / _ALIAS_PINYIN_FILE
    if _ALIAS_PINYIN is None:
        try:
            _ALIAS_PINYIN = dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            _ALIAS_PINYIN = {}
    missing = [n for n in names if n not in _ALIAS_PINYIN]
    if missing:
        from pypinyin import lazy_pinyin

        _ALIAS_PINYIN.update({n: "".join(lazy_pinyin(n)).capitalize() for n in missing})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(_ALIAS_PINYIN, ensure_ascii=False).encode())
        except OSError:
            pass  # a read-only cache folder: spelled again by the next process
    return [_ALIAS_PINYIN[n] for n in names]


def enrich(info: DocumentInfo, text: str) -> DocumentInfo:
    """`info` with what the document itself says filled in: aliases from its title and
    region, its period and 文号 when the catalog has none.  Catalog values win."""
    aliases = list(info.aliases)
    place = title_place(info.title) or (dominant_place(text) if not info.region and not info.aliases else "")
    derived = place_aliases(info.region) + (place_aliases(place) if place else [])
    # English questions name places in pinyin: "Beijing" for 北京, "Nansha" for 南沙
    derived += alias_pinyin([a for a in derived if not _ADMIN_SUFFIX.search(a)])
    for a in derived:
        if a not in aliases and a not in info.weak_aliases:
            aliases.append(a)
    return replace(info, aliases=aliases,
                   period=info.period or derive_period(info.title, text),
                   doc_number=info.doc_number or derive_doc_number(text))


@lru_cache(maxsize=1)
def gazetteer() -> frozenset[str]:
    """China's administrative divisions (cpca's table): full names, and short forms of
    provinces and cities ("合肥市" -> "合肥").  Districts keep their suffix: "和平区" is a
    place, "和平" a word."""
    import csv
    from importlib.metadata import distribution

    names: set[str] = set()
    # read the data file without importing cpca (its import needs pkg_resources and pandas)
    table = distribution("cpca").locate_file("cpca/resources/adcodes.csv")
    with open(table, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name, code = row["name"].strip(), row["adcode"].strip()
            if not name:
                continue
            names.add(name)
            if code[4:6] == "00":  # a province or a prefecture-level city
                short = _ADMIN_SUFFIX.sub("", name)
                if len(short) >= 2:
                    names.add(short)
    return frozenset(names - COUNTRY_WORDS)


@lru_cache(maxsize=4096)
def document_pinyin(text: str) -> frozenset[str]:
    """Pinyin spellings ("huawei", "qingpu") of the names a document uses, so an English
    question naming one ("Huawei", "Qingpu") can be checked against the Chinese text."""
    from pypinyin import lazy_pinyin

    words = set(_named_words(text)) | {w for w in gazetteer() if w in text} | organisations(text)
    return frozenset("".join(lazy_pinyin(w)).lower() for w in words)


@lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    from pypinyin import Style, pinyin_dict, pinyin

    out = set()
    for code in pinyin_dict.pinyin_dict:
        for reading in pinyin(chr(code), style=Style.NORMAL, heteronym=True)[0]:
            if reading.isascii() and reading.isalpha():
                out.add(reading)
    return frozenset(out)


@lru_cache(maxsize=4096)
def is_pinyin(word: str) -> bool:
    """Can `word` be read as pinyin syllables ("hangzhou", "hefei")?  Such an English name is
    a Chinese place or company whose presence can be checked; "Nobel" cannot."""
    word = word.lower().replace("-", "")
    syl = _syllables()
    ok = [True] + [False] * len(word)
    for i in range(1, len(word) + 1):
        ok[i] = any(ok[j] and word[j:i] in syl for j in range(max(0, i - 6), i))
    return len(word) >= 4 and ok[-1]


@lru_cache(maxsize=1)
def gazetteer_pinyin() -> dict[str, frozenset[str]]:
    """Pinyin spelling -> the gazetteer's places spelled so ("hangzhou" -> {"杭州"})."""
    from pypinyin import lazy_pinyin

    out: dict[str, set[str]] = {}
    for name in gazetteer():
        out.setdefault("".join(lazy_pinyin(name)).lower(), set()).add(name)
    return {k: frozenset(v) for k, v in out.items()}


def is_place(word: str) -> bool:
    return word in gazetteer()


_registered: set[str] = set()


def register(documents: list[DocumentInfo], texts: dict[str, str]) -> None:
    """Teach jieba the documents' names: aliases and regions as places, organisations as such."""
    known = len(_registered)
    for d in documents:
        # strong aliases and places only: a weak alias is a generic word ("园区"), and as a word of
        # its own it would cut "产业园区" into 产业/园区
        for word in [*d.aliases, *place_aliases(d.region)]:
            if re.search(r"[\u4e00-\u9fa5]", word) and word not in _registered:
                jieba.add_word(word, freq=200000, tag="ns")
                _registered.add(word)
        for org in organisations(texts.get(d.doc_id, "")):
            if org not in _registered:
                jieba.add_word(org, freq=50000, tag="nt")
                _registered.add(org)
    if len(_registered) != known:
        from .keywords import dictionary_changed

        dictionary_changed()

