"""Generative answers with LangChain's fake chat models: prompt building, citation parsing,
verification rules, fallbacks and streaming — over the real index of the seeds."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from rag.answer import Answer
from rag.chain import build_chain, finish
from rag.generate import (REFUSAL_EN, REFUSAL_ZH, SYSTEM_EN, SYSTEM_ZH, build_messages, generative_answerer,
                          select_clauses, stream_answer, trim_clause)
from rag.service import QuestionError
from rag.verify import figure_in, figures, normalize_citations, parse_citations, split_claims, verify_answer

SHENZHEN_Q = "深圳到2025年集成电路产业营收目标是多少？"
REFUSALS = (REFUSAL_ZH, REFUSAL_EN)
CLAUSES = [
    "(一) 产业规模持续增长。到2025年，产业营收突破2500亿元，形成3家以上营收超过100亿元和一批营收超过10亿元的设计企业。",
    "(四) 园区建设成效显著。到2025年，规划建设4个以上专业集成电路产业园。",
]


# -- citation parsing ------------------------------------------------------------------

def test_citation_spellings_are_normalized():
    assert normalize_citations("甲【1】乙［2］丙[1,3]丁[2、3]戊[1-3]") == "甲[1]乙[2]丙[1][3]丁[2][3]戊[1][2][3]"
    assert parse_citations("A[2]。B[1][2]。C【3】") == [2, 1, 3]
    assert parse_citations("没有引用。") == []


def test_marker_after_full_stop_stays_with_its_sentence():
    claims = split_claims("营收突破2500亿元。[1]建设4个以上产业园。[2]")
    assert [c.text for c in claims] == ["营收突破2500亿元。[1]", "建设4个以上产业园。[2]"]
    assert [c.markers for c in claims] == [[1], [2]]


def test_figures_are_numbers_with_units_percentages_years():
    assert figures("1. 到2025年，形成3家以上营收超过100亿元的企业，占比30%，产能1,200万片[2]") == \
        ["2025年", "3家", "100亿元", "30%", "1200万片"]
    # list numbering, citation markers and lone digits without a unit are not figures
    assert figures("2、建设产业园[3]，第1步") == []


def test_english_magnitudes_are_compared_by_value():
    text = "到2025年，集成电路产业规模突破1000亿，营收超过2500亿元"
    assert figures("a scale of 1,000 billion yuan, about 30 percent [1]") == ["1000billion", "30%"]
    assert figure_in("100billion", text) and figure_in("250billion", text)
    assert not figure_in("1000billion", text) and not figure_in("25billion", text)


def test_figure_matching_respects_number_boundaries():
    text = CLAUSES[0]
    assert figure_in("2500亿元", text)
    assert figure_in("2500亿", text)           # 亿 and 亿元 are the same magnitude
    assert not figure_in("500亿元", text)      # a suffix of 2500 is not 500
    assert not figure_in("25000亿元", text)
    assert figure_in("2025年", "行动计划（2022-2025年）")
    assert figure_in("2025", text)
    assert not figure_in("2026年", text)


# -- verification rules ------------------------------------------------------------------

def test_supported_answer_passes():
    v = verify_answer("到2025年，深圳集成电路产业营收目标是突破2500亿元[1]。", CLAUSES, REFUSALS)
    assert v.ok and not v.dropped and v.cited == [1]
    assert v.text == "到2025年，深圳集成电路产业营收目标是突破2500亿元[1]。"


def test_hallucinated_figure_is_caught_and_its_sentence_dropped():
    v = verify_answer("到2025年，营收突破2600亿元[1]。规划建设4个以上专业集成电路产业园[2]。", CLAUSES, REFUSALS)
    assert v.dropped == [("到2025年，营收突破2600亿元[1]。", "unsupported_figure:2600亿元")]
    # the surviving sentence is renumbered: the answer's [1] is the prompt's [2]
    assert v.text == "规划建设4个以上专业集成电路产业园[1]。" and v.cited == [2]


def test_figure_must_be_in_the_clause_the_sentence_cites():
    # 2500亿元 is real, but it is in clause 1, not in the cited clause 2
    v = verify_answer("到2025年，产业营收突破2500亿元[2]。", CLAUSES, REFUSALS)
    assert not v.ok and v.failure == "unsupported_figure:2500亿元"


def test_bad_citation_is_caught():
    v = verify_answer("产业营收突破2500亿元[3]。", CLAUSES, REFUSALS)
    assert not v.ok and v.failure == "bad_citation:[3]"
    v = verify_answer("产业营收突破2500亿元[0]。", CLAUSES, REFUSALS)
    assert v.failure == "bad_citation:[0]"


def test_uncited_sentence_is_dropped_but_an_introduction_borrows_the_next_citation():
    v = verify_answer("深圳的目标如下：\n1. 产业营收突破2500亿元[1]。\n另外还会建设很多园区。", CLAUSES, REFUSALS)
    assert v.text.startswith("深圳的目标如下：") and v.cited == [1]
    assert v.dropped == [("另外还会建设很多园区。", "uncited")]
    # an introduction whose lender is dropped goes too (it would dangle)
    v = verify_answer("目标如下：营收突破9999亿元[1]。", CLAUSES, REFUSALS)
    assert not v.ok


def test_invented_sentence_around_a_valid_citation_is_caught():
    v = verify_answer("深圳将重点发展量子计算和生物医药等未来产业[1]。", CLAUSES, REFUSALS)
    assert v.failure == "unsupported_wording"


def test_refusal_sentence_is_recognized():
    assert verify_answer(REFUSAL_ZH, CLAUSES, REFUSALS).refused
    assert verify_answer(" The documents do not answer this question. ", CLAUSES, REFUSALS).refused
    v = verify_answer(f"{REFUSAL_ZH}产业营收突破2500亿元[1]。", CLAUSES, REFUSALS)
    assert not v.refused and v.cited == [1] and v.dropped[0][1] == "refusal_mixed_with_answer"


def test_empty_answer_fails():
    assert verify_answer("", CLAUSES, REFUSALS).failure == "empty_answer"


# -- prompt building -----------------------------------------------------------------------

def test_trim_keeps_the_sentences_that_answer_within_the_budget():
    text = ("(一) 总体要求。坚持创新驱动，强化企业主体地位，优化产业生态。" * 3 +
            "到2025年，产业营收突破2500亿元。" + "加强人才引进和培养，完善人才政策体系。" * 3)
    trimmed = trim_clause(text, SHENZHEN_Q, 60)
    assert "到2025年，产业营收突破2500亿元。" in trimmed
    assert len(trimmed) <= 60 + 3 and "…" in trimmed
    assert trim_clause("短条款。", SHENZHEN_Q, 60) == "短条款。"


def test_prompt_numbers_trimmed_clauses_and_asks_for_citations(assistant):
    result = assistant.search(SHENZHEN_Q, k=5)
    titles = {d.doc_id: d.short_title for d in assistant.corpus.documents}
    clauses = select_clauses(SHENZHEN_Q, result.hits, max_clauses=3, clause_chars=120, idf=assistant.index.idf,
                             short_titles=titles)
    assert [c.n for c in clauses] == [1, 2, 3]
    assert all(len(c.text) <= 123 for c in clauses)
    assert "2500亿元" in clauses[0].text
    # the heading the clause text starts with anyway is not repeated in the label
    assert clauses[0].label == "《深圳半导体与集成电路行动计划》二、工作目标"
    system, example_q, example_a, example_q2, example_a2, user = build_messages(SHENZHEN_Q, clauses)
    assert system.content == SYSTEM_ZH and REFUSAL_ZH in system.content and "[1]" in system.content
    # worked example turns in the same format as the real one, citing different clauses
    assert example_q.type == "human" and example_q.content.startswith("条款：\n[1]《某市行动计划》")
    assert example_a.type == "ai" and example_a.content.endswith("[1]。")
    assert example_q2.content.startswith("条款：\n[1]《某市行动计划》") and example_a2.content.endswith("[2]。")
    assert user.content.startswith("条款：\n[1]《深圳半导体与集成电路行动计划》二、工作目标\n(一) 产业规模持续增长。")
    assert "\n\n[3]《" in user.content and user.content.endswith(f"问题：{SHENZHEN_Q}")
    english = build_messages("What is Shenzhen's 2025 revenue target?", clauses)
    assert english[0].content == SYSTEM_EN and "Answer in English" in english[0].content
    assert english[-1].content.startswith("Clauses:\n[1]《")


def test_section_headings_shown_to_the_model_count_as_evidence():
    """A list answer may quote the clause's heading path, which the model was shown."""
    from rag.generate import PromptClause

    c = PromptClause(1, None, "(一) 落实《若干政策》，简化办事流程。", "《苏州工业园区集成电路行动计划》五、保障措施 > (二)加强政策保障")
    assert verify_answer("保障措施包括加强政策保障[1]。", [c.evidence], REFUSALS).ok
    assert not verify_answer("保障措施包括加强政策保障[1]。", [c.text], REFUSALS).ok


# -- the answer step with fake chat models -----------------------------------------------------

def _ask(assistant, question, model, backend="llamacpp") -> Answer:
    chain = build_chain(assistant, generative_answerer(assistant, backend, chat_model=model))
    return finish(chain.invoke({"question": question, "k": 5, "documents": None, "history": [],
                                "mode": "hybrid"}))


def test_verified_generated_answer_cites_the_right_clause(assistant):
    model = FakeListChatModel(responses=["到2025年，深圳集成电路产业营收目标是突破2500亿元[1]。"])
    ans = _ask(assistant, SHENZHEN_Q, model)
    assert ans.verified is True and ans.fallback_reason is None and not ans.refused
    assert ans.answer == "到2025年，深圳集成电路产业营收目标是突破2500亿元[1]。"
    assert [(c.n, c.hit.chunk.doc_id, c.hit.chunk.clause_id) for c in ans.citations] == \
        [(1, "shenzhen-2022", "二.(一)")]
    d = ans.to_dict()
    assert d["backend"] == "llamacpp" and d["verified"] is True and "fallback_reason" not in d
    assert d["timings_ms"]["answer"] > 0


def test_hallucinated_figure_falls_back_to_the_extractive_answer(assistant):
    ans = _ask(assistant, SHENZHEN_Q, FakeListChatModel(responses=["深圳营收目标是突破3000亿元[1]。"]))
    assert ans.verified is False and ans.fallback_reason == "unsupported_figure:3000亿元"
    assert "2500亿元" in ans.answer and "3000亿元" not in ans.answer   # the extractive answer
    assert ans.generation == "深圳营收目标是突破3000亿元[1]。"
    assert ans.to_dict()["fallback_reason"] == "unsupported_figure:3000亿元"


def test_bad_citation_falls_back(assistant):
    ans = _ask(assistant, SHENZHEN_Q, FakeListChatModel(responses=["产业营收突破2500亿元[7]。"]))
    assert ans.verified is False and ans.fallback_reason == "bad_citation:[7]"


def test_model_refusal_when_retrieval_found_the_answer_falls_back(assistant):
    ans = _ask(assistant, SHENZHEN_Q, FakeListChatModel(responses=[REFUSAL_ZH]))
    assert ans.verified is False and ans.fallback_reason == "model_refused" and not ans.refused
    assert "2500亿元" in ans.answer


def test_model_error_mid_stream_falls_back(assistant):
    model = FakeListChatModel(responses=["到2025年，产业营收突破2500亿元[1]。"], error_on_chunk_number=5)
    ans = _ask(assistant, SHENZHEN_Q, model)
    assert ans.verified is False and ans.fallback_reason.startswith("model_error: FakeListChatModelError")


def test_retrieval_gate_refuses_without_asking_the_model(assistant):
    exploding = FakeListChatModel(responses=["不该被调用"], error_on_chunk_number=0)
    ans = _ask(assistant, "北京市到2030年集成电路产业规模目标是多少？", exploding)
    assert ans.refused and ans.verified is None and ans.fallback_reason is None
    assert ans.backend == "llamacpp" and ans.answer.startswith("文件中未找到")


def test_english_question_gets_an_english_verified_answer(assistant):
    q = "What is Shenzhen's integrated circuit revenue target for 2025?"
    model = FakeListChatModel(responses=["By 2025, Shenzhen aims for IC industry revenue above 2500亿元 "
                                         "(250 billion yuan) [1]."])
    ans = _ask(assistant, q, model)
    assert ans.verified is True and ans.citations[0].hit.chunk.doc_id == "shenzhen-2022"
    # an English magnitude is checked by value: 2500亿 is 250 billion, not 2500 billion
    model = FakeListChatModel(responses=["By 2025, Shenzhen targets IC industry revenue above 2500 billion yuan [1]."])
    ans = _ask(assistant, q, model)
    assert ans.verified is False and ans.fallback_reason == "unsupported_figure:2500billion"


# -- streaming ---------------------------------------------------------------------------------------

def _retrieved(assistant, question):
    chain = build_chain(assistant, lambda s: s)
    return chain.invoke({"question": question, "k": 5, "documents": None, "history": [], "mode": "hybrid"})


def test_stream_yields_only_verified_sentences_then_the_answer(assistant):
    raw = "到2025年，营收突破2600亿元[1]。规划建设4个以上专业集成电路产业园。[2]"
    state = _retrieved(assistant, "深圳到2025年集成电路产业营收和产业园建设目标是什么？")
    items = list(stream_answer(assistant, state, "llamacpp", chat_model=FakeListChatModel(responses=[raw])))
    *deltas, final = items
    assert isinstance(final, Answer) and all(isinstance(d, str) for d in deltas)
    assert final.verified is True and final.dropped_sentences == 1
    assert "".join(deltas) == final.answer
    assert "2600" not in "".join(deltas)


def test_streamed_deltas_arrive_before_the_model_finishes(assistant):
    raw = "到2025年，产业营收突破2500亿元[1]。形成3家以上营收超过100亿元的设计企业[1]。"
    state = _retrieved(assistant, SHENZHEN_Q)
    deltas = []
    for item in stream_answer(assistant, state, "llamacpp", chat_model=FakeListChatModel(responses=[raw])):
        if isinstance(item, str):
            deltas.append(item)
    # the first sentence is released as soon as the second one starts, not at the end
    assert deltas[0] == "到2025年，产业营收突破2500亿元[1]。"
    assert "".join(deltas) == raw


def test_assistant_ask_stream_and_backend_option(assistant, monkeypatch):
    items = list(assistant.ask_stream(SHENZHEN_Q, backend="extractive"))
    assert isinstance(items[-1], Answer) and items[0] == items[-1].answer
    assert items[-1].timings_ms["total"] >= items[-1].timings_ms["answer"] > 0
    with pytest.raises(QuestionError, match="unknown backend"):
        assistant.ask(SHENZHEN_Q, backend="gpt")
    with pytest.raises(QuestionError):
        assistant.ask_stream("", backend="extractive")
    # a generative backend that is not configured answers extractively and says why
    monkeypatch.delenv("RAG_OPENAI_MODEL", raising=False)
    ans = assistant.ask(SHENZHEN_Q, backend="openai")
    assert ans.verified is False and ans.fallback_reason.startswith("model_unavailable: ")
    assert "RAG_OPENAI_MODEL" in ans.fallback_reason and "2500亿元" in ans.answer
    monkeypatch.setenv("RAG_BACKEND", "extractive")
    assert assistant.ask(SHENZHEN_Q).to_dict().get("verified") is None


def test_unreachable_openai_endpoint_is_an_honest_fallback(assistant, monkeypatch):
    """Nothing listens on this loopback port: the answer says the model failed and is extractive."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RAG_OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("RAG_OPENAI_MODEL", "nobody")
    monkeypatch.setenv("RAG_LLM_TIMEOUT", "5")
    ans = assistant.ask(SHENZHEN_Q, backend="openai")
    assert ans.verified is False and ans.fallback_reason.startswith("model_error: ")
    assert "2500亿元" in ans.answer and not ans.generation


def test_runaway_numbering_stops_the_generation(assistant):
    looping = "形成3家以上营收超过100亿元的设计企业[1]。" + "".join(f"建设产业园区[{n}]" for n in range(2, 40))
    ans = _ask(assistant, SHENZHEN_Q, FakeListChatModel(responses=[looping]))
    # the stream was closed at "[5]" (past the 3 given clauses + 1), not read to the end
    assert ans.generation.endswith("[5]") and len(ans.generation) < len(looping)
    assert ans.verified is True and ans.answer == "形成3家以上营收超过100亿元的设计企业[1]。"


def test_openai_backend_wire_format(assistant, stub_openai_server, monkeypatch):
    base, requests, reply = stub_openai_server
    reply["text"] = "到2025年，深圳集成电路产业营收目标是突破2500亿元[1]。"
    monkeypatch.setenv("RAG_OPENAI_BASE_URL", base)
    monkeypatch.setenv("RAG_OPENAI_MODEL", "qwen-test")
    monkeypatch.setenv("RAG_OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("RAG_LLM_MAX_TOKENS", "123")
    ans = assistant.ask(SHENZHEN_Q, backend="openai")
    assert ans.verified is True and ans.backend == "openai" and ans.answer == reply["text"]
    (req,) = requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["model"] == "qwen-test" and req["stream"] is True and req["temperature"] == 0
    # servers that only know `max_tokens` (llama_cpp.server) get it too
    assert req["max_tokens"] == 123 and req["max_completion_tokens"] == 123
    assert [m["role"] for m in req["messages"]] == ["system"] + ["user", "assistant"] * 2 + ["user"]
    assert req["messages"][0]["content"] == SYSTEM_ZH and req["messages"][-1]["content"].endswith(SHENZHEN_Q)


def test_a_figure_the_question_states_may_be_echoed():
    clause = ["“十二五”末，集成电路产业规模再翻一番以上，销售收入达3300亿元。"]
    q = "到2015年全行业销售收入要做到多少？"
    assert verify_answer("到2015年，销售收入达3300亿元[1]。", clause, REFUSALS, question=q).ok
    v = verify_answer("到2015年，销售收入达3300亿元[1]。", clause, REFUSALS)
    assert v.failure == "unsupported_figure:2015年"
    # but not a figure that is in neither
    v = verify_answer("到2016年，销售收入达3300亿元[1]。", clause, REFUSALS, question=q)
    assert v.failure == "unsupported_figure:2016年"
