"""The document catalog: stable short ids and metadata for every plan."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

CATALOG_FILE = "catalog.json"


@dataclass
class DocumentInfo:
    doc_id: str
    file: str
    title: str
    issuer: str
    date: str
    region: str
    short_title: str = ""
    doc_number: str | None = None
    aliases: list[str] = field(default_factory=list)  # names that route a question here
    weak_aliases: list[str] = field(default_factory=list)  # used only when no strong alias matches
    note: str | None = None
    period: list[int] | None = None  # the years a plan covers, e.g. [2011, 2015] for 十二五

    def to_dict(self) -> dict:
        return asdict(self)


def load_catalog(seeds_dir: Path) -> list[DocumentInfo]:
    path = Path(seeds_dir) / CATALOG_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    docs = [DocumentInfo(**entry) for entry in data["documents"]]
    ids = [d.doc_id for d in docs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate doc_id")
    return docs


# -- what the API's GET /v1/documents[/{doc_id}] and `rag documents list/show` say about a document --------

def describe_document(snap, doc_id: str) -> dict:
    """The catalog entry of `doc_id` in a snapshot (corpus + index) with `source` (seed or upload), clause
    and chunk counts, and for an upload where it came from (`upload`: file name, kind, bytes, sha256,
    uploaded_at).  KeyError for an unknown id."""
    corpus, index = snap.corpus, snap.index
    info = corpus.document(doc_id)
    rows = index.doc_rows.get(doc_id)
    parsed = corpus.parsed.get(doc_id)
    upload = next((dict(e.get("upload") or {}) for e in index.uploads.entries if e["doc_id"] == doc_id), None)
    return {**info.to_dict(), "source": "upload" if corpus.is_upload(doc_id) else "seed",
            "clause_count": len(parsed.clauses) if parsed else 0,
            "chunk_count": 0 if rows is None else len(rows), "upload": upload}


def outline_of(parsed) -> list[dict]:
    """A document's headings, each with the clauses directly under it."""
    outline = []
    for h in parsed.headings:
        ids = [c.clause_id for c in parsed.clauses
               if c.clause_id == h.id or re.fullmatch(re.escape(h.id) + r"\.p\d+", c.clause_id)]
        outline.append({"id": h.id, "marker": h.marker, "title": h.title, "level": h.level,
                        "path": list(h.path), "clause_ids": ids})
    return outline


def clause_list(parsed) -> list[dict]:
    """Each clause of a document: id, section, the first 80 characters, length, lines."""
    return [{"clause_id": c.clause_id, "section": c.section_path, "preview": c.text[:80],
             "chars": len(c.text), "line_start": c.line_start, "line_end": c.line_end} for c in parsed.clauses]
