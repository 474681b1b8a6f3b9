"""Hybrid retrieval and routing on the real corpus."""

from __future__ import annotations

import pytest

from rag.routing import route
from rag.service import QuestionError


def test_routing_finds_named_documents(corpus):
    docs = corpus.documents
    assert route("深圳到2025年营收目标？", docs).documents == ["shenzhen-2022"]
    r = route("苏州工业园区和青浦区的人才目标有什么不同？", docs)
    assert r.documents == ["suzhou-sip-2022", "qingpu-2023"] and r.compare
    assert route("工信部十二五规划的销售收入目标", docs).documents == ["miit-2011-12th-fyp"]
    assert route("What is Shenzhen's revenue target?", docs).documents == ["shenzhen-2022"]
    assert route("厦门湖里区兑现了多少扶持资金", docs).documents == ["xiamen-huli-2024"]
    assert route("集成电路产业的人才目标", docs).documents == []
    # A weak alias (上海) routes only when nothing stronger is named.
    assert route("上海的集成电路目标", docs).documents == ["qingpu-2023"]
    assert route("湖里区瞄准上海、深圳等城市招商", docs).documents == ["shenzhen-2022", "xiamen-huli-2024"] or \
        route("湖里区瞄准上海、深圳等城市招商", docs).documents[0] == "xiamen-huli-2024"


def test_weak_aliases_route_only_as_whole_words(corpus):
    docs = corpus.documents
    assert route("园区的人才目标是什么？", docs).documents == ["suzhou-sip-2022"]
    assert route("国家对集成电路有什么支持政策？", docs).documents == ["miit-2011-12th-fyp"]
    # "国家级" and "产业园区" name no plan: this is not a comparison of MIIT and Suzhou
    r = route("十一五期间我国建成了多少个国家级集成电路产业园区？", docs)
    assert r.documents == [] and not r.compare


def test_followups_keep_or_narrow_the_conversation_topic(corpus):
    from rag.rewrite import rewrite_followup

    docs = corpus.documents
    qp = [{"role": "user", "content": "青浦区集成电路营收目标是多少？"}, {"role": "assistant", "content": "350亿元"}]
    # a question naming no plan continues the plan being discussed...
    assert rewrite_followup("主营业务收入超百亿的企业要有几家？", qp, docs) == "青浦区主营业务收入超百亿的企业要有几家？"
    # ...unless it asks across plans, or names its own
    assert rewrite_followup("哪些文件提到了光刻胶？", qp, docs) == "哪些文件提到了光刻胶？"
    assert rewrite_followup("深圳的人才目标是什么？", qp, docs) == "深圳的人才目标是什么？"
    # a place of its own but the topic by reference ("这方面"): the previous question, for that place
    assert rewrite_followup("深圳在这方面的目标呢？", qp, docs) == "深圳集成电路营收目标是多少？"
    both = [{"role": "user", "content": "深圳和苏州工业园区2025年集成电路产业规模目标分别是多少？"},
            {"role": "assistant", "content": "…"}]
    # after a comparison, "那青浦区呢？" asks about 青浦 alone
    rewritten = rewrite_followup("那青浦区呢？", both, docs)
    assert "青浦" in rewritten and "深圳" not in rewritten and "苏州" not in rewritten
    assert route(rewritten, docs).documents == ["qingpu-2023"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_finds_the_shenzhen_revenue_clause(assistant, mode):
    result = assistant.search("深圳到2025年集成电路产业营收目标是多少？", k=5, mode=mode)
    top = [(h.chunk.doc_id, h.chunk.clause_id) for h in result.hits]
    assert ("shenzhen-2022", "二.(一)") in top[:3]
    assert all(d == "shenzhen-2022" for d, _ in top)  # routed


def test_unrouted_search_spans_documents(assistant):
    result = assistant.search("集成电路人才培养", k=10, use_routing=False)
    assert len({h.chunk.doc_id for h in result.hits}) >= 3


def test_comparison_returns_clauses_from_both_documents(assistant):
    result = assistant.search("苏州工业园区和青浦区的人才目标有什么不同？", k=6)
    docs = [h.chunk.doc_id for h in result.hits]
    assert set(docs) == {"suzhou-sip-2022", "qingpu-2023"}
    texts = " ".join(h.chunk.text for h in result.hits)
    assert "15万人" in texts and "5000名" in texts


def test_explicit_document_filter_wins(assistant):
    result = assistant.search("深圳到2025年营收目标", k=5, documents=["qingpu-2023"])
    assert {h.chunk.doc_id for h in result.hits} == {"qingpu-2023"}


def test_hits_serialize_with_required_fields(assistant):
    hit = assistant.search("第三代半导体", k=1).hits[0].to_dict()
    assert set(hit) >= {"doc_id", "doc_title", "clause_id", "section", "text", "score"}


@pytest.mark.parametrize("bad", ["", "   ", "问" * 1001])
def test_bad_queries_are_rejected(assistant, bad):
    with pytest.raises(QuestionError):
        assistant.search(bad)


def test_unknown_document_and_bad_k_are_rejected(assistant):
    with pytest.raises(QuestionError, match="unknown doc_id"):
        assistant.search("人才", documents=["nope"])
    with pytest.raises(QuestionError):
        assistant.search("人才", k=0)


def test_langchain_retriever_interface(assistant):
    from rag.retrieve import ClauseRetriever

    retriever = ClauseRetriever(index=assistant.index, embedder=assistant.embedder, k=3)
    docs = retriever.invoke("集成电路设计企业研发投入强度")
    assert len(docs) == 3 and docs[0].metadata["doc_id"]


@pytest.mark.parametrize("question, clause_id", [
    ("工信部印发集成电路“十二五”发展规划用的是哪个文号？", "导语.p2"),
    ("青浦区集成电路行动方案的发文字号是什么？", "导语.p2"),
])
def test_header_fields_are_found_by_their_name(assistant, question, clause_id):
    """"工信部规〔2011〕565号" shares no word with "文号": the index labels header lines by field."""
    hits = assistant.search(question, k=5).hits
    assert clause_id in [h.chunk.clause_id for h in hits]


def test_a_place_two_documents_share_is_written_once_in_a_rewrite():
    from rag.catalog import DocumentInfo
    from rag.rewrite import rewrite_followup

    docs = [DocumentInfo("gz-a", "a.txt", "某市积分制入户管理办法", "某市人民政府", "2025", "广东省广州市", aliases=["广州"]),
            DocumentInfo("gz-b", "b.txt", "某市就业见习基地管理办法", "某市人社局", "2019", "广东省广州市", aliases=["广州"])]
    history = [{"role": "user", "content": "在广州有发明专利，积分入户能加分吗？"}, {"role": "assistant", "content": "可以。"}]
    rewritten = rewrite_followup("那在高新技术企业做研发的，又能加多少分？", history, docs)
    assert rewritten.count("广州") == 1, rewritten
