"""Documents shaped unlike the seeds: regulations (第X章/第X条) and numbered 若干措施, uploaded
the way a user would (file and title only), parsed, answered and summarised by structure."""

from __future__ import annotations

import json

import pytest

from rag.clauses import cn_to_int, parse_document
from rag.cleaning import tidy_spaces
from rag.config import PROJECT_ROOT

REGULATION = """某某省促进科技创新条例

第一章 总则
第一条 为了促进科技创新，根据有关法律、行政法规，结合本省实际，制定本条例。
第二条 本条例适用于本省行政区域内的科技创新活动。
第二章 创新主体
第三条 县级以上人民政府应当采取下列措施支持企业创新：
（一）设立科技创新专项资金；
（二）对企业研发投入给予补助，最高不超过500万元；
（三）建设公共服务平台。
第四条 省科学技术主管部门负责全省科技创新工作。
市、县科学技术主管部门负责本行政区域内的科技创新工作。
第三章 附则
第五条 本条例自2020年7月1日起施行。依照本条例第三条规定的资金，由财政部门安排。
"""


def test_cn_numerals_up_to_hundreds():
    assert [cn_to_int(x) for x in ("一", "十", "十二", "二十", "一百", "一百零五", "两百三十", "12")] == \
        [1, 10, 12, 20, 100, 105, 230, 12]


def test_regulation_headings_nest_articles_items_and_paragraphs():
    p = parse_document("reg", REGULATION)
    ids = [c.clause_id for c in p.clauses]
    assert ids[1:] == ["第一章.第一条", "第一章.第二条", "第二章.第三条", "第二章.第三条.(一)", "第二章.第三条.(二)",
                       "第二章.第三条.(三)", "第二章.第四条.p1", "第二章.第四条.p2", "第三章.第五条"]
    item = next(c for c in p.clauses if c.clause_id == "第二章.第三条.(二)")
    assert item.section[:2] == ["第二章 创新主体", "第三条"] and "500万元" in item.text
    # "依照本条例第三条规定" inside a sentence is a reference, not a heading
    assert "第三条规定的资金" in p.clauses[-1].text


def test_a_list_item_ending_in_a_semicolon_is_a_clause_not_a_title():
    p = parse_document("reg", REGULATION)
    assert any(c.text.startswith("（一）设立科技创新专项资金") for c in p.clauses)


MEASURES = """某某市支持工业互联网发展若干政策
一、支持企业数字化改造。鼓励企业实施设备数字化、网络化技术改造，市级按照项目设备购置额的10%给予奖补，最高500万元。
二、支持平台建设。对新认定的市级工业互联网平台，给予一次性奖补100万元。
三、支持人才培训。对开展工业互联网实训的机构，按培训人数给予补助。
"""


RULES = """某某市景区管理规定

第一章 总则
第一条 为了规范景区管理，制定本规定。
第二章 景区管理
第二条 景区实行动态管理，不再具备开放条件的，由主管部门责令暂停开放。
第三条 主管部门每两年对景区进行评估，评估结果向社会公布。
第四条 景区应当核定并公布最大承载量，在入口处设置提示牌。
第五条 景区经营者在实习期满后留用实习学员的，按每人3000元给予留用补贴。
第六条 景区经营者应当建立安全管理制度，配备安全管理人员。
第七条 景区应当为残疾人提供无障碍设施，并免费提供轮椅。
第八条 景区门票实行政府指导价，调整门票价格应当举行听证。
第三章 法律责任
第九条 景区经营者违反本规定第四条，未核定最大承载量擅自开放的，由主管部门责令改正；情节严重的，责令停业整顿一个月至六个月。
第四章 导游积分
第十条 导游年龄在40周岁以下的计30分；40周岁以上的，每增加1岁少加2分。
"""


@pytest.fixture(scope="module")
def uploaded(embedder, tmp_path_factory):
    """A real Assistant over the seeds with the regulation uploaded as a user would."""
    from rag.config import Settings
    from rag.service import Assistant

    a = Assistant(Settings(index_dir=tmp_path_factory.mktemp("index")), embedder=embedder)
    info = a.add_document("条例.txt", REGULATION.encode(), title="某某省促进科技创新条例")
    a.add_document("若干政策.txt", MEASURES.encode(), title="某某市支持工业互联网发展若干政策", doc_id="measures")
    a.add_document("规定.txt", RULES.encode(), title="某某市景区管理规定", doc_id="rules")
    return a, info.doc_id


@pytest.mark.slow
def test_a_long_chapter_of_untitled_articles_gives_each_articles_first_sentence(uploaded):
    """Seven articles with no titles: each is listed with its whole first sentence, not only the
    words before its first comma ("留用实习学员的" says nothing of the 3000元)."""
    a, _ = uploaded
    ans = a.ask("第二章讲了什么？", documents=["rules"])
    assert not ans.refused and len(ans.citations) == 7, ans.answer
    assert "按每人3000元给予留用补贴[4]" in ans.answer and "举行听证[7]" in ans.answer, ans.answer


@pytest.mark.slow
def test_a_figure_asked_for_in_the_askers_own_words_is_found(uploaded):
    """"会扣多少" is what the rule calls "少加": a word no document uses may be said by its synonym."""
    a, _ = uploaded
    ans = a.ask("导游超过40岁会扣多少分？", documents=["rules"])
    assert not ans.refused and "少加2分" in ans.answer, ans.answer


@pytest.mark.slow
def test_a_figure_in_a_clause_ranked_below_the_first_three_is_found(uploaded):
    """Retrieval order fixed by hand: the duty (第四条) and two others without figures rank above
    the penalty article that holds the asked-for time limit; the answer reads on to the fourth clause."""
    from rag.answer import answer_question
    from rag.retrieve import Hit, RetrievalResult
    from rag.routing import Route

    a, _ = uploaded
    index = a.index
    rows = {c.clause_id: r for r, c in enumerate(index.chunks) if c.doc_id == "rules"}
    order = ["第二章.第四条", "第二章.第二条", "第二章.第六条", "第三章.第九条"]
    hits = [Hit(index.chunks[rows[c]], 1.0 / (i + 1), 0.9 - 0.01 * i, 1.0, rows[c]) for i, c in enumerate(order)]
    retrieval = RetrievalResult(hits, Route(documents=[], compare=False), ["rules"])
    ans = answer_question("景区没核定承载量就开放，情节严重的最多停业整顿多长时间？", retrieval, index,
                          a.corpus.documents)
    assert not ans.refused and "一个月至六个月" in ans.answer, ans.answer
    assert ans.citations[0].hit.chunk.clause_id == "第三章.第九条"


@pytest.mark.slow
def test_an_uploaded_regulation_answers_a_figure_with_its_article(uploaded):
    a, doc = uploaded
    ans = a.ask("企业研发投入最多能拿多少补助？", documents=[doc])
    assert not ans.refused and "500万元" in ans.answer
    assert ans.citations[0].hit.chunk.clause_id == "第二章.第三条.(二)"


@pytest.mark.slow
def test_a_sentence_announcing_a_list_is_answered_with_the_list(uploaded):
    a, doc = uploaded
    ans = a.ask("县级以上人民政府应当采取哪些措施支持企业创新？", documents=[doc])
    assert not ans.refused
    for item in ("专项资金", "500万元", "公共服务平台"):
        assert item in ans.answer, ans.answer
    ids = [c.hit.chunk.clause_id for c in ans.citations]
    assert ids == sorted(ids, key=lambda i: ["第二章.第三条", "第二章.第三条.(一)", "第二章.第三条.(二)",
                                             "第二章.第三条.(三)"].index(i) if i.startswith("第二章.第三条") else 9)


@pytest.mark.slow
def test_a_list_question_answered_by_one_item_gets_the_whole_list(uploaded):
    """Retrieval order fixed by hand: only the item （二） ranks, not its lead "…采取下列措施…：".
    A list question is answered with the lead and every item, in the document's order; a figure
    question about the same item is not."""
    from rag.answer import answer_question
    from rag.retrieve import Hit, RetrievalResult
    from rag.routing import Route

    a, doc = uploaded
    index = a.index
    rows = {c.clause_id: r for r, c in enumerate(index.chunks) if c.doc_id == doc}
    row = rows["第二章.第三条.(二)"]
    retrieval = RetrievalResult([Hit(index.chunks[row], 1.0, 0.9, 1.0, row)], Route(documents=[], compare=False),
                                [doc])
    ans = answer_question("政府支持企业创新有哪些举措？", retrieval, index, a.corpus.documents)
    assert not ans.refused
    assert [c.hit.chunk.clause_id for c in ans.citations][:4] == [
        "第二章.第三条", "第二章.第三条.(一)", "第二章.第三条.(二)", "第二章.第三条.(三)"], ans.answer
    assert "支持企业创新[1]：（一）设立科技创新专项资金[2]" in ans.answer, ans.answer
    single = answer_question("企业研发投入补助最高多少？", retrieval, index, a.corpus.documents)
    assert "500万元" in single.answer and "专项资金" not in single.answer, single.answer


@pytest.mark.slow
def test_a_chapter_question_lists_its_articles(uploaded):
    a, doc = uploaded
    ans = a.ask("第二章讲了什么？", documents=[doc])
    assert not ans.refused and "第三条" in ans.answer and "第四条" in ans.answer
    assert {c.hit.chunk.clause_id.split(".")[0] for c in ans.citations} == {"第二章"}


@pytest.mark.slow
def test_an_uploaded_document_is_routed_by_the_place_its_title_names(uploaded):
    a, doc = uploaded
    ans = a.ask("某某省对企业研发投入的补助最高是多少？")
    assert not ans.refused and ans.citations[0].hit.chunk.doc_id == doc


@pytest.mark.slow
def test_real_measures_document_upload_lists_its_numbered_items(embedder, tmp_path):
    """A real 若干措施 (evals/documents) uploaded with its title only: its items are its clauses."""
    from rag.config import Settings
    from rag.service import Assistant

    docs = json.loads((PROJECT_ROOT / "evals" / "documents" / "catalog.json").read_text(encoding="utf-8"))
    entry = next(d for d in docs["documents"] if d["shape"] == "measures")
    content = (PROJECT_ROOT / "evals" / "documents" / entry["file"]).read_bytes()
    a = Assistant(Settings(index_dir=tmp_path / "index"), embedder=embedder)
    info = a.add_document(entry["file"], content, title=entry["title"])
    ids = [c.clause_id for c in a.corpus.parsed[info.doc_id].clauses]
    assert sum(1 for i in ids if i.split(".")[0] in ("一", "二", "三", "四", "五")) >= 5


NOTICE_WITH_APPENDIX = """某某市人民政府办公室关于印发考评办法的通知
一、考评对象
各区人民政府。
二、考评结果应用
考评结果全市通报。
附件：
某某市考评指标
2022年5月10日
附件
某某市考评指标
一、政务服务（25分）
（一）平台建设（3分）
1﹒完善平台功能，全部事项网上可办。（6月底完成，牵头考核单位：市政务服务局）
2﹒推进热线整合。（持续推进，牵头考核单位：市政府办公室）
二、基础设施（10分）
（一）网络覆盖（4分）
3﹒新增5G基站1000座。（持续推进，牵头考核单位：市工信局）
"""


def test_an_appendix_restarts_the_numbering_under_its_own_heading():
    """附件 after the body (even after the signature date) opens a new top-level part whose
    一、/（一）/1﹒ headings nest under it, instead of being swallowed by the last section."""
    p = parse_document("notice", NOTICE_WITH_APPENDIX)
    ids = [c.clause_id for c in p.clauses]
    assert len(ids) == len(set(ids))
    assert "附件.一.(一).1" in ids and "附件.一.(一).2" in ids and "附件.二.(一).3" in ids
    item = next(c for c in p.clauses if c.clause_id == "附件.二.(一).3")
    assert item.section[:3] == ["附件", "二、基础设施（10分）", "（一）网络覆盖（4分）"]
    assert item.text.startswith("3﹒新增5G基站1000座")
    assert any(c.clause_id.startswith("二.") and c.text == "附件：" for c in p.clauses)  # the notice's list line


@pytest.mark.slow
def test_a_multi_part_figure_question_is_answered_when_one_part_has_its_figure(uploaded):
    """"按什么比例…？封顶多少？": 封顶 is the asker's word for 最高; the ratio's part finds its
    figure, so the question is answered, not refused for want of a figure."""
    a, _ = uploaded
    ans = a.ask("我们企业准备做设备数字化改造，市里按什么比例奖补？封顶多少？", documents=["measures"])
    assert not ans.refused and "10%" in ans.answer and "500万元" in ans.answer, ans.answer
    refused = a.ask("实训机构按每人多少钱补助？", documents=["measures"])
    assert refused.refused and refused.reason == "no_figure", refused.answer


@pytest.mark.slow
def test_a_short_section_is_answered_with_what_each_item_says(uploaded):
    """A section of a few items: each item's label and its first sentences, verbatim and cited,
    one item a line, so "第二章讲了什么" says who does what, not only the items' names."""
    a, doc = uploaded
    ans = a.ask("第二章讲了什么？", documents=[doc])
    lines = ans.answer.splitlines()
    assert len(lines) == 3 and lines[1].startswith("1. 第三条") and lines[2].startswith("2. 第四条"), ans.answer
    assert lines[2] == "2. 第四条：省科学技术主管部门负责全省科技创新工作[2]。", ans.answer  # said once


@pytest.mark.slow
def test_a_short_section_lists_each_items_own_sentences(uploaded):
    a, _ = uploaded
    ans = a.ask("这份若干政策主要讲了些什么？", documents=["measures"])
    assert "10%" in ans.answer and "100万元" in ans.answer, ans.answer
    assert len(ans.citations) == 3


def test_a_numbered_part_is_named_by_its_heading_numeral():
    from rag.sections import _chapter_ref
    assert _chapter_ref("第八部分“利用资本市场”主要讲了哪几件事？") == "八、"
    assert _chapter_ref("第三章讲了什么？") == "第三章"
    assert _chapter_ref("第三代半导体有哪些支持？") is None


def test_regulation_without_a_first_chapter_heading_still_finds_its_later_chapters():
    text = ("某省优化营商环境条例\n第一条 为了优化营商环境，制定本条例。\n第二条 本条例适用于本省。\n"
            "第二章  优化市场环境\n第三条 各类市场主体依法享有平等的市场准入权利。\n"
            "第三章  法律责任\n第四条 违反本条例规定的，依法追究责任。\n")
    ids = [c.clause_id for c in parse_document("r", text).clauses]
    assert "第二章.第三条" in ids and "第三章.第四条" in ids


def test_pdf_spaced_article_numbers_and_title_groups_above_articles():
    text = ("某县关于支持重点产业加快发展的实施意见\n为支持重点产业发展，制定如下实施意见。\n一、政策支持\n"
            "第 1 条 设立总规模不低于1亿元的引导资金。\n二 、支持范围\n(一)固定资产投资奖励\n"
            "第 2 条 固定资产投资1000万元及以上的，给予奖励。\n(二)绩效奖励\n"
            "第 3 条 亩均税收达到10万元的，给予奖励。\n")
    ids = [c.clause_id for c in parse_document("r", text).clauses]
    assert ids[-3:] == ["一.第1条", "二.(一).第2条", "二.(二).第3条"], ids
    assert tidy_spaces("第 1 0 条 鼓励企业标准创制") == "第10条鼓励企业标准创制"


def test_items_numbered_through_the_whole_document():
    text = ("若干措施\n为支持科创走廊建设，制定以下措施。\n一、强化策源\n（一）支持研发。给予最高500万元支持。\n"
            "（二）支持平台。给予最高300万元支持。\n二、优化生态\n（三）支持人才。给予最高100万元奖励。\n"
            "（四）支持金融。给予贴息。\n")
    ids = [c.clause_id for c in parse_document("m", text).clauses]
    assert ids[-4:] == ["一.(一)", "一.(二)", "二.(三)", "二.(四)"], ids


AWARDS = """某某县支持企业上市若干措施
一、企业上市奖励。企业在主板上市的，给予300万元奖励。在科创板上市的，给予200万元奖励。在新三板挂牌的，给予100万元奖励。
二、项目建设奖励。对当年新开工建设且固定资产投资超过1亿元的工业项目，按设备投资额的5%给予奖励，单个项目最高不超过500万元；对建成投产后连续三年纳税增长超过20%的企业，再按新增地方财政贡献的50%给予奖励，用于企业技术改造和研发投入，奖励资金由县财政局会同县工信局、县发改局联合审核，每年集中兑现一次；对同时获得省级以上专项资金支持的项目，县级奖励按就高原则执行，不重复享受；企业应当在项目竣工验收后六个月内提出申请，逾期不予受理；对弄虚作假骗取奖励资金的企业，追回已拨付资金，并在五年内取消其享受本措施的资格。申请材料包括项目备案文件、设备购置发票、竣工验收报告和纳税证明。
"""


def _fixed_hit(a, doc, clause_id):
    """Retrieval fixed by hand to one clause, so the test reads only how the answer is composed."""
    from rag.retrieve import Hit, RetrievalResult
    from rag.routing import Route

    index = a.index
    row = next(r for r, c in enumerate(index.chunks) if c.doc_id == doc and c.clause_id == clause_id)
    return RetrievalResult([Hit(index.chunks[row], 1.0, 0.9, 1.0, row)], Route(documents=[], compare=False), [doc])


@pytest.mark.slow
def test_a_short_clause_is_answered_whole_and_a_long_one_by_its_best_sentences(embedder, tmp_path):
    """"企业上市奖励多少" is answered by all three sentences of its short item (主板, 科创板, 新三板),
    not only the best one; a long item still gives only the sentences that answer."""
    from rag.answer import WHOLE_CLAUSE_CHARS, answer_question
    from rag.config import Settings
    from rag.service import Assistant

    a = Assistant(Settings(index_dir=tmp_path / "index"), embedder=embedder)
    a.add_document("措施.txt", AWARDS.encode(), title="某某县支持企业上市若干措施", doc_id="awards")
    short = answer_question("企业上市能拿多少奖励？", _fixed_hit(a, "awards", "一"), a.index, a.corpus.documents)
    assert not short.refused, short.answer
    for figure in ("300万元", "200万元", "100万元"):
        assert figure in short.answer, short.answer
    assert short.answer.count("[1]") == 3 and "[2]" not in short.answer, short.answer
    assert "一、企业上市奖励" not in short.answer, short.answer  # the heading is not a sentence of the answer

    long_item = next(c for c in a.index.chunks if c.doc_id == "awards" and c.clause_id == "二")
    assert len(long_item.text) > WHOLE_CLAUSE_CHARS
    long = answer_question("单个项目设备投资奖励最高多少？", _fixed_hit(a, "awards", "二"), a.index, a.corpus.documents)
    assert not long.refused and "500万元" in long.answer, long.answer
    assert "申请材料包括" not in long.answer, long.answer


SERVICES = """某某市中小企业服务条例
第一条 为了做好中小企业服务，制定本条例。
第二条 公共服务平台为中小企业提供下列服务：
（一）政策咨询服务；
（二）投融资、空间场地、信息化服务，以及需求对接、商事服务等服务；
（三）创业辅导服务；
（四）人才培训服务；
（五）法律咨询、会计服务、审计服务，税务服务、知识产权服务等专业服务；
（六）市场开拓服务；
（七）公共培训服务。
"""


@pytest.mark.slow
def test_a_long_list_gives_each_short_item_whole(embedder, tmp_path):
    """A section of seven items is listed by its items' labels, but an item of a few words is given
    whole: the label of "（二）投融资…信息化服务，以及需求对接、商事服务" stops at its comma."""
    from rag.config import Settings
    from rag.sections import section_answer
    from rag.service import Assistant

    a = Assistant(Settings(index_dir=tmp_path / "index"), embedder=embedder)
    a.add_document("条例.txt", SERVICES.encode(), title="某某市中小企业服务条例", doc_id="services")
    text, cited = section_answer(("services", ["第二条"]), a.index, "根据《某某市中小企业服务条例》：")
    assert len(cited) == 8, text
    for words in ("需求对接、商事服务", "税务服务、知识产权服务等专业服务", "公共培训服务[8]"):
        assert words in text, text
    assert "…" not in text and "（七）" not in text, text
    assert "下列服务：[" not in text and "下列服务[1]" in text, text
