"""The ONNX backend of the embedded model (rag/onnx_embedder.py, rag/onnx_export.py, rag/unigram.py):
the same tokens and vectors as sentence-transformers, backend selection, clear errors, the manifest."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from rag.config import EMBEDDED_MODEL, PROJECT_ROOT, Settings
from rag.embed_backend import (DEFAULT_BACKEND, EmbedBackendError, backend_mismatch, make_embedder,
                               resolve_backend)
from rag.onnx_embedder import OnnxEmbeddings, OnnxModelMissing, onnx_dir

EDGE_CASES = [
    "", " ", "a  b ", "  lead and trail  ", "tab\there\nnewline\r\n", "＜ｓ＞ <s>x</s><mask><pad><unk>",
    "\u3000全角\u3000空格\u3000", "ａｂｃ①②③ＡＢＣ", "é́ç ñ", "𠀀𪚥 ☃☃☃ \U0001F600\U0001F600 unknown",
    "x" * 3000, "中" * 700, "A.B.C...", "\x85\u200b\ufeff", "2025年营收突破2500亿元（含）；", "query: ",
]


@pytest.fixture(scope="module")
def torch_embedder():
    from rag.embeddings import SentenceTransformerEmbeddings

    return SentenceTransformerEmbeddings(EMBEDDED_MODEL)


@pytest.fixture(scope="module")
def fp32():
    return OnnxEmbeddings(onnx_dir(Settings().models_dir), "onnx")


@pytest.fixture(scope="module")
def int8():
    return OnnxEmbeddings(onnx_dir(Settings().models_dir), "onnx-int8")


@pytest.fixture(scope="module")
def texts(corpus):
    """Passages and sentences of every seed (short and long, over 512 tokens too), and questions."""
    from rag.index import IndexedChunk, chunk_sentences, passage_text

    chunks = [IndexedChunk.from_chunk(ch, "") for ch in corpus.chunks]
    passages = [passage_text(c) for c in chunks]
    sentences = [s for c in chunks for s in chunk_sentences(c)]
    questions = []
    for name in ("gold.jsonl", "dev_fresh.jsonl", "uploaded_gold.jsonl"):
        path = PROJECT_ROOT / "evals" / name
        questions += [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines()
                      if line.strip()]
    return {"passages": passages, "sentences": sentences, "questions": questions}


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_token_ids_are_sentence_transformers_own(torch_embedder, fp32, texts):
    """Every seed passage and sentence, every question and the edge cases, with each prompt."""
    model = torch_embedder.model
    for prompt in (fp32.query_prompt, fp32.passage_prompt):
        assert prompt in ("query: ", "passage: ")
        batch = [prompt + t for t in texts["passages"] + texts["sentences"] + texts["questions"] + EDGE_CASES]
        want = []
        for i in range(0, len(batch), 64):
            feats = model.preprocess(batch[i:i + 64])
            want += [row[mask.astype(bool)].tolist() for row, mask in
                     zip(feats["input_ids"].numpy(), feats["attention_mask"].numpy())]
        got = fp32.token_ids([t[len(prompt):] for t in batch], prompt)
        bad = [batch[i][:60] for i in range(len(batch)) if got[i] != want[i]]
        assert not bad, bad[:5]
    assert max(len(x) for x in got) == fp32.max_seq_length == model.max_seq_length == 512  # truncated alike


def test_light_tokenizer_is_the_tokenizers_library(fp32, texts):
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(str(fp32.folder / "tokenizer.json"))
    ref.no_padding()
    ref.enable_truncation(max_length=fp32.max_seq_length)
    batch = texts["passages"] + texts["questions"] + EDGE_CASES
    assert fp32.tokenizer.encode_batch(batch) == [e.ids for e in ref.encode_batch(batch)]


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_fp32_vectors_match_torch_padded_and_unpadded(torch_embedder, fp32, texts, kind):
    sample = (texts["questions"][::12] if kind == "query" else texts["passages"][::6])[:40] + EDGE_CASES[2:8]
    prompt = fp32.query_prompt if kind == "query" else fp32.passage_prompt
    want = torch_embedder._encode(sample, prompt)  # sentence-transformers: padded batches of 16
    unpadded = fp32._encode(sample, prompt, batch_size=1)  # one text per call
    padded = fp32._encode(sample, prompt, batch_size=16, max_padding=float("inf"))  # 16 a call, padded to the longest
    default = fp32._encode(sample, prompt)  # queries: up to 8 of similar length a call (a server's micro-batches)
    assert _cos(want, unpadded).min() >= 0.999
    assert _cos(want, padded).min() >= 0.999
    assert _cos(want, default).min() >= 0.999
    assert _cos(unpadded, default).min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(unpadded, axis=1), 1.0, atol=1e-5)


def test_batches_group_similar_lengths_within_the_padding_limit(fp32):
    from rag.onnx_embedder import MAX_PADDING

    ids = [[1] * n for n in (100, 10, 95, 12, 50, 98, 11, 49, 200)]
    batches = fp32.batches(ids, 4)
    assert sorted(i for b in batches for i in b) == list(range(len(ids)))  # each row exactly once
    for b in batches:
        lengths = [len(ids[i]) for i in b]
        assert len(b) <= 4 and lengths == sorted(lengths, reverse=True)
        assert lengths[0] * len(b) <= sum(lengths) * (1 + MAX_PADDING)
    assert [[len(ids[i]) for i in b] for b in batches] == [[200], [100, 98, 95, 50], [49], [12, 11, 10]]
    assert fp32.batches(ids, 1) == [[i] for i in sorted(range(len(ids)), key=lambda i: -len(ids[i]))]
    assert len(fp32.batches(ids, 16, max_padding=float("inf"))) == 1
    assert fp32.query_batch_size > 1  # fp32 queries share calls; int8 never mixes texts (below)


def test_int8_is_close_to_fp32_and_ranks_alike(fp32, int8, texts):
    passages = texts["passages"]
    questions = texts["questions"][::8]
    p32, p8 = fp32.embed_passages(passages), int8.embed_passages(passages)
    q32 = np.vstack([fp32.embed_query_vector(q) for q in questions])
    q8 = np.vstack([int8.embed_query_vector(q) for q in questions])
    cos_p, cos_q = _cos(p32, p8), _cos(q32, q8)
    assert cos_p.min() >= 0.99 and cos_p.mean() >= 0.995
    assert cos_q.min() >= 0.99 and cos_q.mean() >= 0.995
    top32 = np.argsort(-(q32 @ p32.T), axis=1)[:, :5]
    top8 = np.argsort(-(q8 @ p8.T), axis=1)[:, :5]
    top1 = np.mean(top32[:, 0] == top8[:, 0])
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top32, top8)])
    print(f"dense-only over the seeds: top-1 agreement {top1:.3f}, top-5 overlap {overlap:.3f}")
    # Dense scores of e5 are close together, so near-ties swap; what counts is retrieval quality, measured
    # with `rag eval` (README: within 0.01 of fp32).  These floors catch a broken quantisation.
    assert top1 >= 0.6 and overlap >= 0.75


def test_a_text_gets_the_same_vector_alone_or_among_others(int8, texts):
    """One text per call: int8's per-call activation scales never mix texts (queries neither)."""
    assert int8.batch_size == int8.query_batch_size == 1
    many = int8.embed_passages(texts["passages"][:20])
    alone = np.vstack([int8.embed_passages([t]) for t in texts["passages"][:20]])
    np.testing.assert_array_equal(many, alone)


def test_backend_selection_by_env_var(monkeypatch):
    monkeypatch.delenv("RAG_EMBED_BACKEND", raising=False)
    assert resolve_backend(Settings()) == DEFAULT_BACKEND == "onnx"
    for name in ("onnx", "onnx-int8", "ONNX-INT8 "):
        monkeypatch.setenv("RAG_EMBED_BACKEND", name)
        emb = make_embedder(Settings())
        assert isinstance(emb, OnnxEmbeddings) and emb.backend == name.strip().lower()
    monkeypatch.setenv("RAG_EMBED_BACKEND", "torch")
    assert resolve_backend(Settings()) == "torch"
    monkeypatch.setenv("RAG_EMBED_BACKEND", "onnx")  # another model: torch whatever the setting says
    assert resolve_backend(Settings(embed_model="BAAI/bge-small-zh-v1.5")) == "torch"
    monkeypatch.setenv("RAG_EMBED_BACKEND", "tensorrt")
    with pytest.raises(EmbedBackendError, match="onnx, onnx-int8, torch"):
        make_embedder(Settings())


def test_torch_backend_builds_sentence_transformers(monkeypatch, torch_embedder):
    monkeypatch.setenv("RAG_EMBED_BACKEND", "torch")
    emb = make_embedder(Settings())
    assert type(emb).__name__ == "SentenceTransformerEmbeddings" and emb.backend == "torch"


def test_missing_onnx_export_says_to_run_models_prepare(tmp_path, monkeypatch, capsys, session_index_dir,
                                                       assistant):
    with pytest.raises(OnnxModelMissing, match="rag models prepare"):
        make_embedder(Settings(cache_dir=tmp_path))
    # half an export (a file removed) is not used either
    folder = tmp_path / "models" / onnx_dir(Path("")).name
    folder.mkdir(parents=True)
    for f in onnx_dir(Settings().models_dir).iterdir():
        if f.name != "model-int8.onnx.data":
            (folder / f.name).symlink_to(f)
    with pytest.raises(OnnxModelMissing, match="rag models prepare"):
        make_embedder(Settings(cache_dir=tmp_path))
    from rag import cli

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RAG_INDEX_DIR", str(session_index_dir))
    code = cli.main(["ask", "深圳到2025年营收目标？"])
    err = capsys.readouterr().err
    assert code == 1 and "rag models prepare" in err and "Traceback" not in err


def test_manifest_records_the_backend_and_the_other_precision_warns(small_seeds, tmp_path, int8, fp32, caplog):
    from rag.service import Assistant

    settings = Settings(index_dir=tmp_path / "index", seeds_dir=small_seeds)
    built = Assistant(settings, embedder=int8)
    assert built.index.manifest["embed_backend"] == "onnx-int8"
    with caplog.at_level(logging.WARNING, logger="rag.service"):
        Assistant(settings, embedder=int8, allow_rebuild=False)
    assert "embedding backend" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="rag.service"):
        reader = Assistant(settings, embedder=fp32, allow_rebuild=False)  # works, and says so
    assert "built with the onnx-int8 embedding backend, queries use onnx" in caplog.text
    assert "rag index build --force" in caplog.text
    assert "800亿元" in reader.ask("示例市到2025年集成电路产业规模目标是多少？").answer
    assert backend_mismatch(None, "onnx") is None  # indexes from before: torch, fp32 like onnx
    assert backend_mismatch("torch", "onnx") is None
    assert backend_mismatch("onnx", "onnx-int8")


def test_the_onnx_runner_serves_langchain_vector_stores(int8):
    from langchain_community.vectorstores import FAISS

    from rag.embed_backend import as_langchain

    store = FAISS.from_texts(["深圳集成电路产业营收突破2500亿元", "苏州工业园区引进高层次人才"], as_langchain(int8))
    assert "深圳" in store.similarity_search("深圳营收目标", k=1)[0].page_content
