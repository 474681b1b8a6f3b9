"""Generative answers: a LangChain chat model writes the answer, `rag.verify` checks it.

Backends (setting `RAG_BACKEND`, or per request):

- `extractive` — no model (rag.answer), the default;
- `openai`     — any OpenAI-compatible endpoint through langchain-openai's `ChatOpenAI`
                 (`RAG_OPENAI_BASE_URL`, `RAG_OPENAI_MODEL`, `RAG_OPENAI_API_KEY`);
- `llamacpp`   — a local GGUF through llama-cpp-python behind a small LangChain chat
                 model (`RAG_LLAMACPP_MODEL`: a path or `embedded:qwen2.5-coder-1.5b`).

Flow for a generative backend: the extractive answerer runs first (milliseconds)
and acts as the retrieval gate — when it refuses (weak retrieval, a constraint
of the question no clause holds) the model is not asked at all.  Otherwise the
top clauses, trimmed to their most relevant sentences (prompt reading is the
slow step on CPU), are numbered in a short prompt; the model's answer is
verified sentence by sentence, and when nothing survives, the model refuses
although retrieval found relevant clauses, or the model fails, the extractive
answer is returned with `verified=False` and a `fallback_reason`.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from .answer import Answer, Citation, answer_question
from .cleaning import split_sentences
from .keywords import tokens
from .retrieve import Hit
from .verify import Verification, verify_answer

log = logging.getLogger(__name__)

BACKENDS = ("extractive", "openai", "llamacpp")
DEFAULT_LLAMACPP_MODEL = "embedded:qwen2.5-coder-1.5b"
# The fixed sentences the model must answer with when the clauses do not answer.
REFUSAL_ZH = "文件中未找到答案。"
REFUSAL_EN = "The documents do not answer this question."
REFUSALS = (REFUSAL_ZH, REFUSAL_EN)

# The rules and two worked examples (as real chat turns: small models imitate a
# demonstrated answer far better than a described one; the second cites [2] so [1] is
# not a habit) form a fixed prefix, so llama.cpp keeps its KV cache between
# questions and reads only the new clauses.
SYSTEM_ZH = (
    "你是政策文件问答助手，只能依据用户给出的编号条款回答，不得使用条款以外的知识。\n"
    "要求：\n"
    "1. 用中文简洁作答，最多3句话，直接写出答案内容。\n"
    "2. 每句话在句号前用方括号标注它依据的条款编号，例如：……[1]。只能使用给出的编号，不要标注无关条款。\n"
    "3. 数字、百分比、年份必须照抄条款原文，不得计算或改写。\n"
    f"4. 如果这些条款不能回答问题，只输出：{REFUSAL_ZH}"
)
SYSTEM_EN = (
    "You answer questions about Chinese policy documents using ONLY the numbered clauses the user gives.\n"
    "Rules:\n"
    "1. Answer in English, concisely, in at most 3 sentences that state the answer itself.\n"
    "2. End every sentence with the number of the clause it relies on in square brackets, e.g. \"... [1].\"; "
    "use only the given numbers and cite only the clauses you used.\n"
    "3. Keep every figure exactly as the clause writes it, with its Chinese unit (e.g. 500亿元); "
    "do not convert or compute.\n"
    f"4. If the clauses do not answer the question, output only: {REFUSAL_EN}"
)
_EXAMPLE_CLAUSES = [("某市行动计划", "二、发展目标", "到2025年，产业规模达到500亿元，培育10家上市企业。"),
                    ("某市行动计划", "三、重点任务", "建设3个公共服务平台，完善人才政策。")]
_EXAMPLE = {
    "zh": [("某市到2025年的产业规模目标是多少？", "到2025年，某市产业规模目标是达到500亿元[1]。"),
           ("某市要建设几个公共服务平台？", "某市要建设3个公共服务平台[2]。")],
    "en": [("What industry scale does the city aim for by 2025?",
            "By 2025, the city aims for an industry scale of 500亿元 [1]."),
           ("How many public service platforms will the city build?",
            "The city will build 3个 public service platforms [2].")],
}
_CJK = re.compile(r"[\u4e00-\u9fff]")


class GenerationError(RuntimeError):
    """A generative backend is misconfigured or unavailable."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise GenerationError(f"{name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class GenerationConfig:
    """Everything a generative backend needs, read from the environment by default."""

    backend: str = "extractive"
    openai_base_url: str | None = None
    openai_model: str | None = None
    openai_api_key: str | None = None
    llamacpp_model: str = DEFAULT_LLAMACPP_MODEL
    threads: int = 0            # 0 = all cores
    n_ctx: int = 2048
    max_tokens: int = 200
    timeout_s: int = 120
    max_clauses: int = 3
    clause_chars: int = 220

    @classmethod
    def from_env(cls) -> "GenerationConfig":
        return cls(
            backend=os.environ.get("RAG_BACKEND", "extractive").strip().lower() or "extractive",
            openai_base_url=os.environ.get("RAG_OPENAI_BASE_URL") or None,
            openai_model=os.environ.get("RAG_OPENAI_MODEL") or None,
            openai_api_key=os.environ.get("RAG_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY") or None,
            llamacpp_model=os.environ.get("RAG_LLAMACPP_MODEL") or DEFAULT_LLAMACPP_MODEL,
            threads=_env_int("RAG_LLM_THREADS", 0),
            n_ctx=_env_int("RAG_LLM_CTX", 2048),
            max_tokens=_env_int("RAG_LLM_MAX_TOKENS", 200),
            timeout_s=_env_int("RAG_LLM_TIMEOUT", 120),
            max_clauses=_env_int("RAG_LLM_CLAUSES", 3),
            clause_chars=_env_int("RAG_LLM_CLAUSE_CHARS", 220),
        )


def check_backend(backend: str | None) -> str:
    b = (backend or "").strip().lower()
    if b not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    return b


def backend_status(config: GenerationConfig | None = None) -> dict[str, str | None]:
    """Each backend -> None when it can answer now, else why not (for the chat page and /healthz).

    Cheap: checks configuration, the import and the model file; it loads nothing.
    """
    import importlib.util

    config = config or GenerationConfig.from_env()
    status: dict[str, str | None] = {"extractive": None}
    status["openai"] = None if config.openai_model else "RAG_OPENAI_MODEL is not set"
    if importlib.util.find_spec("llama_cpp") is None:
        status["llamacpp"] = "llama-cpp-python is not installed (make llm-setup)"
    else:
        from .llm_models import ModelFetchError, resolve_model

        try:
            resolve_model(config.llamacpp_model)
            status["llamacpp"] = None
        except ModelFetchError as exc:
            status["llamacpp"] = str(exc)
    return status


# -- the llama.cpp chat model ---------------------------------------------------

_LLAMAS: dict[tuple, tuple[Any, threading.Lock]] = {}
_LLAMAS_LOCK = threading.Lock()


def _load_llama(path: str, n_ctx: int, threads: int):
    """One `llama_cpp.Llama` per (file, context, threads) per process, with its own lock:
    loading costs seconds and a Llama must not run two generations at once."""
    key = (path, n_ctx, threads)
    with _LLAMAS_LOCK:
        if key not in _LLAMAS:
            # llama.cpp's OpenMP threads spin while idle by default; next to the embedding
            # model and the web server on 2 cores, sleeping threads are much faster.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise GenerationError("the llamacpp backend needs llama-cpp-python (run `make llm-setup`)") from exc
            llama = Llama(model_path=path, n_ctx=n_ctx, n_threads=threads or os.cpu_count() or 1,
                          n_batch=512, seed=0, verbose=False)
            if not _LLAMAS:
                atexit.register(_close_llamas)
            _LLAMAS[key] = (llama, threading.Lock())
        return _LLAMAS[key]


def _close_llamas() -> None:
    """Free the models at exit, while llama.cpp's library is still loaded (freeing them
    from `Llama.__del__` during interpreter teardown fails noisily)."""
    with _LLAMAS_LOCK:
        for llama, lock in _LLAMAS.values():
            if not lock.acquire(timeout=5):  # a daemon thread is still generating: leave it be
                continue
            try:
                llama.close()
            except Exception:  # already half torn down: nothing left to free
                pass
            finally:
                lock.release()
        _LLAMAS.clear()


def _role(message: BaseMessage) -> str:
    return {"system": "system", "human": "user", "ai": "assistant"}.get(message.type, "user")


class LlamaCppChatModel(BaseChatModel):
    """A LangChain chat model over `llama_cpp.Llama.create_chat_completion` (greedy decoding).

    The GGUF's own chat template formats the messages; the loaded model is
    shared process-wide, so repeated calls reuse it (and llama.cpp reuses the
    KV cache of the common prompt prefix: the fixed system message).
    """

    model_path: str
    n_ctx: int = 2048
    threads: int = 0
    max_tokens: int = 200
    temperature: float = 0.0
    repeat_penalty: float = 1.1  # as llama_cpp.server's default: curbs "[4] [5] [6] …" loops

    @property
    def _llm_type(self) -> str:
        return "llamacpp"

    @property
    def _identifying_params(self) -> dict:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx, "max_tokens": self.max_tokens}

    def _completion(self, messages: list[BaseMessage], stop: list[str] | None, stream: bool):
        llama, lock = _load_llama(self.model_path, self.n_ctx, self.threads)
        dicts = [{"role": _role(m), "content": m.content} for m in messages]
        return llama, lock, dict(messages=dicts, max_tokens=self.max_tokens, temperature=self.temperature,
                                 repeat_penalty=self.repeat_penalty, stop=stop or [], stream=stream)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        llama, lock, params = self._completion(messages, stop, stream=False)
        with lock:
            out = llama.create_chat_completion(**params)
        choice = out["choices"][0]
        return ChatResult(generations=[ChatGeneration(
            message=AIMessage(content=choice["message"]["content"] or ""),
            generation_info={"finish_reason": choice.get("finish_reason")})],
            llm_output={"usage": out.get("usage", {})})

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        llama, lock, params = self._completion(messages, stop, stream=True)
        with lock:
            for part in llama.create_chat_completion(**params):
                choice = part["choices"][0]
                text = choice.get("delta", {}).get("content") or ""
                if not text and not choice.get("finish_reason"):
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text),
                                            generation_info={"finish_reason": choice.get("finish_reason")})
                if run_manager and text:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk


# -- chat model factory -----------------------------------------------------------

_MODELS: dict[tuple, BaseChatModel] = {}


def get_chat_model(backend: str, config: GenerationConfig | None = None) -> BaseChatModel:
    """The LangChain chat model of a generative backend (cached per configuration)."""
    config = config or GenerationConfig.from_env()
    backend = check_backend(backend)
    if backend == "extractive":
        raise GenerationError("the extractive backend has no chat model")
    if backend == "openai":
        if not config.openai_model:
            raise GenerationError("the openai backend needs RAG_OPENAI_MODEL (and usually RAG_OPENAI_BASE_URL)")
        key = ("openai", config.openai_base_url, config.openai_model, config.openai_api_key, config.max_tokens,
               config.timeout_s)
        if key not in _MODELS:
            from langchain_openai import ChatOpenAI

            # ChatOpenAI sends the limit as `max_completion_tokens`, which OpenAI-compatible
            # servers (llama_cpp.server, older vLLM) ignore: send `max_tokens` to them as well.
            extra = {"extra_body": {"max_tokens": config.max_tokens}} if config.openai_base_url else {}
            _MODELS[key] = ChatOpenAI(model=config.openai_model, base_url=config.openai_base_url,
                                      api_key=config.openai_api_key or "no-key", temperature=0,
                                      max_tokens=config.max_tokens, timeout=config.timeout_s, max_retries=1,
                                      **extra)
        return _MODELS[key]
    from .llm_models import ModelFetchError, resolve_model

    try:
        path = str(resolve_model(config.llamacpp_model))
    except ModelFetchError as exc:
        raise GenerationError(str(exc)) from exc
    key = ("llamacpp", path, config.n_ctx, config.threads, config.max_tokens)
    if key not in _MODELS:
        _MODELS[key] = LlamaCppChatModel(model_path=path, n_ctx=config.n_ctx, threads=config.threads,
                                         max_tokens=config.max_tokens)
    return _MODELS[key]


# -- prompt ------------------------------------------------------------------------

@dataclass
class PromptClause:
    n: int
    hit: Hit
    text: str        # the trimmed clause text the model sees
    label: str = ""  # 《short title》 section path, shown above the text

    @property
    def block(self) -> str:
        """Everything the model is shown for this clause — what its answer is verified against."""
        return f"[{self.n}]{self.label}\n{self.text}"

    @property
    def evidence(self) -> str:
        return f"{self.label}\n{self.text}"


def is_english(question: str) -> bool:
    return not _CJK.search(question)


def trim_clause(text: str, question: str, limit: int, idf: Callable[[str], float] | None = None) -> str:
    """Keep the sentences that share most (IDF-weighted) words with the question, in their
    original order, within `limit` characters; "…" marks what was cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    words = set(tokens(question))
    weight = idf or (lambda w: 1.0)
    sentences = split_sentences(text)
    scored = []
    for i, s in enumerate(sentences):
        s_words = set(tokens(s))
        score = sum(weight(w) for w in words & s_words)
        if re.search(r"\d", s):
            score += 0.1  # figures are what questions most often ask for
        scored.append((score, -i, i, s))
    chosen: set[int] = set()
    used = 0
    for score, _, i, s in sorted(scored, reverse=True):
        if used + len(s) <= limit:
            chosen.add(i)
            used += len(s)
    if not chosen:  # one long sentence: keep its start
        return text[: limit - 1] + "…"
    out, prev = "", -1
    for i in sorted(chosen):
        if i != prev + 1:
            out += "…"
        out += sentences[i]
        prev = i
    if prev != len(sentences) - 1:
        out += "…"
    return out


def select_clauses(question: str, hits: list[Hit], max_clauses: int = 3, clause_chars: int = 220,
                   idf: Callable[[str], float] | None = None,
                   short_titles: dict[str, str] | None = None) -> list[PromptClause]:
    """The top retrieved clauses, numbered from 1, each trimmed to `clause_chars` and labelled
    with its document's short title and section."""
    out: list[PromptClause] = []
    for hit in hits[:max_clauses]:
        ch = hit.chunk
        text = trim_clause(ch.text, question, clause_chars, idf)
        title = (short_titles or {}).get(ch.doc_id) or ch.doc_title
        out.append(PromptClause(len(out) + 1, hit, text, f"《{title}》{_section_label(ch.section_path, text)}"))
    return out


def _section_label(section_path: str, text: str) -> str:
    """The heading path, without its last heading when the clause text starts with it anyway
    (saves prompt tokens), and at most 40 characters."""
    parts = [p.strip() for p in section_path.split(">") if p.strip()]
    squash = lambda t: re.sub(r"[\s。]", "", t)  # noqa: E731
    if parts and squash(text).startswith(squash(parts[-1])):
        parts = parts[:-1]
    label = " > ".join(parts)
    return label if len(label) <= 40 else "…" + label[-39:]


def _user_message(blocks: list[str], question: str, english: bool) -> str:
    if english:
        return "Clauses:\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"
    return "条款：\n" + "\n\n".join(blocks) + f"\n\n问题：{question}"


def build_messages(question: str, clauses: list[PromptClause], language: str | None = None) -> list[BaseMessage]:
    """System rules + two worked example turns (a fixed prefix) + numbered clauses and the question.

    `language` ("en" or "zh", e.g. asked for in an API client's system message) picks the language
    of the rules and so of the answer; by default it is the question's."""
    english = language == "en" if language in ("en", "zh") else is_english(question)
    blocks = [c.block for c in clauses]
    example = [f"[{i}]《{t}》{s}\n{x}" for i, (t, s, x) in enumerate(_EXAMPLE_CLAUSES, 1)]
    turns: list[BaseMessage] = [SystemMessage(SYSTEM_EN if english else SYSTEM_ZH)]
    for example_q, example_a in _EXAMPLE["en" if english else "zh"]:
        turns += [HumanMessage(_user_message(example, example_q, english)), AIMessage(example_a)]
    return turns + [HumanMessage(_user_message(blocks, question, english))]


# -- answering -----------------------------------------------------------------------

def _chunk_text(chunk: Any) -> str:
    content = getattr(chunk, "content", chunk)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content or "")


def _fallback(extractive: Answer, backend: str, reason: str) -> Answer:
    extractive.backend = backend
    extractive.verified = False
    extractive.fallback_reason = reason
    return extractive


def _final(question: str, backend: str, v: Verification, clauses: list[PromptClause]) -> Answer:
    citations = [Citation(i + 1, clauses[old - 1].hit) for i, old in enumerate(v.cited)]
    answer = Answer(question, v.text, False, citations, backend=backend)
    answer.verified = True
    answer.dropped_sentences = len(v.dropped)
    return answer


@dataclass
class _SentenceStreamer:
    """Turns the raw token stream into deltas of *verified* text: a sentence is released only
    once it is complete, its trailing [n] have arrived, and it passed verification."""

    clauses: list[str]
    question: str = ""
    emitted: str = ""
    _settled: int = -1
    broken: bool = False

    def feed(self, raw: str, final: bool = False) -> str:
        from .verify import split_claims

        if self.broken:
            return ""
        claims = split_claims(raw)
        settled = claims if final else claims[:-1]
        if len(settled) == self._settled and not final:
            return ""
        self._settled = len(settled)
        v = verify_answer("".join(c.text for c in settled), self.clauses, REFUSALS, question=self.question)
        # Sentences without their own [n] wait for the sentence that lends them one.
        text = v.text if final else "".join(v.sentences[: v.last_cited + 1]).strip()
        if not text.startswith(self.emitted):
            self.broken = True  # cannot happen with prefix-stable verification; stop streaming safely
            return ""
        delta, self.emitted = text[len(self.emitted):], text
        return delta


def _runaway(raw: str, n_clauses: int) -> bool:
    """The model numbers past the clauses it was given ("[4] [5] [6] …"): it is looping, and every
    further sentence would be dropped anyway — stop paying for tokens."""
    numbers = [int(n) for n in re.findall(r"\[(\d+)\]", raw)]
    return any(n > n_clauses + 1 for n in numbers)


def stream_answer(assistant, state: dict, backend: str | None = None, chat_model: BaseChatModel | None = None,
                  config: GenerationConfig | None = None) -> Iterator[str | Answer]:
    """Yield text deltas of the verified answer, then the final `Answer` (always last).

    `state` is the chain state after retrieval ({"standalone", "retrieval", ...}).
    The deltas only ever contain verified sentences; the final Answer is
    authoritative (on a fallback its text is the extractive answer, which the
    deltas did not show — a client replaces what it streamed with `answer.answer`).
    """
    config = config or GenerationConfig.from_env()
    if state.get("max_tokens"):  # a request's own limit, never above the configured one
        config = replace(config, max_tokens=max(1, min(config.max_tokens, int(state["max_tokens"]))))
    backend = check_backend(backend or config.backend)
    question = state["standalone"]
    retrieval = state["retrieval"]
    extractive = answer_question(question, retrieval, assistant.index, assistant.corpus.documents)
    if backend == "extractive":
        yield extractive.answer
        yield extractive
        return
    if extractive.refused:  # the retrieval gate: nothing relevant enough to give a model
        extractive.backend = backend
        yield extractive.answer
        yield extractive
        return

    idf = getattr(assistant.index, "idf", None)
    short_titles = {d.doc_id: d.short_title for d in assistant.corpus.documents}
    clauses = select_clauses(question, retrieval.hits, config.max_clauses, config.clause_chars, idf, short_titles)
    messages = build_messages(question, clauses, state.get("language"))
    texts = [c.evidence for c in clauses]  # verified against all the model saw of each clause
    try:
        model = chat_model or get_chat_model(backend, config)
    except Exception as exc:  # misconfigured or missing model: say so, answer extractively
        log.warning("%s backend unavailable: %s", backend, exc)
        yield _fallback(extractive, backend, f"model_unavailable: {exc}")
        return

    streamer = _SentenceStreamer(texts, question)
    raw = ""
    try:
        # closing() stops the model when we stop reading (runaway output, or the client
        # of a streamed answer went away) instead of letting it generate to max_tokens.
        with closing(model.stream(messages)) as stream:
            for chunk in stream:
                raw += _chunk_text(chunk)
                delta = streamer.feed(raw)
                if delta:
                    yield delta
                if _runaway(raw, len(texts)):
                    log.info("stopped a runaway generation: %r", raw[-80:])
                    break  # what came before is still verified
    except Exception as exc:
        log.warning("%s backend failed: %s", backend, exc)
        answer = _fallback(extractive, backend, f"model_error: {type(exc).__name__}: {str(exc)[:200]}")
        answer.generation = raw
        yield answer
        return

    v = verify_answer(raw, texts, REFUSALS, question=question)
    if v.refused:
        answer = _fallback(extractive, backend, "model_refused")
    elif not v.ok:
        answer = _fallback(extractive, backend, v.failure or "unverified")
    else:
        delta = streamer.feed(raw, final=True)
        if delta:
            yield delta
        answer = _final(question, backend, v, clauses)
    answer.generation = raw
    if v.dropped:
        log.info("dropped %d unsupported sentence(s): %s", len(v.dropped), v.dropped)
    yield answer


def generate_answer(assistant, state: dict, backend: str | None = None, chat_model: BaseChatModel | None = None,
                    config: GenerationConfig | None = None) -> Answer:
    """The final Answer of `stream_answer` (deltas discarded)."""
    answer = None
    for item in stream_answer(assistant, state, backend, chat_model, config):
        if isinstance(item, Answer):
            answer = item
    return answer


def generative_answerer(assistant, backend: str, chat_model: BaseChatModel | None = None,
                        config: GenerationConfig | None = None) -> Callable[[dict], dict]:
    """The answer step of `rag.chain.build_chain` for a generative backend."""
    check_backend(backend)

    def answer(state: dict) -> dict:
        return {**state, "answer": generate_answer(assistant, state, backend, chat_model, config)}
    return answer
