"""Milvus as the search engine of the index: `RAG_STORE=milvus-lite:PATH` or `RAG_STORE=milvus://HOST:PORT`.

The embedded store (FAISS + bm25s, rag/index.py) stays the default.  With a
Milvus store the index versions and the document store are kept exactly as
before (the uploaded texts stay in `index/documents/`, rag/store.py); Milvus
holds derived data only, one collection per index folder:

    <name>        one row per chunk: pk "<doc_id>/<i>" (i-th chunk of its document), doc_id, the
                  chunk's fields as JSON, its dense vector, its keyword tokens (a VARCHAR with an
                  analyzer) and the sparse vector Milvus's BM25 function derives from them
    <name>_docs   one row per document: doc_id, a fingerprint of its chunks, vectors and tokens

Dense and keyword candidates (`dense_top`, `bm25_top`) come from Milvus searches,
a document filter as a filter expression (`doc_id in [...]`); the rest of what
the answerer reads (chunk rows, sentence vectors, idf) stays in memory.

`MilvusStore.sync(index)` brings the collection in step with an index: a
document whose fingerprint Milvus lacks is (re)inserted, chunks first, then its
document row; one Milvus holds that the index does not (deleted, tombstoned,
rebuilt) is removed, document row first.  It runs whenever the service makes a
snapshot (at start, after each upload or delete), so a crash between
publishing a version and updating Milvus is repaired at the next start: the
collection can always be rebuilt from the index, itself rebuilt from the seeds
and the document store.

Keyword search is Milvus full-text search (a BM25 function) over our own jieba
tokens, written space-separated with the "standard" analyzer; characters the
analyzer would split on ("4.5%") are escaped into word characters first.
pymilvus is imported only here, and only when a Milvus store is configured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .index import IndexStale, KnowledgeIndex
from .logs import quieted

log = logging.getLogger(__name__)

STORE_ENV = "RAG_STORE"
INSERT_BATCH = 1000
MAX_VARCHAR = 65535
# HNSW parameters for a cluster's dense index (as the embedded store's, rag/index.py)
HNSW_PARAMS = {"M": 64, "efConstruction": 200}
HNSW_EF = 512


@dataclass(frozen=True)
class MilvusConfig:
    uri: str  # a Milvus Lite file (…/name.db) or http://host:port
    collection: str | None = None  # default: derived from the index folder
    index_type: str = "FLAT"  # the dense index: FLAT (exact) or HNSW
    token: str = ""

    @property
    def lite(self) -> bool:
        return self.uri.endswith(".db")


def store_config(value: str | None = None) -> MilvusConfig | None:
    """The Milvus store `RAG_STORE` names, or None for the embedded store ("", "embedded", "faiss").

    milvus-lite:/path/file.db             Milvus Lite, in this process (the file must end in .db)
    milvus://host:19530                   a Milvus server or cluster (milvus+https:// for TLS)
    …?collection=NAME&index=HNSW          optional: collection name, dense index type
    The token of a secured cluster comes from RAG_MILVUS_TOKEN ("user:password" or an API key).
    """
    value = (os.environ.get(STORE_ENV, "") if value is None else value).strip()
    if value.lower() in ("", "embedded", "faiss"):
        return None
    parts = urlsplit(value)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    index_type = query.get("index", "").upper()
    if index_type not in ("", "FLAT", "HNSW"):
        raise ValueError(f"{STORE_ENV}: index must be FLAT or HNSW, not {index_type!r}")
    collection = query.get("collection") or None
    if collection is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", collection):
        raise ValueError(f"{STORE_ENV}: bad collection name {collection!r}")
    if parts.scheme == "milvus-lite":
        path = value[len("milvus-lite:"):].split("?", 1)[0]
        if not path.endswith(".db"):
            raise ValueError(f"{STORE_ENV}: a Milvus Lite file must end in .db ({path!r})")
        return MilvusConfig(str(Path(path).expanduser().resolve()), collection, index_type or "FLAT")
    if parts.scheme in ("milvus", "milvus+http", "milvus+https"):
        if not parts.hostname:
            raise ValueError(f"{STORE_ENV}: no host in {value!r}")
        scheme = "https" if parts.scheme == "milvus+https" else "http"
        return MilvusConfig(f"{scheme}://{parts.hostname}:{parts.port or 19530}", collection, index_type or "HNSW",
                            os.environ.get("RAG_MILVUS_TOKEN", ""))
    raise ValueError(f"{STORE_ENV}={value!r}: use milvus-lite:/path/file.db or milvus://host:port "
                     "(or leave it empty for the embedded store)")


_NON_WORD = re.compile(r"[^\w]|_")


def encode_token(token: str) -> str:
    """A keyword token as one run of word characters (what the "standard" analyzer keeps whole):
    every other character, and "_", written as _<hex>_ ("4.5%" -> "4_2e_5_25_")."""
    return _NON_WORD.sub(lambda m: f"_{ord(m.group()):x}_", token.lower())


def keyword_field(tokens: list[str]) -> str:
    return " ".join(encode_token(t) for t in tokens if t.strip())


def _groups(doc_ids: list[str], size: int = 500):
    for i in range(0, len(doc_ids), size):
        yield doc_ids[i:i + size]


def _expr_in(doc_ids) -> str:
    return f"doc_id in {json.dumps(sorted(doc_ids))}"


def document_fingerprints(index: KnowledgeIndex, known: dict[str, tuple[list, str]] | None = None) -> dict[str, str]:
    """Each document's fingerprint: its chunks, dense vectors and keyword tokens (what Milvus holds).
    Computed once per index (an index never changes).  `known`: doc_id -> (its chunk objects, fingerprint)
    of an index synced before; a document made of the very same chunk objects (an upload's new index
    shares the others' chunks) keeps its fingerprint unhashed, so one upload does not hash the corpus."""
    cache = index.__dict__.get("_milvus_fps")
    if cache is None:
        cache = {}
        for doc_id, rows in index.doc_rows.items():
            prev = known.get(doc_id) if known else None
            if prev is not None and len(prev[0]) == len(rows) and all(
                    index.chunks[r] is c for r, c in zip(rows.tolist(), prev[0])):
                cache[doc_id] = prev[1]
                continue
            h = hashlib.sha256()
            for r in rows:
                h.update(json.dumps([asdict(index.chunks[r]), index.bm25_tokens[r]], ensure_ascii=False).encode())
            h.update(np.ascontiguousarray(index.vectors[rows]).tobytes())
            cache[doc_id] = h.hexdigest()
        index.__dict__["_milvus_fps"] = cache
    return cache


def _quiet_lite_server():
    """pymilvus waits for a new index with AllocTimestamp, which Milvus Lite's server does not implement:
    it logs the NotImplementedError as an ERROR with a traceback, and pymilvus carries on."""
    return quieted("grpc._server", logging.CRITICAL)


class MilvusStore:
    """One index's chunks in a Milvus collection (and its `_docs` companion)."""

    def __init__(self, config: MilvusConfig, index_dir: Path):
        from pymilvus import MilvusClient

        self.config = config
        self.name = config.collection or "zhengce_" + hashlib.sha1(
            str(Path(index_dir).resolve()).encode()).hexdigest()[:12]
        self.docs_name = f"{self.name}_docs"
        if config.lite:
            Path(config.uri).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"token": config.token} if config.token else {}
        if config.lite:
            # pymilvus pings every 10 s, even when idle; Milvus Lite's gRPC server keeps grpc's default
            # policy (no pings without calls, at most one per 5 min), answers an idle client's pings
            # with GOAWAY "too_many_pings", and the next call or client fails to reconnect.  In process,
            # keepalive has nothing to detect: it is off.
            kwargs["grpc_options"] = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": 0}
        self.client = MilvusClient(uri=config.uri, **kwargs)
        self.dimension: int | None = None
        self._synced: dict[str, tuple[list, str]] = {}  # doc_id -> (chunk objects, fingerprint) last synced

    def close(self) -> None:
        """Close the connection; a Milvus Lite file is released too (another process may open it)."""
        self.client.close()
        for key in [k for k, v in _STORES.items() if v is self]:
            del _STORES[key]
        if self.config.lite and not any(k[0].uri == self.config.uri for k in _STORES):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.config.uri)

    # -- the collections -------------------------------------------------------------------------

    def _ensure(self, dimension: int) -> None:
        """Create the collections, or re-create them when their vectors have another dimension."""
        if self.dimension == dimension:
            return
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        c = self.client
        if c.has_collection(self.name):
            fields = c.describe_collection(self.name)["fields"]
            dim = next((f.get("params", {}).get("dim") for f in fields if f["name"] == "dense"), None)
            if dim is not None and int(dim) != dimension:
                log.warning("Milvus collection %s holds %s-dimensional vectors, the index %d: re-creating it",
                            self.name, dim, dimension)
                c.drop_collection(self.name)
                if c.has_collection(self.docs_name):
                    c.drop_collection(self.docs_name)
        if not c.has_collection(self.name):
            if c.has_collection(self.docs_name):  # its document rows describe chunks that are gone
                c.drop_collection(self.docs_name)
            s = MilvusClient.create_schema(auto_id=False)
            s.add_field("pk", DataType.VARCHAR, max_length=160, is_primary=True)
            s.add_field("doc_id", DataType.VARCHAR, max_length=64)
            s.add_field("chunk", DataType.VARCHAR, max_length=MAX_VARCHAR)
            s.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
            s.add_field("keywords", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True,
                        analyzer_params={"tokenizer": "standard"})
            s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            s.add_function(Function(name="keywords_bm25", function_type=FunctionType.BM25,
                                    input_field_names=["keywords"], output_field_names=["sparse"]))
            ip = c.prepare_index_params()
            if self.config.index_type == "HNSW":
                ip.add_index("dense", index_type="HNSW", metric_type="IP", params=HNSW_PARAMS)
            else:
                ip.add_index("dense", index_type="FLAT", metric_type="IP")
            ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                         params={"bm25_k1": 1.5, "bm25_b": 0.75})
            ip.add_index("doc_id", index_type="INVERTED")
            with _quiet_lite_server():
                c.create_collection(self.name, schema=s, index_params=ip)
        if not c.has_collection(self.docs_name):
            s = MilvusClient.create_schema(auto_id=False)
            s.add_field("doc_id", DataType.VARCHAR, max_length=64, is_primary=True)
            s.add_field("fingerprint", DataType.VARCHAR, max_length=64)
            s.add_field("chunks", DataType.INT64)
            s.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector in every collection
            ip = c.prepare_index_params()
            ip.add_index("unused", index_type="FLAT", metric_type="L2")
            with _quiet_lite_server():
                c.create_collection(self.docs_name, schema=s, index_params=ip)
        c.load_collection(self.name)
        c.load_collection(self.docs_name)
        self.dimension = dimension

    def documents(self) -> dict[str, str]:
        """doc_id -> fingerprint of every document Milvus holds completely."""
        if not self.client.has_collection(self.docs_name):
            return {}
        out, offset = {}, 0
        while True:
            rows = self.client.query(self.docs_name, filter='doc_id != ""', output_fields=["fingerprint"],
                                     limit=10_000, offset=offset)
            out.update((r["doc_id"], r["fingerprint"]) for r in rows)
            if len(rows) < 10_000:
                return out
            offset += len(rows)

    def diff(self, index: KnowledgeIndex) -> tuple[list[str], list[str]]:
        """(documents to remove from Milvus, documents to (re)insert) for Milvus to match `index`."""
        want, have = document_fingerprints(index, self._synced), self.documents()
        remove = [d for d in have if want.get(d) != have[d]]
        add = [d for d in want if have.get(d) != want[d]]
        return remove, add

    def sync(self, index: KnowledgeIndex) -> tuple[list[str], list[str]]:
        """Make the collection hold exactly `index`'s chunks; returns (removed, added) doc_ids."""
        self._ensure(int(index.vectors.shape[1]) if len(index) else int(index.manifest.get("dimension", 0) or 384))
        remove, add = self.diff(index)
        for group in _groups(remove):  # document rows first: a crash half-way leaves them "not held"
            self.client.delete(self.docs_name, filter=_expr_in(group))
            self.client.delete(self.name, filter=_expr_in(group))
        fps = document_fingerprints(index, self._synced)
        for group in _groups(add):
            self.client.delete(self.name, filter=_expr_in(group))  # chunks of an interrupted insert
            batch = []
            for doc_id in group:
                for i, r in enumerate(index.doc_rows[doc_id]):
                    batch.append({"pk": f"{doc_id}/{i}", "doc_id": doc_id,
                                  "chunk": json.dumps(asdict(index.chunks[r]), ensure_ascii=False),
                                  "dense": index.vectors[r].tolist(),
                                  "keywords": keyword_field(index.bm25_tokens[r])})
                    if len(batch) >= INSERT_BATCH:
                        self.client.insert(self.name, batch)
                        batch = []
            if batch:
                self.client.insert(self.name, batch)
            self.client.upsert(self.docs_name, [{"doc_id": d, "fingerprint": fps[d], "chunks": len(index.doc_rows[d]),
                                                 "unused": [0.0, 0.0]} for d in group])
        self._synced = {d: ([index.chunks[r] for r in rows.tolist()], fps[d]) for d, rows in index.doc_rows.items()}
        if remove or add:
            self.client.flush(self.name)
            self.client.flush(self.docs_name)
            log.info("Milvus collection %s in step with index %s: removed %d documents, inserted %d",
                     self.name, index.version, len(remove), len(add))
        return remove, add

    def count(self) -> int:
        rows = self.client.query(self.name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    # -- searches --------------------------------------------------------------------------------

    def search_dense(self, query_vector: np.ndarray, k: int, doc_ids=None) -> list[tuple[str, float]]:
        params = {"metric_type": "IP"}
        if self.config.index_type == "HNSW":
            params["params"] = {"ef": max(HNSW_EF, k)}
        res = self.client.search(self.name, data=[np.asarray(query_vector, dtype=np.float32).tolist()],
                                 anns_field="dense", limit=k, search_params=params,
                                 filter=_expr_in(doc_ids) if doc_ids is not None else "")
        return [(h["pk"] if "pk" in h else h["id"], float(h["distance"])) for h in res[0]]

    def search_keywords(self, query_tokens: list[str], k: int, doc_ids=None) -> list[tuple[str, float]]:
        text = keyword_field(query_tokens)
        if not text:
            return []
        res = self.client.search(self.name, data=[text], anns_field="sparse", limit=k,
                                 search_params={"metric_type": "BM25"},
                                 filter=_expr_in(doc_ids) if doc_ids is not None else "")
        # Milvus scores BM25 as a positive similarity; Milvus Lite returns its negation as a distance
        return [(h["pk"] if "pk" in h else h["id"], abs(float(h["distance"]))) for h in res[0]]


class MilvusIndex(KnowledgeIndex):
    """A `KnowledgeIndex` whose dense and keyword candidates come from Milvus (same rows, same
    chunks); made by `attach`, never saved itself (the index version is saved as before)."""

    store: MilvusStore

    @classmethod
    def of(cls, index: KnowledgeIndex, store: MilvusStore) -> "MilvusIndex":
        if isinstance(index, MilvusIndex) and index.store is store:
            return index
        new = cls.__new__(cls)
        new.__dict__.update(index.__dict__)
        new.__dict__.pop("_documents_text", None)
        new.__dict__.pop("_in_corpus", None)
        new.store = store
        return new

    def _doc_filter(self, rows: np.ndarray | None) -> list[str] | None:
        """The documents whose chunks `rows` are (`rows_for` gives whole documents), None = all."""
        if rows is None:
            return None
        if not hasattr(self, "_row_doc"):
            names = list(self.doc_rows)
            row_doc = np.zeros(len(self), dtype=np.int64)
            for j, d in enumerate(names):
                row_doc[self.doc_rows[d]] = j
            self._row_doc, self._doc_names = row_doc, names
        docs = [self._doc_names[j] for j in np.unique(self._row_doc[np.asarray(rows, dtype=np.int64)])]
        if sum(len(self.doc_rows[d]) for d in docs) != len(np.unique(rows)):
            raise ValueError("a Milvus search filters whole documents, not single rows")
        return docs

    def _rows_of(self, hits: list[tuple[str, float]], rows: np.ndarray | None) -> tuple[list[int], list[float]]:
        """Milvus hits as rows of this index, best first, ties in the order of `rows` (as the embedded
        store breaks them).  A hit this index does not hold (another process's newer version) is skipped."""
        out = []
        position = None if rows is None else {int(r): p for p, r in reversed(list(enumerate(rows)))}
        for pk, score in hits:
            doc_id, _, i = pk.rpartition("/")
            doc_rows = self.doc_rows.get(doc_id)
            if doc_rows is None or not i.isdigit() or int(i) >= len(doc_rows):
                continue
            r = int(doc_rows[int(i)])
            out.append((r, np.float32(score)))
        out.sort(key=lambda x: (-x[1], x[0] if position is None else position.get(x[0], x[0])))
        return [r for r, _ in out], [float(s) for _, s in out]

    def dense_top(self, query_vector: np.ndarray, k: int, rows: np.ndarray | None = None,
                  exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = len(self) if rows is None else len(rows)
        k = min(int(k), n)
        if k <= 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
        found, scores = self._rows_of(self.store.search_dense(query_vector, k, self._doc_filter(rows)), rows)
        return np.asarray(found, dtype=np.intp), np.asarray(scores, dtype=np.float32)

    def bm25_top(self, query_tokens: list[str], k: int, rows: np.ndarray | None = None):
        if not query_tokens or (rows is not None and len(rows) == 0):
            return [], lambda r: 0.0
        found, scores = self._rows_of(self.store.search_keywords(query_tokens, k, self._doc_filter(rows)), rows)
        score_of = dict(zip(found, scores))
        keep = [r for r in found if score_of[r] > 0]
        return keep, lambda r: score_of.get(r, 0.0)


_STORES: dict[tuple, MilvusStore] = {}


def open_store(config: MilvusConfig, index_dir: Path) -> MilvusStore:
    """One MilvusStore per (Milvus, index folder) in this process (a Milvus Lite file can be open once)."""
    key = (config, str(Path(index_dir).resolve()))
    if key not in _STORES:
        _STORES[key] = MilvusStore(config, index_dir)
    return _STORES[key]


def attach(index: KnowledgeIndex, config: MilvusConfig, index_dir: Path, sync: bool = True) -> MilvusIndex:
    """`index` searched through Milvus.  `sync`: first bring the collection in step with it (else an
    out-of-step collection is an `IndexStale`: read-only commands change nothing)."""
    store = open_store(config, index_dir)
    if isinstance(index, MilvusIndex) and index.store is store:
        return index
    if sync:
        store.sync(index)
    else:  # nothing is created or changed (loading a collection changes no data)
        for name in (store.name, store.docs_name):
            if not store.client.has_collection(name):
                raise IndexStale(f"the Milvus collection {name} does not exist yet; run `rag index build`")
            store.client.load_collection(name)
        remove, add = store.diff(index)
        if remove or add:
            raise IndexStale(f"the Milvus collection {store.name} is out of step with the index "
                             f"({len(remove)} documents to remove, {len(add)} to insert); run `rag index build`")
    return MilvusIndex.of(index, store)
