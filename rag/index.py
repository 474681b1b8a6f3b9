"""The persisted knowledge index: chunks, FAISS dense vectors, BM25 tokens, manifest.

Layout under `index/`:  `CURRENT` names the active version folder
(`v-<time>-<pid>-<n>/`), which holds `manifest.json`, `chunks.jsonl`,
`dense.faiss`, `bm25.json` and `sentences.npy`.  A version folder's files hold
only its own rows (its segment); its manifest lists the earlier folders whose
rows come first, with their tombstoned documents (rag/segments.py): an upload
writes the new document's rows, a delete a tombstone, and a compaction merges
segments.  A save writes a new folder completely under `.tmp-v-…` and fsyncs
it, renames it into place, then swaps `CURRENT` with an atomic rename
(fsynced), so readers and interrupted saves never see a half-written index.
Every file's sha256 is in its folder's manifest, and every listed folder's
manifest sha256 in the listing one: a truncated or corrupted file is detected
at load and reported as `IndexCorrupt`, with paths relative to the index folder.

The index is derived data.  Uploaded documents belong to the document store
beside the versions (`index/documents/`, rag/store.py), which no rebuild,
clean-up or swap touches.  Each version also keeps a checksummed copy of the
uploads among its rows (`uploads/catalog.json`, `uploads/<doc_id>.txt`): the copies
the store is recovered from (`version_copies`).  Versions the active one does
not list are removed only after the new CURRENT is durable, by renaming them to
`.trash-…` first, and never while one holds an upload the store lacks
(`remove_old_versions`); `clean_debris` removes what dead processes left.
Writers hold `index/LOCK` exclusively (`index_lock`).  `with_document` /
`without_document` return new in-memory indexes; the old one stays valid for
readers still using it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import chain
from pathlib import Path

import faiss
import numpy as np

from .cleaning import normalize_for_matching, split_sentences
from .clauses import Chunk
from .keywords import normalize, tokens
from .segments import Segment, plan as plan_save
from .store import (IN_PROGRESS, STORE_FORMAT, DocumentStore, crash_point, fsync_dir, is_debris, remove_tree,
                    sha256_bytes, unique_suffix, write_file)

log = logging.getLogger(__name__)

FORMAT_VERSION = 4  # bump whenever passage_text / keyword_text / sentence_text change: old indexes are rebuilt
CURRENT = "CURRENT"
FILES = ("chunks.jsonl", "dense.faiss", "bm25.json", "sentences.npy")
UPLOADS_DIR = "uploads"
UPLOADS_CATALOG = "uploads/catalog.json"
_UPLOAD_FILE = re.compile(r"^uploads/[a-z0-9][a-z0-9_-]{0,63}\.txt$")
VERSION_NAME = re.compile(r"^v-[0-9]{8}-[0-9]{6}-[0-9]+-[0-9]+$")
LOCK_FILE = "LOCK"

# Dense candidates: exact inner product over every searched row up to this many chunks; above it an
# HNSW graph (built in memory on the first dense search), except for a filter of at most
# EXACT_FILTER_ROWS rows, which is scored exactly.
HNSW_THRESHOLD = 50_000
EXACT_FILTER_ROWS = 20_000
# M 64, efConstruction 200, efSearch 512: on `rag bench --scale`'s corpus of 100,000 near-duplicate
# copies, recall@10 vs exact 0.84 (0.98 of the real chunks behind them) in ~1 ms a query, against
# 0.55 (0.75) with M 32 / 80 / 128; the exact product takes ~24 ms there.
HNSW_M = 64
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 512
# BM25: rank_bm25's BM25Okapi and its defaults (scores and idf as before the move to bm25s)
BM25_K1, BM25_B, BM25_EPSILON = 1.5, 0.75, 0.25


class IndexError_(RuntimeError):
    """Base class: the index cannot be used as it is."""


class IndexMissing(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


class IndexStale(IndexError_):
    pass


class IndexBusy(IndexError_):
    """Another process holds index/LOCK longer than the caller would wait."""


@dataclass
class IndexedChunk:
    doc_id: str
    doc_title: str
    clause_id: str
    part: int
    parts: int
    section: list[str]
    text: str
    line_start: int
    line_end: int

    @property
    def chunk_id(self) -> str:
        return self.clause_id if self.parts == 1 else f"{self.clause_id}#{self.part}"

    @property
    def section_path(self) -> str:
        return " > ".join(self.section)

    @classmethod
    def from_chunk(cls, chunk: Chunk, doc_title: str) -> "IndexedChunk":
        return cls(doc_id=chunk.doc_id, doc_title=doc_title, clause_id=chunk.clause_id, part=chunk.part,
                   parts=chunk.parts, section=list(chunk.section), text=chunk.text,
                   line_start=chunk.line_start, line_end=chunk.line_end)


@dataclass
class Uploads:
    """Documents added at run time: catalog entries (upload order) and their extracted texts."""

    entries: list[dict] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)

    @property
    def doc_ids(self) -> list[str]:
        return [e["doc_id"] for e in self.entries]

    def added(self, entry: dict, text: str) -> "Uploads":
        return Uploads(self.entries + [entry], {**self.texts, entry["doc_id"]: text})

    def removed(self, doc_id: str) -> "Uploads":
        return Uploads([e for e in self.entries if e["doc_id"] != doc_id],
                       {d: t for d, t in self.texts.items() if d != doc_id})


@dataclass
class NewDocument:
    """An uploaded document parsed and embedded, ready to be appended (`KnowledgeIndex.with_documents`)."""

    entry: dict
    text: str
    chunks: list[IndexedChunk]
    vectors: np.ndarray
    bm25_tokens: list[list[str]]
    clause_count: int
    sentence_vectors: np.ndarray | None = None


_DOC_NUMBER = re.compile(r"〔\d{4}〕\d+号")
_FULL_DATE = re.compile(r"\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日")


def field_label(chunk: IndexedChunk) -> str:
    """Name the document field a header or signature line is ("某部规〔2011〕1号" is the 文号).

    Bare, such lines share no word with "发文字号是什么？" or "哪天印发的？", so
    neither the embedding nor BM25 finds them; labelled, both do.
    """
    if not chunk.clause_id.startswith(("导语", "落款")):
        return ""
    labels = []
    if _DOC_NUMBER.search(chunk.text):
        labels.append("发文字号（文号）")
    if _FULL_DATE.search(chunk.text) and len(chunk.text) <= 60:
        labels.append("发布日期（印发日期）")
    return "、".join(labels)


def passage_text(chunk: IndexedChunk, lead: str = "") -> str:
    """What gets embedded: document and heading context (and, for a list item, the sentence that
    introduces the list), then the clause text."""
    label = field_label(chunk)
    return f"{chunk.doc_title}｜{chunk.section_path}｜{label + '：' if label else ''}{lead}{chunk.text}"


LEAD_CHARS = 60


def announces_list(text: str) -> bool:
    """Does a clause or sentence announce the items after it ("…采取下列措施支持企业创新：")?"""
    return text.rstrip().endswith(("：", ":"))


def list_leads(chunks: list[IndexedChunk]) -> list[str]:
    """For each chunk, the sentence introducing the list it is an item of, else "".

    "第三条 县级以上人民政府应当采取下列措施支持企业创新：" then "（二）对研发投入给予补助…":
    the item alone does not say what it is an item of; with its lead it does.
    """
    last: dict[tuple, IndexedChunk] = {}
    out = []
    for c in chunks:
        parent = last.get((c.doc_id, tuple(c.section[:-1]))) if len(c.section) > 1 else None
        text = parent.text.strip() if parent is not None else ""
        out.append(text[-LEAD_CHARS:] + " " if announces_list(text) else "")
        last[(c.doc_id, tuple(c.section))] = c
    return out


def chunk_sentences(chunk: IndexedChunk) -> list[str]:
    """The sentences the answerer chooses among (the same split at index and at answer time)."""
    return [s.strip() for s in split_sentences(chunk.text)] or [chunk.text.strip()]


def sentence_text(chunk: IndexedChunk, sentence: str) -> str:
    """What gets embedded for one sentence: its heading path gives it context ("人才" under 发展目标)."""
    return f"{chunk.section_path}｜{sentence}"


def embed_sentences(chunks: list[IndexedChunk], chunk_vectors: np.ndarray, embedder,
                    batch: int = 32, show_progress: bool = False, progress=None) -> np.ndarray:
    """One vector per sentence of every chunk, in order; a one-sentence chunk reuses its chunk vector.
    `progress(n)`: called with the number of sentences embedded so far after each batch."""
    texts, slots, out = [], [], []
    for i, ch in enumerate(chunks):
        sents = chunk_sentences(ch)
        for s in sents:
            out.append(chunk_vectors[i] if len(sents) == 1 else None)
            if len(sents) > 1:
                texts.append(sentence_text(ch, s))
                slots.append(len(out) - 1)
    if texts:
        parts = []
        for j in range(0, len(texts), batch):
            parts.append(embedder.embed_passages(texts[j:j + batch]))
            if progress is not None:
                progress(min(len(texts), j + batch))
        vecs = np.vstack(parts)
        for slot, v in zip(slots, vecs):
            out[slot] = v
    dim = chunk_vectors.shape[1] if len(chunk_vectors) else 0
    return np.asarray(out, dtype=np.float32).reshape(len(out), dim) if out else np.zeros((0, dim), np.float32)


def keyword_text(chunk: IndexedChunk, lead: str = "") -> str:
    """What BM25 indexes: the innermost heading titles, a header line's field name, a list item's
    lead, the clause text."""
    return " ".join(chunk.section[-2:]) + " " + field_label(chunk) + " " + lead + chunk.text


def documents_text(index, scope: list[str] | None = None, matching: bool = False) -> str:
    """The searched documents' normalized text (all documents when `scope` is empty), joined once
    per index and scope: an index never changes.  `matching` also drops whitespace, as
    `normalize_for_matching` does, for substring checks of names.  Works on any object with
    `normalized_doc_texts` (the LangChain baseline's stand-in too)."""
    cache = index.__dict__.setdefault("_documents_text", {})
    key = (tuple(scope) if scope else None, matching)
    if key not in cache:
        text = " ".join(t for d, t in index.normalized_doc_texts.items() if not scope or d in scope)
        cache[key] = normalize(normalize_for_matching(text)).lower() if matching else text
    return cache[key]


def chunk_counts(token_lists: list[list[str]]) -> dict[str, int]:
    """Each token with the number of token lists (chunks) it occurs in."""
    return dict(Counter(t for toks in token_lists for t in set(toks)))


def in_corpus(index, word: str) -> bool:
    """Does any indexed document use `word`?"""
    cache = index.__dict__.setdefault("_in_corpus", {})
    if word not in cache:
        w = normalize(word)
        cache[word] = any(w in t for t in index.normalized_doc_texts.values())
    return cache[word]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` largest `values`, best first, ties in position order — exactly
    `np.argsort(-values, kind="stable")[:k]`, but only the k are sorted (`np.argpartition`)."""
    values = np.asarray(values)
    n = len(values)
    k = min(int(k), n)
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    if k < n:
        kth = values[np.argpartition(values, n - k)[n - k]]  # the k-th largest value
        above = np.flatnonzero(values > kth)
        ties = np.flatnonzero(values == kth)[: k - len(above)]  # the first ones, as a stable sort keeps them
        pos = np.sort(np.concatenate([above, ties]))
    else:
        pos = np.arange(n)
    return pos[np.argsort(-values[pos], kind="stable")]


def _bm25s():
    """bm25s, imported without scipy: we score with its numpy backend, and scipy.sparse would add
    ~0.5 s to every one-shot command (bm25s imports it only if it can)."""
    import sys

    if "bm25s" in sys.modules or "scipy.sparse" in sys.modules:
        import bm25s
        return bm25s
    sys.modules["scipy.sparse"] = None  # makes bm25s's optional `import scipy.sparse` fail
    try:
        import bm25s
    finally:
        del sys.modules["scipy.sparse"]
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG and logs every index build
    return bm25s


class SparseBM25:
    """Okapi BM25 exactly as rank_bm25's `BM25Okapi` scores it (k1 1.5, b 0.75, idf
    log((N - n + 0.5) / (n + 0.5)) with a negative idf raised to epsilon x the mean idf), on a
    sparse chunk x token matrix of precomputed term scores (bm25s): a query costs the postings of
    its tokens, not a Python pass over every chunk.

    bm25s builds the matrix from our own jieba token ids (no tokenizer, no stemming) with its
    Robertson term frequency part; each token's column is then rescaled from bm25s's idf to
    (k1 + 1) x ours, which makes every entry rank_bm25's term score (float32).
    """

    def __init__(self, token_lists: list[list[str]], k1: float = BM25_K1, b: float = BM25_B,
                 epsilon: float = BM25_EPSILON):
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self.corpus_size = len(token_lists)
        # token -> chunks using it, in rank_bm25's order (first use; the mean idf is summed in it)
        nd = Counter(chain.from_iterable(map(dict.fromkeys, token_lists)))
        self.idf: dict[str, float] = {}
        idf_sum, negative = 0.0, []
        for word, freq in nd.items():
            idf = math.log(self.corpus_size - freq + 0.5) - math.log(freq + 0.5)
            self.idf[word] = idf
            idf_sum += idf
            if idf < 0:
                negative.append(word)
        self.average_idf = idf_sum / len(self.idf) if self.idf else 0.0
        eps = self.epsilon * self.average_idf
        for word in negative:
            self.idf[word] = eps
        self.vocab = {t: i for i, t in enumerate(nd)}
        self.model = None
        if not self.vocab:
            return
        bm25s = _bm25s()
        self.model = bm25s.BM25(k1=k1, b=b, method="robertson", idf_method="lucene", dtype="float32",
                                backend="numpy", csc_backend="numpy")
        ids = [list(map(self.vocab.__getitem__, toks)) for toks in token_lists]
        self.model.index((ids, self.vocab), create_empty_token=False, show_progress=False)
        # bm25s's entry = idf_lucene(n) x tf / (tf + k1 (1 - b + b dl/avgdl)); rank_bm25's = idf(t) x (k1 + 1) x the same
        n = np.array(list(nd.values()), dtype=np.float64)
        theirs = np.log(1 + (self.corpus_size - n + 0.5) / (n + 0.5)).astype(np.float32).astype(np.float64)
        ours = np.array(list(self.idf.values()), dtype=np.float64)
        factor = (k1 + 1) * ours / theirs
        scores = self.model.scores
        per_column = np.diff(scores["indptr"])
        scores["data"] = (scores["data"].astype(np.float64) * np.repeat(factor, per_column)).astype(np.float32)

    def token_ids(self, query_tokens: list[str]) -> list[int]:
        """Ids of the query's tokens that some chunk uses, repeats kept (a repeated word counts twice)."""
        return [self.vocab[t] for t in query_tokens if t in self.vocab]

    def get_scores(self, query_tokens: list[str]) -> np.ndarray:
        """Every chunk's score for the query (float32; rank_bm25's `get_scores`)."""
        ids = self.token_ids(query_tokens)
        if self.model is None or not ids:
            return np.zeros(self.corpus_size, dtype=np.float32)
        return self.model.get_scores_from_ids(ids)


class KnowledgeIndex:
    """In-memory index: dense (FAISS inner product on normalized vectors) and BM25."""

    def __init__(self, chunks: list[IndexedChunk], vectors: np.ndarray, bm25_tokens: list[list[str]],
                 manifest: dict, uploads: Uploads | None = None, sentence_vectors: np.ndarray | None = None,
                 hnsw_threshold: int | None = None):
        if len(chunks) != len(vectors) or len(chunks) != len(bm25_tokens):
            raise IndexCorrupt("chunks, vectors and BM25 tokens disagree in count")
        self.chunks = chunks
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        # sentence_start[i] is the row of chunk i's first sentence in sentence_vectors
        counts = [len(chunk_sentences(c)) for c in chunks]
        self.sentence_start = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        if sentence_vectors is None:  # no sentence vectors: each sentence stands for its chunk
            sentence_vectors = np.repeat(self.vectors, counts, axis=0) if chunks else self.vectors
        if len(sentence_vectors) != int(self.sentence_start[-1]):
            raise IndexCorrupt("sentence vectors and chunk sentences disagree in count")
        self.sentence_vectors = np.ascontiguousarray(sentence_vectors, dtype=np.float32)
        self.bm25_tokens = bm25_tokens
        self.manifest = manifest
        self.uploads = uploads or Uploads()
        self.version: str | None = None  # the version folder this index was loaded from or saved as
        # The version folders on disk whose rows are this index's first rows (rag/segments.py); the
        # rows after theirs are not saved yet.  Empty: a save writes every row.
        self.segments: tuple[Segment, ...] = ()
        self.last_save: dict | None = None  # what the last `save` wrote (kind, rows, bytes): for `rag bench`
        # above this many chunks dense candidates come from an HNSW graph (`hnsw`)
        self.hnsw_threshold = HNSW_THRESHOLD if hnsw_threshold is None else hnsw_threshold
        self.bm25 = SparseBM25(bm25_tokens) if bm25_tokens else None
        # Computed once: idf() is called for every keyword of every candidate sentence.
        self._max_idf = max(self.bm25.idf.values(), default=1.0) if self.bm25 is not None else 0.0
        self.doc_rows: dict[str, np.ndarray] = {}
        for i, ch in enumerate(chunks):
            self.doc_rows.setdefault(ch.doc_id, [])
            self.doc_rows[ch.doc_id].append(i)
        self.doc_rows = {d: np.array(rows) for d, rows in self.doc_rows.items()}

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def doc_ids(self) -> list[str]:
        return list(self.doc_rows)

    def rows_for(self, documents: list[str] | None) -> np.ndarray | None:
        """The rows of `documents`' chunks (each document once, in the order given); None = all."""
        if not documents:
            return None
        parts = [self.doc_rows[d] for d in dict.fromkeys(documents) if d in self.doc_rows]
        return np.concatenate(parts) if parts else np.array([], dtype=int)

    def flat_index(self, start: int = 0) -> faiss.IndexFlatIP:
        """A flat (exact) FAISS index of the chunk vectors from row `start` on: what a segment's
        `dense.faiss` holds.  Made when needed (saving), not kept: searches use `vectors` (or `hnsw`)
        directly."""
        flat = faiss.IndexFlatIP(self.vectors.shape[1])
        if len(self.vectors) > start:
            flat.add(self.vectors[start:])
        return flat

    @property
    def uses_hnsw(self) -> bool:
        return len(self) > self.hnsw_threshold

    @cached_property
    def hnsw(self) -> faiss.IndexHNSWFlat:
        """An HNSW graph (inner product) over the chunk vectors, built on first use."""
        graph = faiss.IndexHNSWFlat(self.vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        graph.hnsw.efSearch = HNSW_EF_SEARCH
        if len(self.vectors):
            graph.add(self.vectors)
        return graph

    def dense_scores(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of the query to every chunk (vectors are normalized)."""
        return self.vectors @ np.asarray(query_vector, dtype=np.float32)

    def dense_top(self, query_vector: np.ndarray, k: int, rows: np.ndarray | None = None,
                  exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the `k` chunks nearest the query among `rows` (all when None), best first,
        and their cosine similarity.

        Exact (inner product over the searched rows, `top_k`) up to `hnsw_threshold` chunks, and
        for a filter of at most EXACT_FILTER_ROWS rows; above, the HNSW graph, a filter passed to
        it as an IDSelector.  `exact` forces either way.
        """
        q = np.asarray(query_vector, dtype=np.float32)
        n = len(self) if rows is None else len(rows)
        k = min(int(k), n)
        if k <= 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
        if exact is None:
            exact = not self.uses_hnsw or (rows is not None and len(rows) <= EXACT_FILTER_ROWS)
        if exact:
            scores = self.vectors @ q if rows is None else self.vectors[rows] @ q
            pos = top_k(scores, k)
            return (pos if rows is None else rows[pos]), scores[pos]
        ef = max(HNSW_EF_SEARCH, k)
        if rows is None:
            params = faiss.SearchParametersHNSW(efSearch=ef)
        else:
            params = faiss.SearchParametersHNSW(sel=faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64)),
                                                efSearch=ef)
        scores, ids = self.hnsw.search(q[None, :], k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.intp), scores[0][keep]

    def dense_search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        ids, scores = self.dense_top(query_vector, k)
        return [(int(i), float(s)) for i, s in zip(ids, scores)]

    def bm25_scores(self, query_tokens: list[str]) -> np.ndarray:
        if self.bm25 is None or not query_tokens:
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(query_tokens), dtype=np.float32)

    def bm25_top(self, query_tokens: list[str], k: int, rows: np.ndarray | None = None):
        """The rows of the `k` best BM25 matches with a positive score among `rows` (all when None),
        best first, ties in the order of `rows`; and a function giving any row's score."""
        scores = self.bm25_scores(query_tokens)
        pos = top_k(scores, k) if rows is None else rows[top_k(scores[rows], k)]
        return [int(r) for r in pos if scores[r] > 0], lambda r: float(scores[r])

    @cached_property
    def vocabulary(self) -> dict[str, int]:
        """Every keyword token of the indexed documents, with the number of chunks using it: what
        an English question's words are translated into (`rag.english`)."""
        return chunk_counts(self.bm25_tokens)

    def has_token(self, token: str) -> bool:
        """Is `token` a keyword token of some chunk (a key of `vocabulary`, without counting them all)?"""
        return self.bm25 is not None and token in self.bm25.idf

    @cached_property
    def normalized_doc_texts(self) -> dict[str, str]:
        """Each document's section paths and text, normalized: what the answerer checks a
        question's nouns against.  Computed once (an index never changes)."""
        parts: dict[str, list[str]] = {}
        for ch in self.chunks:
            parts.setdefault(ch.doc_id, []).append(ch.section_path + ch.text)
        return {d: normalize(" ".join(p)) for d, p in parts.items()}

    def sentence_scores(self, row: int, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of the query to each sentence of chunk `row`."""
        a, b = self.sentence_start[row], self.sentence_start[row + 1]
        return self.sentence_vectors[a:b] @ np.asarray(query_vector, dtype=np.float32)

    def idf(self, token: str) -> float:
        if self.bm25 is None:
            return 0.0
        return float(self.bm25.idf.get(token, self._max_idf))

    # -- incremental changes (uploads) ---------------------------------------

    def with_document(self, entry: dict, text: str, chunks: list[IndexedChunk], vectors: np.ndarray,
                      bm25_tokens: list[list[str]], clause_count: int,
                      sentence_vectors: np.ndarray | None = None) -> "KnowledgeIndex":
        """A new index with one uploaded document appended; `self` is left untouched."""
        return self.with_documents([NewDocument(entry, text, chunks, vectors, bm25_tokens, clause_count,
                                                sentence_vectors)])

    def with_documents(self, docs: list["NewDocument"]) -> "KnowledgeIndex":
        """A new index with uploaded documents appended (one FAISS and BM25 build for all of them);
        `self` is left untouched."""
        chunks, vectors, bm25, sentences = list(self.chunks), [self.vectors], list(self.bm25_tokens), \
            [self.sentence_vectors]
        uploads, doc_ids = self.uploads, self.doc_ids
        clause_count, clause_counts = self.manifest.get("clause_count", 0), {}
        for doc in docs:
            doc_id = doc.entry["doc_id"]
            if doc_id in doc_ids:
                raise ValueError(f"document {doc_id!r} is already in the index")
            if any(c.doc_id != doc_id for c in doc.chunks):
                raise ValueError("every chunk of an upload must carry its doc_id")
            vecs = np.asarray(doc.vectors, dtype=np.float32).reshape(len(doc.chunks), -1)
            if len(doc.chunks) and vecs.shape[1] != self.vectors.shape[1]:
                raise ValueError(f"vector dimension {vecs.shape[1]} != index dimension {self.vectors.shape[1]}")
            sents = doc.sentence_vectors
            if sents is None:
                sents = np.repeat(vecs, [len(chunk_sentences(c)) for c in doc.chunks], axis=0)
            chunks += doc.chunks
            vectors.append(vecs)
            bm25 += doc.bm25_tokens
            sentences.append(np.asarray(sents, np.float32))
            uploads = uploads.added(doc.entry, doc.text)
            doc_ids = doc_ids + [doc_id]
            clause_count += doc.clause_count
            clause_counts[doc_id] = doc.clause_count
        manifest = self._changed_manifest(len(chunks), clause_count, doc_ids)
        manifest["upload_clause_counts"].update(clause_counts)
        new = KnowledgeIndex(chunks, np.vstack(vectors), bm25, manifest, uploads, np.vstack(sentences),
                             hnsw_threshold=self.hnsw_threshold)
        new.segments = self.segments  # the new rows come after the saved ones: the next save writes only them
        return new

    def without_document(self, doc_id: str) -> "KnowledgeIndex":
        """A new index without the uploaded document `doc_id`; `self` is left untouched."""
        if doc_id not in self.uploads.doc_ids:
            raise KeyError(doc_id)
        keep = [i for i, c in enumerate(self.chunks) if c.doc_id != doc_id]
        counts = dict(self.manifest.get("upload_clause_counts", {}))
        removed_clauses = counts.pop(doc_id, 0)
        manifest = self._changed_manifest(len(keep), self.manifest.get("clause_count", 0) - removed_clauses,
                                          [d for d in self.doc_ids if d != doc_id])
        manifest["upload_clause_counts"] = counts
        sent_rows = [j for i in keep for j in range(self.sentence_start[i], self.sentence_start[i + 1])]
        new = KnowledgeIndex([self.chunks[i] for i in keep], self.vectors[keep] if keep else self.vectors[:0],
                             [self.bm25_tokens[i] for i in keep], manifest, self.uploads.removed(doc_id),
                             self.sentence_vectors[sent_rows] if sent_rows else self.sentence_vectors[:0],
                             hnsw_threshold=self.hnsw_threshold)
        # a saved document gets a tombstone in its segment; an unsaved one's rows are simply gone
        new.segments = tuple(s.without(doc_id) if s.holds(doc_id) else s for s in self.segments)
        return new

    def _changed_manifest(self, chunk_count: int, clause_count: int, documents: list[str]) -> dict:
        manifest = {k: v for k, v in self.manifest.items() if k != "files"}
        manifest.update(chunk_count=chunk_count, clause_count=clause_count, documents=documents,
                        changed_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        manifest["upload_clause_counts"] = dict(self.manifest.get("upload_clause_counts", {}))
        return manifest

    # -- persistence -------------------------------------------------------

    def save(self, index_dir: Path, before_publish=None, compact: bool = False) -> Path:
        """Write a new version folder, then atomically point CURRENT at it.

        The folder holds only the rows the index's segments on disk do not (rag/segments.py): an
        upload's rows, none for a delete (its manifest tombstones the document), every row for a
        first build or a compaction (`compact`, or when `plan_save` says so).

        Each step is durable (fsynced) before the next: the version is written
        under `.tmp-v-…`; `before_publish()` runs (the service stores an upload's
        text, or deletes a document from the store, there); the folder is renamed
        to `v-…`; CURRENT is swapped.  Only then are the versions it no longer
        lists removed, and only those whose uploads are all safe in the document
        store.  An exception before the swap removes the new folder and
        propagates: nothing is published.
        """
        index_dir = Path(index_dir)
        index_dir.mkdir(parents=True, exist_ok=True)
        segments = self.segments if self._segments_on_disk(index_dir) else ()
        kept, kind = plan_save(segments, len(self) - sum(s.live for s in segments), compact)
        start = sum(s.live for s in kept)
        before = {d for s in kept for d in s.live_docs()}
        rows = np.arange(start, len(self))
        own_uploads = [e for e in self.uploads.entries if e["doc_id"] not in before]
        name = f"v-{time.strftime('%Y%m%d-%H%M%S')}-{unique_suffix()}"
        tmp = index_dir / f".tmp-{name}"
        final = index_dir / name
        renamed = False
        IN_PROGRESS.add(tmp.name)
        try:
            tmp.mkdir()
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
                for i in rows:
                    f.write(json.dumps(asdict(self.chunks[i]), ensure_ascii=False) + "\n")
            faiss.write_index(self.flat_index(start), str(tmp / "dense.faiss"))
            (tmp / "bm25.json").write_text(json.dumps(self.bm25_tokens[start:], ensure_ascii=False), encoding="utf-8")
            with open(tmp / "sentences.npy", "wb") as f:
                np.save(f, self.sentence_vectors[int(self.sentence_start[start]):], allow_pickle=False)
            files = list(FILES)
            if own_uploads:
                (tmp / UPLOADS_DIR).mkdir()
                for entry in own_uploads:
                    fn = f"{UPLOADS_DIR}/{entry['doc_id']}.txt"
                    if not _UPLOAD_FILE.fullmatch(fn):
                        raise ValueError(f"refusing to write upload file {fn!r}")
                    (tmp / fn).write_text(self.uploads.texts[entry["doc_id"]], encoding="utf-8")
                    files.append(fn)
                (tmp / UPLOADS_CATALOG).write_text(
                    json.dumps({"documents": own_uploads}, ensure_ascii=False, indent=2), encoding="utf-8")
                files.append(UPLOADS_CATALOG)
            for fn in files:
                with open(tmp / fn, "rb") as f:
                    os.fsync(f.fileno())
            crash_point("index.save:segment")  # the rows written, the manifest not yet
            merged = {k: v for k, v in self.manifest.items() if k not in ("files", "segments")}
            merged["uploads"] = self.uploads.doc_ids
            merged["document_store"] = STORE_FORMAT  # uploads are kept in documents/ too (rag/store.py)
            own_docs = [d for d in (self.manifest.get("documents") or self.doc_ids) if d not in before]
            manifest = {**merged, "documents": own_docs, "uploads": [e["doc_id"] for e in own_uploads],
                        "upload_clause_counts": {d: n for d, n in merged.get("upload_clause_counts", {}).items()
                                                 if d not in before},
                        "segments": [s.ref() for s in kept], "segment_chunks": len(rows),
                        "files": {fn: _sha256(tmp / fn) for fn in files}}
            if not kept:
                del manifest["segments"]  # one segment: the layout every earlier version wrote
            manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")
            write_file(tmp / "manifest.json", manifest_bytes)
            if own_uploads:
                fsync_dir(tmp / UPLOADS_DIR)
            fsync_dir(tmp)
            crash_point("index.save:written")
            crash_point(f"index.{kind}:written")
            if before_publish is not None:
                before_publish()
            os.rename(tmp, final)
            renamed = True
            fsync_dir(index_dir)
            crash_point("index.save:renamed")
            pointer = index_dir / f".{CURRENT}.tmp-{unique_suffix()}"
            write_file(pointer, name.encode())
            os.replace(pointer, index_dir / CURRENT)
        except BaseException:
            shutil.rmtree(final if renamed else tmp, ignore_errors=True)
            raise
        finally:
            IN_PROGRESS.discard(tmp.name)
        # Published: from here on nothing may raise (a caller would undo what is now live).
        self.manifest = {**merged, "files": manifest["files"]}
        self.version = name
        own = Segment(name, sha256_bytes(manifest_bytes),
                      _doc_rows_in(self.chunks[start:], own_docs + manifest["uploads"]))
        self.segments = (*kept, own) if own.docs else tuple(kept)
        self.last_save = {"kind": kind, "segments": len(self.segments), "rows_written": len(rows),
                          "bytes_written": sum((final / fn).stat().st_size for fn in (*files, "manifest.json"))}
        try:
            fsync_dir(index_dir)
            crash_point("index.save:swapped")
            crash_point(f"index.{kind}:swapped")
            remove_old_versions(index_dir, keep=name)  # only now that the new CURRENT is durable
        except OSError as exc:
            log.error("index version %s is published, but finishing up failed: %s", name, exc.strerror or exc)
        return final

    def _segments_on_disk(self, index_dir: Path) -> bool:
        """Are this index's first rows its segments' live rows, and are those still the folders it was
        loaded from or saved as?  (Not when another process compacted them away, or one was damaged
        since: then a save writes every row.)"""
        for s in self.segments:
            if any(len(self.doc_rows.get(d, ())) != n for d, n in s.docs if d not in s.deleted):
                log.warning("index rows and segment %s disagree: this save writes the whole index", s.version)
                return False
            try:
                if _sha256(index_dir / s.version / "manifest.json") != s.manifest_sha256:
                    raise OSError("changed")
            except OSError:
                log.warning("index segment %s changed on disk: this save writes the whole index", s.version)
                return False
        return True

    @classmethod
    def load(cls, index_dir: Path) -> "KnowledgeIndex":
        """The active version: the segments its manifest lists (minus their tombstones), then its own
        rows, every file checked against the manifests.  Error messages name files relative to the
        index folder (they end up in logs and /healthz)."""
        index_dir = Path(index_dir)
        name = current_version(index_dir)
        manifest, sha = _read_manifest(index_dir, name)
        refs = manifest.get("segments", [])
        if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
            raise IndexCorrupt(f"{name}/manifest.json has an unreadable segment list")
        parts = []
        for ref in refs:
            seg = ref.get("version")
            if not isinstance(seg, str) or not VERSION_NAME.fullmatch(seg) or seg == name:
                raise IndexCorrupt(f"{name}/manifest.json lists a segment outside the index versions ({str(seg)[:80]!r})")
            if not (index_dir / seg).is_dir():
                raise IndexCorrupt(f"{name}/manifest.json lists segment {seg!r}, which does not exist")
            seg_manifest, seg_sha = _read_manifest(index_dir, seg)
            if seg_sha != ref.get("manifest_sha256"):
                raise IndexCorrupt(f"{seg}/manifest.json is not the one {name}/manifest.json lists (checksum mismatch)")
            parts.append(_read_segment(index_dir, seg, seg_manifest, seg_sha, set(ref.get("deleted") or ())))
        parts.append(_read_segment(index_dir, name, manifest, sha, set()))
        merged = {k: v for k, v in manifest.items() if k not in ("segments", "segment_chunks")}
        merged["documents"] = [d for p in parts for d in p.documents]
        merged["uploads"] = [e["doc_id"] for p in parts for e in p.uploads.entries]
        merged["upload_clause_counts"] = {d: n for p in parts for d, n in p.upload_clause_counts.items()}
        dim = int(manifest.get("dimension") or parts[-1].vectors.shape[1])
        uploads = Uploads([e for p in parts for e in p.uploads.entries],
                          {d: t for p in parts for d, t in p.uploads.texts.items()})
        try:
            index = cls([c for p in parts for c in p.chunks],
                        np.vstack([p.vectors.reshape(-1, dim) for p in parts]),
                        [t for p in parts for t in p.bm25_tokens], merged, uploads,
                        np.vstack([p.sentence_vectors.reshape(-1, dim) for p in parts]))
        except ValueError as exc:
            raise IndexCorrupt(f"{name}'s segments do not fit together: {exc}") from None
        index.version = name
        index.segments = tuple(p.segment for p in parts if p.segment.docs)
        return index


@dataclass
class _Part:
    """One segment's rows as read from its folder, tombstoned documents left out."""

    chunks: list[IndexedChunk]
    vectors: np.ndarray
    bm25_tokens: list[list[str]]
    sentence_vectors: np.ndarray
    uploads: Uploads
    documents: list[str]
    upload_clause_counts: dict[str, int]
    segment: Segment


def _read_manifest(index_dir: Path, name: str) -> tuple[dict, str]:
    """A version folder's manifest (format checked) and the sha256 of its bytes."""
    folder = Path(index_dir) / name
    try:
        raw = (folder / "manifest.json").read_bytes()
        manifest = json.loads(raw.decode("utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        raise IndexCorrupt(f"{name}/manifest.json is missing") from None
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"{name}/manifest.json is unreadable: {_why(exc, folder, name)}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexStale(f"index format {manifest.get('format_version')} != {FORMAT_VERSION}")
    return manifest, sha256_bytes(raw)


def _read_segment(index_dir: Path, name: str, manifest: dict, sha: str, deleted: set[str]) -> _Part:
    folder = Path(index_dir) / name
    _verify_files(folder, manifest, FILES, name)
    uploads = _read_uploads(folder, manifest, name)
    try:
        chunks = [IndexedChunk(**json.loads(line))
                  for line in (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line]
        dense = faiss.read_index(str(folder / "dense.faiss"))
        vectors = dense.reconstruct_n(0, dense.ntotal) if dense.ntotal else np.zeros((0, dense.d), np.float32)
        bm25_tokens = json.loads((folder / "bm25.json").read_text(encoding="utf-8"))
        sentence_vectors = np.load(folder / "sentences.npy", allow_pickle=False)
        documents = list(manifest.get("documents") or dict.fromkeys(c.doc_id for c in chunks))
        counts = dict(manifest.get("upload_clause_counts") or {})
    except Exception as exc:  # any parse failure of a checksummed file is corruption
        raise IndexCorrupt(f"{name} cannot be read: {_why(exc, folder, name)}") from None
    segment = Segment(name, sha, _doc_rows_in(chunks, documents + uploads.doc_ids), frozenset(deleted))
    if deleted:
        keep = [i for i, c in enumerate(chunks) if c.doc_id not in deleted]
        starts = np.concatenate([[0], np.cumsum([len(chunk_sentences(c)) for c in chunks])]).astype(int)
        sent_rows = [j for i in keep for j in range(starts[i], starts[i + 1])]
        chunks, vectors = [chunks[i] for i in keep], vectors[keep]
        bm25_tokens, sentence_vectors = [bm25_tokens[i] for i in keep], sentence_vectors[sent_rows]
        uploads = Uploads([e for e in uploads.entries if e["doc_id"] not in deleted],
                          {d: t for d, t in uploads.texts.items() if d not in deleted})
        documents = [d for d in documents if d not in deleted]
        counts = {d: n for d, n in counts.items() if d not in deleted}
    return _Part(chunks, vectors, bm25_tokens, sentence_vectors, uploads, documents, counts, segment)


def _doc_rows_in(chunks: list[IndexedChunk], documents: list[str]) -> tuple[tuple[str, int], ...]:
    """(doc_id, rows) for every document of a segment: `documents` first, in their order, then any other
    document its chunks carry."""
    counts = Counter(c.doc_id for c in chunks)
    order = dict.fromkeys([*documents, *counts])
    return tuple((d, counts.get(d, 0)) for d in order)


def _why(exc: BaseException, folder: Path, name: str) -> str:
    """An exception's message without absolute paths."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).replace(str(folder), name).replace(str(folder.parent) + os.sep, "")[:200]


def current_version(index_dir: Path) -> str:
    """The version folder CURRENT names; IndexMissing / IndexCorrupt when it is missing or bad."""
    index_dir = Path(index_dir)
    try:
        raw = (index_dir / CURRENT).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IndexMissing("no index: CURRENT is missing (run `rag index build`)") from None
    except (OSError, UnicodeDecodeError):
        raise IndexCorrupt("CURRENT is unreadable") from None
    name = raw.strip()
    if not name:
        raise IndexCorrupt("CURRENT is empty")
    if not VERSION_NAME.fullmatch(name):
        raise IndexCorrupt(f"CURRENT points outside the index versions ({name[:80]!r})")
    if not (index_dir / name).is_dir():
        raise IndexCorrupt(f"CURRENT names version {name!r}, which does not exist")
    return name


def _verify_files(folder: Path, manifest: dict, names, name: str) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise IndexCorrupt(f"{name}/manifest.json has no file checksums")
    for fn in names:
        expected = files.get(fn)
        try:
            actual = _sha256(folder / fn)
        except OSError:
            raise IndexCorrupt(f"{name}/{fn} is missing") from None
        if actual != expected:
            raise IndexCorrupt(f"{name}/{fn} is corrupted (checksum mismatch)")


def _read_uploads(folder: Path, manifest: dict, name: str) -> Uploads:
    """The uploaded documents of a version folder, every file checked against the manifest."""
    files = manifest.get("files", {})
    if UPLOADS_CATALOG not in files:
        return Uploads()
    names = [fn for fn in files if fn.startswith(f"{UPLOADS_DIR}/")]
    bad = [fn for fn in names if fn != UPLOADS_CATALOG and not _UPLOAD_FILE.fullmatch(fn)]
    if bad:
        raise IndexCorrupt(f"{name}/manifest.json lists unexpected upload files {bad}")
    _verify_files(folder, manifest, names, name)
    try:
        entries = json.loads((folder / UPLOADS_CATALOG).read_text(encoding="utf-8"))["documents"]
        texts = {}
        for entry in entries:
            fn = f"{UPLOADS_DIR}/{entry['doc_id']}.txt"
            if fn not in files:
                raise IndexCorrupt(f"upload {entry['doc_id']!r} has no checksummed text file")
            texts[entry["doc_id"]] = (folder / fn).read_text(encoding="utf-8")
    except IndexCorrupt:
        raise
    except Exception as exc:
        raise IndexCorrupt(f"{name}/{UPLOADS_CATALOG} cannot be read: {_why(exc, folder, name)}") from None
    return Uploads(entries, texts)


# -- the version folders: recovery and clean-up --------------------------------------------------

def list_versions(index_dir: Path) -> list[str]:
    """Names of the version folders, newest first (names start with their creation time)."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return []
    return sorted((p.name for p in index_dir.iterdir() if p.is_dir() and VERSION_NAME.fullmatch(p.name)),
                  reverse=True)


def version_upload_ids(folder: Path) -> set[str]:
    """Ids of the uploaded texts a version folder holds on disk, whatever state its manifest is in."""
    up = Path(folder) / UPLOADS_DIR
    if not up.is_dir():
        return set()
    return {p.stem for p in up.iterdir() if p.suffix == ".txt" and _UPLOAD_FILE.fullmatch(f"{UPLOADS_DIR}/{p.name}")}


@dataclass
class VersionCopies:
    """The uploads of one version folder that pass their checksums, and the ids of those that do not."""

    version: str
    uploads: Uploads
    unverifiable: set[str]
    store_aware: bool  # written by a version that kept a document store (a missing store copy is damage)


def version_copies(index_dir: Path, name: str) -> VersionCopies:
    """Every upload of version `name` whose text and catalog entry pass the manifest's checksums.

    Tolerant, one document at a time: a damaged index file or one bad text does
    not stop the other documents from being recovered.
    """
    folder = Path(index_dir) / name
    on_disk = version_upload_ids(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["files"]
        if _sha256(folder / UPLOADS_CATALOG) != files[UPLOADS_CATALOG]:
            raise ValueError("catalog checksum")
        entries = json.loads((folder / UPLOADS_CATALOG).read_text(encoding="utf-8"))["documents"]
    except Exception:
        return VersionCopies(name, Uploads(), on_disk, False)
    good = Uploads()
    for entry in entries:
        try:
            fn = f"{UPLOADS_DIR}/{entry['doc_id']}.txt"
            if not _UPLOAD_FILE.fullmatch(fn) or _sha256(folder / fn) != files.get(fn):
                continue
            good = good.added(entry, (folder / fn).read_text(encoding="utf-8"))
        except Exception:
            continue
    return VersionCopies(name, good, on_disk - set(good.doc_ids), bool(manifest.get("document_store")))


def clean_debris(index_dir: Path) -> list[str]:
    """Remove what dead processes left: `.tmp-v-…`, `.CURRENT.tmp-…` and other temporary files of a pid
    that is not running, and `.trash-…` (half-deleted old versions).  Returns the names removed."""
    index_dir = Path(index_dir)
    removed = []
    if not index_dir.is_dir():
        return removed
    for path in sorted(index_dir.iterdir()):
        n = path.name
        if n.startswith(".trash-") or (n.startswith(".") and ".tmp-" in n and is_debris(path)) \
                or (n.startswith(f".{CURRENT}.") and n[len(CURRENT) + 2:].isdigit()):  # the pointer of old builds
            if path.is_dir():
                remove_tree(path)
            else:
                path.unlink(missing_ok=True)
            removed.append(n)
    return removed


def version_segments(index_dir: Path, name: str) -> list[str]:
    """The earlier version folders whose segments version `name` is built on (rag/segments.py)."""
    manifest, _ = _read_manifest(index_dir, name)
    refs = manifest.get("segments", [])
    if not isinstance(refs, list) or not all(isinstance(r, dict) and isinstance(r.get("version"), str) for r in refs):
        raise IndexCorrupt(f"{name}/manifest.json has an unreadable segment list")
    return [r["version"] for r in refs]


def remove_old_versions(index_dir: Path, keep: str) -> list[str]:
    """Remove the version folders other than `keep` and the segments it lists, except any holding
    an upload the store lacks.

    A folder is first renamed to `.trash-<name>` (atomic), then deleted: a crash
    half-way leaves debris that `clean_debris` removes, never a half-deleted version.
    """
    index_dir = Path(index_dir)
    store = DocumentStore(index_dir)
    try:
        listed = {keep, *version_segments(index_dir, keep)}
    except IndexError_ as exc:
        log.warning("keeping every index version: the segments of %s cannot be read (%s)", keep, exc)
        return []
    kept = set().union(*(version_upload_ids(index_dir / name) for name in listed))
    removed = []
    for name in list_versions(index_dir):
        if name in listed:
            continue
        unsafe = sorted(d for d in version_upload_ids(index_dir / name)
                        if d not in kept and not store.holds(d) and not store.is_tombstoned(d))
        if unsafe:
            log.warning("keeping old index version %s: it holds uploaded documents the document store lacks (%s)",
                        name, ", ".join(unsafe))
            continue
        os.rename(index_dir / name, index_dir / f".trash-{name}")
        removed.append(name)
    if removed:
        fsync_dir(index_dir)
    for path in sorted(index_dir.iterdir()):
        if path.name.startswith(".trash-") and path.is_dir():
            remove_tree(path, point="index.cleanup:partial")
    return removed


@contextmanager
def index_lock(index_dir: Path, exclusive: bool, timeout: float = 120.0):
    """Cross-process lock on `<index_dir>/LOCK`: writers exclusive, readers shared.

    A reader never creates the file (a read command changes nothing on disk);
    without it there is no writer to wait for.
    """
    index_dir = Path(index_dir)
    path = index_dir / LOCK_FILE
    if exclusive:
        index_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    else:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            yield
            return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusy(f"another process holds {LOCK_FILE} for more than {timeout:.0f}s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def build_index(chunks: list[Chunk], titles: dict[str, str], embedder, manifest_extra: dict,
                show_progress: bool = False) -> KnowledgeIndex:
    """Embed and tokenize chunks into a fresh in-memory index."""
    started = time.perf_counter()
    indexed = [IndexedChunk.from_chunk(ch, titles[ch.doc_id]) for ch in chunks]
    leads = list_leads(indexed)
    vectors = embedder.embed_passages([passage_text(c, lead) for c, lead in zip(indexed, leads)],
                                      show_progress=show_progress)
    sentence_vectors = embed_sentences(indexed, vectors, embedder, show_progress=show_progress)
    bm25_tokens = [tokens(keyword_text(c, lead)) for c, lead in zip(indexed, leads)]
    manifest = {
        "format_version": FORMAT_VERSION,
        "dimension": int(vectors.shape[1]) if len(vectors) else embedder.dimension,
        "chunk_count": len(indexed),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **manifest_extra,
    }
    manifest["build_seconds"] = round(time.perf_counter() - started, 2)
    return KnowledgeIndex(indexed, vectors, bm25_tokens, manifest, sentence_vectors=sentence_vectors)
