"""Load the catalog's documents and turn them into clauses and chunks.

A corpus holds the seed documents (seeds/catalog.json) and, after them, the
documents uploaded at run time (kept in the document store, rag/store.py,
and as `rag.index.Uploads` in each index version).  Corpora are never changed in place: `with_upload` and
`without_upload` return new ones, so a query holding the old corpus keeps a
consistent view while an upload is published.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from .catalog import DocumentInfo, load_catalog
from .clauses import Chunk, Clause, ParsedDocument, chunk_clause, parse_document
from .index import Uploads
from .vocabulary import enrich, register

log = logging.getLogger(__name__)
_DOCUMENT_FIELDS = set(DocumentInfo.__dataclass_fields__)


@dataclass
class Corpus:
    documents: list[DocumentInfo]
    parsed: dict[str, ParsedDocument]
    fingerprint: str  # hash of catalog + seed texts: the index is rebuilt when it changes
    uploaded: frozenset[str] = field(default_factory=frozenset)  # doc ids added at run time

    def is_upload(self, doc_id: str) -> bool:
        return doc_id in self.uploaded

    def with_upload(self, info: DocumentInfo, parsed: ParsedDocument) -> "Corpus":
        """A new corpus with one more (uploaded) document at the end."""
        if any(d.doc_id == info.doc_id for d in self.documents):
            raise ValueError(f"document {info.doc_id!r} already exists")
        text = "\n".join(c.text for c in parsed.clauses)
        info = enrich(info, text)  # an upload gets the aliases, period and 文号 its own text gives
        register([info], {info.doc_id: text})
        return replace(self, documents=self.documents + [info], parsed={**self.parsed, info.doc_id: parsed},
                       uploaded=self.uploaded | {info.doc_id})

    def without_upload(self, doc_id: str) -> "Corpus":
        """A new corpus without the uploaded document `doc_id`."""
        if doc_id not in self.uploaded:
            raise KeyError(doc_id)
        return replace(self, documents=[d for d in self.documents if d.doc_id != doc_id],
                       parsed={k: v for k, v in self.parsed.items() if k != doc_id},
                       uploaded=self.uploaded - {doc_id})

    @property
    def clauses(self) -> list[Clause]:
        return [c for d in self.documents for c in self.parsed[d.doc_id].clauses]

    @property
    def chunks(self) -> list[Chunk]:
        return [ch for c in self.clauses for ch in chunk_clause(c)]

    def document(self, doc_id: str) -> DocumentInfo:
        for d in self.documents:
            if d.doc_id == doc_id:
                return d
        raise KeyError(doc_id)


def load_corpus(seeds_dir: Path) -> Corpus:
    seeds_dir = Path(seeds_dir)
    documents = load_catalog(seeds_dir)
    digest = hashlib.sha256()
    digest.update((seeds_dir / "catalog.json").read_bytes())
    parsed, texts = {}, {}
    for doc in documents:
        raw = (seeds_dir / doc.file).read_bytes()
        digest.update(doc.doc_id.encode() + b"\0" + raw)
        texts[doc.doc_id] = raw.decode("utf-8")
        parsed[doc.doc_id] = parse_document(doc.doc_id, texts[doc.doc_id])
    documents = [enrich(d, texts[d.doc_id]) for d in documents]
    register(documents, texts)
    return Corpus(documents=documents, parsed=parsed, fingerprint=digest.hexdigest()[:16])


def upload_info(entry: dict) -> DocumentInfo:
    """The `DocumentInfo` of an uploads/catalog.json entry (extra keys such as `upload` are kept out)."""
    return DocumentInfo(**{k: v for k, v in entry.items() if k in _DOCUMENT_FIELDS})


def merge_uploads(corpus: Corpus, uploads: Uploads) -> tuple[Corpus, Uploads]:
    """`corpus` plus the uploaded documents, parsed with the same parser as the seeds.

    An upload whose id now belongs to a seed document (the seeds changed) is
    kept under a suffixed id rather than dropped; the returned `Uploads` carry
    the ids actually used.
    """
    kept = Uploads()
    for entry in uploads.entries:
        entry = dict(entry)
        text = uploads.texts[entry["doc_id"]]
        taken = {d.doc_id for d in corpus.documents}
        if entry["doc_id"] in taken:
            old, n = entry["doc_id"], 1
            new_id = f"{old[:56]}-upload"
            while new_id in taken:
                n += 1
                new_id = f"{old[:56]}-upload{n}"
            log.warning("uploaded document %r collides with a seed document; kept as %r", old, new_id)
            entry.update(doc_id=new_id, file=f"uploads/{new_id}.txt")
        info = upload_info(entry)
        corpus = corpus.with_upload(info, parse_document(info.doc_id, text))
        kept = kept.added(entry, text)
    return corpus, kept
