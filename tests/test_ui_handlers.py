"""The chat page's handlers against the real assistant: formatting, citations, refusals, follow-ups, context."""

from __future__ import annotations

import re

import pytest

from ui import handlers as h

SHENZHEN_Q = "深圳到2025年集成电路产业营收目标是多少？"


def _run(assistant, question, history=None, documents=None, k=5, chat=None):
    """All page states of one chat turn (no streaming delay)."""
    return list(h.chat_turn(assistant, question, chat or [], history or [], documents, k, delay=0))


@pytest.fixture(scope="module")
def shenzhen(assistant):
    return assistant.ask(SHENZHEN_Q)


@pytest.fixture(scope="module")
def refusal(assistant):
    return assistant.ask("杭州的集成电路产业到2025年营收目标是多少？")


# -- parsing the answer's markers ------------------------------------------------------


def test_quoted_segments_follow_markers_and_drop_the_document_label():
    text = "根据《深圳市行动计划》：到2025年，产业营收突破2500亿元[1]。\n规划建设4个以上产业园[2]；形成格局[1][2]。"
    assert h.quoted_segments(text) == {
        1: ["到2025年，产业营收突破2500亿元", "形成格局"],
        2: ["规划建设4个以上产业园", "形成格局"],
    }
    assert h.quoted_segments("文件中未找到“杭州”。") == {}


def test_supporting_sentence_is_the_quoted_one_not_the_heading():
    text = "(一) 产业规模持续增长。到2025年，产业营收突破2500亿元，形成3家以上设计企业。其他内容。"
    assert h.supporting_sentences(text, ["到2025年，产业营收突破2500亿元，形成3家以上设计企业"]) == {1}
    # a paraphrasing backend still gets its closest sentence
    assert h.supporting_sentences(text, ["深圳计划到2025年产业营收突破2500亿元"]) == {1}
    assert h.supporting_sentences(text, ["完全无关的句子内容"]) == set()
    assert h.supporting_sentences(text, []) == set()


def test_stream_pieces_grow_to_the_full_text():
    text = "到2025年，产业营收突破2500亿元[1]。" * 5
    pieces = list(h.stream_pieces(text, steps=10))
    assert len(pieces) >= 8
    assert all(text.startswith(p) for p in pieces)
    assert [len(p) for p in pieces] == sorted(len(p) for p in pieces)
    assert pieces[-1] == text
    assert list(h.stream_pieces("")) == [""]


# -- answers, citations, refusals ---------------------------------------------------------


def test_answer_bubble_has_citation_markers_and_escapes_text(shenzhen):
    assert not shenzhen.refused
    bubble = h.format_answer(shenzhen)
    assert "2500亿元" in bubble
    assert '<sup class="zc-mark">[1]</sup>' in bubble
    assert 'class="zc-answer"' in bubble and "zc-refusal" not in bubble
    assert f"依据 {len(shenzhen.citations)} 条条款" in bubble
    assert "zc-cursor" not in bubble and "zc-rewrite" not in bubble
    # streamed states show a cursor and only what has arrived so far
    partial = h.format_answer(shenzhen, shenzhen.answer[:10])
    assert "zc-cursor" in partial and "2500亿元" not in partial
    # plan text is HTML-escaped
    assert "<script>" not in h._answer_body_html("<script>alert(1)</script>[1]")


def test_citation_panel_lists_title_section_clause_and_highlights_the_quote(shenzhen):
    panel = h.citation_panel_html(shenzhen)
    first = shenzhen.citations[0].hit.chunk
    assert first.doc_id == "shenzhen-2022" and first.clause_id == "二.(一)"
    assert panel.count('class="zc-card"') == len(shenzhen.citations)
    assert f"《{first.doc_title}》" in panel
    assert "二、工作目标" in panel and "产业规模持续增长" in panel  # section path
    assert 'data-clause="二.(一)"' in panel and 'data-doc="shenzhen-2022"' in panel
    marks = re.findall(r'<mark class="zc-support">(.*?)</mark>', panel)
    assert any("产业营收突破2500亿元" in m for m in marks)
    assert not any("产业规模持续增长" in m for m in marks)  # the heading sentence is not what was quoted
    assert "zc-cites-refused" not in panel


def test_refusal_is_visibly_different_and_still_lists_closest_clauses(refusal):
    assert refusal.refused and refusal.citations
    bubble = h.format_answer(refusal)
    assert 'class="zc-refusal"' in bubble and "未找到答案" in bubble and "zc-answer" not in bubble
    assert "仅供参考" in bubble
    panel = h.citation_panel_html(refusal)
    assert "zc-cites-refused" in panel and "最接近的条款" in panel
    assert panel.count('class="zc-card"') == len(refusal.citations)
    assert "<mark" not in panel  # nothing was quoted, so nothing is highlighted
    assert h.citation_quotes(refusal) == {}


def test_chat_turn_streams_then_fills_the_panel(assistant):
    updates = _run(assistant, SHENZHEN_Q)
    assert updates[0].chat[-1]["content"] == h.pending_html() and updates[0].question == ""
    assert updates[0].citations is None  # the previous panel stays until the answer is there
    streamed = [u.chat[-1]["content"] for u in updates if "zc-cursor" in u.chat[-1]["content"]]
    assert len(streamed) >= 5  # the answer arrives in pieces
    final = updates[-1]
    assert final.done and "zc-cursor" not in final.chat[-1]["content"] and "2500亿元" in final.chat[-1]["content"]
    assert final.chat[-2] == {"role": "user", "content": SHENZHEN_Q}
    assert 'class="zc-card"' in final.citations and final.quotes["1"]
    assert final.history == [{"role": "user", "content": SHENZHEN_Q},
                             {"role": "assistant", "content": final.answer.answer}]
    assert all(u.status == "" for u in updates)


def test_followups_show_the_rewrite_and_keep_their_topic(assistant):
    first = _run(assistant, SHENZHEN_Q)[-1]
    second = _run(assistant, "那苏州工业园区呢？", history=first.history, chat=first.chat)[-1]
    rewritten = second.answer.rewritten_question
    assert rewritten and "苏州工业园区" in rewritten and "营收" in rewritten
    bubble = second.chat[-1]["content"]
    assert "追问改写" in bubble and rewritten in bubble
    assert len(second.chat) == 4 and second.chat[-2]["content"] == "那苏州工业园区呢？"
    assert {c.hit.chunk.doc_id for c in second.answer.citations} == {"suzhou-sip-2022"}
    assert second.history[-2] == {"role": "user", "content": rewritten}  # stored standalone
    # so a second follow-up still knows the topic (and the place it replaces)
    third = _run(assistant, "那青浦呢？", history=second.history, chat=second.chat)[-1]
    assert "青浦" in third.answer.rewritten_question and "营收" in third.answer.rewritten_question
    assert "苏州" not in third.answer.rewritten_question
    # a question that stands alone shows no rewrite
    assert "追问改写" not in first.chat[-1]["content"]


def test_document_filter_restricts_the_citations(assistant):
    final = _run(assistant, "到2025年集成电路产业规模目标是多少？", documents=["qingpu-2023"])[-1]
    assert final.answer.citations
    assert {c.hit.chunk.doc_id for c in final.answer.citations} == {"qingpu-2023"}


@pytest.mark.parametrize("question, k, documents, message", [
    ("   ", 5, None, "问题为空"),
    ("深" * 1001, 5, None, "问题过长"),
    (SHENZHEN_Q, 0, None, None),  # k=0 means "default", not an error
    (SHENZHEN_Q, 51, None, "k 必须"),
    (SHENZHEN_Q, 5, ["no-such-doc"], "未知文档"),
])
def test_bad_input_is_a_message_and_keeps_the_question(assistant, question, k, documents, message):
    before = [{"role": "user", "content": "旧问题"}, {"role": "assistant", "content": "旧回答"}]
    updates = _run(assistant, question, documents=documents, k=k, chat=before)
    final = updates[-1]
    if message is None:
        assert not final.status and final.answer is not None
        return
    assert message in final.status and 'class="zc-error"' in final.status
    assert "Traceback" not in final.status
    assert final.chat == before  # the conversation is untouched
    assert all(u.citations is None and u.quotes is None for u in updates)  # and so is the citation panel
    assert final.question == question.strip()  # what was typed stays in the box


def test_unexpected_failure_is_a_message_not_a_traceback(assistant):
    class Failing:
        """The real assistant whose ask breaks, as a crashed index would."""

        def ask(self, *args, **kwargs):
            raise RuntimeError("index file vanished")

    final = _run(Failing(), SHENZHEN_Q)[-1]
    assert "内部错误" in final.status and "RuntimeError" in final.status
    assert "index file vanished" not in final.status and final.question == SHENZHEN_Q and final.chat == []


# -- context and documents ------------------------------------------------------------------


def _context_ids(view: str) -> list[str]:
    return re.findall(r'<div class="zc-ctx-clause[^"]*"><div class="zc-clause-id"><code>(.*?)</code>', view)


def test_context_shows_the_clause_between_its_neighbours(assistant, shenzhen):
    clauses = assistant.corpus.parsed["shenzhen-2022"].clauses
    ids = [c.clause_id for c in clauses]
    i = ids.index("二.(一)")
    view = h.context_html(assistant.corpus, "shenzhen-2022", "二.(一)", h.citation_quotes(shenzhen)["1"])
    shown = _context_ids(view)
    assert shown == ids[i - 2:i + 3]
    target = re.search(r'zc-ctx-target">(.*?)</div></div>', view).group(1)
    assert "二.(一)" in target and '<mark class="zc-support">' in target and "2500亿元" in target
    assert view.count("zc-ctx-target") == 1
    assert f"原文第 {i + 1}/{len(ids)} 条" in view
    # the first clause has no predecessors; chunk ids (#part) resolve to their clause
    first = h.context_html(assistant.corpus, "shenzhen-2022", ids[0] + "#2")
    assert _context_ids(first) == ids[:3]
    assert "zc-error" in h.context_html(assistant.corpus, "shenzhen-2022", "九.(九)")
    assert "zc-error" in h.context_html(assistant.corpus, "nowhere", "一")


def test_documents_tab_lists_every_plan_with_its_outline(assistant):
    corpus = assistant.corpus
    page = h.documents_html(corpus)
    for d in corpus.documents:
        assert d.title in page and d.issuer in page
        parsed = corpus.parsed[d.doc_id]
        assert f'data-doc="{d.doc_id}" data-heading="{parsed.headings[0].id}"' in page
    qingpu = corpus.parsed["qingpu-2023"]
    entries = h.outline(qingpu)
    assert [e.id for e in entries][:2] == ["导语", "一"]  # the unheaded opening text is reachable too
    assert len(entries) == len(qingpu.headings) + 1
    box = h.section_html(corpus, "qingpu-2023", "专栏1")
    assert re.findall(r"<code>(.*?)</code>", box) == ["专栏1.(1)", "专栏1.(2)", "专栏1.(3)"]
    opening = h.section_clauses(qingpu, "导语")
    assert opening and all(c.clause_id.startswith("导语") for c in opening)
    assert "zc-error" in h.section_html(corpus, "qingpu-2023", "九十九")
    assert h.doc_choices(corpus) == [(d.short_title, d.doc_id) for d in corpus.documents]


# -- uploads ----------------------------------------------------------------------------------


def test_admin_keys_gate_the_upload(monkeypatch, assistant, tmp_path):
    monkeypatch.delenv("RAG_ADMIN_KEYS", raising=False)
    assert h.admin_keys() == [] and not h.check_admin_key("anything")
    (status, doc), = h.run_upload(assistant, "anything", None)
    assert "未配置管理员密钥" in status and doc is None
    monkeypatch.setenv("RAG_ADMIN_KEYS", "alpha, beta")
    assert h.admin_keys() == ["alpha", "beta"]
    assert h.check_admin_key("beta") and not h.check_admin_key("gamma") and not h.check_admin_key("")
    (status, _), = h.run_upload(assistant, "gamma", None)
    assert "密钥不正确" in status
    if h.upload_available(assistant):
        (status, _), = h.run_upload(assistant, "alpha", None)
        assert "请先选择" in status
        bad = tmp_path / "plan.xlsx"
        bad.write_bytes(b"x")
        (status, _), = h.run_upload(assistant, "alpha", str(bad))
        assert "不支持的文件类型" in status


def test_upload_tab_is_shown_only_with_an_admin_key(monkeypatch, assistant):
    import gradio as gr

    from ui.app import build_ui

    demo = build_ui(assistant)
    tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert [t.label for t in tabs] == ["问答", "文件与目录", "上传规划"]
    assert tabs[2].visible is False  # until the page loads and knows who is there
    monkeypatch.delenv("RAG_ADMIN_KEYS", raising=False)
    assert h.upload_access(None) == (False, True)
    monkeypatch.setenv("RAG_ADMIN_KEYS", "secret")
    assert h.upload_access(None) == (True, True)  # no page login: the tab asks for the key
    # with the page's login: a user key never sees the tab, an admin is not asked for the key again
    assert h.upload_access("user") == (False, False)
    assert h.upload_access("admin") == (True, False)


@pytest.mark.slow
def test_upload_adds_a_plan_with_progress(monkeypatch, tmp_path, embedder, fresh_settings, wuxi_plan):
    from rag.service import Assistant

    if not hasattr(Assistant, "add_document"):
        pytest.skip("Assistant.add_document is not in this build of the core yet")
    monkeypatch.setenv("RAG_ADMIN_KEYS", "secret")
    own = Assistant(fresh_settings, embedder=embedder)  # its own index: the session one stays as it was
    before = {d.doc_id for d in own.corpus.documents}
    plan = tmp_path / "wuxi.txt"
    plan.write_text(wuxi_plan, encoding="utf-8")
    updates = list(h.run_upload(own, "secret", str(plan), title="无锡市集成电路产业发展三年行动计划（2024-2026年）",
                                issuer="无锡市人民政府", date="2024-03-01", region="江苏省无锡市", poll=0.2))
    assert "zc-progress" in updates[0][0]  # progress shows while indexing
    status, doc_id = updates[-1]
    assert "上传完成" in status and doc_id and doc_id not in before
    assert doc_id in {d.doc_id for d in own.corpus.documents}
    answer = own.ask("无锡到2026年集成电路产业营收目标是多少？")
    assert "3000亿元" in answer.answer
    assert answer.citations[0].hit.chunk.doc_id == doc_id

    broken = tmp_path / "fake.pdf"
    broken.write_bytes(b"this is not a pdf")
    status, doc_id = list(h.run_upload(own, "secret", str(broken), title="假文件"))[-1]
    assert "上传未被接受" in status and doc_id is None
    assert {d.doc_id for d in own.corpus.documents} == before | {updates[-1][1]}


# -- generative backends -----------------------------------------------------------------

def test_backend_choices_list_only_what_can_answer():
    assert h.backend_choices({"extractive": None, "openai": "RAG_OPENAI_MODEL is not set", "llamacpp": None}) == [
        (h.BACKEND_LABELS["extractive"], "extractive"), (h.BACKEND_LABELS["llamacpp"], "llamacpp")]


def _openai_env(monkeypatch, stub_openai_server, text):
    base, requests, reply = stub_openai_server
    reply["text"] = text
    monkeypatch.setenv("RAG_OPENAI_BASE_URL", base)
    monkeypatch.setenv("RAG_OPENAI_MODEL", "stub-model")
    return requests


def test_generated_answer_streams_its_sentences_and_says_it_was_verified(assistant, monkeypatch,
                                                                         stub_openai_server):
    good = "到2025年，深圳集成电路产业营收目标是突破2500亿元[1]。"
    requests = _openai_env(monkeypatch, stub_openai_server, good)
    updates = list(h.chat_turn(assistant, "深圳到2025年集成电路营收目标是多少？", [], [], None, 5, delay=0,
                               backend="openai"))
    assert len(requests) == 1
    streaming = [u.chat[-1]["content"] for u in updates if not u.done and "zc-cursor" in u.chat[-1]["content"]]
    assert streaming and "2500亿元" in streaming[-1]
    final = updates[-1]
    assert final.done and final.answer.verified is True and final.answer.backend == "openai"
    bubble = final.chat[-1]["content"]
    assert "zc-gen-ok" in bubble and "已逐句核对" in bubble and "zc-cursor" not in bubble
    assert "shenzhen-2022" in final.citations or "深圳" in final.citations


def test_failed_verification_shows_the_extractive_answer_and_why(assistant, monkeypatch, stub_openai_server):
    _openai_env(monkeypatch, stub_openai_server, "到2025年，深圳集成电路产业营收目标是突破2600亿元[1]。")
    final = list(h.chat_turn(assistant, "深圳到2025年集成电路营收目标是多少？", [], [], None, 5, delay=0,
                             backend="openai"))[-1]
    bubble = final.chat[-1]["content"]
    assert final.answer.verified is False
    assert "zc-gen-fallback" in bubble and "含条款中没有的数字" in bubble
    assert "2500亿元" in bubble and "2600" not in bubble


# -- issue #13: the chat page's items ------------------------------------------------------


@pytest.mark.slow
def test_upload_with_an_empty_title_takes_the_file_name_and_the_aliases(monkeypatch, tmp_path, embedder,
                                                                         fresh_settings, wuxi_plan):
    from rag.routing import route
    from rag.service import Assistant

    monkeypatch.setenv("RAG_ADMIN_KEYS", "secret")
    own = Assistant(fresh_settings, embedder=embedder)
    version = h.corpus_version(own)
    plan = tmp_path / "无锡市集成电路产业发展三年行动计划.txt"
    plan.write_text(wuxi_plan, encoding="utf-8")
    status, doc_id = list(h.run_upload(own, "secret", str(plan), title="", aliases="锡城, Xicheng",
                                       doc_id="wuxi-2024", poll=0.2))[-1]
    assert "上传完成" in status, status
    assert doc_id == "wuxi-2024"
    info = own.corpus.document("wuxi-2024")
    assert info.title == "无锡市集成电路产业发展三年行动计划"  # the API's default: the file name
    assert {"锡城", "Xicheng"} <= set(info.aliases)
    assert route("锡城的营收目标是多少？", own.corpus.documents).documents == ["wuxi-2024"]
    assert h.corpus_version(own) != version  # what tells every open page to refresh


def test_copy_text_is_plain_with_markers_and_references(shenzhen):
    text = h.copy_text(shenzhen)
    assert "<" not in text and "2500亿元" in text and "[1]" in text
    first = shenzhen.citations[0].hit.chunk
    assert f"[1] 《{first.doc_title}》" in text and first.clause_id in text
    bubble = h.format_answer(shenzhen)
    assert '<span class="zc-copy" hidden>' in bubble  # what the page's copy button and aria-label use
    assert "\n" not in bubble


def test_a_filter_that_excludes_the_named_place_says_so(assistant):
    final = _run(assistant, "苏州工业园区计划培育多少家IDM企业？", documents=["qingpu-2023"])[-1]
    bubble = final.chat[-1]["content"]
    assert "zc-scope" in bubble and "苏州工业园区" in bubble
    # no note when the filter includes the place, or there is no filter
    for docs in (None, ["suzhou-sip-2022", "qingpu-2023"]):
        assert "zc-scope" not in _run(assistant, "苏州工业园区计划培育多少家IDM企业？", documents=docs)[-1].chat[-1]["content"]


def test_a_generative_backend_says_the_model_is_generating_and_how_long_it_takes(assistant, monkeypatch,
                                                                                  stub_openai_server):
    _openai_env(monkeypatch, stub_openai_server, "到2025年，深圳集成电路产业营收目标是突破2500亿元[1]。")
    updates = list(h.chat_turn(assistant, SHENZHEN_Q, [], [], None, 5, delay=0, backend="openai"))
    waiting = [u.chat[-1]["content"] for u in updates if not u.done and "zc-pending" in u.chat[-1]["content"]]
    assert any("生成" in w and "秒" in w for w in waiting), waiting
    # once one answer was generated, the note gives this machine's usual time
    updates = list(h.chat_turn(assistant, SHENZHEN_Q, [], [], None, 5, delay=0, backend="openai"))
    waiting = [u.chat[-1]["content"] for u in updates if not u.done and "zc-pending" in u.chat[-1]["content"]]
    assert any("本机" in w and "秒" in w for w in waiting), waiting


# -- issue #13: lists and comparisons in the bubble ------------------------------------------


def _fake_answer(text: str, docs: list[tuple[str, str]]):
    """An answer as `Assistant.ask` returns it: text with [n] markers, one citation per (doc_id, title)."""
    from types import SimpleNamespace as NS

    citations = [NS(n=n, hit=NS(chunk=NS(doc_id=doc_id, doc_title=title, section_path="一、总体目标",
                                           clause_id=f"一.({n})", text="……")))
                 for n, (doc_id, title) in enumerate(docs, start=1)]
    return NS(question="问", answer=text, refused=False, citations=citations, timings_ms={},
              rewritten_question=None, verified=None)


def _copied(bubble: str) -> str:
    import html

    return html.unescape(re.search(r'<span class="zc-copy" hidden>(.*?)</span>', bubble).group(1))


SECTION_ANSWER = ("根据《深圳市行动计划（2022-2025年）》：「三、重点任务」包括：\n"
                  "1. 全力提升核心技术攻关能力：持续推进关键领域研发计划[1]。鼓励承担重大项目[1]。\n"
                  "2. 着力构建安全稳定产业链条：落实强链稳链补链[2]。")


def test_listed_items_are_a_real_list_each_keeping_its_marker():
    body = h._answer_body_html(SECTION_ANSWER)
    head, rest = body.split('<ol class="zc-list">')
    assert "「三、重点任务」包括：" in head
    items = re.findall(r"<li>(.*?)</li>", rest)
    assert len(items) == 2 and rest.endswith("</ol>")
    assert items[0].startswith("全力提升核心技术攻关能力") and not items[0].startswith("1.")
    assert items[0].count('<sup class="zc-mark">[1]</sup>') == 2 and '<sup class="zc-mark">[2]</sup>' in items[1]
    # several cited items, one per line: a bulleted list, the document label introducing it
    lines = h._answer_body_html("根据《某规划》：培育龙头企业[1]。\n引进高层次人才500名[2]。\n建设产业园[3]。")
    assert lines.startswith("根据《某规划》：<ul class=\"zc-list\">")
    assert [re.sub(r"<.*?>", "", li) for li in re.findall(r"<li>(.*?)</li>", lines)] == [
        "培育龙头企业[1]。", "引进高层次人才500名[2]。", "建设产业园[3]。"]
    # a long section listed on one line ("包括：A[1]；B[2]；…。（另有N项）")
    inline = h._answer_body_html("根据《某规划》：「三、主要任务」包括：（一）强化创新[1]；（二）壮大产业[2]；（三）优化布局[3]。（另有2项）")
    assert inline.count("<li>") == 3 and "（另有2项）" in inline.split("</ul>")[1]
    # an answer that lists nothing stays as it was; "1.5倍" is not a numbered item
    plain = "根据《某规划》：到2025年，产业营收突破2500亿元[1]。形成3家企业[1]。"
    assert h._answer_body_html(plain) == h._inline_html(plain) and "<li>" not in h._answer_body_html(plain)
    assert "<ol" not in h._answer_body_html("1.5倍的增长[1]\n2.5倍的增长")
    assert "<script>" not in h._answer_body_html("标题：\n1. <script>x</script>[1]\n2. 乙[2]")
    # the copy button still copies plain text with the markers, line by line
    bubble = h.format_answer(_fake_answer(SECTION_ANSWER, [("sz", "深圳市行动计划（2022-2025年）")] * 2))
    assert "<ol" in bubble and "\n" not in bubble
    assert _copied(bubble).startswith(SECTION_ANSWER)


COMPARISON = ("根据《苏州工业园区全面推进集成电路产业创新集群发展行动计划（2022-2025）》：到2025年，集成电路产业人才总量超15万人[1]。"
              "科技领军人才突破400名[1]。\n"
              "根据《青浦区促进集成电路产业高质量发展行动方案（2023~2025年）》：相关产业人才新增5000名[2]。")


def test_an_answer_quoting_two_documents_is_a_table_with_a_column_per_document():
    titles = {"苏州工业园区全面推进集成电路产业创新集群发展行动计划（2022-2025）": "苏州工业园区集成电路行动计划",
              "青浦区促进集成电路产业高质量发展行动方案（2023~2025年）": "青浦区集成电路行动方案"}
    body = h._answer_body_html(COMPARISON, titles)
    assert body.count("<table") == 1
    assert [re.sub(r"<.*?>", "", th) for th in re.findall(r"<th\b[^>]*>(.*?)</th>", body)] == [
        "苏州工业园区集成电路行动计划", "青浦区集成电路行动方案"]
    cells = re.findall(r"<td>(.*?)</td>", body)
    assert len(cells) == 2
    assert "人才总量超15万人" in cells[0] and cells[0].count('<sup class="zc-mark">[1]</sup>') == 2
    assert "5000名" in cells[1] and '<sup class="zc-mark">[2]</sup>' in cells[1]
    assert "根据《" not in body.split("<table")[1]  # the header names the document, not the cell
    # without a catalog short title, the title without its period
    heads = re.findall(r"<th\b[^>]*>(.*?)</th>", h._answer_body_html(COMPARISON))
    assert heads == ["苏州工业园区全面推进集成电路产业创新集群发展行动计划", "青浦区促进集成电路产业高质量发展行动方案"]
    # a document's section answer keeps its list inside its cell
    listed = h._answer_body_html(SECTION_ANSWER + "\n根据《青浦区方案》：人才新增5000名[3]。")
    assert "<table" in listed and '<td>「三、重点任务」包括：<ol class="zc-list">' in listed
    # one document is no comparison
    assert "<table" not in h._answer_body_html(COMPARISON.splitlines()[0])
    # the copy button copies the answer's own lines
    answer = _fake_answer(COMPARISON, [("suzhou-sip-2022", "苏州…"), ("qingpu-2023", "青浦…")])
    bubble = h.format_answer(answer, titles=titles)
    assert "<table" in bubble and "\n" not in bubble
    assert _copied(bubble).startswith(COMPARISON)


def test_a_comparison_question_is_answered_with_a_table_headed_by_short_titles(assistant):
    final = _run(assistant, "苏州工业园区和青浦区的人才目标有什么不同？")[-1]
    docs = {c.hit.chunk.doc_id for c in final.answer.citations}
    assert {"suzhou-sip-2022", "qingpu-2023"} <= docs
    bubble = final.chat[-1]["content"]
    heads = re.findall(r"<th\b[^>]*>(.*?)</th>", bubble)
    assert heads == ["苏州工业园区集成电路行动计划", "青浦区集成电路行动方案"]
    assert len(re.findall(r"<td>.*?</td>", bubble)) == 2


def test_a_streamed_comparison_is_a_table_from_the_start():
    answer = _fake_answer(COMPARISON, [("suzhou-sip-2022", "苏州…"), ("qingpu-2023", "青浦…")])
    cut = COMPARISON.index("科技领军人才")  # the first document's line is still arriving
    partial = h.format_answer(answer, COMPARISON[:cut])
    assert len(re.findall(r"<th\b", partial)) == 2 and "zc-cursor" in partial
    cells = re.findall(r"<td>(.*?)</td>", partial)
    assert "15万人" in cells[0] and cells[1] == ""
