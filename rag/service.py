"""`Assistant`: the one core object the CLI, HTTP API and chat page all use.

It loads the corpus and the embedding model, opens the index (rebuilding it
when the seeds or the model changed, or when a file is corrupted), and answers
`search` and `ask` calls.  Documents can be added and removed at run time
(`add_document` / `remove_document`).

Concurrency: the index, corpus and chain a query uses are one immutable
`_Snapshot`, read once per call.  A writer (upload or delete) builds the next
snapshot off to the side, persists it atomically, then publishes it with a
single reference assignment under the writer lock, so readers never block on
a write and never see half of one.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from .answer import Answer
from .chain import build_chain, finish
from .config import MAX_QUESTION_CHARS, Settings
from .catalog import DocumentInfo
from .clauses import chunk_clause, parse_document
from .corpus import Corpus, load_corpus, merge_uploads, upload_info
from .index import (IndexCorrupt, IndexError_, IndexMissing, IndexStale, IndexedChunk, KnowledgeIndex, build_index,
                    embed_sentences,
                    keyword_text, passage_text, salvage_uploads)
from .ingest import DocumentError, catalog_entry, check_doc_id, check_metadata, extract_text, text_fingerprint
from .keywords import tokens
from .retrieve import MODES, RetrievalResult, search
from .routing import route

log = logging.getLogger(__name__)
MAX_K = 50


class QuestionError(ValueError):
    """The question (or its options) cannot be answered as given: a user error, not a crash."""


def validate_question(question: object, k: int | None = None) -> str:
    if not isinstance(question, str):
        raise QuestionError("问题必须是文本 (question must be a string)")
    q = question.strip()
    if not q:
        raise QuestionError("问题为空 (empty question)")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(f"问题过长：{len(q)} 字，上限 {MAX_QUESTION_CHARS} 字 (question too long)")
    if k is not None and not (1 <= int(k) <= MAX_K):
        raise QuestionError(f"k 必须在 1 到 {MAX_K} 之间 (k out of range)")
    return q


def open_index(settings: Settings, corpus: Corpus, embedder, rebuild: bool = False,
               show_progress: bool = False) -> tuple[KnowledgeIndex, str]:
    """Load the index, or build it when missing, stale or corrupted. Returns (index, what happened).

    `corpus` holds the seed documents; uploaded documents come from the index
    itself (`index.uploads`), and a rebuild carries them over from the
    previous version so changing the seeds or the model never loses them.
    """
    reason = "forced rebuild"
    if not rebuild:
        try:
            index = KnowledgeIndex.load(settings.index_dir)
            m = index.manifest
            if m.get("corpus_fingerprint") != corpus.fingerprint:
                raise IndexStale("the seeds or catalog changed since the index was built")
            if m.get("model") != settings.embed_model:
                raise IndexStale(f"index was built with {m.get('model')!r}, settings say {settings.embed_model!r}")
            return index, "loaded"
        except IndexMissing as exc:
            reason = str(exc)
        except (IndexStale, IndexCorrupt) as exc:
            reason = str(exc)
            log.warning("index unusable, rebuilding: %s", exc)
    started = time.perf_counter()
    full, uploads = merge_uploads(corpus, salvage_uploads(settings.index_dir))
    titles = {d.doc_id: d.title for d in full.documents}
    index = build_index(full.chunks, titles, embedder, {
        "model": settings.embed_model,
        "corpus_fingerprint": corpus.fingerprint,
        "clause_count": len(full.clauses),
        "documents": [d.doc_id for d in full.documents],
        "upload_clause_counts": {d: len(full.parsed[d].clauses) for d in uploads.doc_ids},
    }, show_progress=show_progress)
    index.uploads = uploads
    index.save(settings.index_dir)
    log.info("index built in %.1fs (%s)", time.perf_counter() - started, reason)
    return index, f"built ({reason})"


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


UPLOAD_EMBED_BATCH = 8  # passages per embedding call: queries interleave between batches


class Assistant:
    def __init__(self, settings: Settings | None = None, embedder=None, rebuild: bool = False,
                 show_progress: bool = False):
        self.settings = settings or Settings()
        timings = {}
        t = time.perf_counter()
        seed_corpus = load_corpus(self.settings.seeds_dir)
        timings["corpus_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if embedder is None:
            from .embeddings import SentenceTransformerEmbeddings

            embedder = SentenceTransformerEmbeddings(self.settings.embed_model, self.settings)
        self.embedder = embedder
        timings["model_s"] = time.perf_counter() - t
        t = time.perf_counter()
        index, self.index_status = open_index(self.settings, seed_corpus, embedder, rebuild, show_progress)
        corpus, _ = merge_uploads(seed_corpus, index.uploads)
        timings["index_s"] = time.perf_counter() - t
        self.startup_timings = timings
        self.reranker = None
        if self.settings.reranker:
            from .rerank import CrossEncoderReranker

            self.reranker = CrossEncoderReranker(self.settings.reranker)
        self._lock = threading.RLock()  # serializes writers (uploads, deletes); readers never take it
        self.answerer = None  # last chain step; None = extractive (see set_answerer)
        self._snapshot: _Snapshot = self._make_snapshot(index, corpus)

    # -- the published snapshot ---------------------------------------------------

    def _make_snapshot(self, index: KnowledgeIndex, corpus: Corpus) -> _Snapshot:
        snap = _Snapshot(self, index, corpus)
        snap.chain = build_chain(snap, self.answerer)
        return snap

    def set_answerer(self, answerer) -> None:
        """Replace the chain's answer step (e.g. a generative backend) for this and every later snapshot.

        `answerer` is what `build_chain` takes; it may be a factory's result bound
        to this Assistant — the chain it ends is rebuilt over each new snapshot.
        """
        with self._lock:
            self.answerer = answerer
            snap = self._snapshot
            self._snapshot = self._make_snapshot(snap.index, snap.corpus)

    @property
    def snapshot(self) -> _Snapshot:
        """The published (index, corpus, chain): read it once to get a consistent view."""
        return self._snapshot

    @property
    def index(self) -> KnowledgeIndex:
        return self._snapshot.index

    @property
    def corpus(self) -> Corpus:
        return self._snapshot.corpus

    @property
    def chain(self):
        return self._snapshot.chain

    @property
    def seed_doc_ids(self) -> list[str]:
        corpus = self.corpus
        return [d.doc_id for d in corpus.documents if not corpus.is_upload(d.doc_id)]

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
        snap = self._snapshot
        docs = self._check_documents(documents, snap.index)
        return search(snap.index, self.embedder, query, k=k, documents=docs, mode=mode,
                      route=route(query, snap.corpus.documents), use_routing=use_routing,
                      reranker=self.reranker)

    def resolve_backend(self, backend: str | None) -> str:
        """The backend a request uses: its own choice, else RAG_BACKEND, else extractive."""
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
        snap = self._snapshot
        state = self._state(snap, question, k, documents, history, mode, use_routing)
        return finish(snap.chain_for(self.resolve_backend(backend)).invoke(state))

    def ask_stream(self, question: str, k: int | None = None, documents: list[str] | None = None,
                   history: list[dict] | None = None, mode: str = "hybrid", use_routing: bool = True,
                   backend: str | None = None):
        """Like `ask`, but a generator: text deltas (str) of the verified answer, then the final Answer.

        Validation errors raise here, before the generator exists.  The final Answer
        is authoritative: on a fallback its text (the extractive answer) replaces
        whatever was streamed.
        """
        from .generate import stream_answer

        snap = self._snapshot
        state = self._state(snap, question, k, documents, history, mode, use_routing)
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
        kind, text = extract_text(filename, content)
        meta = check_metadata(filename, content, title, issuer, date, region, doc_id, aliases)
        with self._lock:
            snap = self._snapshot
            self._check_duplicate(snap.corpus, meta.doc_id, meta.title, text)
            entry = catalog_entry(meta, filename, kind, content, text)
            info = upload_info(entry)
            parsed = parse_document(info.doc_id, text)
            chunks = [IndexedChunk.from_chunk(ch, info.title) for c in parsed.clauses for ch in chunk_clause(c)]
            if not chunks:
                raise DocumentError("文件中没有可索引的条款 (no clauses found in the text)", 422, "no_text")
            started = time.perf_counter()
            passages = [passage_text(c) for c in chunks]
            vectors = np.vstack([self.embedder.embed_passages(passages[i:i + UPLOAD_EMBED_BATCH])
                                 for i in range(0, len(passages), UPLOAD_EMBED_BATCH)])
            sentence_vectors = embed_sentences(chunks, vectors, self.embedder, batch=UPLOAD_EMBED_BATCH)
            bm25 = [tokens(keyword_text(c)) for c in chunks]
            index = snap.index.with_document(entry, text, chunks, vectors, bm25, len(parsed.clauses),
                                             sentence_vectors=sentence_vectors)
            corpus = snap.corpus.with_upload(info, parsed)
            new_snap = self._make_snapshot(index, corpus)
            index.save(self.settings.index_dir)  # atomic; on failure nothing is published
            self._snapshot = new_snap
            log.info("added %s (%d clauses, %d chunks) in %.1fs", info.doc_id, len(parsed.clauses), len(chunks),
                     time.perf_counter() - started)
        return info

    def remove_document(self, doc_id: str) -> None:
        """Remove an uploaded document from both indexes and the corpus, atomically.

        Seed documents (seeds/catalog.json) cannot be removed: edit the seeds instead.
        """
        with self._lock:
            snap = self._snapshot
            if not snap.corpus.is_upload(doc_id):
                if any(d.doc_id == doc_id for d in snap.corpus.documents):
                    raise DocumentError(f"种子文档不能删除 (seed document {doc_id!r} cannot be deleted)",
                                        403, "seed_document")
                check_doc_id(doc_id)  # a path-like id is a 400, any other unknown id a 404
                raise DocumentError(f"未知文档 (unknown doc_id {doc_id!r})", 404, "unknown_document")
            index = snap.index.without_document(doc_id)
            new_snap = self._make_snapshot(index, snap.corpus.without_upload(doc_id))
            index.save(self.settings.index_dir)
            self._snapshot = new_snap
            log.info("removed %s", doc_id)

    def document_source(self, doc_id: str) -> str:
        """'seed' or 'upload'; KeyError for an unknown id."""
        corpus = self.corpus
        corpus.document(doc_id)
        return "upload" if corpus.is_upload(doc_id) else "seed"

    def _check_duplicate(self, corpus: Corpus, doc_id: str, title: str, text: str) -> None:
        for d in corpus.documents:
            if d.doc_id == doc_id:
                raise DocumentError(f"文档编号已存在 (duplicate doc_id {doc_id!r})", 409, "duplicate_document")
            if d.title == title:
                raise DocumentError(f"已有同名文档 (a document titled {title!r} already exists: {d.doc_id})",
                                    409, "duplicate_document")
        fp = text_fingerprint(text)
        for other_id, other_fp in self._text_fingerprints(corpus).items():
            if other_fp == fp:
                raise DocumentError(f"相同内容的文档已存在 (the same text is already indexed as {other_id!r})",
                                    409, "duplicate_document")

    def _text_fingerprints(self, corpus: Corpus) -> dict[str, str]:
        """Whitespace-free text hash of every document (seeds hashed once and cached)."""
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
        for e in self.index.uploads.entries:
            fps[e["doc_id"]] = e.get("upload", {}).get("text_sha256") or text_fingerprint(
                self.index.uploads.texts[e["doc_id"]])
        return fps
