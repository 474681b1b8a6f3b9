"""Vocabulary from the documents, not from code: aliases, periods, 文号, places, names."""

from __future__ import annotations

import re

from rag.catalog import DocumentInfo
from rag.config import PROJECT_ROOT
from rag.vocabulary import (derive_doc_number, derive_period, dominant_place, enrich, is_pinyin, is_place,
                            organisations, place_aliases, title_place)


def _info(**kw) -> DocumentInfo:
    base = dict(doc_id="x", file="x.txt", title="", issuer="", date="", region="")
    return DocumentInfo(**{**base, **kw})


def test_aliases_come_from_the_title_and_region():
    assert place_aliases("广东省深圳市") == ["深圳市", "深圳"]
    assert place_aliases("江苏省苏州市苏州工业园区") == ["苏州工业园区", "苏州"]
    assert title_place("无锡市集成电路产业发展三年行动计划（2024-2026年）") == "无锡市"
    assert title_place("关于印发某某办法的通知") == ""
    e = enrich(_info(title="无锡市集成电路产业发展三年行动计划（2024-2026年）"), "")
    assert {"无锡市", "无锡", "Wuxi"} <= set(e.aliases) and e.period == [2024, 2026]


def test_catalog_values_win_and_periods_read_five_year_plans():
    e = enrich(_info(title="某某“十四五”规划", aliases=["某某"], period=[2020, 2020]), "")
    assert e.aliases[0] == "某某" and e.period == [2020, 2020]
    assert derive_period("集成电路产业“十二五”发展规划") == [2011, 2015]


def test_doc_number_and_dominant_place_from_the_text():
    text = "某某区人民政府办公室\n某府办发〔2023〕25号\n" + "湖里区推进。" * 3 + "厦门市支持。" * 2
    assert derive_doc_number(text) == "某府办发〔2023〕25号"
    assert dominant_place(text) == "湖里区"


def test_gazetteer_and_pinyin():
    assert is_place("合肥") and is_place("杭州") and is_place("南山区")
    assert not is_place("和平") and not is_place("荣誉")  # a district's short form is a common word
    assert is_pinyin("Hangzhou") and is_pinyin("hefei") and not is_pinyin("Nobel")


def test_organisations_named_in_a_text():
    orgs = organisations("依托厦门大学和材料科学姑苏实验室，推动某某科技有限公司发展。")
    assert {"厦门大学", "材料科学姑苏实验室"} <= orgs


def test_no_seed_names_in_code():
    """Names of places, parks and organisations the seeds mention appear nowhere in the pipeline's
    source: not in code, and not in its docstrings or comments either (examples use other places)."""
    import json

    from rag.vocabulary import place_aliases

    catalog = json.loads((PROJECT_ROOT / "seeds" / "catalog.json").read_text(encoding="utf-8"))
    names = set()
    for d in catalog["documents"]:
        names.update(a for a in d["aliases"] if re.search(r"[\u4e00-\u9fff]", a) and a not in ("十二五",))
        names.update(place_aliases(d["region"]) + ([d["region"]] if d["region"] not in ("全国",) else []))
        text = (PROJECT_ROOT / "seeds" / d["file"]).read_text(encoding="utf-8")
        names.update(o for o in organisations(text) if len(o) >= 5)
    offenders = []
    for module in PIPELINE:
        source = (PROJECT_ROOT / "rag" / f"{module}.py").read_text(encoding="utf-8")
        offenders += [f"{module}.py: {name}" for name in sorted(names) if name in source]
    assert not offenders, "\n".join(offenders)


# The modules between the documents and the answer (the API's OpenAPI examples are documentation).
PIPELINE = ("cleaning", "clauses", "corpus", "vocabulary", "keywords", "index", "routing", "rewrite", "retrieve",
            "question", "answerability", "selection", "sections", "answer", "chain", "eval_sets")


def test_place_pinyin_is_spelled_once_then_read_from_the_cache_folder(tmp_path, monkeypatch):
    """Right for polyphonic names (长 is chang in 长沙, 重 chong in 重庆); the file spares a one-shot
    command pypinyin's ~50 MB phrase dictionary."""
    import json

    from rag import vocabulary

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(vocabulary, "_ALIAS_PINYIN", None)  # not read yet
    assert vocabulary.alias_pinyin(["长沙", "重庆"]) == ["Changsha", "Chongqing"]
    saved = json.loads((tmp_path / "alias-pinyin-v1.json").read_text(encoding="utf-8"))
    assert saved == {"长沙": "Changsha", "重庆": "Chongqing"}
    monkeypatch.setattr(vocabulary, "_ALIAS_PINYIN", None)  # not read yet
    (tmp_path / "alias-pinyin-v1.json").write_text(json.dumps({"长沙": "Changsha-cached"}), encoding="utf-8")
    assert vocabulary.alias_pinyin(["长沙"]) == ["Changsha-cached"]  # read back, not spelled again
