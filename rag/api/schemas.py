"""Request and response models of the API (what /openapi.json and /docs show)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config import MAX_QUESTION_CHARS
from ..service import MAX_K

MODEL_ID = "zhengce-rag"
MAX_HISTORY = 50
MAX_MESSAGE_CHARS = 20000
MAX_DOC_FILTER = 20
EXAMPLE_QUESTION = "深圳到2025年集成电路产业营收目标是多少？"
EXAMPLE_CITATION = {
    "n": 1, "doc_id": "shenzhen-2022", "doc_title": "深圳市培育发展半导体与集成电路产业集群行动计划（2022-2025年）",
    "clause_id": "二.(一)", "chunk_id": "二.(一)", "section": "二、工作目标 > (一)产业规模持续增长",
    "text": "(一) 产业规模持续增长。到2025年，产业营收突破2500亿元，……", "score": 0.032787,
}


Backend = Literal["extractive", "openai", "llamacpp"]
SCORE_HELP = ("Retrieval score of the clause (higher is better; compare within one response): in `hybrid` mode "
              "the reciprocal-rank fusion of the semantic and keyword rankings, sum of 1/(60 + rank), at most "
              "2/61 ≈ 0.0328 (first in both); in `dense` mode the cosine similarity to the question; in `bm25` "
              "mode the BM25 score")
CONFIDENCE_HELP = ("How strongly retrieval backs the answer, 0-1 (not a probability that it is right): 0 for a "
                   "refusal; otherwise the best cited clause's `score` scaled to 0-1 — hybrid: score / (2/61), so "
                   "1.0 = ranked first by both the semantic and the keyword search, ~0.5 = found by only one; "
                   "dense: the cosine similarity; bm25: score / (score + 10).  Rough guide: ≥ 0.75 high, "
                   "0.45-0.75 medium, below that low")
BACKEND_HELP = ("Who writes the answer: `extractive` (quoted sentences, no model), `llamacpp` (the local GGUF "
                "model) or `openai` (the configured OpenAI-compatible endpoint); default: the server's "
                "RAG_BACKEND, else extractive.  A generated answer is verified against the cited clauses; "
                "when it fails, the extractive answer is returned with `verified: false` and a `fallback_reason`.")


REFERENCES_HELP = ("Extension: false leaves the \"参考条款\" references block out of `content` (the citations "
                   "stay in `annotations` and `citations`); default: RAG_CHAT_REFERENCES (on)")
TOKENS_HELP = ("Tokens counted with the embedding model's XLM-RoBERTa tokenizer (multilingual-e5-small), "
               "without special tokens: prompt = every message's text, completion = the reply's `content`")


class HistoryMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"question": EXAMPLE_QUESTION},
        {"question": "那苏州工业园区呢？", "history": [{"role": "user", "content": EXAMPLE_QUESTION},
                                                 {"role": "assistant", "content": "到2025年，产业营收突破2500亿元[1]。"}]},
        {"question": "有哪些人才政策？", "documents": ["suzhou-sip-2022"], "k": 5, "stream": True},
    ]})
    question: str = Field(description=f"The question, 1-{MAX_QUESTION_CHARS} characters (Chinese or English)",
                          max_length=MAX_QUESTION_CHARS, examples=[EXAMPLE_QUESTION])
    k: int | None = Field(None, ge=1, le=MAX_K, description="How many clauses to retrieve (default: server setting)")
    documents: list[str] | None = Field(None, max_length=MAX_DOC_FILTER,
                                        description="Restrict to these doc_ids (see GET /v1/documents)")
    history: list[HistoryMessage] | None = Field(None, max_length=MAX_HISTORY,
                                                 description="Earlier turns, oldest first: follow-ups are rewritten")
    mode: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Retrieval mode")
    backend: Backend | None = Field(None, description=BACKEND_HELP)
    stream: bool = Field(False, description="Answer as Server-Sent Events: text deltas, citations, [DONE]")


class Citation(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE_CITATION]})
    n: int
    doc_id: str
    doc_title: str
    clause_id: str
    chunk_id: str
    section: str
    text: str
    score: float = Field(description=SCORE_HELP)


class AskResponse(BaseModel):
    """Same object as `rag ask --json`."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "question": EXAMPLE_QUESTION, "answer": "根据《深圳市培育发展半导体与集成电路产业集群行动计划（2022-2025年）》："
        "到2025年，产业营收突破2500亿元，……[1]。", "refused": False, "citations": [EXAMPLE_CITATION],
        "timings_ms": {"rewrite": 0.01, "retrieve": 9.8, "answer": 3.1, "total": 12.9}, "backend": "extractive",
        "confidence": 1.0}]})
    question: str
    answer: str
    refused: bool
    citations: list[Citation]
    timings_ms: dict[str, float]
    backend: str
    confidence: float = Field(ge=0, le=1, description=CONFIDENCE_HELP)
    reason: str | None = Field(None, description="Why the question was refused (refusals only)")
    rewritten_question: str | None = Field(None, description="Standalone form of a follow-up question")
    verified: bool | None = Field(None, description="Generative backends: true = the model's answer passed "
                                  "verification; false = this is the extractive fallback")
    fallback_reason: str | None = Field(None, description="Why a generated answer was replaced by the extractive one")
    dropped_sentences: int | None = Field(None, description="Unsupported generated sentences that were removed")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"query": "第三代半导体", "k": 5}, {"query": "人才", "documents": ["qingpu-2023"], "mode": "bm25"}]})
    query: str = Field(description=f"Search text, 1-{MAX_QUESTION_CHARS} characters", max_length=MAX_QUESTION_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)
    documents: list[str] | None = Field(None, max_length=MAX_DOC_FILTER)
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="allow")
    rank: int
    doc_id: str
    doc_title: str
    clause_id: str
    chunk_id: str
    section: str
    text: str
    score: float = Field(description=SCORE_HELP)


class SearchResponse(BaseModel):
    query: str
    results: list[SearchHit]
    searched_documents: list[str] | None = Field(description="Documents searched (null = all)")
    routed_documents: list[str] = Field(description="Documents the query names (used unless `documents` is given)")
    timings_ms: dict[str, float]


class UploadInfo(BaseModel):
    filename: str
    kind: str
    media_type: str
    bytes: int
    sha256: str
    text_sha256: str
    uploaded_at: str


class DocumentOut(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "doc_id": "shenzhen-2022", "title": "深圳市培育发展半导体与集成电路产业集群行动计划（2022-2025年）",
        "short_title": "深圳半导体与集成电路行动计划", "issuer": "深圳市", "doc_number": None, "date": "2022",
        "region": "广东省深圳市", "aliases": ["深圳", "Shenzhen"], "weak_aliases": [], "note": None,
        "file": "001_b119eaaaf552dd72.txt", "source": "seed", "clause_count": 61, "chunk_count": 64, "upload": None}]})
    doc_id: str
    title: str
    short_title: str
    issuer: str
    doc_number: str | None
    date: str
    region: str
    aliases: list[str]
    weak_aliases: list[str]
    note: str | None
    file: str
    source: Literal["seed", "upload"] = Field(description="Seed documents ship with the project and cannot be deleted")
    clause_count: int
    chunk_count: int
    upload: UploadInfo | None = Field(None, description="Where an uploaded document came from")


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class OutlineHeading(BaseModel):
    id: str = Field(examples=["二.(一)"])
    marker: str
    title: str
    level: float
    path: list[str]
    clause_ids: list[str] = Field(description="Clauses directly under this heading")


class ClauseSummary(BaseModel):
    clause_id: str
    section: str
    preview: str
    chars: int
    line_start: int
    line_end: int


class DocumentDetail(DocumentOut):
    outline: list[OutlineHeading]
    clauses: list[ClauseSummary]


class ClauseOut(BaseModel):
    clause_id: str
    section: str
    section_path: list[str]
    text: str
    line_start: int
    line_end: int
    responsible: str | None = None
    chunk_ids: list[str]


class ClauseContext(BaseModel):
    doc_id: str
    doc_title: str
    clause: ClauseOut
    before: list[ClauseOut] = Field(description="Up to `context` preceding clauses, in document order")
    after: list[ClauseOut] = Field(description="Up to `context` following clauses, in document order")


class JobProgress(BaseModel):
    chunks_embedded: int
    chunks_total: int
    sentences_embedded: int
    sentences_total: int
    percent: float


class JobError(BaseModel):
    status: int = Field(description="The HTTP status a synchronous upload would have had")
    code: str
    message: str


class JobOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "4f1c2b8e9a7d4e0f8b6a5c3d2e1f0a9b", "status": "running", "doc_id": "guangzhou-2026",
        "title": "广州市集成电路产业行动计划", "filename": "广州计划.pdf", "created_at": "2026-03-01T10:00:00+0800",
        "started_at": "2026-03-01T10:00:00+0800", "finished_at": None, "attempts": 1,
        "progress": {"chunks_embedded": 420, "chunks_total": 1500, "sentences_embedded": 0,
                     "sentences_total": 2100, "percent": 11.7}, "error": None, "document": None}]})
    id: str
    status: Literal["queued", "running", "done", "failed"]
    doc_id: str
    title: str
    filename: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int = Field(description="Runs so far: more than 1 after the server was restarted during the job")
    progress: JobProgress
    error: JobError | None = Field(description="Why the job failed (failed only)")
    document: DocumentOut | None = Field(None, description="The uploaded document, when done")


class JobResponse(BaseModel):
    job: JobOut


class JobList(BaseModel):
    jobs: list[JobOut]


class DeleteResponse(BaseModel):
    deleted: str
    documents: int = Field(description="Documents left in the index")


class HealthResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["ok", "degraded"] = Field(description="`degraded`: damage was found and repaired at start-up "
                                              "(see `reason`); stays until an operator runs `rag index build`")
    reason: str | None = Field(None, description="What was damaged and what was done about it (degraded only)")
    index_loaded: bool
    index_status: str
    model: str
    documents: int
    uploads: int
    clauses: int
    chunks: int
    built_at: str | None = None
    auth: Literal["api_keys", "open_loopback_only"]
    backends: dict[str, dict[str, Any]] = Field(
        description="Answer backends and whether each can answer now (`detail` says why not)")
    jobs: dict[str, int] | None = Field(None, description="Upload jobs by status (queued, running, done, failed)")
    worker: dict[str, int] | None = Field(None, description="The server process that answered (`pid`) and how many "
                                          "answer on this address (`workers`: `rag serve --workers`)")


class ReadyResponse(BaseModel):
    ready: bool = Field(description="Index loaded and embedding model warm: send traffic")
    index_loaded: bool
    model_warm: bool = Field(description="The embedding model answered its warm-up call")
    index_status: str | None = None
    warm_up_ms: float | None = Field(None, description="How long the warm-up call took")
    detail: str | None = Field(None, description="Why not ready")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """OpenAI chat-completions request.  Sampling parameters (`temperature`, `top_p`, `seed`, penalties) are
    accepted and have no effect (answers are extractive, or generated greedily); parameters that cannot be
    honoured (`n` > 1, `response_format` other than text, `tools`, `functions`, `logprobs`, `stop`, `audio`)
    and unknown ones are a 400 naming the parameter."""

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra={"examples": [
        {"model": MODEL_ID, "messages": [{"role": "user", "content": EXAMPLE_QUESTION}]},
        {"model": MODEL_ID, "stream": True, "messages": [
            {"role": "user", "content": EXAMPLE_QUESTION}, {"role": "assistant", "content": "……"},
            {"role": "user", "content": "那苏州工业园区呢？"}]}]})
    model: str = Field(MODEL_ID, max_length=200, description=f"`{MODEL_ID}` (others: 404 `model_not_found`)")
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_HISTORY * 2 + 10)
    stream: bool = False
    stream_options: dict[str, Any] | None = Field(None, description="`{\"include_usage\": true}`: a last chunk "
                                                  "with `usage` before `[DONE]`")
    max_tokens: int | None = Field(None, ge=1, description="Generative backends: the model's token limit (at "
                                   "most RAG_LLM_MAX_TOKENS); the extractive backend refuses it (400)")
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as `max_tokens`")
    k: int | None = Field(None, ge=1, le=MAX_K, description="Extension: clauses to retrieve")
    documents: list[str] | None = Field(None, max_length=MAX_DOC_FILTER, description="Extension: doc_id filter")
    backend: Backend | None = Field(None, description="Extension: " + BACKEND_HELP)
    include_references: bool | None = Field(None, description=REFERENCES_HELP)


class UrlCitation(BaseModel):
    model_config = ConfigDict(extra="allow")
    start_index: int = Field(description="Where the `[n]` marker (or the clause's reference line) starts in "
                             "`content`, in characters")
    end_index: int = Field(description="Where it ends (exclusive)")
    title: str = Field(description="《document title》 and section path")
    url: str = Field(description="The clause in context: GET /v1/documents/{doc_id}/clauses/{clause_id}")
    n: int = Field(description="Extension: the citation number, as in `[n]` and `citations`")
    doc_id: str
    clause_id: str
    chunk_id: str


class ChatAnnotation(BaseModel):
    type: Literal["url_citation"]
    url_citation: UrlCitation


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"]
    content: str
    annotations: list[ChatAnnotation] = Field(description="One OpenAI `url_citation` per cited clause marker")


class ChatChoice(BaseModel):
    index: int
    message: ChatChoiceMessage
    finish_reason: str


class Usage(BaseModel):
    prompt_tokens: int = Field(description=TOKENS_HELP)
    completion_tokens: int
    total_tokens: int


class ChatResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    citations: list[Citation] = Field(description="Extension: the cited clauses, structured")
    refused: bool = Field(description="Extension: true when the plans do not answer the question")
    confidence: float | None = Field(None, ge=0, le=1, description="Extension: " + CONFIDENCE_HELP)


class ResponsesRequest(BaseModel):
    """OpenAI Responses API request (stateless: nothing is stored)."""

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra={"examples": [
        {"model": MODEL_ID, "input": EXAMPLE_QUESTION},
        {"model": MODEL_ID, "instructions": "Answer in English.", "stream": True,
         "input": [{"role": "user", "content": EXAMPLE_QUESTION}]}]})
    model: str | None = Field(MODEL_ID, max_length=200, description=f"`{MODEL_ID}` (others: 404)")
    input: str | list[dict[str, Any]] = Field(description="The question, or messages (`role`, `content` as text "
                                              "or `input_text`/`output_text` parts): the last user message is "
                                              f"the question; at most {MAX_HISTORY * 2 + 10} messages")
    instructions: str | None = Field(None, max_length=MAX_MESSAGE_CHARS,
                                     description="System instructions; a language asked for here is honoured by "
                                     "the generative backends")
    stream: bool = False
    max_output_tokens: int | None = Field(None, ge=1, description="As `max_tokens` of chat completions")
    k: int | None = Field(None, ge=1, le=MAX_K, description="Extension: clauses to retrieve")
    documents: list[str] | None = Field(None, max_length=MAX_DOC_FILTER, description="Extension: doc_id filter")
    backend: Backend | None = Field(None, description="Extension: " + BACKEND_HELP)
    include_references: bool | None = Field(None, description=REFERENCES_HELP)


class ResponsesAnnotation(UrlCitation):
    type: Literal["url_citation"]


class ResponsesContent(BaseModel):
    type: Literal["output_text"]
    text: str
    annotations: list[ResponsesAnnotation]
    logprobs: list = []


class ResponsesMessage(BaseModel):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    status: str
    content: list[ResponsesContent]


class ResponsesUsage(BaseModel):
    model_config = ConfigDict(extra="allow")
    input_tokens: int = Field(description=TOKENS_HELP)
    output_tokens: int
    total_tokens: int


class ResponsesResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["response"]
    created_at: int
    model: str
    status: str
    output: list[ResponsesMessage]
    usage: ResponsesUsage
    citations: list[Citation] = Field(description="Extension: the cited clauses, structured")
    refused: bool


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]
