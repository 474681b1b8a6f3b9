"""Clause parsing on the real seeds: nothing lost, nothing duplicated, the right ids and paths."""

from __future__ import annotations

import re

import pytest

from rag.cleaning import PAGE_NUMBER, TOC, URL, body_lines, join_wrapped, tidy_spaces
from rag.clauses import MAX_CHUNK_CHARS, chunk_clause, parse_document

DOC_IDS = ["miit-2011-12th-fyp", "shenzhen-2022", "suzhou-sip-2022", "qingpu-2023", "xiamen-huli-2024"]


def _nonws(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _raw(corpus, doc_id):
    from tests.conftest import SEEDS

    return (SEEDS / corpus.document(doc_id).file).read_text(encoding="utf-8")


@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_every_body_character_lands_in_exactly_one_clause(corpus, doc_id):
    parsed = corpus.parsed[doc_id]
    lines, _ = body_lines(_raw(corpus, doc_id))
    body = _nonws("".join(line.text for line in lines))
    # Title-only heading lines live in the outline; everything else in clause text, in source order.
    pieces = [(h.line, _nonws(_line_text(lines, h.line))) for h in parsed.headings if h.title_only
              and h.id != "落款"]
    pieces += [(c.line_start, _nonws(c.text)) for c in parsed.clauses]
    rebuilt = "".join(text for _, text in sorted(pieces, key=lambda p: p[0]))
    assert rebuilt == body


def _line_text(lines, number):
    return next(line.text for line in lines if line.number == number)


@pytest.mark.parametrize("doc_id", DOC_IDS)
def test_clause_ids_are_unique_and_sections_nonempty(corpus, doc_id):
    clauses = corpus.parsed[doc_id].clauses
    ids = [c.clause_id for c in clauses]
    assert len(ids) == len(set(ids))
    assert all(c.section and c.text.strip() for c in clauses)


def test_only_artifact_lines_are_dropped(corpus):
    miit = corpus.parsed["miit-2011-12th-fyp"].artifacts
    assert set(miit.values()) == {TOC} and 17 in miit and 58 in miit and 60 not in miit
    qingpu = corpus.parsed["qingpu-2023"].artifacts
    assert qingpu == {187: PAGE_NUMBER, 233: URL}
    for doc_id in ("shenzhen-2022", "suzhou-sip-2022", "xiamen-huli-2024"):
        assert corpus.parsed[doc_id].artifacts == {}


KNOWN = [
    ("miit-2011-12th-fyp", "三.(二).1", "三、指导思想、基本原则和发展目标 > (二)发展目标 > 1、主要经济指标", "销售收入达3300亿元"),
    ("miit-2011-12th-fyp", "四.(二).1", "四、主要任务和发展重点 > (二)发展重点 > 1、着力发展芯片设计业，开发高性能集成电路产品",
     "支持先进电子设计自动化（EDA）工具开发"),
    ("miit-2011-12th-fyp", "专栏1.p7", "专栏1 芯片与整机价值链共建工程", "汽车电子芯片"),
    ("miit-2011-12th-fyp", "一.(一)", "一、“十一五”回顾 > （一）产业规模持续扩大", "占全球集成电路市场份额的43.8%"),
    ("miit-2011-12th-fyp", "前言.p1", "前言", "集成电路（IC）产业是国民经济"),
    ("shenzhen-2022", "二.(一)", "二、工作目标 > (一)产业规模持续增长", "产业营收突破2500亿元"),
    ("shenzhen-2022", "五", "五、空间布局", "东部硅基、西部化合物、中部设计"),
    ("shenzhen-2022", "六.(二)", "六、保障措施 > (二)加大财税支持力度", "深圳海关"),
    ("suzhou-sip-2022", "三", "三、工作目标", "集成电路产业规模突破1000亿"),
    ("suzhou-sip-2022", "四.(七)", "四、重点任务 > （七）产业人才荟聚工程", "集成电路产业人才总量超15万人"),
    ("suzhou-sip-2022", "五.(五)", "五、保障措施 > （五）落实跟踪监测", "经济大脑"),
    ("qingpu-2023", "二.(一)", "二、总体目标 > （一）产业规模", "达到350亿元，力争380亿元"),
    ("qingpu-2023", "专栏2.(1)", "专栏2 集成电路产业布局 > （1）“一核”西岑科创中心", "总投资400亿元"),
    ("qingpu-2023", "三.(五).10", "（五）强化激励措施，保障高质量人才招引 > 10．加强国际人才回溯", "最后一公里"),
    ("qingpu-2023", "专栏3.(3)", "专栏3 集成电路招商引资路径 > （3）实施“榜单招商”", "一事一议"),
    ("xiamen-huli-2024", "二.(一)", "二、措施与成效 > （一）培育壮大产业集群", "2023年实现产值超22.1亿元"),
    ("xiamen-huli-2024", "三.(三)", "三、今后推进计划 > （三）提升精准产业招商", "瞄准北京、上海、深圳"),
    ("xiamen-huli-2024", "落款.p5", "落款及抄送", "联系电话：5722430"),
]


@pytest.mark.parametrize("doc_id,clause_id,path_suffix,snippet", KNOWN)
def test_known_clauses_have_the_right_id_and_path(corpus, doc_id, clause_id, path_suffix, snippet):
    clause = next((c for c in corpus.parsed[doc_id].clauses if c.clause_id == clause_id), None)
    assert clause is not None, f"{doc_id} has no clause {clause_id}"
    assert clause.section_path.endswith(path_suffix)
    assert snippet in clause.text


def test_responsibility_notes_stay_with_their_clause(corpus):
    clause = next(c for c in corpus.parsed["qingpu-2023"].clauses if c.clause_id == "三.(五).10")
    assert clause.responsible and clause.responsible.startswith("责任单位")
    assert clause.text.endswith("及区属公司等）")
    sz = next(c for c in corpus.parsed["shenzhen-2022"].clauses if c.clause_id == "三.(一)")
    assert sz.responsible.endswith("按职责分工负责")


def test_no_clause_mixes_two_sections(corpus):
    heading_line = re.compile(r"(^|\n)\s*([一二三四五六七八九十]+、|[（(][一二三四五六七八九十]+[）)])")
    for parsed in corpus.parsed.values():
        for c in parsed.clauses:
            # A heading marker may open a clause but never appears after its first line.
            assert not heading_line.search(c.text[1:].replace("\n", "\n")) or c.clause_id.startswith(("导语", "落款"))


def test_stray_spaces_inside_numbers_are_removed_and_words_kept():
    assert tidy_spaces("销售收入达 3300 亿元") == "销售收入达3300亿元"
    assert tidy_spaces("到 2025 年，规划建设 4 个以上") == "到2025年，规划建设4个以上"
    assert join_wrapped(["支持 EDA", "tools 开发"]) == "支持EDA tools开发"
    assert join_wrapped(["集成电路产业营业收入保持年均增长 15%左右，", "达到 350亿元"]) == \
        "集成电路产业营业收入保持年均增长15%左右，达到350亿元"


def test_sentences_broken_across_pages_are_joined(corpus):
    clause = next(c for c in corpus.parsed["miit-2011-12th-fyp"].clauses if c.clause_id == "一")
    assert "自2000年以来快速发展的势头" in clause.text


def test_long_clauses_are_chunked_at_sentence_ends_without_loss(corpus):
    long = [c for c in corpus.clauses if len(c.text) > MAX_CHUNK_CHARS]
    assert long, "the seeds have over-long clauses"
    for clause in long:
        chunks = chunk_clause(clause)
        assert len(chunks) > 1
        assert "".join(ch.text for ch in chunks) == clause.text
        assert all(ch.clause_id == clause.clause_id and ch.section == clause.section for ch in chunks)
        assert all(ch.text.endswith(("。", "；", "）")) for ch in chunks[:-1])


def test_parser_handles_a_plan_it_has_never_seen():
    raw = "示例规划\n\n一、总体目标\n\n到2030年，产值达到\n\n100亿元。\n\n二、主要任务\n\n（一）做强设计\n\n1、支持设计企业。\n\n2、支持制造。\n"
    parsed = parse_document("demo", raw)
    assert [c.clause_id for c in parsed.clauses] == ["导语", "一", "二.(一).1", "二.(一).2"]
    assert parsed.clauses[1].text == "到2030年，产值达到100亿元。"


GUIDE = """某区专利贴息办事指南
一、申请条件
1.申报单位注册地在本区。
二、申请材料
1.2023年度贴息申请表（附件3，原件，加盖公章）。
2.营业执照（复印件，加盖公章）。
3.出质专利的专利证书（复印件，加盖公章）
4.开户许可证（复印件，加盖公章）。
三、受理部门
某区政务服务中心政策兑现窗口。
联系电话：010-12345678；邮箱：window@example.org。
四、业务主管部门
某区工业和科技信息化局
联系电话：010-87654321
五、办理时限
42个工作日。
"""


def test_a_guide_keeps_its_sections_after_a_contact_line_and_every_listed_item():
    """A 办事指南 lists contact lines in its body: the sections after one are the body's, not a
    signature block; an item starting with a year ("1.2023年度…") is an item; an item without a
    full stop and nothing under it is still a clause (its words must be searchable)."""
    clauses = {c.clause_id: c.text for c in parse_document("guide", GUIDE).clauses}
    assert clauses["二.1"].startswith("1.2023年度贴息申请表")
    assert clauses["二.3"] == "3.出质专利的专利证书（复印件，加盖公章）"
    assert "010-87654321" in clauses["四.p2"] and "工业和科技信息化局" in clauses["四.p1"]
    assert clauses["五"] == "42个工作日。"
    assert not any(cid.startswith("落款") for cid in clauses)
