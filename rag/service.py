"""`Assistant`: the one core object the CLI, HTTP API and chat page all use.

It loads the corpus and the embedding model, opens the index, and answers
`search` and `ask` calls.  Documents can be added and removed at run time
(`add_document` / `remove_document`).

Uploaded documents are the user's data and live in the document store
(`index/documents/`, rag/store.py); the index versions are derived from the
seeds plus the store and may be rebuilt at any time.  `open_index` has two modes:

- `allow_rebuild=False` (the CLI's read commands): the index is used exactly as
  it is on disk, or an `IndexError_` says what is wrong and that `rag index build`
  fixes it.  Nothing is rebuilt, repaired, moved or deleted.
- `allow_rebuild=True` (`rag index build`, `rag serve`, tests): crash debris is
  removed, the store is verified and recovered from the version folders' copies
  (which also migrates indexes from before the store), and the index is loaded,
  brought in step with the store, or rebuilt (seeds, uploads re-parsed and
  re-embedded from the store).  A rebuild or repair caused by damage is logged
  at ERROR and recorded in `index/DEGRADED.json`, which /healthz reports until an
  operator's `rag index build` acknowledges it; a rebuild because the seeds or
  the model changed is routine (INFO).

Concurrency: the index, corpus and chain a query uses are one immutable
`_Snapshot`, read once per call.  A writer (upload, delete, bulk import) builds
the next snapshot off to the side, persists it atomically, then publishes it
with a single reference assignment, so readers never block on a write and never
see half of one.  Across processes, writers take an exclusive lock on
`index/LOCK` and read-only opens a shared one.  Several processes may have the
same index open (a server, `rag documents add`, a second server): a write
starts from the version CURRENT names, read under the exclusive lock (embedding
happens before, outside the lock), never from an older in-memory snapshot, so
it cannot drop what another process published; and a query re-reads CURRENT at
most once a second (RAG_INDEX_CHECK_S) and loads a version another process
published, so a running server answers from it without a restart.

Upload order: embed; take index/LOCK and read the version on disk; write the
new index version (not yet active); store the text durably in the document
store; swap CURRENT; acknowledge (a bulk import adds many documents per
version).  Delete order: take index/LOCK and read the version on disk; write
the new version; tombstone and remove the document from the store; swap
CURRENT.  A crash at any moment leaves the document whole or gone, and the next
writing open brings the index in step with the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .answer import Answer
from .chain import build_chain, finish
from .config import MAX_QUESTION_CHARS, Settings
from .catalog import DocumentInfo
from .clauses import chunk_clause, parse_document
from .corpus import Corpus, load_corpus, merge_uploads, upload_info
from .embed_backend import backend_mismatch, embedder_backend
from .index import (CURRENT, IndexBusy, IndexCorrupt, IndexError_, IndexMissing, IndexStale, IndexedChunk,
                    KnowledgeIndex, NewDocument, Uploads, build_index, chunk_sentences, clean_debris, current_version,
                    embed_sentences, index_lock, keyword_text, list_leads, list_versions, passage_text,
                    remove_old_versions, version_copies, version_upload_ids)
from .ingest import (DocumentError, catalog_entry, check_doc_id, check_extracted_size, check_metadata, extract_text,
                     text_fingerprint)
from .keywords import tokens
from .retrieve import MODES, RetrievalResult, search
from .routing import route
from .store import DocumentStore, StoreScan, fsync_dir, sha256_bytes, write_atomic

log = logging.getLogger(__name__)
MAX_K = 50
UPLOAD_EMBED_BATCH = 2  # passages per model call (~80 ms): a waiting query runs before the next one


class QuestionError(ValueError):
    """The question (or its options) cannot be answered as given: a user error, not a crash."""


def _visible(text: str) -> str:
    """`text` without control and format characters (NUL, zero-width, bidi marks, BOM: Unicode Cc/Cf),
    whitespace kept."""
    return "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))


def validate_question(question: object, k: int | None = None) -> str:
    if not isinstance(question, str):
        raise QuestionError("问题必须是文本 (question must be a string)")
    q = _visible(question).strip()  # only NULs or zero-width characters: an empty question
    if not q:
        raise QuestionError("问题为空 (empty question)")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(f"问题过长：{len(q)} 字，上限 {MAX_QUESTION_CHARS} 字 (question too long)")
    if k is not None and not (1 <= int(k) <= MAX_K):
        raise QuestionError(f"k 必须在 1 到 {MAX_K} 之间 (k out of range)")
    return q


DEGRADED_FILE = "DEGRADED.json"


def read_damage(index_dir: Path) -> list[str]:
    """The damage recorded by earlier opens and not yet acknowledged (empty: healthy)."""
    try:
        data = json.loads((Path(index_dir) / DEGRADED_FILE).read_text(encoding="utf-8"))
        return [str(r) for r in data["reasons"]]
    except FileNotFoundError:
        return []
    except Exception:
        return [f"{DEGRADED_FILE} is unreadable (damage was recorded earlier)"]


def record_damage(index_dir: Path, reasons: list[str]) -> None:
    index_dir = Path(index_dir)
    old = [r for r in read_damage(index_dir) if r not in reasons]
    data = {"since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reasons": old + list(reasons),
            "acknowledge": "check the index, then run `rag index build`"}
    write_atomic(index_dir / DEGRADED_FILE, json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"))


def acknowledge_damage(index_dir: Path) -> list[str]:
    """Clear the recorded damage (an operator's `rag index build`); returns what was recorded."""
    reasons = read_damage(index_dir)
    path = Path(index_dir) / DEGRADED_FILE
    if path.exists():
        path.unlink()
        fsync_dir(path.parent)
    return reasons


def _relative(text: str, index_dir: Path) -> str:
    """No absolute paths in logs and /healthz: the index folder's own path is left out."""
    base = str(Path(index_dir))
    return text.replace(base + os.sep, "").replace(base, ".")


def _with_hint(exc: IndexError_) -> IndexError_:
    msg = str(exc)
    if "rag index build" not in msg:
        msg += "; run `rag index build` to rebuild it (uploaded documents are kept)"
    return type(exc)(msg)


def _check_fresh(index: KnowledgeIndex, corpus: Corpus, settings: Settings) -> None:
    m = index.manifest
    if m.get("corpus_fingerprint") != corpus.fingerprint:
        raise IndexStale("the seeds or catalog changed since the index was built")
    if m.get("model") != settings.embed_model:
        raise IndexStale(f"index was built with {m.get('model')!r}, settings say {settings.embed_model!r}")


def _uploads_of(scan: StoreScan) -> Uploads:
    docs = scan.documents.values()
    return Uploads([d.entry for d in docs], {d.doc_id: d.text for d in docs})


def _upload_diff(indexed: Uploads, stored: Uploads) -> tuple[list[str], list[str]]:
    """(in the index but not, or not like that, in the store; in the store but not, or not like that, indexed)."""
    def keyed(u: Uploads) -> dict:
        return {e["doc_id"]: (json.dumps(e, sort_keys=True, ensure_ascii=False),
                              sha256_bytes(u.texts[e["doc_id"]].encode("utf-8"))) for e in u.entries}
    a, b = keyed(indexed), keyed(stored)
    return [d for d in a if a[d] != b.get(d)], [d for d in b if b[d] != a.get(d)]


def open_index(settings: Settings, corpus: Corpus, embedder, rebuild: bool = False, show_progress: bool = False,
               allow_rebuild: bool = True) -> tuple[KnowledgeIndex, str]:
    """Open the index over `corpus` (the seeds) and the document store. Returns (index, what happened).

    With `allow_rebuild=False` nothing on disk changes: a missing, damaged or
    stale index, a damaged store, or an index out of step with the store raises
    an `IndexError_` naming the problem and the fix (`rag index build`).
    Otherwise the index is recovered as the module docstring describes.
    """
    if not allow_rebuild:
        if rebuild:
            raise ValueError("rebuild=True needs allow_rebuild=True")
        return _open_read_only(settings, corpus), "loaded"
    with index_lock(settings.index_dir, exclusive=True):
        return _open_for_writing(settings, corpus, embedder, rebuild, show_progress)


def _open_read_only(settings: Settings, corpus: Corpus) -> KnowledgeIndex:
    index_dir = Path(settings.index_dir)
    with index_lock(index_dir, exclusive=False):
        store = DocumentStore(index_dir)
        scan = store.scan()
        if scan.damaged:
            raise IndexCorrupt("; ".join(d.reason for d in scan.damaged.values())
                               + "; run `rag index build` to restore it from an index version")
        try:
            index = KnowledgeIndex.load(index_dir)
            _check_fresh(index, corpus, settings)
        except IndexError_ as exc:
            raise _with_hint(exc) from None
        stray = set()
        for name in list_versions(index_dir):
            stray |= version_upload_ids(index_dir / name)
        stray -= set(scan.documents) | scan.tombstones
        if stray:
            raise IndexStale(f"uploaded documents {', '.join(sorted(stray))} are in index versions but not in the "
                             "document store (an index from before the store, or a damaged store); "
                             "run `rag index build` to recover them")
        extra, missing = _upload_diff(index.uploads, _uploads_of(scan))
        if extra or missing:
            raise IndexStale("the index is out of step with the document store (an interrupted upload or delete?): "
                             + ", ".join([f"{d} not stored" for d in extra] + [f"{d} not indexed" for d in missing])
                             + "; run `rag index build`")
        return index


def _recover_store(index_dir: Path, store: DocumentStore, store_existed: bool, damage: list[str]) -> None:
    """Make the store hold every uploaded document that any intact copy of exists.

    A stored document failing its checksum is restored from a version folder's
    copy that passes (the damaged files are moved to quarantine, never deleted);
    documents in version folders that the store lacks (and did not delete) are
    copied in — the migration of indexes from before the store, or repair of a
    damaged one.  `damage` collects what an operator must hear about.
    """
    scan = store.scan()
    try:
        active = current_version(index_dir)
    except IndexError_:
        active = None
    order = ([active] if active else []) + [v for v in list_versions(index_dir) if v != active]
    copies = [version_copies(index_dir, v) for v in order]

    def copy_of(doc_id: str, text_sha: str | None):
        for vc in copies:
            text = vc.uploads.texts.get(doc_id)
            if text is not None and (text_sha is None or sha256_bytes(text.encode("utf-8")) == text_sha):
                return vc.version, next(e for e in vc.uploads.entries if e["doc_id"] == doc_id), text
        return None

    present = set(scan.documents)
    for doc_id, bad in scan.damaged.items():
        found = copy_of(doc_id, bad.text_sha256)
        moved = store.quarantine(doc_id)
        if found:
            version, entry, text = found
            store.put(entry, text)
            present.add(doc_id)
            damage.append(f"{bad.reason}: restored from {version}/uploads/{doc_id}.txt (damaged files moved to {moved})")
        else:
            damage.append(f"uploaded document {doc_id!r} is lost: {bad.reason} and no index version holds an intact "
                          f"copy (damaged files moved to {moved})")
    unverifiable: dict[str, str] = {}
    for vc in copies:
        for entry in vc.uploads.entries:
            doc_id = entry["doc_id"]
            if doc_id in present or doc_id in scan.tombstones:
                continue
            store.put(entry, vc.uploads.texts[doc_id])
            present.add(doc_id)
            if store_existed or vc.store_aware:
                damage.append(f"uploaded document {doc_id!r} was missing from the document store: "
                              f"recovered from {vc.version}/uploads/{doc_id}.txt")
            else:
                log.info("moved uploaded document %s into the document store (from %s)", doc_id, vc.version)
        for doc_id in vc.unverifiable:
            unverifiable.setdefault(doc_id, vc.version)
    for doc_id, version in unverifiable.items():
        if doc_id not in present and doc_id not in scan.tombstones:
            damage.append(f"uploaded document {doc_id!r}: the copy in {version}/uploads/ cannot be verified against "
                          f"its checksums and no intact copy exists; {version} is kept as it is")


def _drop_tombstones(index_dir: Path, store: DocumentStore) -> None:
    """A tombstone is needed only while some version folder still holds a copy of the deleted document."""
    held = set()
    for name in list_versions(index_dir):
        held |= version_upload_ids(index_dir / name)
    for doc_id in store.scan().tombstones:
        if doc_id not in held or store.holds(doc_id):
            store.remove_tombstone(doc_id)


class _NeedsRebuild(Exception):
    pass


def _reconcile(index: KnowledgeIndex, stored: Uploads, extra: list[str], missing: list[str], embedder,
               corpus: Corpus) -> KnowledgeIndex:
    """The index with the store's documents: stray ones removed, missing ones parsed and embedded."""
    for doc_id in extra:
        index = index.without_document(doc_id)
    seeds = {d.doc_id for d in corpus.documents}
    for entry in stored.entries:
        doc_id = entry["doc_id"]
        if doc_id not in missing:
            continue
        if doc_id in seeds:
            raise _NeedsRebuild
        info, parsed, chunks, vectors, bm25, sentence_vectors = _embed_upload(embedder, entry, stored.texts[doc_id])
        if not chunks:
            raise _NeedsRebuild
        index = index.with_document(entry, stored.texts[doc_id], chunks, vectors, bm25, len(parsed.clauses),
                                    sentence_vectors=sentence_vectors)
    return index


def _open_for_writing(settings: Settings, corpus: Corpus, embedder, rebuild: bool,
                      show_progress: bool) -> tuple[KnowledgeIndex, str]:
    index_dir = Path(settings.index_dir)
    store = DocumentStore(index_dir)
    debris = clean_debris(index_dir) + store.clean_debris()
    if debris:
        log.info("removed what interrupted writes left behind: %s", ", ".join(debris))
    store_existed = store.exists()
    store.ensure()
    damage: list[str] = []
    _recover_store(index_dir, store, store_existed, damage)
    stored = _uploads_of(store.scan())

    index, reason = None, "forced rebuild"
    if not rebuild:
        try:
            index = KnowledgeIndex.load(index_dir)
            _check_fresh(index, corpus, settings)
        except IndexMissing:
            index = None
            if list_versions(index_dir):
                reason = "CURRENT is missing although index versions exist"
                damage.append(f"index unusable: {reason}")
            else:
                reason = "no index yet"
        except IndexCorrupt as exc:
            index, reason = None, str(exc)
            damage.append(f"index unusable: {exc}")
        except IndexStale as exc:
            index, reason = None, str(exc)
    status = "loaded"
    if index is not None:
        extra, missing = _upload_diff(index.uploads, stored)
        if extra or missing:
            what = ", ".join([f"removing {d}" for d in extra] + [f"adding {d}" for d in missing])
            log.warning("index out of step with the document store (interrupted upload or delete?): %s", what)
            try:
                index = _reconcile(index, stored, extra, missing, embedder, corpus)
                index.save(index_dir)
                status = f"updated (in step with the document store: {what})"
            except _NeedsRebuild:
                index, reason = None, f"the document store changed ({what})"
        else:
            remove_old_versions(index_dir, keep=current_version(index_dir))  # e.g. left by a crash after a swap
    if index is None:
        started = time.perf_counter()
        index = _build(settings, corpus, embedder, stored, store, show_progress)
        status = f"built ({reason})"
        level = logging.ERROR if damage else logging.INFO
        log.log(level, "index built in %.1fs (%s) with %d uploaded documents from the document store",
                time.perf_counter() - started, _relative(reason, index_dir), len(index.uploads.entries))
    _drop_tombstones(index_dir, store)
    if damage:
        damage = [_relative(d, index_dir) for d in damage]
        for d in damage:
            log.error("index damage: %s", d)
        record_damage(index_dir, damage)
        log.error("index was repaired after damage and is degraded until acknowledged: check it, then run "
                  "`rag index build`")
    return index, _relative(status, index_dir)


def compact_index(settings: Settings) -> dict:
    """`rag index compact`: the active version's segments merged into one new version (rag/segments.py),
    under index/LOCK; the folders it no longer lists are removed as after any save.  No model is needed:
    the rows are copied, not embedded again.  Servers on the index load the new version as any other."""
    index_dir = Path(settings.index_dir)
    with index_lock(index_dir, exclusive=True):
        index = KnowledgeIndex.load(index_dir)
        before = {"version": index.version, "segments": len(index.segments),
                  "tombstoned": sorted(d for s in index.segments for d in s.deleted)}
        started = time.perf_counter()
        index.save(index_dir, compact=True)
        _drop_tombstones(index_dir, DocumentStore(index_dir))
    return {"before": before, "version": index.version, "segments": len(index.segments), "chunks": len(index),
            "seconds": round(time.perf_counter() - started, 2), "bytes_written": index.last_save["bytes_written"]}


def _build(settings: Settings, corpus: Corpus, embedder, stored: Uploads, store: DocumentStore,
           show_progress: bool) -> KnowledgeIndex:
    """A fresh index over the seeds and every stored document."""
    full, uploads = merge_uploads(corpus, stored)
    renamed = [(old, new) for old, new in zip(stored.entries, uploads.entries) if old["doc_id"] != new["doc_id"]]
    titles = {d.doc_id: d.title for d in full.documents}
    index = build_index(full.chunks, titles, embedder, {
        "model": settings.embed_model,
        "embed_backend": embedder_backend(embedder),  # rag/embed_backend.py: int8 vs fp32 is warned about
        "corpus_fingerprint": corpus.fingerprint,
        "clause_count": len(full.clauses),
        "documents": [d.doc_id for d in full.documents],
        "upload_clause_counts": {d: len(full.parsed[d].clauses) for d in uploads.doc_ids},
    }, show_progress=show_progress)
    index.uploads = uploads

    def rename_in_store():  # an upload whose id is now a seed's keeps its suffixed id in the store too
        for old, new in renamed:
            if not store.holds(new["doc_id"]):
                store.put(new, uploads.texts[new["doc_id"]])
            store.delete(old["doc_id"])

    index.save(settings.index_dir, before_publish=rename_in_store if renamed else None)
    return index


def _embed_upload(embedder, entry: dict, text: str, check_limits: bool = False):
    """(info, parsed, chunks, vectors, bm25 tokens, sentence vectors) of one uploaded document."""
    info, parsed, chunks = _parse_upload(entry, text, check_limits)
    if not chunks:
        return info, parsed, chunks, None, [], None
    return (info, parsed, chunks, *_embed_chunks(embedder, chunks))


def _parse_upload(entry: dict, text: str, check_limits: bool = False):
    """(info, parsed, chunks): cheap (no model), so it runs before anything waits or is embedded."""
    info = upload_info(entry)
    parsed = parse_document(info.doc_id, text)
    chunks = [IndexedChunk.from_chunk(ch, info.title) for c in parsed.clauses for ch in chunk_clause(c)]
    if check_limits:
        check_extracted_size(text, len(chunks))  # before any embedding
    return info, parsed, chunks


def _embed_chunks(embedder, chunks: list[IndexedChunk], progress=None, batch: int = UPLOAD_EMBED_BATCH):
    """(vectors, bm25 tokens, sentence vectors) of an upload's chunks, `batch` passages per model call
    (small for the server: the model's lock lets a waiting query go first between batches,
    rag/embeddings.py; larger for a bulk import on the command line).

    `progress(chunks_done, sentences_done)` is called after every batch.
    """
    leads = list_leads(chunks)
    passages = [passage_text(c, lead) for c, lead in zip(chunks, leads)]
    parts = []
    for i in range(0, len(passages), batch):
        parts.append(embedder.embed_passages(passages[i:i + batch]))
        if progress is not None:
            progress(min(len(passages), i + batch), 0)
    vectors = np.vstack(parts)
    done_sentences = (lambda n: progress(len(passages), n)) if progress is not None else None
    sentence_vectors = embed_sentences(chunks, vectors, embedder, batch=batch, progress=done_sentences)
    bm25 = [tokens(keyword_text(c, lead)) for c, lead in zip(chunks, leads)]
    return vectors, bm25, sentence_vectors


@dataclass
class PreparedUpload:
    """An upload checked, extracted and parsed, not yet embedded: what `publish_upload` indexes."""

    entry: dict
    text: str
    info: DocumentInfo
    parsed: object
    chunks: list[IndexedChunk]

    @property
    def doc_id(self) -> str:
        return self.entry["doc_id"]

    @classmethod
    def from_entry(cls, entry: dict, text: str) -> "PreparedUpload":
        """Parsed from its catalog entry and extracted text: a new upload, or a job resumed after a
        restart from what it stored; 413 over the chunk limit, 422 when no clause is found."""
        info, parsed, chunks = _parse_upload(entry, text, check_limits=True)
        if not chunks:
            raise DocumentError("文件中没有可索引的条款 (no clauses found in the text)", 422, "no_text")
        return cls(entry, text, info, parsed, chunks)

    @property
    def sentence_count(self) -> int:
        """Sentences embedded on their own (those of chunks with more than one)."""
        return sum(n for n in (len(chunk_sentences(c)) for c in self.chunks) if n > 1)


@dataclass
class EmbeddedUpload:
    """A prepared upload with its vectors: what `publish_embedded` adds to the index."""

    prepared: PreparedUpload
    vectors: np.ndarray
    bm25: list[list[str]]
    sentence_vectors: np.ndarray

    @property
    def doc_id(self) -> str:
        return self.prepared.doc_id

    def new_document(self) -> NewDocument:
        p = self.prepared
        return NewDocument(p.entry, p.text, p.chunks, self.vectors, self.bm25, len(p.parsed.clauses),
                           self.sentence_vectors)


class _Snapshot:
    """One consistent (index, corpus, chain) triple; anything else is read from the Assistant.

    The chain is built over the snapshot, so every step of one query sees the
    same index and the same document list even if an upload is published meanwhile.
    """

    def __init__(self, assistant: "Assistant", index: KnowledgeIndex, corpus: Corpus):
        self._assistant = assistant
        self.index = index
        self.corpus = corpus
        self.chain = None
        self._chains: dict[str, object] = {}

    def chain_for(self, backend: str):
        """The chain ending in `backend`'s answer step, built over this snapshot on first use.

        "extractive" is the snapshot's own chain (whatever `set_answerer` installed);
        "_retrieval" stops after retrieval (streaming generates outside the chain).
        """
        if backend == "extractive":
            return self.chain
        if backend not in self._chains:
            if backend == "_retrieval":
                self._chains[backend] = build_chain(self, lambda state: state)
            else:
                from .generate import generative_answerer

                self._chains[backend] = build_chain(self, generative_answerer(self, backend))
        return self._chains[backend]

    def __getattr__(self, name):
        return getattr(self._assistant, name)


class Assistant:
    def __init__(self, settings: Settings | None = None, embedder=None, rebuild: bool = False,
                 show_progress: bool = False, allow_rebuild: bool = True):
        """`allow_rebuild=False` (the CLI's read commands) opens the index exactly as it is on disk or
        raises an `IndexError_` saying what is wrong (fix: `rag index build`); it never rebuilds,
        repairs or deletes anything.  The default may recover and rebuild (see `open_index`)."""
        self.settings = settings or Settings()
        timings = {}
        t = time.perf_counter()
        seed_corpus = load_corpus(self.settings.seeds_dir)
        timings["corpus_s"] = time.perf_counter() - t
        if not allow_rebuild:  # check the index before paying for the model: a broken one fails fast
            t = time.perf_counter()
            index, self.index_status = open_index(self.settings, seed_corpus, None, rebuild, allow_rebuild=False)
            timings["index_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if embedder is None:
            from .embed_backend import make_embedder

            embedder = make_embedder(self.settings)
        self.embedder = embedder
        timings["model_s"] = time.perf_counter() - t
        if allow_rebuild:
            t = time.perf_counter()
            index, self.index_status = open_index(self.settings, seed_corpus, embedder, rebuild, show_progress)
            timings["index_s"] = time.perf_counter() - t
        self._milvus = None  # the Milvus store's config (rag/milvus_store.py); None = the embedded store
        if self.settings.store.strip():
            from .milvus_store import store_config

            self._milvus = store_config(self.settings.store)
            index = self._attach(index, sync=allow_rebuild)
        mismatch = backend_mismatch(index.manifest.get("embed_backend"), embedder_backend(embedder))
        if mismatch:
            log.warning("%s", mismatch)
        t = time.perf_counter()
        corpus, _ = merge_uploads(seed_corpus, index.uploads)
        timings["index_s"] += time.perf_counter() - t
        self.startup_timings = timings
        self.reranker = None
        if self.settings.reranker:
            from .rerank import CrossEncoderReranker

            self.reranker = CrossEncoderReranker(self.settings.reranker)
        self._lock = threading.Lock()  # serializes writers (uploads, deletes, upload jobs); readers never take it
        self._swap_lock = threading.Lock()  # guards the replacement of the published snapshot
        self._reload_lock = threading.Lock()  # one thread at a time loads a version another process published
        self._check_every = _env_seconds("RAG_INDEX_CHECK_S", 1.0)
        self._checked_at = time.monotonic()
        self._unusable_version: str | None = None  # a version of another process that failed to load
        self._jobs = None  # rag/jobs.py UploadJobs, made on first use (`jobs`)
        self.answerer = None  # last chain step; None = extractive (see set_answerer)
        self._snapshot: _Snapshot = self._make_snapshot(index, corpus)

    # -- the published snapshot ---------------------------------------------------

    def _attach(self, index: KnowledgeIndex, sync: bool = True) -> KnowledgeIndex:
        """With a Milvus store: `index` searched through its collection, first brought in step with it
        (documents the collection lacks are inserted, those it should not hold removed)."""
        if self._milvus is None:
            return index
        from .milvus_store import attach

        return attach(index, self._milvus, self.settings.index_dir, sync=sync)

    def _make_snapshot(self, index: KnowledgeIndex, corpus: Corpus) -> _Snapshot:
        index = self._attach(index)
        snap = _Snapshot(self, index, corpus)
        snap.chain = build_chain(snap, self.answerer)
        return snap

    @property
    def jobs(self):
        """The upload jobs of this index (rag/jobs.py), made on first use."""
        if self._jobs is None:
            from .jobs import UploadJobs

            self._jobs = UploadJobs(self)
        return self._jobs

    def set_answerer(self, answerer) -> None:
        """Replace the chain's answer step (e.g. a generative backend) for this and every later snapshot.

        `answerer` is what `build_chain` takes; it may be a factory's result bound
        to this Assistant — the chain it ends is rebuilt over each new snapshot.
        """
        with self._lock, self._swap_lock:
            self.answerer = answerer
            snap = self._snapshot
            self._snapshot = self._make_snapshot(snap.index, snap.corpus)

    @property
    def snapshot(self) -> _Snapshot:
        """The published (index, corpus, chain): read it once to get a consistent view."""
        return self._current()

    @property
    def index(self) -> KnowledgeIndex:
        return self._current().index

    @property
    def corpus(self) -> Corpus:
        return self._current().corpus

    @property
    def chain(self):
        return self._current().chain

    # -- versions published by other processes -----------------------------------------------

    def _publish(self, snap: _Snapshot) -> None:
        with self._swap_lock:
            self._snapshot = snap

    def _current(self) -> _Snapshot:
        """The published snapshot, first brought up to date when another process (`rag documents add`,
        another server on the same index) has published a newer version.

        CURRENT is read at most every RAG_INDEX_CHECK_S (default 1) seconds; the version it names is
        loaded only when it differs from the snapshot's, by one thread while the others go on with the
        snapshot they have, and never while a writer holds index/LOCK (then: a second later).
        """
        snap = self._snapshot
        now = time.monotonic()
        if now - self._checked_at < self._check_every:
            return snap
        self._checked_at = now
        try:
            name = (Path(self.settings.index_dir) / CURRENT).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return snap  # damage is reported by the next writing open, not by a query
        if name in (snap.index.version, self._unusable_version) or not self._reload_lock.acquire(blocking=False):
            return snap
        try:
            with index_lock(self.settings.index_dir, exclusive=False, timeout=0):
                fresh = self._load_published(snap)
        except IndexBusy:
            return snap
        except IndexError_ as exc:
            self._unusable_version = name
            log.error("index version %s, published by another process, cannot be used (%s): still answering "
                      "from %s", name, _relative(str(exc), self.settings.index_dir), snap.index.version)
            return snap
        finally:
            self._reload_lock.release()
        with self._swap_lock:
            if self._snapshot is snap:  # not replaced meanwhile by this process's own (newer) write
                self._snapshot = fresh
                log.info("loaded index version %s, published by another process", fresh.index.version)
            return self._snapshot

    def _load_published(self, snap: _Snapshot) -> _Snapshot:
        """The snapshot of the version CURRENT names (index/LOCK held); only uploads that changed are parsed."""
        index = KnowledgeIndex.load(self.settings.index_dir)
        _check_fresh(index, snap.corpus, self.settings)
        corpus, old, new = snap.corpus, snap.index.uploads.texts, index.uploads.texts
        for doc_id in snap.index.uploads.doc_ids:
            if new.get(doc_id) != old[doc_id]:
                corpus = corpus.without_upload(doc_id)
        for entry in index.uploads.entries:
            doc_id = entry["doc_id"]
            if old.get(doc_id) != new[doc_id]:
                corpus = corpus.with_upload(upload_info(entry), parse_document(doc_id, new[doc_id]))
        return self._make_snapshot(index, corpus)

    def _on_disk_snapshot(self) -> _Snapshot:
        """What a write starts from (the caller holds index/LOCK exclusively): the version on disk.

        When another process has published a version since this snapshot was loaded, that version is
        loaded (and published here): a write built on the older snapshot would drop what it added.
        """
        snap = self._snapshot
        try:
            name = current_version(self.settings.index_dir)
        except IndexError_ as exc:  # CURRENT damaged meanwhile: this write publishes a good one again
            log.error("index damage (%s): writing on top of the loaded version %s",
                      _relative(str(exc), self.settings.index_dir), snap.index.version)
            return snap
        if name == snap.index.version:
            return snap
        try:
            fresh = self._load_published(snap)
        except IndexStale as exc:
            raise DocumentError(f"索引已被另一个进程按不同的种子或模型重建，请重启本服务 (the index was rebuilt by another "
                                f"process: {exc}; restart this process)", 409, "index_changed") from None
        except IndexError_ as exc:
            log.error("index version %s, published by another process, cannot be read (%s): writing on top of "
                      "the loaded version %s (the document store keeps every upload)", name,
                      _relative(str(exc), self.settings.index_dir), snap.index.version)
            return snap
        log.info("index version %s was published by another process: writing on top of it", name)
        self._publish(fresh)
        return fresh

    @property
    def seed_doc_ids(self) -> list[str]:
        corpus = self.corpus
        return [d.doc_id for d in corpus.documents if not corpus.is_upload(d.doc_id)]

    def health(self) -> dict:
        """{"status": "ok"} or {"status": "degraded", "reason", "reasons"}: damage found and repaired at some
        open (index/DEGRADED.json) that no operator has acknowledged yet (`rag index build`)."""
        reasons = read_damage(self.settings.index_dir)
        if not reasons:
            return {"status": "ok"}
        return {"status": "degraded", "reason": "; ".join(reasons), "reasons": reasons}

    def acknowledge_damage(self) -> list[str]:
        """An operator has seen the damage (`rag index build`): /healthz says ok again."""
        return acknowledge_damage(self.settings.index_dir)

    # -- queries ----------------------------------------------------------------

    def _check_documents(self, documents: list[str] | None, index: KnowledgeIndex | None = None
                         ) -> list[str] | None:
        if not documents:
            return None
        if isinstance(documents, str) or not all(isinstance(d, str) for d in documents):
            raise QuestionError("documents 必须是文档编号列表 (documents must be a list of doc_id strings)")
        known = set((index or self.index).doc_ids)
        unknown = [d for d in documents if d not in known]
        if unknown:
            raise QuestionError(f"未知文档 (unknown doc_id): {', '.join(unknown)}")
        return list(documents)

    def search(self, query: str, k: int = 10, documents: list[str] | None = None,
               mode: str = "hybrid", use_routing: bool = True) -> RetrievalResult:
        query = validate_question(query, k)
        if mode not in MODES:
            raise QuestionError(f"mode must be one of {MODES}")
        snap = self._current()
        docs = self._check_documents(documents, snap.index)
        return search(snap.index, self.embedder, query, k=k, documents=docs, mode=mode,
                      route=route(query, snap.corpus.documents), use_routing=use_routing,
                      reranker=self.reranker)

    def resolve_backend(self, backend: str | None) -> str:
        """The backend a request uses: its own choice, else RAG_BACKEND, else extractive."""
        if (backend or os.environ.get("RAG_BACKEND", "") or "extractive").strip().lower() == "extractive":
            return "extractive"  # without importing rag.generate (LangChain's chat models): the CLI's fast path
        from .generate import GenerationConfig, check_backend

        try:
            return check_backend(backend or GenerationConfig.from_env().backend)
        except ValueError as exc:
            raise QuestionError(str(exc)) from None

    def _state(self, snap: _Snapshot, question, k, documents, history, mode, use_routing) -> dict:
        question = validate_question(question, k)
        if mode not in MODES:
            raise QuestionError(f"mode must be one of {MODES}")
        return {"question": question, "k": k or self.settings.top_k,
                "documents": self._check_documents(documents, snap.index),
                "history": history or [], "mode": mode, "use_routing": use_routing}

    def ask(self, question: str, k: int | None = None, documents: list[str] | None = None,
            history: list[dict] | None = None, mode: str = "hybrid", use_routing: bool = True,
            backend: str | None = None) -> Answer:
        """`backend`: extractive | openai | llamacpp (default: env RAG_BACKEND, else extractive)."""
        snap = self._current()
        state = self._state(snap, question, k, documents, history, mode, use_routing)
        return finish(snap.chain_for(self.resolve_backend(backend)).invoke(state))

    def ask_stream(self, question: str, k: int | None = None, documents: list[str] | None = None,
                   history: list[dict] | None = None, mode: str = "hybrid", use_routing: bool = True,
                   backend: str | None = None, language: str | None = None, max_tokens: int | None = None):
        """Like `ask`, but a generator: text deltas (str) of the verified answer, then the final Answer.

        Validation errors raise here, before the generator exists.  The final Answer
        is authoritative: on a fallback its text (the extractive answer) replaces
        whatever was streamed.  Generative backends only: `language` ("en" or "zh") is the
        language the model is asked to answer in (default: the question's), `max_tokens`
        lowers the model's token limit (RAG_LLM_MAX_TOKENS stays the ceiling).
        """
        from .generate import stream_answer

        snap = self._current()
        state = self._state(snap, question, k, documents, history, mode, use_routing)
        if language:
            state["language"] = language
        if max_tokens:
            state["max_tokens"] = int(max_tokens)
        chosen = self.resolve_backend(backend)
        state = snap.chain_for("_retrieval").invoke(state)

        def gen():
            started = time.perf_counter()
            for item in stream_answer(snap, state, chosen):
                if isinstance(item, Answer):
                    state["answer"] = item
                    state["timings_ms"]["answer"] = (time.perf_counter() - started) * 1000
                    yield finish(state)
                else:
                    yield item
        return gen()

    # -- document management --------------------------------------------------------

    def add_document(self, filename: str, content: bytes, title: str, issuer: str = "", date: str = "",
                     region: str = "", doc_id: str | None = None, aliases: list[str] | str | None = None
                     ) -> DocumentInfo:
        """Parse an uploaded .txt/.pdf/.docx plan, index it and publish it atomically.

        Raises `DocumentError` (with an HTTP-style `status`) for a bad upload; then
        nothing changes, on disk or in memory.  Queries keep being answered from
        the previous snapshot while the new document is embedded.
        """
        return self.add_prepared(self.prepare_upload(filename, content, title, issuer, date, region, doc_id, aliases))

    def add_prepared(self, prepared: PreparedUpload) -> DocumentInfo:
        """A synchronous upload of a prepared document: writer (429 busy), duplicates (409), publish."""
        with self._writer():
            self.check_duplicate(prepared)
            return self.publish_upload(prepared)

    def prepare_upload(self, filename: str, content: bytes, title: str, issuer: str = "", date: str = "",
                       region: str = "", doc_id: str | None = None, aliases: list[str] | str | None = None
                       ) -> PreparedUpload:
        """Every check that needs no model and no lock: file type and text, fields, size and chunk limits.
        The chunk count says whether the API answers at once or with a job (rag/jobs.py)."""
        kind, text = extract_text(filename, content)
        check_extracted_size(text)
        meta = check_metadata(filename, content, title, issuer, date, region, doc_id, aliases)
        return PreparedUpload.from_entry(catalog_entry(meta, filename, kind, content, text), text)

    def check_duplicate(self, prepared: PreparedUpload, pending: list[PreparedUpload] = ()) -> None:
        """409 when the id, the title or the text is already indexed, or is that of one of `pending`
        (a batch's uploads not yet published).  Called with the writer held; `publish_embedded` checks
        again against the version on disk."""
        known = self._known_documents(self._current())
        known += [(p.doc_id, p.info.title, text_fingerprint(p.text)) for p in pending]
        _check_duplicate(known, prepared.doc_id, prepared.info.title, prepared.text)

    def embed_upload(self, prepared: PreparedUpload, progress=None, batch: int = UPLOAD_EMBED_BATCH
                     ) -> EmbeddedUpload:
        """The vectors of a prepared upload (no lock: nothing is published).  `progress` as for `_embed_chunks`."""
        return EmbeddedUpload(prepared, *_embed_chunks(self.embedder, prepared.chunks, progress, batch))

    def publish_upload(self, prepared: PreparedUpload, progress=None) -> DocumentInfo:
        """Embed, then publish (`publish_embedded`).  The caller holds the writer (`add_prepared`, or an
        upload job).  `progress` as for `_embed_chunks`."""
        started = time.perf_counter()
        published, refused = self.publish_embedded([self.embed_upload(prepared, progress)])
        if refused:  # another process published the same document meanwhile
            raise refused[0][1]
        info = published[0]
        log.info("added %s (%d clauses, %d chunks) in %.1fs", info.doc_id, len(prepared.parsed.clauses),
                 len(prepared.chunks), time.perf_counter() - started)
        return info

    def publish_embedded(self, embedded: list[EmbeddedUpload]
                         ) -> tuple[list[DocumentInfo], list[tuple[EmbeddedUpload, DocumentError]]]:
        """Add embedded uploads to the index as one new version: write it, store the texts, swap CURRENT,
        publish the snapshot.  The caller holds the writer.

        Everything happens under index/LOCK held exclusively, starting from the version on disk (another
        process may have published one since this snapshot), against which each upload is checked for
        duplicates again.  Returns (the documents published, the uploads refused with their 409).  When
        it raises, nothing is published and nothing stays stored.
        """
        index_dir = self.settings.index_dir
        store = DocumentStore(index_dir)
        stored: list[str] = []
        with index_lock(index_dir, exclusive=True):
            snap = self._on_disk_snapshot()
            corpus, known = snap.corpus, self._known_documents(snap)
            accepted, refused = [], []
            for e in embedded:
                p = e.prepared
                try:
                    _check_duplicate(known, p.doc_id, p.info.title, p.text)
                except DocumentError as exc:
                    refused.append((e, exc))
                    continue
                known.append((p.doc_id, p.info.title, text_fingerprint(p.text)))
                corpus = corpus.with_upload(p.info, p.parsed)
                accepted.append(e)
            if not accepted:
                return [], refused
            index = snap.index.with_documents([e.new_document() for e in accepted])

            def store_texts():  # durable in the store before the version that includes them is published
                for e in accepted:
                    store.put(e.prepared.entry, e.prepared.text)
                    stored.append(e.doc_id)

            try:
                index.save(index_dir, before_publish=store_texts)
            except BaseException:
                for doc_id in stored:  # stored but never published: take them back (the upload failed)
                    store.delete(doc_id)
                raise
            _drop_tombstones(index_dir, store)
            self._publish(self._make_snapshot(index, corpus))
        return [e.prepared.info for e in accepted], refused

    @contextlib.contextmanager
    def _writer(self):
        """The writer lock, or a clear 429 when another write holds it longer than RAG_WRITE_WAIT_S
        (default 30 s): a client is told to come back instead of hanging."""
        self.acquire_writer()
        try:
            yield
        finally:
            self.release_writer()

    def acquire_writer(self) -> None:
        """Take the writer lock (429 `busy` after RAG_WRITE_WAIT_S).  A plain lock, not an RLock: an upload
        job takes it in the request's thread and its worker thread releases it when the job ends."""
        wait = float(os.environ.get("RAG_WRITE_WAIT_S", "") or 30)
        if not self._lock.acquire(timeout=max(0.0, wait)):
            job = self._jobs.active if self._jobs is not None else None
            what = (f"upload job {job.id} is indexing {job.doc_id}, {100 * job.fraction:.0f}% done" if job
                    else "another upload or delete is in progress")
            what_zh = f"：上传任务 {job.id} 正在索引 {job.doc_id}，已完成 {100 * job.fraction:.0f}%" if job else ""
            raise DocumentError(f"另一个上传或删除正在进行，请稍后重试{what_zh} (busy: {what})", 429, "busy",
                                retry_after=job.retry_after() if job else 10)

    def release_writer(self) -> None:
        self._lock.release()

    def remove_document(self, doc_id: str) -> None:
        """Remove an uploaded document from both indexes and the corpus, atomically, starting from the
        version on disk (under index/LOCK, like `publish_embedded`).

        Seed documents (seeds/catalog.json) cannot be removed: edit the seeds instead.
        """
        index_dir = self.settings.index_dir
        with self._writer(), index_lock(index_dir, exclusive=True):
            snap = self._on_disk_snapshot()
            if not snap.corpus.is_upload(doc_id):
                if any(d.doc_id == doc_id for d in snap.corpus.documents):
                    raise DocumentError(f"种子文档不能删除 (seed document {doc_id!r} cannot be deleted)",
                                        403, "seed_document")
                check_doc_id(doc_id)  # a path-like id is a 422, any other unknown id a 404
                raise DocumentError(f"未知文档 (unknown doc_id {doc_id!r})", 404, "unknown_document")
            index = snap.index.without_document(doc_id)
            new_snap = self._make_snapshot(index, snap.corpus.without_upload(doc_id))
            store = DocumentStore(index_dir)
            entry = next(e for e in snap.index.uploads.entries if e["doc_id"] == doc_id)
            deleted = []

            def unstore():  # tombstone, then gone from the store, before the version without it is published
                try:
                    stored_ns = store.read(doc_id).stored_ns
                except ValueError:
                    stored_ns = None
                store.delete(doc_id)
                deleted.append(stored_ns)

            try:
                index.save(index_dir, before_publish=unstore)
            except BaseException:
                if deleted:  # deleted from the store but not from the index: put it back whole
                    store.put(entry, snap.index.uploads.texts[doc_id], stored_ns=deleted[0])
                raise
            _drop_tombstones(index_dir, store)
            self._publish(new_snap)
            log.info("removed %s", doc_id)

    def document_source(self, doc_id: str) -> str:
        """'seed' or 'upload'; KeyError for an unknown id."""
        corpus = self.corpus
        corpus.document(doc_id)
        return "upload" if corpus.is_upload(doc_id) else "seed"

    def _known_documents(self, snap: _Snapshot) -> list[tuple[str, str, str | None]]:
        """(doc_id, title, whitespace-free text hash) of every document of `snap` (seeds hashed once)."""
        corpus, index = snap.corpus, snap.index
        if not hasattr(self, "_seed_fps"):
            self._seed_fps = {}
            for d in corpus.documents:
                if not corpus.is_upload(d.doc_id):
                    try:
                        raw = (self.settings.seeds_dir / d.file).read_text(encoding="utf-8")
                    except OSError:
                        continue
                    self._seed_fps[d.doc_id] = text_fingerprint(raw)
        fps = dict(self._seed_fps)
        for e in index.uploads.entries:
            fps[e["doc_id"]] = e.get("upload", {}).get("text_sha256") or text_fingerprint(
                index.uploads.texts[e["doc_id"]])
        return [(d.doc_id, d.title, fps.get(d.doc_id)) for d in corpus.documents]


def _check_duplicate(known: list[tuple[str, str, str | None]], doc_id: str, title: str, text: str) -> None:
    """409 for the same text (checked first: the same file under another title has the same id too,
    and "same content" is what its uploader needs to hear), then the same id, then the same title."""
    fp = text_fingerprint(text)
    for other_id, _, other_fp in known:
        if other_fp == fp:
            raise DocumentError(f"与 {other_id} 内容相同，该文档已在索引中 (same content as {other_id}: "
                                "this text is already indexed)", 409, "duplicate_document", same_as=other_id)
    for other_id, other_title, _ in known:
        if other_id == doc_id:
            raise DocumentError(f"文档编号已存在 (duplicate doc_id {doc_id!r})", 409, "duplicate_document")
        if other_title == title:
            raise DocumentError(f"已有同名文档 (a document titled {title!r} already exists: {other_id})",
                                409, "duplicate_document")


def _env_seconds(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, "") or default))
    except ValueError:
        return default
