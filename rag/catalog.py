"""The document catalog: stable short ids and metadata for every plan."""

from __future__ import annotations

import json
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
