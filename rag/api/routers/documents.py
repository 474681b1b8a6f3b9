"""The plans: GET/POST /v1/documents, GET/DELETE /v1/documents/{doc_id}, a clause in context,
and the upload jobs (GET /v1/jobs, /v1/jobs/{id})."""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...catalog import clause_list, outline_of
from ...ingest import MAX_FIELD_CHARS, MAX_TITLE_CHARS, DocumentError, default_title, max_upload_bytes
from ..dependencies import get_service, require_admin
from ..errors import ApiError, error_responses
from ..json_body import StrictJSONRoute
from ..schemas import ClauseContext, DeleteResponse, DocumentDetail, DocumentList, DocumentOut, JobList, JobResponse
from ..service import ApiService

router = APIRouter(prefix="/v1", tags=["documents"], route_class=StrictJSONRoute)


def doc_id_path():  # a fresh Param per route: FastAPI binds each to its parameter
    return Path(description="Document id, e.g. `shenzhen-2022`", examples=["shenzhen-2022"], max_length=200)


def async_upload_chunks() -> int:
    """RAG_ASYNC_UPLOAD_CHUNKS (default 200): uploads with more chunks are answered with a job (202)."""
    try:
        return max(0, int(os.environ.get("RAG_ASYNC_UPLOAD_CHUNKS", "") or 200))
    except ValueError:
        return 200


@router.get("/documents", response_model=DocumentList, summary="List the documents")
async def list_documents(service: ApiService = Depends(get_service)):
    snap = service.assistant.snapshot
    return {"documents": [service.document_out(d.doc_id, snap) for d in snap.corpus.documents]}


@router.get("/documents/{doc_id}", response_model=DocumentDetail,
            summary="A document's catalog entry and clause outline", responses=error_responses(404))
async def get_document(doc_id: str = doc_id_path(), service: ApiService = Depends(get_service)):
    snap = service.assistant.snapshot
    out = service.document_out(service.checked_id(doc_id), snap)
    parsed = snap.corpus.parsed[doc_id]
    return {**out, "outline": outline_of(parsed), "clauses": clause_list(parsed)}


@router.get("/documents/{doc_id}/clauses/{clause_id}", response_model=ClauseContext,
            summary="A clause with its neighbours (for 'show in context')", responses=error_responses(404))
async def get_clause(doc_id: str = doc_id_path(),
                     clause_id: str = Path(description="Clause id (or chunk id `id#n`), e.g. `二.(一)`",
                                           examples=["二.(一)"], max_length=200),
                     context: int = Query(2, ge=0, le=20, description="Neighbours on each side"),
                     service: ApiService = Depends(get_service)):
    service.checked_id(doc_id)
    snap = service.assistant.snapshot
    corpus, index = snap.corpus, snap.index
    try:
        info = corpus.document(doc_id)
    except KeyError:
        raise ApiError(404, "unknown_document", f"unknown doc_id {doc_id!r}", param="doc_id",
                       zh=f"未知文档 {doc_id!r}") from None
    clauses = corpus.parsed[doc_id].clauses
    wanted = clause_id.split("#", 1)[0]
    pos = next((i for i, c in enumerate(clauses) if c.clause_id == wanted), None)
    if pos is None:
        raise ApiError(404, "unknown_clause", f"document {doc_id!r} has no clause {clause_id!r}",
                       param="clause_id", zh=f"文档 {doc_id!r} 中没有条款 {clause_id!r}")
    chunk_ids: dict[str, list[str]] = {}
    for row in index.doc_rows.get(doc_id, []):
        ch = index.chunks[int(row)]
        chunk_ids.setdefault(ch.clause_id, []).append(ch.chunk_id)

    def out(c):
        return {"clause_id": c.clause_id, "section": c.section_path, "section_path": list(c.section),
                "text": c.text, "line_start": c.line_start, "line_end": c.line_end,
                "responsible": c.responsible, "chunk_ids": chunk_ids.get(c.clause_id, [])}

    return {"doc_id": doc_id, "doc_title": info.title, "clause": out(clauses[pos]),
            "before": [out(c) for c in clauses[max(0, pos - context):pos]],
            "after": [out(c) for c in clauses[pos + 1:pos + 1 + context]]}


@router.post("/documents", status_code=201, response_model=DocumentOut,
             summary="Upload a plan (.txt, .pdf or .docx); admin key", dependencies=[Depends(require_admin)],
             responses={**error_responses(400, 403, 409, 413, 415, 429), 202: {
                 "model": JobResponse, "description": "Accepted as a job (large uploads, `wait=false` or "
                 "`Prefer: respond-async`): poll the `Location` (`GET /v1/jobs/{id}`)"}})
async def upload_document(
    request: Request,
    file: UploadFile = File(description="The plan: .txt (UTF-8 or GB18030), .pdf with a text layer, or .docx"),
    title: str | None = Form(None, description="Document title (default: the file name)",
                             max_length=MAX_TITLE_CHARS),
    issuer: str = Form("", description="Issuing body, e.g. 广州市人民政府", max_length=MAX_FIELD_CHARS),
    date: str = Form("", description="YYYY, YYYY-MM or YYYY-MM-DD", max_length=MAX_FIELD_CHARS),
    region: str = Form("", description="Region, e.g. 广东省广州市", max_length=MAX_FIELD_CHARS),
    doc_id: str | None = Form(None, description="Id to use (default: from the file name)", max_length=200),
    aliases: str = Form("", description="Comma-separated names that route questions here, e.g. 广州,Guangzhou",
                        max_length=2000),
    wait: bool | None = Query(None, description="`true`: answer when indexed (201) whatever the size; "
                              "`false`: answer at once with a job (202).  Default: a job when the document "
                              "has more than RAG_ASYNC_UPLOAD_CHUNKS (200) chunks"),
    service: ApiService = Depends(get_service),
):
    """Parsed into clauses, embedded and added to both indexes; persisted atomically, searchable when done.

    Small documents are indexed before the answer (201, the document).  Large ones (more chunks than
    RAG_ASYNC_UPLOAD_CHUNKS, default 200), or any with `wait=false` or `Prefer: respond-async`, are
    accepted as a job: 202 with `{"job": …}` and `Location: /v1/jobs/{id}`, once the text is durable
    in the document store.  Errors: 409 duplicate (same id, title or text), 413 too large
    (RAG_MAX_UPLOAD_MB, default 20), 415 wrong type or content not matching the extension, 422 a bad
    field or an unreadable file, 429 busy (another upload, delete or job holds the writer).
    A failed upload changes nothing.
    """
    assistant, metrics = service.assistant, service.metrics
    limit = max_upload_bytes()
    content = await file.read(limit + 1)
    filename = file.filename or ""
    started = time.perf_counter()
    try:
        prepared = await run_in_threadpool(
            assistant.prepare_upload, filename, content,
            title if title not in (None, "") else default_title(filename),
            issuer=issuer, date=date, region=region, doc_id=doc_id or None, aliases=aliases)
        if wait is None:
            prefer = request.headers.get("prefer", "").lower()
            wait = not ("respond-async" in prefer or len(prepared.chunks) > async_upload_chunks())
        if not wait:
            job = await run_in_threadpool(assistant.jobs.submit, prepared)
            metrics.documents.labels("upload", "accepted").inc()
            return JSONResponse({"job": service.job_out(job)}, status_code=202,
                                headers={"Location": f"/v1/jobs/{job.id}"})
        info = await run_in_threadpool(assistant.add_prepared, prepared)
    except DocumentError as exc:
        metrics.documents.labels("upload", exc.code).inc()
        raise
    metrics.documents.labels("upload", "ok").inc()
    metrics.stage.labels("upload").observe(time.perf_counter() - started)
    return service.document_out(info.doc_id)


@router.get("/jobs/{job_id}", response_model=JobResponse, response_model_exclude_none=False,
            summary="An upload job: status, progress, the document when done; admin key",
            dependencies=[Depends(require_admin)], responses=error_responses(403, 404))
async def get_job(job_id: str = Path(description="The id from the upload's 202 answer", max_length=64),
                  service: ApiService = Depends(get_service)):
    """`queued` → `running` (with progress) → `done` (with the document) or `failed` (with the error).
    Jobs interrupted by a restart are run again when the server starts (`attempts` counts the runs)."""
    job = service.assistant.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "unknown_job", f"no upload job {job_id!r} (finished jobs are kept for "
                       "RAG_JOB_KEEP_DAYS days)", param="job_id",
                       zh=f"没有上传任务 {job_id!r}（已结束的任务保留 RAG_JOB_KEEP_DAYS 天）")
    return {"job": service.job_out(job)}


@router.get("/jobs", response_model=JobList, summary="Upload jobs, newest first; admin key",
            dependencies=[Depends(require_admin)], responses=error_responses(403))
async def list_jobs(service: ApiService = Depends(get_service)):
    return {"jobs": [service.job_out(j) for j in service.assistant.jobs.list()]}


@router.delete("/documents/{doc_id}", response_model=DeleteResponse,
               summary="Remove an uploaded document; admin key", dependencies=[Depends(require_admin)],
               responses=error_responses(403, 404, 429))
async def delete_document(doc_id: str = doc_id_path(), service: ApiService = Depends(get_service)):
    """Removes the document from both indexes, atomically. Seed documents cannot be deleted (403)."""
    service.checked_id(doc_id)
    metrics = service.metrics
    started = time.perf_counter()
    try:
        await run_in_threadpool(service.assistant.remove_document, doc_id)
    except DocumentError as exc:
        metrics.documents.labels("delete", exc.code).inc()
        raise
    metrics.documents.labels("delete", "ok").inc()
    metrics.stage.labels("delete").observe(time.perf_counter() - started)
    return {"deleted": doc_id, "documents": len(service.assistant.corpus.documents)}
