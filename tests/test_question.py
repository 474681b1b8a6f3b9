"""Question analysis: the measured thing of a "how much", the parts of a multi-part question."""

from __future__ import annotations

import pytest

from rag.question import asked_parts, gives_figure, measured_terms


@pytest.mark.parametrize("question, measured", [
    ("厦门市若干措施对引进人才的安家补贴是多少？", ["安家", "补贴"]),
    ("产业园的占地面积有多大？", ["占地面积"]),
    ("集群现在有多少家企业？", ["企业"]),
    ("到2025年要引进多少高层次人才？", ["高层次", "人才"]),
    ("制造业产值2025年要达到多少？", ["制造业", "产值"]),
    ("对碳化硅衬底良率提出了什么目标？", ["良率"]),
    # a count counts the noun phrase after it, whose head follows 的
    ("深圳希望培育几家年收入过百亿的芯片设计公司？", ["芯片", "设计", "公司"]),
    ("园区打算培育几家IDM模式的企业？", ["企业"]),
    # a time limit is the time of what is done after it, not of the actor before it
    ("服务机构多少天内会发补正通知？", ["补正", "通知"]),
    ("受理后多少个工作日内作出决定？", ["作出", "决定"]),
    ("这个管理办法有效期几年？", ["管理", "办法", "有效期"]),
])
def test_measured_terms(question, measured):
    assert measured_terms(question, set()) == measured


def split_parts(question: str) -> list[str]:
    """Each part as it stands alone."""
    return [text for text, _ in asked_parts(question)]


def test_split_parts_gives_later_parts_the_first_parts_topic():
    parts = split_parts("深圳营收目标是多少？由哪个部门负责？")
    assert len(parts) == 2 and parts[0] == "深圳营收目标是多少" and "负责" in parts[1] and "营收" in parts[1]
    assert split_parts("深圳营收目标是多少？") == ["深圳营收目标是多少？"]


def test_a_comma_between_two_questions_splits_them_and_other_commas_do_not():
    parts = split_parts("规划要培育几家骨干制造企业，收入要多大？")
    assert len(parts) == 2 and "几家" in parts[0] and "收入要多大" in parts[1] and "企业" in parts[1]
    assert split_parts("如果企业上市，能拿多少奖励？") == ["如果企业上市，能拿多少奖励？"]


def test_article_numbers_are_not_figures_and_durations_are_only_when_asked():
    from rag.question import NON_YEAR_FIGURE, gives_figure
    assert not NON_YEAR_FIGURE.search("第十六条本市设立中小企业发展基金")
    assert not NON_YEAR_FIGURE.search("依照本条例第3条规定")
    assert NON_YEAR_FIGURE.search("资金占比不低于百分之五十") and NON_YEAR_FIGURE.search("出台十六条措施")
    assert gives_figure("企业应承诺10年内不迁出", "多少年内不能迁走？")
    assert not gives_figure("落户三年内纳入统计的", "能拿多少落户奖励？")
    assert gives_figure("2025年", "哪一年完成？") and not gives_figure("2025年", "补贴多少？")


@pytest.mark.parametrize("text, question", [
    ("旅游者有权在旅游行程结束后三十日内，要求旅行社办理退货", "多少天内还能退货？"),
    ("航空应急力量基本实现2小时内到达灾害事故易发多发地域", "多长时间内赶到？"),
    ("计算总积分满150分", "总分要攒到多少分才能申请？"),
    ("工作每满1年计2分，最高不超过10分", "能加多少分？"),
])
def test_figures_in_days_hours_and_points_are_figures(text, question):
    assert gives_figure(text, question)


def test_a_date_is_not_a_duration_and_very_is_not_a_score():
    assert not gives_figure("本条例自2017年6月1日起施行", "多少天内办结？")
    assert not gives_figure("这一点十分重要", "能加多少分？")


@pytest.mark.parametrize("question, unit", [
    ("一栋房子最多能有几间客房？", "间"), ("晶圆代工线每月产能要达到多少万片？", "万片"), ("每年几月份开始受理申请？", "月"),
    ("人才总量目标是多少人？", "人"), ("每件资助多少钱？", "钱"), ("新增多少项发明专利？", "项"),
    ("人才目标是多少人才？", None), ("坚持哪几条基本原则？", None), ("一共有哪几项行动？", None),
    ("培育几个骨干企业？", None), ("有效期几年？", None), ("多少个工作日内办结？", None)])
def test_the_unit_a_question_names_for_its_figure(question, unit):
    from rag.question import asked_unit

    assert asked_unit(question) == unit


@pytest.mark.parametrize("text, question, gives", [
    ("培育出10家以上核心企业", "每月产能要达到多少万片？", False), ("月产能达到5万片", "每月产能要达到多少万片？", True),
    ("民宿的范围和条件另行制定", "最多能有几间客房？", False), ("客房不超过15间", "最多能有几间客房？", True),
    ("每年3月开始受理", "每年几月份开始受理？", True), ("自受理之日起3个月内", "每年几月份开始受理？", False),
    ("集成电路行业企业新增发明专利200个", "新增多少项发明专利？", True),
    ("按设备购置额的10%给予奖补", "能拿多少钱补贴？", True), ("给予一次性奖补100万元", "能拿多少钱补贴？", True),
    ("人才总量超15万人", "人才总量目标是多少人？", True), ("科技领军人才突破400名", "领军人才多少人？", True),
    ("产业营收突破2500亿元", "人才总量目标是多少人？", False)])
def test_a_figure_in_the_unit_asked_for(text, question, gives):
    """"多少万片" is not answered by "10家": a question naming its figure's unit needs a figure in it."""
    assert gives_figure(text, question) is gives


def test_a_later_part_measures_its_own_words_not_the_borrowed_topic():
    """"…联系人是谁，电话多少": the second part borrows the first's topic as context; it asks the
    figure of 电话, and a sentence giving the phone number answers it."""
    from rag.question import analyze

    first, second = split_parts("提案答复函的承办单位联系人是谁，电话多少？")
    assert analyze(second, []).measured == ["电话"], second


@pytest.mark.parametrize("question, asks_number, listing", [
    ("规划坚持的几条原则是什么？", False, True), ("几大任务分别是什么？", False, True),
    ("规划坚持几条原则？", True, False), ("要培育几家骨干企业？", True, False)])
def test_a_count_that_names_the_items_asked_for_is_a_list_question(question, asks_number, listing):
    from rag.question import analyze

    qa = analyze(question, [])
    assert (qa.asks_number, qa.listing) == (asks_number, listing)


def test_an_english_document_name_is_not_a_keyword():
    """"Suzhou Industrial Park" names the plan (its alias is Suzhou): "Industrial Park" must not
    become 工业园区/产业园 and favour "打造3家以上集成电路产业园" over the talent target."""
    from rag.question import without_document_names

    known = {"suzhou", "qingpu", "miit"}
    assert without_document_names("How many talents does Suzhou Industrial Park aim for?", known).split() == \
        "How many talents does aim for?".split()
    assert "action plan" in without_document_names("Which segments does Qingpu's action plan focus on?", known)
    assert "Qingpu" not in without_document_names("Which segments does Qingpu's action plan focus on?", known)
    assert without_document_names("Under the MIIT 12th Five-Year plan, what revenue?", known).split() == \
        "Under the plan, what revenue?".split()
    assert without_document_names("What does Hangzhou Bay plan?", known) == "What does Hangzhou Bay plan?"


def test_the_unit_asked_does_not_depend_on_words_the_documents_registered():
    """A name an indexed document taught jieba can regroup the question ("资助多少"+"钱"); the unit
    is read from the text (the full suite failed here after other tests had registered names)."""
    import jieba

    from rag.question import asked_unit

    jieba.add_word("资助多少", freq=50000)
    asked_unit.cache_clear()
    try:
        assert asked_unit("每件资助多少钱？") == "钱"
    finally:
        jieba.del_word("资助多少")
        asked_unit.cache_clear()


def test_two_things_compared_in_one_question_are_asked_one_at_a_time():
    from rag.question import compared_items

    assert compared_items("周一到周四和周五的受理时间有什么区别？") == ["周一到周四的受理时间有什么区别？",
                                                                   "周五的受理时间有什么区别？"]
    assert compared_items("省级数字化车间和智能工厂，奖补差多少？") == ["省级数字化车间，奖补差多少？", "智能工厂，奖补差多少？"]
    assert compared_items("人才和资金方面有哪些保障措施？") == []  # nothing compared
    assert compared_items("园区针对设计、制造、封测分别实施了什么计划？") == [
        "园区针对设计分别实施了什么计划？", "园区针对制造分别实施了什么计划？", "园区针对封测分别实施了什么计划？"]
    assert compared_items("人才、资金、土地等方面有哪些保障措施？") == []
