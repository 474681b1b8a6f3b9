"""The pluggable cross-encoder reranker, on a small cross-encoder made here.

No Chinese cross-encoder is available offline, so the test builds one: a
one-layer BERT sequence classifier (random weights, fixed seed) with the
XLM-R tokenizer the embedded model uses, saved as a folder that
sentence-transformers' `CrossEncoder` loads like any hub model.  Its scores
mean nothing, which is the point: the order the assistant returns must be
exactly the order of the model's scores, whatever the fused ranking was.
"""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import Settings
from rag.embedded_model import xlmr_tokenizer_file
from rag.retrieve import search

QUERIES = ["深圳到2025年集成电路产业营收目标是多少？", "苏州工业园区的人才政策有哪些？", "光刻胶"]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    import shutil

    import torch
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(xlmr_tokenizer_file()), bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", sep_token="</s>", pad_token="<pad>", cls_token="<s>",
                                        mask_token="<mask>", model_max_length=256)
    torch.manual_seed(7)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=258, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert (folder / "config.json").exists()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def reranking_assistant(tiny_cross_encoder, embedder, session_index_dir):
    from rag.service import Assistant

    return Assistant(Settings(index_dir=session_index_dir, reranker=str(tiny_cross_encoder)), embedder=embedder)


def test_reranker_keeps_the_models_best_of_the_fused_head(reranking_assistant, tiny_cross_encoder):
    """k=5 reranks the fused top 20: the result is those 20 ordered by the model, cut to 5."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    index, embedder = reranking_assistant.index, reranking_assistant.embedder
    changed = 0
    for query in QUERIES:
        reranked = [h.chunk.chunk_id for h in reranking_assistant.search(query, k=5, use_routing=False).hits]
        head = search(index, embedder, query, k=20, use_routing=False).hits  # no reranker: the fused order
        scores = model.predict([(query, h.chunk.text) for h in head], convert_to_numpy=True)
        by_model = [head[i].chunk.chunk_id for i in np.argsort(-scores, kind="stable")[:5]]
        assert reranked == by_model, query
        changed += reranked != [h.chunk.chunk_id for h in head[:5]]
    assert changed, "the reranker never changed an order: is it applied at all?"


def test_answers_still_cite_retrieved_clauses_with_a_reranker(reranking_assistant):
    answer = reranking_assistant.ask(QUERIES[0])
    assert answer.citations  # the answer step works on reranked hits (it may refuse: the scores are random)
    assert all(c.hit.chunk.doc_id for c in answer.citations)


def test_unloadable_reranker_is_a_clear_error(tmp_path, embedder, session_index_dir):
    from rag.service import Assistant

    with pytest.raises(Exception) as info:
        Assistant(Settings(index_dir=session_index_dir, reranker=str(tmp_path / "no-such-model")), embedder=embedder)
    assert "no-such-model" in str(info.value)
