"""Question shapes the answerer must handle on any document, shown on documents unlike the seeds,
uploaded as a user would (file and title only, no catalog entry): a reply letter's "what next" and
"what was done" parts, a comparison of two plans answered one plan at a time, a two-part question
whose second part sits in another clause, and a Latin-letter topic ("EDA") inside a Chinese question."""

from __future__ import annotations

import pytest

from rag.answer import one_document_question
from rag.question import analyze
from rag.retrieve import search
from rag.routing import route

REPLY = """某某区工业和信息化局关于区人大代表建议办理情况的答复
李某某代表：
您提出的关于加快生物医药产业发展的建议收悉，现答复如下：
一、工作背景
近年来，我区生物医药产业保持较快增长，产业链条逐步完善。
二、工作进展与成效
针对加快生物医药产业发展的建议，具体做法如下：
（一）建设产业载体
建成生物医药孵化器3个，入驻企业120家。
（二）完善扶持政策
出台生物医药产业扶持政策10条，全年兑现资金5000万元。
（三）加强人才服务
设立人才服务专窗，全年服务人才2000人次。
三、下一步工作打算
（一）扩大产业空间
新建标准厂房20万平方米，满足企业扩产需求。
（二）加大招商力度
赴长三角、珠三角开展专题招商，引进龙头企业。
（三）优化营商环境
推行审批事项容缺受理，压减办理时限。
某某区工业和信息化局
2024年5月20日
"""

PLAN_A = """绵阳市生物医药产业发展规划（2021-2025年）
一、发展目标
到2025年，全市生物医药产业规模突破800亿元。
引进高层次人才300名，培育上市企业5家。
二、重点任务
（一）壮大创新药产业。支持企业开展一类新药研发，对进入临床试验的给予奖励。
（二）发展医疗器械产业。推动高端影像设备、体外诊断产品产业化。
（三）推动EDA与生物计算融合。支持生物医药企业使用EDA工具开展分子设计。
三、保障措施
（一）加强组织领导。由市经济和信息化局牵头，建立产业发展联席会议制度。
（二）加大资金支持。市财政每年安排产业发展专项资金2亿元。
"""

PLAN_B = """洛阳市生物医药产业发展规划（2021-2025年）
一、发展目标
到2025年，生物医药产业营业收入达到300亿元，新增高层次人才150名。
二、重点任务
（一）建设中药材基地。推进道地药材规范化种植。
（二）发展生物制品。支持疫苗、血液制品企业扩大产能，借鉴成都经验建设产业园。
三、保障措施
（一）强化用地保障。优先保障重大项目用地。
"""

MEASURES = """宜宾市支持企业加大研发投入的若干措施
宜宾市人民政府办公室2025年7月20日
一、研发投入补助
企业年度研发投入达到或超过1亿元的，给予一次性补助1000万元；5000万元（含）至1亿元（不含）的，给予一次性补助500万元；1000万元（含）至5000万元（不含）的，给予一次性补助200万元。
二、产能目标
到2025年，形成年产500架工业无人机、2000台服务机器人的制造能力。
三、投诉处理
企业对补助兑现有异议的，可以向市科学技术局投诉。市科学技术局应当在五个工作日内决定是否受理。
市科学技术局应当自受理之日起二十个工作日内办结投诉事项。
四、申报流程
1.企业申报。企业登录政务服务网提交申报材料。
2.部门审核。市科学技术局会同市财政局审核申报材料。
3.公示拨付。审核结果公示5个工作日，无异议的拨付资金。
五、受理时间
周一至周四：上午9:00-12:00；下午13:00-17:00。
周五：上午9:00-12:00；下午13:00-15:30。
六、附则
本措施自2025年8月1日起施行，有效期至2030年7月31日。此前本市有关规定与本措施不一致的，以本措施为准；执行过程中遇国家和省有关政策调整的，从其规定。
宜宾市人民政府办公室
2025年7月20日
"""

PROJECTS = """某市应急体系建设规划（2021-2025年）
一、发展目标
到2025年，应急管理体系基本健全。
二、重大工程
（一）监测预警提升工程。
1．预警平台建设。
建成市级风险监测预警平台，覆盖全部重点企业。
（二）救援能力提升工程。
2．救援队伍建设。
组建市级综合救援队伍3支，配备专业救援装备。
（三）基层能力提升工程。
3．基层站点建设。
每个乡镇建成1个应急服务站。
"""


@pytest.fixture(scope="module")
def shapes(embedder, tmp_path_factory):
    """A real Assistant over the seeds with three documents uploaded by file and title only."""
    from rag.config import Settings
    from rag.service import Assistant

    a = Assistant(Settings(index_dir=tmp_path_factory.mktemp("index")), embedder=embedder)
    a.add_document("答复.txt", REPLY.encode(), title="某某区工业和信息化局关于区人大代表建议办理情况的答复",
                   doc_id="reply")
    a.add_document("a.txt", PLAN_A.encode(), title="绵阳市生物医药产业发展规划（2021-2025年）", doc_id="plan-a")
    a.add_document("b.txt", PLAN_B.encode(), title="洛阳市生物医药产业发展规划（2021-2025年）", doc_id="plan-b")
    a.add_document("m.txt", MEASURES.encode(), title="宜宾市支持企业加大研发投入的若干措施", doc_id="measures")
    a.add_document("p.txt", PROJECTS.encode(), title="某市应急体系建设规划（2021-2025年）", doc_id="projects")
    return a


@pytest.mark.slow
def test_what_next_is_answered_with_the_documents_own_next_steps_part(shapes):
    """"接下来有什么打算" names no heading's words: the part of the letter that plays that role
    ("三、下一步工作打算") is the answer, each item cited, and nothing of what was already done."""
    ans = shapes.ask("接下来在生物医药方面有什么打算？", documents=["reply"])
    assert not ans.refused, ans.answer
    assert all(x in ans.answer for x in ("扩大产业空间", "加大招商力度", "优化营商环境")), ans.answer
    assert "孵化器" not in ans.answer and len(ans.citations) == 3, ans.answer


@pytest.mark.slow
def test_what_was_done_is_answered_with_the_progress_part_without_its_lead_line(shapes):
    """"已经做了哪些工作、效果怎么样" is the letter's "工作进展与成效"; its sentence announcing the
    items ("具体做法如下：") only leads in and is not listed as an item of its own."""
    ans = shapes.ask("已经做了哪些工作，效果怎么样？", documents=["reply"])
    assert not ans.refused, ans.answer
    assert all(x in ans.answer for x in ("孵化器3个", "10条", "2000人次")), ans.answer
    assert "如下" not in ans.answer and len(ans.citations) == 3, ans.answer


@pytest.mark.slow
def test_a_comparison_is_answered_one_document_at_a_time(shapes):
    """Each compared plan gives its own figure for what was asked, on its own line, cited."""
    ans = shapes.ask("绵阳市和洛阳市的生物医药人才目标有什么不同？")
    assert not ans.refused, ans.answer
    lines = ans.answer.splitlines()
    assert len(lines) == 2, ans.answer
    assert "绵阳" in lines[0] and "300名" in lines[0], ans.answer
    assert "洛阳" in lines[1] and "150名" in lines[1], ans.answer
    assert {c.hit.chunk.doc_id for c in ans.citations} == {"plan-a", "plan-b"}


@pytest.mark.slow
def test_a_compared_document_that_does_not_answer_says_so_on_its_line(shapes):
    ans = shapes.ask("绵阳市和洛阳市对EDA工具分别有什么支持？")
    lines = ans.answer.splitlines()
    assert not ans.refused and len(lines) == 2, ans.answer
    assert "EDA" in lines[0] and "未找到" in lines[1], ans.answer
    assert {c.hit.chunk.doc_id for c in ans.citations} == {"plan-a"}


def test_a_comparisons_question_as_asked_of_one_document():
    assert one_document_question("绵阳市和在人才上的目标有什么不同？") == "绵阳市在人才上的目标是什么？"
    assert one_document_question("、洛阳市和在EDA方面分别有什么举措？") == "洛阳市在EDA方面有什么举措？"
    assert one_document_question("A条例和分别是从哪天开始施行的？哪个更早？") == "A条例是从哪天开始施行的？"


@pytest.mark.slow
def test_each_part_of_a_two_part_question_is_searched(shapes, embedder):
    """The second part ("由哪个部门牵头") is answered by another clause than the first: searched
    part by part, both clauses are among the first results, and the answer gives both."""
    a = shapes
    q = "绵阳市生物医药产业规模目标是多少？由哪个部门牵头负责？"
    r = search(a.index, embedder, q, k=3, route=route(q, a.corpus.documents))
    ids = [h.chunk.clause_id for h in r.hits]
    assert any(h.chunk.doc_id == "plan-a" and "800亿元" in h.chunk.text for h in r.hits), ids
    assert any(h.chunk.doc_id == "plan-a" and "牵头" in h.chunk.text for h in r.hits), ids
    ans = a.ask(q)
    assert "800亿元" in ans.answer and "市经济和信息化局" in ans.answer, ans.answer


@pytest.mark.slow
def test_a_place_named_only_in_passing_has_no_plan_of_its_own(shapes):
    """"成都的…规划" asks for 成都's own plan; a plan that names 成都 once ("借鉴成都经验") is not
    it, so the question is refused (`no_document`), while the plans' own places are answered."""
    ans = shapes.ask("成都的生物医药产业规划有什么目标？")
    assert ans.refused and ans.reason == "no_document", ans.answer
    ok = shapes.ask("洛阳市的生物医药产业规划有什么目标？")
    assert not ok.refused and "300亿元" in ok.answer, ok.answer


@pytest.mark.slow
def test_the_date_of_a_document_named_in_other_words_is_its_signature_date(shapes):
    """No alias names the letter, but its best clauses are all in it: its date is answered from its
    signature, not refused or guessed from a sentence."""
    ans = shapes.ask("关于人大代表建议办理情况的那份答复是哪一天发的？")
    assert not ans.refused and "2024年5月20日" in ans.answer, ans.answer
    assert [c.hit.chunk.doc_id for c in ans.citations] == ["reply"]


def test_a_latin_letter_topic_is_a_keyword_of_a_chinese_question():
    """jieba tags "EDA" as "eng": a Latin word is the topic asked about, not an interjection."""
    assert "eda" in analyze("深圳在EDA方面有什么举措？", []).keywords


@pytest.mark.slow
def test_another_place_asked_of_a_document_filtered_to_is_refused(shapes):
    """Filtered to 宜宾's measures, "绵阳对…给多少补助" is not answered with 宜宾's subsidy: 绵阳 has its
    own plan, and the searched document is not about it (`other_place`)."""
    ans = shapes.ask("绵阳对企业加大研发投入给多少补助？", documents=["measures"])
    assert ans.refused and ans.reason == "other_place", ans.answer
    own = shapes.ask("宜宾对企业加大研发投入给多少补助？", documents=["measures"])
    assert not own.refused and "1000万元" in own.answer, own.answer


@pytest.mark.slow
def test_the_askers_own_amount_is_answered_by_the_tier_that_holds_it(shapes):
    """"我们一年投3000万" is the asker's case, not a figure the text must repeat: the tiers are the answer."""
    ans = shapes.ask("我们公司一年研发投入大概3000万，能补多少？", documents=["measures"])
    assert not ans.refused and "200万元" in ans.answer, ans.answer


@pytest.mark.slow
def test_when_a_measure_takes_effect_is_its_own_clause_not_the_signature_date(shapes):
    ans = shapes.ask("这个措施什么时候开始施行？有效期到哪天？", documents=["measures"])
    assert not ans.refused and "2025年8月1日" in ans.answer and "2030年7月31日" in ans.answer, ans.answer


@pytest.mark.slow
def test_two_parts_asking_two_durations_get_two_figures(shapes):
    """The second "多久" is another figure than the first part's, from the next clause."""
    ans = shapes.ask("企业投诉后多长时间内决定受不受理？受理后多久办完？", documents=["measures"])
    assert "五个工作日" in ans.answer and "二十个工作日" in ans.answer, ans.answer


@pytest.mark.slow
def test_things_counted_in_their_own_measure_word_are_figures(shapes):
    """"500架", "2000台" answer "年产能目标各是多少": no refusal for want of a figure."""
    ans = shapes.ask("到2025年无人机和机器人的年产能目标各是多少？", documents=["measures"])
    assert not ans.refused and "500架" in ans.answer and "2000台" in ans.answer, ans.answer


@pytest.mark.slow
def test_how_a_named_section_goes_is_the_whole_section(shapes):
    """"申报流程大概是怎样的" names the heading 申报流程: every step, not one sentence of it."""
    ans = shapes.ask("申报流程大概是怎样的？", documents=["measures"])
    assert not ans.refused and all(x in ans.answer for x in ("企业申报", "部门审核", "公示拨付")), ans.answer


@pytest.mark.slow
def test_two_things_of_one_document_compared_each_get_their_clause(shapes):
    """"周一至周四和周五的受理时间有什么区别": each compared thing is searched and read in its own clause."""
    ans = shapes.ask("周一至周四和周五的受理时间有什么区别？", documents=["measures"])
    assert not ans.refused and "17:00" in ans.answer and "15:30" in ans.answer, ans.answer



@pytest.mark.slow
def test_a_section_whose_items_only_name_themselves_is_summarised_by_what_they_say(shapes):
    """"（一）监测预警提升工程。" and "1．预警平台建设。" are names: the summary gives each item's first
    sentence of substance, cited from the clause that says it; "分了哪几大块" asks for the section."""
    for q in ("重大工程都包括哪些？概括一下。", "重大工程分了哪几大块？"):
        ans = shapes.ask(q, documents=["projects"])
        assert not ans.refused, ans.answer
        assert all(x in ans.answer for x in ("预警平台", "救援队伍3支", "应急服务站")), ans.answer
        assert any("建成市级风险监测预警平台" in c.hit.chunk.text for c in ans.citations), ans.citations


@pytest.mark.slow
def test_how_long_a_document_holds_is_its_own_validity_clause(shapes):
    """"这个措施管到什么时候" is answered by the clause saying when it takes effect and ends."""
    ans = shapes.ask("这个措施管到什么时候？", documents=["measures"])
    assert not ans.refused and "2030年7月31日" in ans.answer, ans.answer
