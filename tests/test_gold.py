"""The gold set itself must be right: a wrong gold answer is worse than none.

Checks every quote against the parsed clauses of the real seeds, so a parser
change that moves text between clauses shows up here, naming the question.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from rag.cleaning import split_sentences
from rag.evaluate import GOLD_PATH, TYPES, GoldError, load_gold, norm

MIN_TOTAL = 150
MIN_PER_TYPE = {"fact": 30, "list": 15, "compare": 12, "summary": 10, "unanswerable": 25, "english": 15,
                "followup": 15}
MIN_PER_DOC = 15
_CJK = re.compile(r"[\u3400-\u9fff]")


@pytest.fixture(scope="module")
def gold():
    return load_gold(GOLD_PATH)


@pytest.fixture(scope="module")
def clauses(corpus):
    return {(c.doc_id, c.clause_id): c for c in corpus.clauses}


def test_ids_unique_and_counts(gold):
    ids = [g.id for g in gold]
    assert len(ids) == len(set(ids))
    assert len(gold) >= MIN_TOTAL
    counts = Counter(g.type for g in gold)
    assert set(counts) == set(TYPES)
    for t, n in MIN_PER_TYPE.items():
        assert counts[t] >= n, f"only {counts[t]} {t} questions, want {n}"
    assert sum(not g.answerable for g in gold) >= 25


def test_every_document_covered(gold, corpus):
    per_doc = Counter(d for g in gold for d in {x["doc_id"] for x in g.gold})
    for doc in corpus.documents:
        assert per_doc[doc.doc_id] >= MIN_PER_DOC, f"{doc.doc_id}: only {per_doc[doc.doc_id]} questions"


def test_deep_details_covered(gold, corpus):
    """Boxes (专栏), safeguards (保障措施), review figures and reply-letter figures all have questions."""
    keys = {(x["doc_id"], x["clause_id"]) for g in gold for x in g.gold}
    cl = {(c.doc_id, c.clause_id): c for c in corpus.clauses}
    for doc in corpus.documents:
        boxes = [k for k in cl if k[0] == doc.doc_id and k[1].startswith("专栏")]
        if boxes:
            assert any(k in keys for k in boxes), f"{doc.doc_id}: no question on a 专栏 box"
        safeguards = [k for k, c in cl.items() if k[0] == doc.doc_id and "保障措施" in c.section_path]
        if safeguards:
            assert any(k in keys for k in safeguards), f"{doc.doc_id}: no question on 保障措施"
    assert ("miit-2011-12th-fyp", "一.(一)") in keys  # 十一五回顾 figures
    assert any(k[0] == "xiamen-huli-2024" and k[1] == "二.(二)" for k in keys)  # reply-letter money figures
    about_units = [g.id for g in gold for x in g.gold
                   if any(norm(m) in norm(cl[(x["doc_id"], x["clause_id"])].responsible or "")
                          for m in g.must_include)]
    assert len(about_units) >= 2  # questions about 责任单位 notes


def test_gold_clauses_exist_and_hold_their_quotes(gold, clauses):
    for g in gold:
        for x in g.gold:
            key = (x["doc_id"], x["clause_id"])
            assert key in clauses, f"{g.id}: no clause {key}"
            assert norm(x["quote"]) in norm(clauses[key].text), f"{g.id}: quote not in {key}: {x['quote']}"


def test_quotes_lie_within_one_sentence(gold, clauses):
    """Chunks are cut at sentence ends, so a one-sentence quote survives any re-chunking."""
    for g in gold:
        for x in g.gold:
            sentences = split_sentences(clauses[(x["doc_id"], x["clause_id"])].text)
            assert any(norm(x["quote"]) in norm(s) for s in sentences), f"{g.id}: quote spans sentences"


def test_quotes_are_distinctive(gold, corpus):
    """A quote found in another clause would count the wrong clause as a retrieval hit."""
    for g in gold:
        own = {(x["doc_id"], x["clause_id"]) for x in g.gold}
        for x in g.gold:
            elsewhere = [(c.doc_id, c.clause_id) for c in corpus.clauses
                         if (c.doc_id, c.clause_id) not in own and norm(x["quote"]) in norm(c.text)]
            assert not elsewhere, f"{g.id}: quote {x['quote']!r} also in {elsewhere}"


def test_must_include_occurs_in_gold_clauses(gold, clauses):
    for g in gold:
        text = norm("".join(clauses[(x["doc_id"], x["clause_id"])].text for x in g.gold))
        for m in g.must_include:
            assert norm(m) in text, f"{g.id}: must_include {m!r} not in its gold clauses"


def test_type_specific_shape(gold):
    for g in gold:
        docs = {x["doc_id"] for x in g.gold}
        assert g.reference_answer.strip()
        if g.type == "compare":
            assert len(docs) >= 2, f"{g.id}: a comparison needs gold from two or more documents"
        if g.type == "unanswerable":
            assert not g.answerable and not g.gold and not g.must_include
        if g.type == "english":
            assert not _CJK.search(g.question), f"{g.id}: English question has Chinese characters"
        if g.type == "followup":
            assert g.history and g.history[0]["role"] == "user", f"{g.id}: a follow-up needs the first turn"
        else:
            assert not g.history
        if g.answerable:
            assert g.gold and g.must_include


@pytest.mark.parametrize("lines, message", [
    (['{"id": "a"'], "invalid JSON"),
    ([json.dumps({"id": "a", "question": "q", "type": "fact", "answerable": True, "gold": [],
                  "must_include": [], "reference_answer": "r"})], "needs gold"),
    ([json.dumps({"id": "a", "question": "q", "type": "unanswerable", "answerable": False,
                  "gold": [], "must_include": [], "reference_answer": "r"})] * 2, "duplicate id"),
    ([json.dumps({"id": "a", "question": "q", "type": "trivia", "answerable": False,
                  "gold": [], "must_include": [], "reference_answer": "r"})], "unknown type"),
    ([json.dumps({"id": "a", "question": "q", "type": "fact", "answerable": True,
                  "gold": [{"doc_id": "d", "clause_id": "c"}], "must_include": ["x"],
                  "reference_answer": "r"})], "doc_id, clause_id and quote"),
])
def test_load_gold_rejects_malformed_files(tmp_path, lines, message):
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(GoldError, match=message) as err:
        load_gold(path)
    assert "gold.jsonl:" in str(err.value)  # names the line


def test_every_gold_question_is_in_exactly_one_frozen_split(gold):
    from rag.eval_sets import load_splits, split_of

    splits = load_splits()
    dev, test = set(splits["dev"]), set(splits["test"])
    assert not dev & test
    assert {g.id for g in gold} == dev | test, "add new gold questions to evals/splits.json"
    assert 0.25 <= len(test) / len(gold) <= 0.4
    # the frozen file is the hash rule it was drawn by, not a hand-picked list
    assert all(split_of(i) == "test" for i in test) and all(split_of(i) == "dev" for i in dev)
