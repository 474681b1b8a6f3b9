"""The document store: uploaded documents (the user's data) beside the index versions.

The index (`index/v-…/`) is derived data and may be rebuilt at any time; the
uploaded texts are not, so they live in `index/documents/`, one folder per
document, and no index rebuild, cleanup or version swap ever removes one:

    documents/<doc_id>/text.txt     the extracted text (UTF-8)
    documents/<doc_id>/entry.json   {"format", "doc_id", "entry": catalog entry, "text_sha256",
                                     "stored_ns", "sha256": checksum of everything else in the file}
    documents/.tombstones/<doc_id>  a deleted document: copies of it in old index versions are not recovered
    documents/.pending/<job_id>/    an accepted upload still being indexed (rag/jobs.py): same two files
    documents/.quarantine/<doc_id>-<time>/   damaged files moved aside (never deleted)
    documents/.tmp-<doc_id>-<pid>-<n>/       a document being written: debris once <pid> is dead
    documents/.trash-<doc_id>-<pid>-<n>/     a document being deleted: debris

A document is written into a temporary folder, every file and the folder
fsynced, then renamed into place (and the parent fsynced): it is either fully
there or absent.  A delete writes the tombstone first, then renames the folder
to `.trash-…` (atomic) before removing it, so a crash leaves the document
either fully there or fully gone.

An upload accepted as a job (202) is written the same way into `.pending/<job_id>/`
before the client hears back; the job copies it into `<doc_id>/` when it publishes
the index version that includes it, and only then removes the pending copy.
Store scans and index recovery skip `.pending/`: a pending upload is the job's.

`crash_point(name)` marks the moments the durability tests kill a process at
(`RAG_TEST_PAUSE_AT=<name>` makes the process announce itself and wait to be killed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

STORE_DIR = "documents"
STORE_FORMAT = 1
TOMBSTONES = ".tombstones"
QUARANTINE = ".quarantine"
PENDING = ".pending"
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
DOC_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PID_NAME = re.compile(r"-(\d+)-\d+$")  # …-<pid>-<n> at the end of a temporary name

# Temporary folders this process is writing right now (so its own pid is not proof of life).
IN_PROGRESS: set[str] = set()


# -- crash points (fault-injection hook for the durability tests) ------------------------------

def crash_point(name: str) -> None:
    """With RAG_TEST_PAUSE_AT=name: print "PAUSED name" and wait to be killed (tests send SIGKILL)."""
    if os.environ.get("RAG_TEST_PAUSE_AT") == name:
        print(f"PAUSED {name}", flush=True)
        sys.stdout.flush()
        while True:
            time.sleep(60)


# -- durable file-system primitives -------------------------------------------------------------

def fsync_dir(path: Path) -> None:
    """Make a directory's entries (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write and fsync one file (not atomic by itself: write into a temporary folder or use write_atomic)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably (temporary file, fsync, rename, fsync dir)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{unique_suffix()}")
    write_file(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_debris(path: Path) -> bool:
    """A `.tmp-…-<pid>-<n>` folder whose writer is gone (dead pid, or this process but not in progress)."""
    m = _PID_NAME.search(path.name)
    if not m:
        return True
    pid = int(m.group(1))
    if pid == os.getpid():
        return path.name not in IN_PROGRESS
    return not pid_alive(pid)


def remove_tree(path: Path, point: str | None = None) -> None:
    """Remove a folder that is already out of the way (renamed to .trash-…); `point` is a crash point
    reached after the first file is gone (a half-deleted folder)."""
    first = True
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            try:
                os.unlink(os.path.join(root, name))
            except FileNotFoundError:
                pass
            if first and point:
                first = False
                crash_point(point)
        for name in dirs:
            try:
                os.rmdir(os.path.join(root, name))
            except OSError:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    try:
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def unique_suffix() -> str:
    return f"{os.getpid()}-{time.monotonic_ns() % 10**9}"


# -- the store ------------------------------------------------------------------------------------

@dataclass
class StoredDocument:
    doc_id: str
    entry: dict
    text: str
    stored_ns: int

    @property
    def text_sha256(self) -> str:
        return sha256_bytes(self.text.encode("utf-8"))


@dataclass
class DamagedDocument:
    doc_id: str
    reason: str  # relative to the index folder, e.g. "documents/x/text.txt fails its checksum"
    text_sha256: str | None = None  # what the text should hash to, when entry.json is still intact


@dataclass
class StoreScan:
    documents: dict[str, StoredDocument] = field(default_factory=dict)  # in upload order
    damaged: dict[str, DamagedDocument] = field(default_factory=dict)
    tombstones: set[str] = field(default_factory=set)


def _record(doc_id: str, entry: dict, text_sha256: str, stored_ns: int) -> dict:
    body = {"format": STORE_FORMAT, "doc_id": doc_id, "entry": entry, "text_sha256": text_sha256,
            "stored_ns": stored_ns}
    return {**body, "sha256": sha256_bytes(_canonical(body))}


def _canonical(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


class DocumentStore:
    """Uploaded documents under `<index_dir>/documents/`; see the module docstring for the layout."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self.root = self.index_dir / STORE_DIR

    def exists(self) -> bool:
        return self.root.is_dir()

    def ensure(self) -> None:
        if not self.root.is_dir():
            self.root.mkdir(parents=True)
            fsync_dir(self.root.parent)

    def rel(self, *parts: str) -> str:
        return "/".join((STORE_DIR, *parts))

    def holds(self, doc_id: str) -> bool:
        folder = self.root / doc_id
        return (folder / "entry.json").is_file() and (folder / "text.txt").is_file()

    def is_tombstoned(self, doc_id: str) -> bool:
        return (self.root / TOMBSTONES / doc_id).is_file()

    # -- reading ----------------------------------------------------------------------------------

    def read(self, doc_id: str, folder: Path | None = None, rel: tuple[str, ...] | None = None) -> StoredDocument:
        """One stored document, verified; raises `DamagedDocument`-carrying ValueError when it fails.
        (`folder`/`rel`: a pending upload's folder and its name relative to the store.)"""
        folder = folder or self.root / doc_id
        where = rel or (doc_id,)
        try:
            record = json.loads((folder / "entry.json").read_bytes())
            body = {k: v for k, v in record.items() if k != "sha256"}
            if record.get("sha256") != sha256_bytes(_canonical(body)):
                raise _Damage(DamagedDocument(doc_id, f"{self.rel(*where, 'entry.json')} fails its checksum"))
        except _Damage:
            raise
        except (OSError, ValueError, AttributeError) as exc:
            why = "is missing" if isinstance(exc, FileNotFoundError) else "is unreadable"
            raise _Damage(DamagedDocument(doc_id, f"{self.rel(*where, 'entry.json')} {why}")) from None
        expected = record.get("text_sha256")
        if record.get("doc_id") != doc_id or not isinstance(record.get("entry"), dict) \
                or record["entry"].get("doc_id") != doc_id:
            raise _Damage(DamagedDocument(doc_id, f"{self.rel(*where, 'entry.json')} names another document"))
        try:
            raw = (folder / "text.txt").read_bytes()
        except OSError as exc:
            why = "is missing" if isinstance(exc, FileNotFoundError) else "is unreadable"
            raise _Damage(DamagedDocument(doc_id, f"{self.rel(*where, 'text.txt')} {why}", expected)) from None
        if sha256_bytes(raw) != expected:
            raise _Damage(DamagedDocument(doc_id, f"{self.rel(*where, 'text.txt')} fails its checksum", expected))
        return StoredDocument(doc_id, record["entry"], raw.decode("utf-8"), int(record.get("stored_ns", 0)))

    def scan(self) -> StoreScan:
        """Every stored document, each checked against its checksums."""
        scan = StoreScan()
        if not self.root.is_dir():
            return scan
        docs = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            if not DOC_ID.fullmatch(path.name):
                log.warning("ignoring %s: not a document id", self.rel(path.name))
                continue
            try:
                docs.append(self.read(path.name))
            except _Damage as exc:
                scan.damaged[path.name] = exc.damage
        docs.sort(key=lambda d: (d.stored_ns, d.doc_id))
        scan.documents = {d.doc_id: d for d in docs}
        tomb = self.root / TOMBSTONES
        if tomb.is_dir():
            scan.tombstones = {p.name for p in tomb.iterdir() if DOC_ID.fullmatch(p.name)}
        return scan

    # -- writing ----------------------------------------------------------------------------------

    def put(self, entry: dict, text: str, stored_ns: int | None = None) -> StoredDocument:
        """Store one document durably and atomically; it must not be there yet."""
        doc_id = entry["doc_id"]
        if not DOC_ID.fullmatch(doc_id):
            raise ValueError(f"refusing to store a document with id {doc_id!r}")
        stored_ns = stored_ns or time.time_ns()
        self._write_folder(self.root / doc_id, doc_id, entry, text, stored_ns, "store.put")
        self.remove_tombstone(doc_id)
        crash_point("store.put:done")
        return StoredDocument(doc_id, entry, text, stored_ns)

    def _write_folder(self, target: Path, doc_id: str, entry: dict, text: str, stored_ns: int, point: str) -> None:
        """text.txt + entry.json written into a temporary folder, fsynced, renamed to `target`."""
        self.ensure()
        if target.exists():
            raise FileExistsError(f"{self.rel(*target.relative_to(self.root).parts)} already exists")
        data = text.encode("utf-8")
        tmp = self.root / f".tmp-{target.name}-{unique_suffix()}"
        IN_PROGRESS.add(tmp.name)
        try:
            tmp.mkdir()
            write_file(tmp / "text.txt", data)
            crash_point(f"{point}:partial")
            record = _record(doc_id, entry, sha256_bytes(data), stored_ns)
            write_file(tmp / "entry.json", json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8"))
            fsync_dir(tmp)
            os.rename(tmp, target)
            fsync_dir(target.parent)
            if target.parent != self.root:
                fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            IN_PROGRESS.discard(tmp.name)

    # -- pending uploads (accepted jobs) ----------------------------------------------------------

    def _pending(self, job_id: str) -> Path:
        if not JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / PENDING / job_id

    def put_pending(self, job_id: str, entry: dict, text: str) -> None:
        """An accepted upload's text, durable before the client is told it was accepted."""
        (self.root / PENDING).mkdir(parents=True, exist_ok=True)
        self._write_folder(self._pending(job_id), entry["doc_id"], entry, text, time.time_ns(), "store.pending")

    def read_pending(self, job_id: str) -> StoredDocument:
        """The pending upload, verified like a stored document (ValueError naming the damage)."""
        folder = self._pending(job_id)
        try:
            record = json.loads((folder / "entry.json").read_bytes())
            doc_id = record["entry"]["doc_id"]
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.rel(PENDING, job_id)} is missing") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise _Damage(DamagedDocument(job_id, f"{self.rel(PENDING, job_id, 'entry.json')} is unreadable")) \
                from None
        return self.read(doc_id, folder=folder, rel=(PENDING, job_id))

    def holds_pending(self, job_id: str) -> bool:
        return self._pending(job_id).is_dir()

    def drop_pending(self, job_id: str) -> None:
        """The job published its document (or the upload was refused): its pending copy goes."""
        folder = self._pending(job_id)
        if not folder.exists():
            return
        trash = self.root / f".trash-pending-{job_id}-{unique_suffix()}"
        os.rename(folder, trash)
        fsync_dir(folder.parent)
        remove_tree(trash)

    def quarantine_pending(self, job_id: str) -> str:
        """Move a pending upload that could not be indexed aside (never deleted); returns where (relative)."""
        qdir = self.root / QUARANTINE
        qdir.mkdir(parents=True, exist_ok=True)
        name = f"pending-{job_id}-{time.strftime('%Y%m%d-%H%M%S')}"
        os.rename(self._pending(job_id), qdir / name)
        fsync_dir(self.root / PENDING)
        fsync_dir(qdir)
        return self.rel(QUARANTINE, name)

    def delete(self, doc_id: str, tombstone: bool = True) -> None:
        """Remove a stored document: tombstone, atomic rename out of the way, then removal."""
        if not DOC_ID.fullmatch(doc_id):
            raise ValueError(f"refusing to delete a document with id {doc_id!r}")
        if tombstone:
            (self.root / TOMBSTONES).mkdir(parents=True, exist_ok=True)
            write_atomic(self.root / TOMBSTONES / doc_id, time.strftime("%Y-%m-%dT%H:%M:%S%z").encode())
            crash_point("store.delete:tombstoned")
        target = self.root / doc_id
        if not target.exists():
            return
        trash = self.root / f".trash-{doc_id}-{unique_suffix()}"
        os.rename(target, trash)
        fsync_dir(self.root)
        crash_point("store.delete:trashed")
        remove_tree(trash)

    def remove_tombstone(self, doc_id: str) -> None:
        path = self.root / TOMBSTONES / doc_id
        if path.exists():
            path.unlink()
            fsync_dir(path.parent)

    def quarantine(self, doc_id: str) -> str:
        """Move a damaged document's folder aside (never delete it); returns where it went (relative)."""
        qdir = self.root / QUARANTINE
        qdir.mkdir(parents=True, exist_ok=True)
        name = f"{doc_id}-{time.strftime('%Y%m%d-%H%M%S')}-{unique_suffix()}"
        os.rename(self.root / doc_id, qdir / name)
        fsync_dir(self.root)
        fsync_dir(qdir)
        return self.rel(QUARANTINE, name)

    def clean_debris(self) -> list[str]:
        """Remove half-written (.tmp- of a dead writer) and half-deleted (.trash-) documents."""
        removed = []
        if not self.root.is_dir():
            return removed
        for path in self.root.iterdir():
            if path.name.startswith(".trash-") or (path.name.startswith(".tmp-") and is_debris(path)):
                if path.is_dir():
                    remove_tree(path)
                else:
                    path.unlink(missing_ok=True)
                removed.append(self.rel(path.name))
        tomb = self.root / TOMBSTONES
        if tomb.is_dir():
            for path in tomb.iterdir():
                if path.name.startswith(".") and ".tmp-" in path.name and is_debris(path):  # a write_atomic
                    path.unlink(missing_ok=True)
        return removed


class _Damage(ValueError):
    def __init__(self, damage: DamagedDocument):
        super().__init__(damage.reason)
        self.damage = damage
