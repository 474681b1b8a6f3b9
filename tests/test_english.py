"""English questions over documents the hand glossary never saw (rag.english)."""

from types import SimpleNamespace

from rag.english import translate
from rag.keywords import english_terms


def test_translation_keeps_only_words_the_documents_use():
    vocabulary = {"罚款", "农机", "补贴", "登记", "数据"}
    words = translate("What is the penalty for late registration of farm machinery?", vocabulary)
    assert "罚款" in words and "登记" in words
    assert all(w in vocabulary for w in words)


def test_phrases_before_words_and_plurals():
    vocabulary = {"集成电路", "电路", "补贴"}
    assert translate("integrated circuits", vocabulary)[0] == "集成电路"
    assert translate("subsidies", vocabulary) == ["补贴"]


def test_greetings_and_function_words_translate_to_nothing():
    vocabulary = {"你好", "多少", "若干", "什么"}
    assert translate("hello, how many are there?", vocabulary) == []


def test_glossary_first_then_the_documents_vocabulary():
    index = SimpleNamespace(vocabulary={"农村", "营收"})  # what english_terms reads of an index
    terms = english_terms("What rules apply to rural areas?", index)
    assert "农村" in terms
    # a Chinese question's Latin words are names, never translated
    assert english_terms("IDM企业有哪些 rural", index) == []
