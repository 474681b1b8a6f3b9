"""The answer chain as LangChain runnables: rewrite → retrieve → answer.

Each step is a `RunnableLambda` over a plain dict, so another answerer (a
generative backend) replaces the last step without touching the others, and
the whole chain runs with `.invoke()` / `.batch()` like any LangChain chain.
"""

from __future__ import annotations

import time
from typing import Callable

from langchain_core.runnables import Runnable, RunnableLambda

from .answer import Answer, answer_question
from .retrieve import search
from .rewrite import rewrite_followup
from .routing import route


def _timed(name: str, fn: Callable[[dict], dict]) -> RunnableLambda:
    def step(state: dict) -> dict:
        started = time.perf_counter()
        out = fn(state)
        out.setdefault("timings_ms", dict(state.get("timings_ms", {})))
        out["timings_ms"][name] = (time.perf_counter() - started) * 1000
        return out
    return RunnableLambda(step, name=name)


def extractive_answerer(assistant) -> Callable[[dict], dict]:
    def answer(state: dict) -> dict:
        result = answer_question(state["standalone"], state["retrieval"], assistant.index,
                                 assistant.corpus.documents)
        return {**state, "answer": result}
    return answer


def build_chain(assistant, answerer: Callable[[dict], dict] | None = None) -> Runnable:
    """Input: {question, k, documents, history, mode}; output state with an `answer` (Answer)."""
    docs = assistant.corpus.documents

    def rewrite(state: dict) -> dict:
        standalone = rewrite_followup(state["question"], state.get("history"), docs)
        return {**state, "standalone": standalone}

    def retrieve(state: dict) -> dict:
        r = route(state["standalone"], docs)
        result = search(assistant.index, assistant.embedder, state["standalone"], k=state.get("k") or 5,
                        documents=state.get("documents"), mode=state.get("mode", "hybrid"), route=r,
                        use_routing=state.get("use_routing", True), reranker=assistant.reranker)
        return {**state, "retrieval": result}

    return (_timed("rewrite", rewrite) | _timed("retrieve", retrieve)
            | _timed("answer", answerer or extractive_answerer(assistant)))


def finish(state: dict) -> Answer:
    answer: Answer = state["answer"]
    answer.question = state["question"]
    answer.rewritten_question = state["standalone"]
    answer.timings_ms = dict(state.get("timings_ms", {}))
    answer.timings_ms["total"] = sum(v for k, v in answer.timings_ms.items() if k != "total")
    return answer
