"""What an upload may cost after extraction, and a busy writer: clear errors, nothing changed."""

from __future__ import annotations

import threading

import pytest

from rag.ingest import DocumentError, check_extracted_size


def test_extracted_text_and_chunk_limits_name_the_limit(monkeypatch):
    monkeypatch.setenv("RAG_MAX_UPLOAD_CHARS", "100")
    with pytest.raises(DocumentError) as e:
        check_extracted_size("字" * 101)
    assert e.value.status == 413 and e.value.code == "text_too_long" and "RAG_MAX_UPLOAD_CHARS" in str(e.value)
    monkeypatch.setenv("RAG_MAX_UPLOAD_CHUNKS", "3")
    with pytest.raises(DocumentError) as e:
        check_extracted_size("字" * 10, chunk_count=4)
    assert e.value.status == 413 and e.value.code == "too_many_chunks"
    check_extracted_size("字" * 10, chunk_count=3)


def test_an_upload_over_the_chunk_limit_is_refused_before_embedding(assistant, monkeypatch, wuxi_plan):
    monkeypatch.setenv("RAG_MAX_UPLOAD_CHUNKS", "2")
    calls = []
    real = assistant.embedder.embed_passages
    monkeypatch.setattr(assistant.embedder, "embed_passages", lambda *a, **k: calls.append(1) or real(*a, **k))
    before = [d.doc_id for d in assistant.corpus.documents]
    with pytest.raises(DocumentError) as e:
        assistant.add_document("wuxi.txt", wuxi_plan.encode(), title="无锡计划（限额测试）")
    assert e.value.status == 413 and not calls
    assert [d.doc_id for d in assistant.corpus.documents] == before


def test_a_write_while_another_holds_the_writer_gets_429_with_retry_after(assistant, monkeypatch, wuxi_plan):
    from fastapi.testclient import TestClient

    from rag.api import create_app

    monkeypatch.setenv("RAG_WRITE_WAIT_S", "0.2")
    client = TestClient(create_app(assistant))
    held, release = threading.Event(), threading.Event()

    def hold():
        with assistant._writer():
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        held.wait(5)
        r = client.post("/v1/documents", files={"file": ("busy.txt", wuxi_plan.encode())},
                        data={"title": "忙时上传"})
        assert r.status_code == 429, r.text and r.json()["error"]["code"] == "busy" and r.headers["retry-after"] == "10"
    finally:
        release.set()
        t.join()
