"""The answer chain: rewrite → retrieve → answer.

Each step is a function over a plain dict, so another answerer (a generative
backend) replaces the last step without touching the others.  The chain runs
with `.invoke()` / `.batch()` like a LangChain chain, and `.runnable` is the same
steps as LangChain runnables (`RunnableLambda`s piped into a `RunnableSequence`)
to compose with other LangChain pieces.  LangChain is imported only for
`.runnable`: importing `langchain_core.runnables` pulls in its tracers and
langsmith (~0.8 s, ~40 MB), which a one-shot `rag ask` need not pay.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Callable

from .answer import Answer, answer_question
from .retrieve import search
from .rewrite import rewrite_followup
from .routing import route


def _timed(name: str, fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
    def step(state: dict) -> dict:
        started = time.perf_counter()
        out = fn(state)
        out.setdefault("timings_ms", dict(state.get("timings_ms", {})))
        out["timings_ms"][name] = (time.perf_counter() - started) * 1000
        return out
    step.__name__ = name
    return step


class Chain:
    """Named steps run in order over a state dict."""

    def __init__(self, steps: list[tuple[str, Callable[[dict], dict]]]):
        self.steps = [(name, _timed(name, fn)) for name, fn in steps]

    def invoke(self, state: dict, config=None) -> dict:
        for _, step in self.steps:
            state = step(state)
        return state

    def batch(self, states: list[dict], config=None) -> list[dict]:
        return [self.invoke(s) for s in states]

    @cached_property
    def runnable(self):
        """The same steps as a LangChain `Runnable` (RunnableLambda | RunnableLambda | …)."""
        from langchain_core.runnables import RunnableLambda

        first, *rest = [RunnableLambda(step, name=name) for name, step in self.steps]
        for r in rest:
            first = first | r
        return first


def extractive_answerer(assistant) -> Callable[[dict], dict]:
    def answer(state: dict) -> dict:
        result = answer_question(state["standalone"], state["retrieval"], assistant.index,
                                 assistant.corpus.documents)
        return {**state, "answer": result}
    return answer


def build_chain(assistant, answerer: Callable[[dict], dict] | None = None) -> Chain:
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

    return Chain([("rewrite", rewrite), ("retrieve", retrieve),
                  ("answer", answerer or extractive_answerer(assistant))])


def finish(state: dict) -> Answer:
    answer: Answer = state["answer"]
    answer.question = state["question"]
    answer.rewritten_question = state["standalone"]
    answer.timings_ms = dict(state.get("timings_ms", {}))
    answer.timings_ms["total"] = sum(v for k, v in answer.timings_ms.items() if k != "total")
    return answer
