"""The Milvus store backend (rag/milvus_store.py) on a real Milvus Lite, in process: no mocks.

Uploads and deletes reach the collection; document filters are Milvus filter
expressions (a document's rows removed from Milvus behind the index's back are
not found by a filtered search, which post-filtering in Python would still
find); a crash between publishing a version and updating Milvus is repaired at
the next start; and on the real seeds the dev set's metrics are within 0.01 of
the embedded store's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag.config import PROJECT_ROOT, Settings
from rag.index import IndexStale, KnowledgeIndex
from rag.keywords import tokens
from rag.store import DocumentStore

# pymilvus and milvus-lite are in requirements.lock: no skip when they are missing, a failure
from rag.milvus_store import (MilvusIndex, MilvusStore, document_fingerprints, encode_token, keyword_field,
                              store_config)
from rag.service import Assistant
from tests.conftest import kill_when_paused

WUXI_TITLE = "无锡市集成电路产业发展三年行动计划（2024-2026年）"
WUXI_Q = "无锡到2026年集成电路产业营收目标是多少？"
OTHER_PLAN = """示范区软件产业发展若干措施
一、总体目标
到2027年，示范区软件业务收入达到1200亿元，培育5家营收超百亿元的软件企业。
二、支持政策
（一）对首次通过CMMI五级评估的企业给予50万元奖励。
（二）对新认定的省级工业软件首版次产品按售价的20%给予补助。
"""


def lite(path: Path) -> str:
    return f"milvus-lite:{path}"


def chunk_doc_ids(store: MilvusStore) -> dict[str, int]:
    """doc_id -> number of chunk rows the collection holds, read from Milvus itself."""
    rows = store.client.query(store.name, filter='doc_id != ""', output_fields=["doc_id"], limit=16_384)
    out: dict[str, int] = {}
    for r in rows:
        out[r["doc_id"]] = out.get(r["doc_id"], 0) + 1
    return out


def upload(a: Assistant, name: str, text: str, title: str, alias: str) -> str:
    return a.add_document(name, text.encode("utf-8"), title, aliases=alias).doc_id


# -- configuration, no Milvus needed ------------------------------------------------------------

def test_store_config_parses_lite_files_and_clusters(tmp_path, monkeypatch):
    monkeypatch.delenv("RAG_STORE", raising=False)
    assert store_config() is None and store_config("embedded") is None and store_config(" ") is None
    c = store_config(f"milvus-lite:{tmp_path}/x.db")
    assert c.lite and c.uri == f"{tmp_path}/x.db" and c.index_type == "FLAT" and c.collection is None
    c = store_config("milvus://db.internal:19531?collection=plans&index=HNSW")
    assert not c.lite and c.uri == "http://db.internal:19531" and c.collection == "plans" and c.index_type == "HNSW"
    assert store_config("milvus://db.internal").uri == "http://db.internal:19530"
    assert store_config("milvus+https://db.internal:443").uri == "https://db.internal:443"
    for bad in ("milvus-lite:/tmp/x.sqlite", "milvus://", "redis://x:1", "milvus://h:1?index=IVF",
                "milvus://h:1?collection=a-b"):
        with pytest.raises(ValueError):
            store_config(bad)


def test_keyword_tokens_stay_whole_through_the_standard_analyzer():
    from milvus_lite.analyzer.factory import create_analyzer

    words = ["43.8%", "集成电路", "first_round", "CMMI", "2277.41", "产业-园"]
    analyzed = create_analyzer({"tokenizer": "standard"}).tokenize(keyword_field(words))
    assert analyzed == [encode_token(w) for w in words]
    assert len(set(analyzed)) == len(words)  # distinct tokens stay distinct
    assert encode_token("4.5%") != encode_token("4_5%") != encode_token("45")


def test_the_default_path_does_not_import_pymilvus():
    code = ("import sys; from rag.config import Settings; from rag import service, retrieve, cli; "
            "print('pymilvus' in sys.modules, 'milvus_lite' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT,
                         env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RAG_STORE": ""}, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]


# -- a real Milvus Lite ------------------------------------------------------------------------

@pytest.fixture
def milvus_settings(tmp_path, small_seeds):
    return Settings(seeds_dir=small_seeds, index_dir=tmp_path / "index", store=lite(tmp_path / "milvus.db"))


def test_uploads_and_deletes_reach_the_collection(milvus_settings, embedder, wuxi_plan):
    a = Assistant(milvus_settings, embedder=embedder)
    assert isinstance(a.index, MilvusIndex)
    store = a.index.store
    assert chunk_doc_ids(store) == {d: len(r) for d, r in a.index.doc_rows.items()}

    wuxi = upload(a, "wuxi.txt", wuxi_plan, WUXI_TITLE, "无锡")
    other = upload(a, "other.txt", OTHER_PLAN, "示范区软件产业发展若干措施", "示范区")
    assert isinstance(a.index, MilvusIndex)
    held = chunk_doc_ids(store)
    assert held == {d: len(r) for d, r in a.index.doc_rows.items()} and wuxi in held and other in held
    assert set(store.documents()) == set(a.index.doc_ids)
    # what Milvus holds is fingerprinted as a fresh load of the published version would be (the sync after an
    # upload reuses the other documents' fingerprints instead of hashing them again)
    assert store.documents() == document_fingerprints(KnowledgeIndex.load(milvus_settings.index_dir))

    answer = a.ask(WUXI_Q)
    assert not answer.refused and "3000亿元" in answer.answer
    assert answer.citations[0].hit.chunk.doc_id == wuxi
    assert a.search("车规级芯片 流片费用 补贴", k=3).hits[0].chunk.doc_id == wuxi

    a.remove_document(wuxi)
    held = chunk_doc_ids(store)
    assert wuxi not in held and wuxi not in store.documents() and held[other] == len(a.index.doc_rows[other])
    assert all(h.chunk.doc_id != wuxi for h in a.search("车规级芯片 流片费用 补贴", k=10).hits)


def test_document_filters_are_milvus_filter_expressions(milvus_settings, embedder, wuxi_plan):
    a = Assistant(milvus_settings, embedder=embedder)
    wuxi = upload(a, "wuxi.txt", wuxi_plan, WUXI_TITLE, "无锡")
    other = upload(a, "other.txt", OTHER_PLAN, "示范区软件产业发展若干措施", "示范区")
    index = a.index
    q = embedder.embed_query_vector("软件企业奖励")
    words = tokens("软件企业奖励 流片补贴")
    for docs in ([other], [wuxi], [wuxi, other], ["demo-2025", other]):
        rows = index.rows_for(docs)
        ids, sims = index.dense_top(q, 50, rows)
        assert sorted(ids.tolist()) == sorted(rows.tolist())  # every row of the filter, nothing else
        exact = np.sort(index.vectors[rows] @ q)[::-1]  # the embedded store's exact scores
        assert np.allclose(sims, exact, atol=1e-5)
        found, score_of = index.bm25_top(words, 50, rows)
        assert found and set(found) <= set(rows.tolist())
        embedded = index.bm25_scores(words)
        assert [r for r in found] == sorted(found, key=lambda r: (-score_of(r), r))
        # every match of our BM25 (whose idf can be 0 in a tiny corpus, where Milvus's is positive)
        assert set(found) >= {int(r) for r in rows if embedded[r] > 0}
        assert all(any(t in index.bm25_tokens[r] for t in words) for r in found)
    # Remove the other plan's rows from Milvus behind the index's back: a filtered search finds none of them
    # (a Python post-filter over the in-memory rows would), and an unfiltered one only the rest.
    index.store.client.delete(index.store.name, filter=f'doc_id == "{other}"')
    assert len(index.dense_top(q, 50, index.rows_for([other]))[0]) == 0
    assert index.bm25_top(words, 50, index.rows_for([other]))[0] == []
    assert {index.chunks[r].doc_id for r in index.dense_top(q, 50)[0]} == {"demo-2025", wuxi}
    # ... and the next start puts them back (the document row says "held", the chunks are gone: the
    # fingerprint row goes first on removal, so this is what a manual deletion looks like; sync compares rows)
    index.store.client.delete(index.store.docs_name, filter=f'doc_id == "{other}"')
    fresh = Assistant(milvus_settings, embedder=embedder)
    assert chunk_doc_ids(fresh.index.store)[other] == len(fresh.index.doc_rows[other])
    assert len(fresh.index.dense_top(q, 50, fresh.index.rows_for([other]))[0]) == len(fresh.index.doc_rows[other])


def test_a_read_only_open_refuses_an_out_of_step_collection(milvus_settings, embedder, wuxi_plan):
    a = Assistant(milvus_settings, embedder=embedder)
    wuxi = upload(a, "wuxi.txt", wuxi_plan, WUXI_TITLE, "无锡")
    assert Assistant(milvus_settings, embedder=embedder, allow_rebuild=False).index.uploads.doc_ids == [wuxi]
    store = a.index.store
    store.client.delete(store.docs_name, filter=f'doc_id == "{wuxi}"')
    store.client.delete(store.name, filter=f'doc_id == "{wuxi}"')
    with pytest.raises(IndexStale, match="rag index build"):
        Assistant(milvus_settings, embedder=embedder, allow_rebuild=False)
    assert wuxi not in store.documents()  # the read-only open changed nothing
    Assistant(milvus_settings, embedder=embedder)  # a writing open repairs it
    assert chunk_doc_ids(store)[wuxi] == len(a.index.doc_rows[wuxi])


CHILD = textwrap.dedent("""
    import sys
    from rag.config import Settings
    from rag.service import Assistant
    seeds, index_dir, db, op, arg = sys.argv[1:]
    a = Assistant(Settings(seeds_dir=seeds, index_dir=index_dir, store="milvus-lite:" + db))
    if op == "add":
        a.add_document("other.txt", open(arg, "rb").read(), "示范区软件产业发展若干措施", aliases="示范区")
    else:
        a.remove_document(arg)
    print("DONE", flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("op", ["add", "remove"])
def test_a_kill_after_publishing_is_reconciled_into_milvus_at_the_next_start(op, tmp_path, small_seeds, embedder,
                                                                             wuxi_plan):
    """Killed once the new index version is published (CURRENT swapped) but before Milvus was updated: the
    next start inserts the document the store holds, or removes the one it tombstoned."""
    db = tmp_path / "milvus.db"
    settings = Settings(seeds_dir=small_seeds, index_dir=tmp_path / "index", store=lite(db))
    a = Assistant(settings, embedder=embedder)
    wuxi = upload(a, "wuxi.txt", wuxi_plan, WUXI_TITLE, "无锡")
    store = a.index.store
    name = store.name
    store.close()  # a Milvus Lite file is open in one process at a time: let the child have it
    plan = tmp_path / "other.txt"
    plan.write_text(OTHER_PLAN, encoding="utf-8")
    kill_when_paused(["-c", CHILD, str(small_seeds), str(settings.index_dir), str(db), op,
                      str(plan) if op == "add" else wuxi], "index.save:swapped", tmp_path / "child.log")

    fresh = Assistant(settings, embedder=embedder)  # the next start
    stored = DocumentStore(settings.index_dir).scan().documents
    assert fresh.index.store.name == name
    held = chunk_doc_ids(fresh.index.store)
    assert held == {d: len(r) for d, r in fresh.index.doc_rows.items()}
    assert set(fresh.index.uploads.doc_ids) == set(stored)
    if op == "add":
        other = next(d for d in stored if d != wuxi)
        assert other in held and wuxi in held
        answer = fresh.ask("示范区对首次通过CMMI五级评估的企业奖励多少？")
        assert "50万元" in answer.answer and answer.citations[0].hit.chunk.doc_id == other
    else:
        assert wuxi not in stored and wuxi not in held and wuxi not in fresh.index.store.documents()


@pytest.mark.slow
def test_gold_metrics_on_milvus_are_within_0_01_of_the_embedded_store(assistant, tmp_path):
    """The dev set on the real seeds, the embedded store beside Milvus Lite over a copy of the same index."""
    from rag.eval_sets import run_sets
    from rag.evaluate import aggregate

    index_dir = tmp_path / "index"
    shutil.copytree(assistant.settings.index_dir, index_dir, ignore=shutil.ignore_patterns("LOCK"))
    on_milvus = Assistant(Settings(index_dir=index_dir, store=lite(tmp_path / "milvus.db")),
                          embedder=assistant.embedder)
    assert isinstance(on_milvus.index, MilvusIndex) and not isinstance(assistant.index, MilvusIndex)
    assert on_milvus.index.store.count() == len(assistant.index)
    embedded = aggregate(run_sets(assistant, ["dev"], progress=False)["dev"])
    milvus = aggregate(run_sets(on_milvus, ["dev"], progress=False)["dev"])
    for key in ("recall@5", "key_fact_accuracy", "citation_precision", "false_refusal_rate", "refusal_accuracy",
                "pass_rate"):
        assert embedded[key] is not None and milvus[key] is not None, key
        assert abs(milvus[key] - embedded[key]) <= 0.01, (key, embedded[key], milvus[key])


@pytest.mark.slow
def test_the_scale_bench_fills_and_searches_milvus_lite(assistant):
    """`rag bench --scale N --milvus`'s Milvus part, on a small synthetic corpus from the session index."""
    from rag.bench_scale import measure_milvus, synthetic_lists
    from rag.index import KnowledgeIndex as Index

    base = assistant.index
    chunks, vectors, token_lists = synthetic_lists(base, 3 * len(base), np.random.default_rng(3))
    index = Index(chunks, vectors, token_lists, {})
    queries = [(base.vectors[r], base.bm25_tokens[r]) for r in (0, 7, 42)]
    docs = list(index.doc_rows)
    out = measure_milvus(index, queries, 1, np.arange(len(queries)) % len(docs), docs)
    assert out["rows"] == len(index) and out["disk_mb"] > 0 and out["upload_sync_s"] > 0
    assert out["search_ms"]["p50"] > 0 and out["filtered_search_ms"]["p50"] > 0


def test_a_dropped_collection_is_refilled_at_the_next_start(milvus_settings, embedder, wuxi_plan):
    a = Assistant(milvus_settings, embedder=embedder)
    wuxi = upload(a, "wuxi.txt", wuxi_plan, WUXI_TITLE, "无锡")
    store = a.index.store
    store.client.drop_collection(store.name)  # the chunks gone, the document rows still there
    store.dimension = None
    fresh = Assistant(milvus_settings, embedder=embedder)
    assert chunk_doc_ids(fresh.index.store) == {d: len(r) for d, r in fresh.index.doc_rows.items()}
    assert wuxi in fresh.index.store.documents()
    assert fresh.search("车规级芯片 流片费用 补贴", k=3).hits[0].chunk.doc_id == wuxi
