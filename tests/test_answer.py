"""Extractive answers: cited, correct figures, refusals when the plans don't say."""

from __future__ import annotations

import re

import pytest

from rag.answer import REFUSAL_PREFIX


def _cited_ok(answer):
    """Every sentence carries a marker, and every marker points to a returned citation."""
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    assert markers and markers <= {c.n for c in answer.citations}
    for line in answer.answer.splitlines():
        for sentence in re.split(r"(?<=[。；])", line):
            if sentence.strip():
                assert re.search(r"\[\d+\]", sentence), sentence


def test_shenzhen_revenue_target(assistant):
    a = assistant.ask("深圳到2025年集成电路产业营收目标是多少？")
    assert not a.refused and "2500亿元" in a.answer
    _cited_ok(a)
    first = a.citations[0].hit.chunk
    assert (first.doc_id, first.clause_id) == ("shenzhen-2022", "二.(一)")
    # the quoted sentence is verbatim clause text
    assert "产业营收突破2500亿元" in first.text


@pytest.mark.parametrize("question", [
    "杭州提出到2025年集成电路产业规模要达到多少？",
    "深圳集成电路产业2035年的营收目标是多少？",
])
def test_refuses_when_the_plans_do_not_answer(assistant, question):
    a = assistant.ask(question)
    assert a.refused and a.answer.startswith(REFUSAL_PREFIX)
    assert a.citations, "a refusal still lists the closest clauses"
    assert "2500亿元" not in a.answer


def test_comparison_answers_per_document(assistant):
    a = assistant.ask("苏州工业园区和青浦区的人才目标有什么不同？")
    assert not a.refused
    assert "苏州工业园区" in a.answer and "青浦区" in a.answer
    assert {c.hit.chunk.doc_id for c in a.citations} == {"suzhou-sip-2022", "qingpu-2023"}
    _cited_ok(a)


def test_followup_is_rewritten_with_the_conversation_topic(assistant):
    history = [{"role": "user", "content": "深圳到2025年集成电路产业营收目标是多少？"},
               {"role": "assistant", "content": "…"}]
    a = assistant.ask("那苏州工业园区呢？", history=history)
    assert a.rewritten_question and "苏州工业园区" in a.rewritten_question and "2025" in a.rewritten_question
    assert not a.refused and "1000亿" in a.answer
    assert a.citations[0].hit.chunk.doc_id == "suzhou-sip-2022"


def test_english_question(assistant):
    a = assistant.ask("What is Shenzhen's 2025 revenue target for the integrated circuit industry?")
    assert not a.refused and "2500亿元" in a.answer


def test_answer_json_shape(assistant):
    d = assistant.ask("青浦区到2025年集成电路产业营业收入要达到多少？").to_dict()
    assert set(d) >= {"question", "answer", "refused", "citations", "timings_ms"}
    assert "350亿元" in d["answer"]
    c = d["citations"][0]
    assert set(c) >= {"n", "doc_id", "doc_title", "clause_id", "section", "text", "score"}
    assert d["timings_ms"]["total"] > 0


def test_answer_chain_is_a_langchain_runnable(assistant):
    from langchain_core.runnables import Runnable

    assert isinstance(assistant.chain, Runnable)
    states = assistant.chain.batch([{"question": "湖里区集成电路集群2023年产值是多少？", "k": 5}])
    assert "22.1亿元" in states[0]["answer"].answer


def test_a_figure_phrase_stating_a_change_is_supported_by_the_phrase_before_it(assistant):
    """"设计业销售收入占全行业比重逐年提高，由2005年的17.7%提高到2010年的25.3%": the figure's
    own phrase names nothing, the one before it names what the figure is."""
    a = assistant.ask("到2010年，芯片设计业销售收入占整个集成电路行业的比例提升到了多少？")
    assert not a.refused and "25.3%" in a.answer
    assert [c.hit.chunk.clause_id for c in a.citations] == ["一.(三)"]


def test_a_single_plan_question_is_answered_from_one_plan(assistant):
    a = assistant.ask("十一五期间我国建成了多少个国家级集成电路产业园区和设计产业化基地？")
    assert "5个国家级集成电路产业园区" in a.answer
    assert {c.hit.chunk.doc_id for c in a.citations} == {"miit-2011-12th-fyp"}
