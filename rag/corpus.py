"""Load the catalog's documents and turn them into clauses and chunks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .catalog import DocumentInfo, load_catalog
from .clauses import Chunk, Clause, ParsedDocument, chunk_clause, parse_document


@dataclass
class Corpus:
    documents: list[DocumentInfo]
    parsed: dict[str, ParsedDocument]
    fingerprint: str  # hash of catalog + texts: the index is rebuilt when it changes

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
    parsed = {}
    for doc in documents:
        raw = (seeds_dir / doc.file).read_bytes()
        digest.update(doc.doc_id.encode() + b"\0" + raw)
        parsed[doc.doc_id] = parse_document(doc.doc_id, raw.decode("utf-8"))
    return Corpus(documents=documents, parsed=parsed, fingerprint=digest.hexdigest()[:16])
