"""OpenAI-compatible: POST /v1/chat/completions and POST /v1/responses (each non-streaming and
streaming) and GET /v1/models.

Citations travel three ways: as OpenAI `url_citation` annotations (chat completions:
`message.annotations`; Responses API: the `output_text` part's `annotations`, which
LangChain's `ChatOpenAI(use_responses_api=True)` keeps in the message's content blocks),
as the extension field `citations` (structured clauses), and as the "参考条款" block at the
end of `content` (for clients that show only text; `include_references: false` or
RAG_CHAT_REFERENCES=0 leaves it out).  Parameters the service cannot honour are a 400
naming them (OpenAI's `unsupported_parameter` / `unknown_parameter`), never ignored silently.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..dependencies import get_service
from ..errors import ApiError, error_responses
from ..json_body import StrictJSONRoute
from ..schemas import (MAX_HISTORY, MAX_MESSAGE_CHARS, MODEL_ID, ChatMessage, ChatRequest, ChatResponse, ModelList,
                       ResponsesRequest, ResponsesResponse)
from ..service import ApiService
from ..streaming import SSE_HEADERS, sse, sse_event_schema
from ..tokens import count_tokens, usage

router = APIRouter(prefix="/v1", tags=["openai"], route_class=StrictJSONRoute)

_ASCII = re.compile(r"^[\x00-\x7f\s]*$")


def references_block(answer: dict, english: bool | None = None) -> str:
    """The cited clauses as text, appended to chat answers so they survive any client."""
    cites = answer.get("citations") or []
    if not cites:
        return ""
    if english is None:
        english = bool(_ASCII.match(answer.get("question", "")))
    if answer.get("refused"):
        header = "Closest clauses:" if english else "最接近的条款："
    else:
        header = "References:" if english else "参考条款："
    lines = [header]
    for c in cites:
        lines.append(f"[{c['n']}] 《{c['doc_title']}》 {c['chunk_id']}（{c['section']}）：{c['text']}")
    return "\n".join(lines)


def _part_text(content, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ApiError(422, "invalid_messages", "a message's content must be a string or a list of text parts",
                       param=param, zh="消息的 content 必须是字符串或文本片段列表")
    parts = []
    for part in content:
        if not isinstance(part, dict):
            raise ApiError(422, "unsupported_content", "a content part must be an object with `type` and `text`",
                           param=param, zh="content 的每一段必须是带 `type` 和 `text` 的对象")
        if part.get("type") in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            raise ApiError(422, "unsupported_content", f"only text content is supported, got a {part.get('type')!r} part",
                           param=param, zh=f"只支持文本内容，收到的是 {part.get('type')!r}")
    return "".join(parts)


def message_text(msg: ChatMessage) -> str:
    return _part_text(msg.content, "messages")


_REFERENCE_HEADERS = ("\n\n参考条款：", "\n\n最接近的条款：", "\n\nReferences:", "\n\nClosest clauses:")


def _turns_to_question(turns: list[tuple[str, str]], last_is_user: bool, param: str) -> tuple[str, list[dict]]:
    turns = [(r, t) for r, t in turns if r in ("user", "assistant")]
    if not turns or not last_is_user:
        raise ApiError(422, "invalid_messages", "the last message must be a user message holding the question",
                       param=param, zh="最后一条消息必须是包含问题的用户消息")
    history = []
    for role, text in turns[:-1]:
        for marker in _REFERENCE_HEADERS:
            text = text.split(marker, 1)[0]
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS]
        history.append({"role": role, "content": text})
    return turns[-1][1], history[-MAX_HISTORY:]


def chat_to_question(req: ChatRequest) -> tuple[str, list[dict]]:
    """Last user message = the question; earlier user/assistant turns = history (our references stripped)."""
    turns = [(m.role, message_text(m)) for m in req.messages if m.role in ("user", "assistant")]
    return _turns_to_question(turns, req.messages[-1].role == "user", "messages")


# -- what a request may ask for -----------------------------------------------------------------

# Accepted and without effect: sampling (answers are extractive or greedy), bookkeeping.
IGNORED = {"temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "user", "metadata", "store",
           "parallel_tool_calls", "service_tier", "reasoning_effort", "verbosity", "safety_identifier",
           "prompt_cache_key", "prompt_cache_retention", "stream_options", "truncation"}
# Accepted only with the value that means "nothing asked": anything else is a 400 naming it.
_NOTHING = {
    "n": (lambda v: v in (None, 1), "only one choice is generated (n must be 1)"),
    "response_format": (lambda v: v is None or (isinstance(v, dict) and v.get("type") == "text"),
                        "answers are cited text; response_format other than {\"type\": \"text\"} is not supported"),
    "text": (lambda v: v is None or (isinstance(v, dict) and (v.get("format") or {"type": "text"}).get("type") == "text"),
             "answers are cited text; text.format other than text is not supported"),
    "tools": (lambda v: not v, "tools and function calling are not supported"),
    "tool_choice": (lambda v: v in (None, "none", "auto"), "tools and function calling are not supported"),
    "functions": (lambda v: not v, "function calling is not supported"),
    "function_call": (lambda v: v in (None, "none", "auto"), "function calling is not supported"),
    "logprobs": (lambda v: v in (None, False), "log probabilities are not available"),
    "top_logprobs": (lambda v: v in (None, 0), "log probabilities are not available"),
    "logit_bias": (lambda v: not v, "logit_bias is not supported"),
    "stop": (lambda v: not v, "stop sequences are not supported (the answer is verified sentence by sentence)"),
    "audio": (lambda v: v is None, "audio output is not supported"),
    "modalities": (lambda v: v in (None, ["text"]), "only text output is supported"),
    "prediction": (lambda v: v is None, "predicted outputs are not supported"),
    "web_search_options": (lambda v: v is None, "web search is not supported: answers come from the plans only"),
    "reasoning": (lambda v: v is None, "reasoning options are not supported"),
    "include": (lambda v: not v, "include is not supported"),
    "previous_response_id": (lambda v: v is None, "responses are not stored: send the whole conversation in `input`"),
    "conversation": (lambda v: v is None, "conversations are not stored: send the whole conversation in `input`"),
    "background": (lambda v: not v, "background responses are not supported"),
}


_NOTHING_ZH = {
    "n": "只生成一个回答（n 必须为 1）", "response_format": "回答是带引用的文本，不支持 text 以外的 response_format",
    "text": "回答是带引用的文本，不支持 text 以外的 text.format", "tools": "不支持工具和函数调用",
    "tool_choice": "不支持工具和函数调用", "functions": "不支持函数调用", "function_call": "不支持函数调用",
    "logprobs": "不提供对数概率", "top_logprobs": "不提供对数概率", "logit_bias": "不支持 logit_bias",
    "stop": "不支持停止序列（回答逐句核验）", "audio": "不支持音频输出", "modalities": "只支持文本输出",
    "prediction": "不支持预测输出", "web_search_options": "不支持网络搜索：回答只来自规划文件",
    "reasoning": "不支持推理选项", "include": "不支持 include",
    "previous_response_id": "不保存回答：请在 input 中发送完整对话", "conversation": "不保存对话：请在 input 中发送完整对话",
    "background": "不支持后台回答",
}


def check_parameters(body: dict, declared: set[str]) -> None:
    """400 for a parameter that cannot be honoured or is not known (OpenAI's error shape)."""
    for name, value in body.items():
        if name in _NOTHING:
            ok, why = _NOTHING[name]
            if not ok(value):
                raise ApiError(400, "unsupported_parameter", f"unsupported parameter {name!r}: {why}", param=name,
                               zh=f"不支持的参数 {name!r}：{_NOTHING_ZH.get(name, why)}")
        elif name not in declared and name not in IGNORED:
            raise ApiError(400, "unknown_parameter", f"unrecognized request argument supplied: {name}", param=name,
                           zh=f"不认识的请求参数：{name}")


def check_model(model: str | None) -> None:
    if model not in (None, MODEL_ID):
        raise ApiError(404, "model_not_found", f"the model {model!r} does not exist: this server has "
                       f"{MODEL_ID!r} (GET /v1/models)", param="model", type="invalid_request_error",
                       zh=f"模型 {model!r} 不存在：本服务只有 {MODEL_ID!r}（GET /v1/models）")


def check_max_tokens(service: ApiService, backend, values: dict[str, int | None]) -> int | None:
    """The request's token limit; honoured by the generative backends, a 400 for the extractive one."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return None
    if not service.generative(backend):
        name = next(iter(given))
        raise ApiError(400, "unsupported_parameter", f"unsupported parameter {name!r} with the extractive backend: "
                       "it quotes whole sentences of the plans and cannot stop at a token count; leave it out, "
                       "or choose a generative backend (\"backend\": \"llamacpp\" or \"openai\")", param=name,
                       zh=f"抽取式回答不支持参数 {name!r}：它整句引用规划原文，无法按 token 数截断；请去掉该参数，"
                       "或选择生成式后端（\"backend\": \"llamacpp\" 或 \"openai\"）")
    return min(given.values())


_EN_ASKED = re.compile(r"\b(?:answer|respond|reply|write|speak)\w*\b[^.。\n]{0,40}\bin english\b|\benglish only\b"
                       r"|用英文|用英语|英文回答|英语回答|以英文", re.I)
_ZH_ASKED = re.compile(r"\b(?:answer|respond|reply|write|speak)\w*\b[^.。\n]{0,40}\bin (?:chinese|mandarin)\b"
                       r"|\bchinese only\b|用中文|用汉语|用简体中文|中文回答|以中文", re.I)


def requested_language(system_texts: list[str]) -> str | None:
    """"en" or "zh" when a system (or developer) message asks for that language; the later request wins."""
    text = "\n".join(system_texts)
    found = [(m.start(), lang) for lang, rx in (("en", _EN_ASKED), ("zh", _ZH_ASKED)) for m in rx.finditer(text)]
    return max(found)[1] if found else None


def include_references(value: bool | None) -> bool:
    if value is not None:
        return value
    return os.environ.get("RAG_CHAT_REFERENCES", "1").strip().lower() not in ("0", "false", "no", "off")


# -- citations as annotations ---------------------------------------------------------------------

def clause_url(base_url: str, c: dict) -> str:
    return (f"{base_url.rstrip('/')}/v1/documents/{quote(c['doc_id'], safe='')}/clauses/"
            f"{quote(c['clause_id'], safe='')}")


def annotations(content: str, answer_span: tuple[int, int], refs_start: int | None, citations: list[dict],
                base_url: str) -> list[dict]:
    """One `url_citation` per [n] marker of the answer (start/end: character offsets in `content`, end
    exclusive); a clause no marker names points at its line of the references block (or at the
    end of the answer when that block is left out).  The URL is the clause in context."""
    out = []
    start, end = answer_span
    answer = content[start:end]
    for c in citations:
        marker = f"[{c['n']}]"
        spans = [(start + m.start(), start + m.end()) for m in re.finditer(re.escape(marker), answer)]
        if not spans and refs_start is not None:
            line = content.find("\n" + marker + " ", refs_start)
            if line >= 0:
                stop = content.find("\n", line + 1)
                spans = [(line + 1, len(content) if stop < 0 else stop)]
        if not spans:
            spans = [(end, end)]
        for s, e in spans:
            out.append({"start_index": s, "end_index": e, "title": f"《{c['doc_title']}》{c['section']}",
                        "url": clause_url(base_url, c), "n": c["n"], "doc_id": c["doc_id"],
                        "clause_id": c["clause_id"], "chunk_id": c["chunk_id"]})
    return out


def _chat_annotations(flat: list[dict]) -> list[dict]:
    return [{"type": "url_citation", "url_citation": a} for a in flat]


def _responses_annotations(flat: list[dict]) -> list[dict]:
    return [{"type": "url_citation", **a} for a in flat]


def _compose(answer: dict, refs_on: bool, english: bool | None, prefix: str = "") -> tuple[str, tuple[int, int], int | None]:
    """(content, the answer's span in it, where the references block starts or None)."""
    refs = references_block(answer, english) if refs_on else ""
    content = prefix + answer["answer"]
    span = (len(prefix), len(content))
    if refs:
        content += "\n\n"
        return content + refs, span, len(content)
    return content, span, None


def _extras(answer: dict) -> dict:
    extras = {"citations": answer["citations"], "refused": answer["refused"]}
    for key in ("backend", "verified", "fallback_reason", "confidence"):
        if answer.get(key) is not None:
            extras[key] = answer[key]
    return extras


def _english(language: str | None) -> bool | None:
    return None if language is None else language == "en"


# -- chat completions -----------------------------------------------------------------------------

@router.get("/models", response_model=ModelList, summary="OpenAI-compatible model list")
async def list_models(request: Request):
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": int(request.app.state.started),
                                        "owned_by": "zhengce-rag"}]}


_CHAT_DECLARED = set(ChatRequest.model_fields)


@router.post("/chat/completions", response_model=ChatResponse, response_model_exclude_none=True,
             summary="OpenAI-compatible chat completions (non-streaming and streaming)",
             responses={**error_responses(400, 404, 413, 415), 200: {
                 "description": "A chat.completion, or with `stream: true` chat.completion.chunk events",
                 "content": {"text/event-stream": {"schema": sse_event_schema(
                     "JSON `chat.completion.chunk` objects (the last one with `citations` and the delta's "
                     "`annotations`; with `stream_options.include_usage` one more with `usage`), then the "
                     "literal `[DONE]`")}}}})
async def chat_completions(req: ChatRequest, request: Request, service: ApiService = Depends(get_service)):
    """The last user message is the question, earlier messages the history.

    The reply's `content` holds the answer (with `[n]` after each cited sentence) and, unless
    `include_references` is false, a references block; `message.annotations` has one OpenAI
    `url_citation` per `[n]` (its `url` is the clause in context, plus `doc_id`, `clause_id`);
    the extension field `citations` has the cited clauses.  `usage` counts tokens with the
    embedding model's XLM-R tokenizer.  A system message asking for a language ("answer in
    English", "请用中文回答") is passed to the generative backends' prompt.  `max_tokens` /
    `max_completion_tokens` limit a generative backend's model; the extractive backend refuses
    them (400).  `n` > 1, `response_format` other than text, tools and functions, logprobs,
    `stop`, audio are a 400 naming the parameter; an unknown `model` is a 404 `model_not_found`.
    """
    check_model(req.model)
    check_parameters(getattr(request, "_json", None) or {}, _CHAT_DECLARED)
    limit = check_max_tokens(service, req.backend, {"max_tokens": req.max_tokens,
                                                    "max_completion_tokens": req.max_completion_tokens})
    question, history = chat_to_question(req)
    texts = [message_text(m) for m in req.messages]
    language = requested_language([t for m, t in zip(req.messages, texts) if m.role in ("system", "developer")])
    refs_on = include_references(req.include_references)
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    base_url = str(request.base_url)
    gen = {"language": language, "max_tokens": limit}
    if req.stream:  # validation errors raise here, before the 200 of the stream
        pieces = await service.answer_pieces(question, req.k, req.documents, history, "hybrid", req.backend, **gen)
        with_usage = bool((req.stream_options or {}).get("include_usage"))
        return StreamingResponse(_chat_events(req, pieces, cid, created, texts, refs_on, language, base_url,
                                              with_usage),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    answer = await service.ask(question, req.k, req.documents, history, "hybrid", req.backend, **gen)
    content, span, refs_start = _compose(answer, refs_on, _english(language))
    message = {"role": "assistant", "content": content,
               "annotations": _chat_annotations(annotations(content, span, refs_start, answer["citations"],
                                                            base_url))}
    return {"id": cid, "object": "chat.completion", "created": created, "model": req.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage(texts, content), **_extras(answer)}


async def _chat_events(req: ChatRequest, pieces, cid: str, created: int, prompt_texts: list[str], refs_on: bool,
                       language: str | None, base_url: str, with_usage: bool):
    """A streamed chat completion: the answer's pieces (a model's verified sentences as they come),
    then the references.  If a generated answer falls back, the extractive answer follows a
    separator (a chat client cannot retract streamed text)."""

    def chunk(delta: dict, finish: str | None = None, **more) -> str:
        return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more})

    yield chunk({"role": "assistant", "content": ""})
    streamed = ""
    async for item in pieces:
        if isinstance(item, str):
            streamed += item
            yield chunk({"content": item})
            continue
        prefix = streamed
        if item["answer"] != streamed:
            prefix = streamed + ("\n\n---\n" if streamed else "")
            yield chunk({"content": prefix[len(streamed):] + item["answer"]})
        else:
            prefix = ""
        content, span, refs_start = _compose(item, refs_on, _english(language), prefix)
        if refs_start is not None:
            yield chunk({"content": content[span[1]:]})
        anns = _chat_annotations(annotations(content, span, refs_start, item["citations"], base_url))
        yield chunk({"annotations": anns}, "stop", **_extras(item))
        if with_usage:
            yield sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
                       "choices": [], "usage": usage(prompt_texts, content)})
    yield sse("[DONE]")


# -- the Responses API -----------------------------------------------------------------------------

_RESPONSES_DECLARED = set(ResponsesRequest.model_fields)


def responses_to_question(req: ResponsesRequest) -> tuple[str, list[dict], list[str], list[str]]:
    """(question, history, system texts, every text sent) of a Responses API `input`."""
    system = [req.instructions] if req.instructions else []
    if isinstance(req.input, str):
        return req.input, [], system, system + [req.input]
    if len(req.input) > MAX_HISTORY * 2 + 10:
        raise ApiError(422, "invalid_request", f"input: at most {MAX_HISTORY * 2 + 10} messages", param="input",
                       zh=f"input：最多 {MAX_HISTORY * 2 + 10} 条消息")
    turns: list[tuple[str, str]] = []
    for i, item in enumerate(req.input):
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            what = item.get("type") if isinstance(item, dict) else type(item).__name__
            raise ApiError(400, "unsupported_input", f"input[{i}] is a {what!r} item: only messages are supported",
                           param="input", zh=f"input[{i}] 是 {what!r} 项：只支持消息")
        role, text = item.get("role"), _part_text(item.get("content"), "input")
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append((role, text))
        else:
            raise ApiError(422, "invalid_messages", f"input[{i}] has an unknown role {role!r}", param="input",
                           zh=f"input[{i}] 的角色 {role!r} 未知")
    last_is_user = bool(turns) and turns[-1][0] == "user"
    question, history = _turns_to_question(turns, last_is_user, "input")
    return question, history, system, system + [t for _, t in turns]


def _response_usage(prompt_texts: list[str], content: str) -> dict:
    u = usage(prompt_texts, content)
    return {"input_tokens": u["prompt_tokens"], "output_tokens": u["completion_tokens"],
            "total_tokens": u["total_tokens"], "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0}}


def _response_object(rid: str, created: int, model: str, status: str, output: list[dict], usage_: dict | None,
                     extras: dict | None = None) -> dict:
    return {"id": rid, "object": "response", "created_at": created, "model": model, "status": status,
            "output": output, "error": None, "incomplete_details": None, "instructions": None, "metadata": {},
            "parallel_tool_calls": False, "tool_choice": "none", "tools": [], "temperature": None, "top_p": None,
            "usage": usage_, **(extras or {})}


def _message_item(mid: str, text: str, anns: list[dict], status: str = "completed") -> dict:
    return {"id": mid, "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": anns, "logprobs": []}]}


@router.post("/responses", response_model=ResponsesResponse, response_model_exclude_none=True,
             summary="OpenAI Responses API (non-streaming and streaming): citations as annotations",
             responses={**error_responses(400, 404, 413, 415), 200: {
                 "description": "A response object, or with `stream: true` its events",
                 "content": {"text/event-stream": {"schema": sse_event_schema(
                     "JSON Responses API events: response.created, response.output_text.delta, "
                     "response.output_text.annotation.added, response.output_text.done, response.completed")}}}})
async def create_response(req: ResponsesRequest, request: Request, service: ApiService = Depends(get_service)):
    """The same answer as chat completions, in the Responses API's shape: the `output_text` part's
    `annotations` are the `url_citation`s.  This is the form LangChain's
    `ChatOpenAI(..., use_responses_api=True)` keeps: the message's content blocks carry the
    annotations (its chat-completions client drops `message.annotations`).  `input` is a string
    or a list of messages; `instructions` and system messages may ask for a language; nothing is
    stored (`previous_response_id` is a 400)."""
    check_model(req.model)
    check_parameters(getattr(request, "_json", None) or {}, _RESPONSES_DECLARED)
    limit = check_max_tokens(service, req.backend, {"max_output_tokens": req.max_output_tokens})
    question, history, system, prompt_texts = responses_to_question(req)
    language = requested_language(system)
    refs_on = include_references(req.include_references)
    rid, mid, created = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}", int(time.time())
    model, base_url = req.model or MODEL_ID, str(request.base_url)
    gen = {"language": language, "max_tokens": limit}
    if req.stream:
        pieces = await service.answer_pieces(question, req.k, req.documents, history, "hybrid", req.backend, **gen)
        return StreamingResponse(_response_events(pieces, rid, mid, created, model, prompt_texts, refs_on, language,
                                                  base_url), media_type="text/event-stream", headers=SSE_HEADERS)
    answer = await service.ask(question, req.k, req.documents, history, "hybrid", req.backend, **gen)
    content, span, refs_start = _compose(answer, refs_on, _english(language))
    anns = _responses_annotations(annotations(content, span, refs_start, answer["citations"], base_url))
    return _response_object(rid, created, model, "completed", [_message_item(mid, content, anns)],
                            _response_usage(prompt_texts, content), _extras(answer))


async def _response_events(pieces, rid: str, mid: str, created: int, model: str, prompt_texts: list[str],
                           refs_on: bool, language: str | None, base_url: str):
    seq = 0

    def event(kind: str, **data) -> str:
        nonlocal seq
        seq += 1
        return f"event: {kind}\n" + sse({"type": kind, "sequence_number": seq, **data})

    where = {"item_id": mid, "output_index": 0, "content_index": 0}
    yield event("response.created", response=_response_object(rid, created, model, "in_progress", [], None))
    yield event("response.output_item.added", output_index=0, item={**_message_item(mid, "", [], "in_progress"),
                                                                    "content": []})
    yield event("response.content_part.added", item_id=mid, output_index=0, content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
    streamed = ""
    async for item in pieces:
        if isinstance(item, str):
            streamed += item
            yield event("response.output_text.delta", **where, delta=item, logprobs=[])
            continue
        prefix = ""
        if item["answer"] != streamed:
            prefix = streamed + ("\n\n---\n" if streamed else "")
            yield event("response.output_text.delta", **where, delta=prefix[len(streamed):] + item["answer"],
                        logprobs=[])
        content, span, refs_start = _compose(item, refs_on, _english(language), prefix)
        if refs_start is not None:
            yield event("response.output_text.delta", **where, delta=content[span[1]:], logprobs=[])
        anns = _responses_annotations(annotations(content, span, refs_start, item["citations"], base_url))
        for i, a in enumerate(anns):
            yield event("response.output_text.annotation.added", **where, annotation_index=i, annotation=a)
        yield event("response.output_text.done", **where, text=content, logprobs=[])
        part = {"type": "output_text", "text": content, "annotations": anns, "logprobs": []}
        yield event("response.content_part.done", item_id=mid, output_index=0, content_index=0, part=part)
        message = _message_item(mid, content, anns)
        yield event("response.output_item.done", output_index=0, item=message)
        yield event("response.completed", response=_response_object(
            rid, created, model, "completed", [message], _response_usage(prompt_texts, content), _extras(item)))


__all__ = ["router", "references_block", "chat_to_question", "count_tokens"]
