"""Index segments: what a save rewrites and what it leaves on disk (issue #14, incremental persistence).

A separate module because it is the one rule of the index's persistence that is not file I/O
(rag/index.py writes and reads the files): which version folders an index is made of, and when
a save merges them.

Every version folder `v-…/` holds its own rows (`chunks.jsonl`, `dense.faiss`, `bm25.json`,
`sentences.npy`, and `uploads/` for the uploads among them): its *segment*.  Its `manifest.json`
also lists, in row order, the earlier folders whose segments come before its own:

    "segments": [{"version": "v-…", "manifest_sha256": "…", "deleted": ["doc-id", …]}, …]

`manifest_sha256` pins each folder's manifest (which checksums its files); `deleted` are that
segment's documents removed since it was written (tombstones: their rows are skipped at load).
The index is the listed segments minus their tombstones, then the folder's own rows.  A folder
without "segments" (every index written before this) is an index of one segment: it loads as
before, and the next save writes on top of it.

So an upload writes a folder with only the new document's rows and a small manifest; a delete,
a folder with no rows whose manifest tombstones the document (a segment left with no live
document is dropped from the list instead).  `plan` decides when a save compacts instead:

- everything into one segment when asked (`rag index compact`), when there is nothing to build
  on, or when more than COMPACT_DELETED_SHARE of the stored rows are tombstoned;
- when the list would exceed MAX_SEGMENTS: the newest segments into the new one — enough to stay
  within the limit, and each older one no larger than what is merged so far (a segment is
  rewritten only when the merge at least doubles it).  The base (the seeds and the uploads of the
  last full build: nearly every row) is merged only once the uploads since hold as many rows.

Folders no longer listed by the active version are removed after the swap like old versions
always were (`remove_old_versions`), never while one holds an upload the document store lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_SEGMENTS = 8
COMPACT_DELETED_SHARE = 0.25


@dataclass(frozen=True)
class Segment:
    """One version folder's own rows, as an index in memory built on it knows them."""

    version: str
    manifest_sha256: str
    docs: tuple[tuple[str, int], ...]  # (doc_id, rows) of every document the folder holds, in row order
    deleted: frozenset[str] = field(default_factory=frozenset)

    @property
    def stored(self) -> int:
        return sum(n for _, n in self.docs)

    @property
    def live(self) -> int:
        return sum(n for d, n in self.docs if d not in self.deleted)

    def live_docs(self) -> list[str]:
        return [d for d, _ in self.docs if d not in self.deleted]

    def holds(self, doc_id: str) -> bool:
        return doc_id not in self.deleted and any(d == doc_id for d, _ in self.docs)

    def without(self, doc_id: str) -> "Segment":
        return Segment(self.version, self.manifest_sha256, self.docs, self.deleted | {doc_id})

    def ref(self) -> dict:
        """Its entry in a later manifest's "segments"."""
        return {"version": self.version, "manifest_sha256": self.manifest_sha256, "deleted": sorted(self.deleted)}


def plan(segments: tuple[Segment, ...], fresh_rows: int, compact: bool = False) -> tuple[list[Segment], str]:
    """(the segments a save keeps as they are, what the save is: "upload", "delete" or "compact").

    The new folder holds every row after the kept segments'; `fresh_rows` are the rows no segment
    holds yet (documents added since the index was loaded or saved).
    """
    segs = [s for s in segments if s.live_docs()]  # a segment whose every document is deleted: dropped
    if compact or not segs:
        return [], "compact"
    stored = sum(s.stored for s in segs)
    if stored and stored - sum(s.live for s in segs) > COMPACT_DELETED_SHARE * stored:
        return [], "compact"
    if len(segs) + 1 > MAX_SEGMENTS:
        # merge the newest segments with the new rows: as many as the limit needs, and every one
        # before them that is no larger than what is merged so far (so sizes grow geometrically)
        j, merged = len(segs), fresh_rows
        while j > 0 and (j + 1 > MAX_SEGMENTS or segs[j - 1].live <= merged):
            j -= 1
            merged += segs[j].live
        return segs[:j], "compact"
    return segs, ("upload" if fresh_rows else "delete")
