"""Upload jobs: a large upload is accepted at once (202) and indexed in the background.

Why: embedding a document of a thousand chunks takes minutes on this CPU.  A
client should not hold a request open that long, and a crash in the middle
must not lose what the user sent.

The life of a job:

1. `submit` (in the upload request): takes the writer lock (429 `busy` after
   RAG_WRITE_WAIT_S), checks for duplicates (409), writes the extracted text
   into the document store's `.pending/<job id>/` and the job record
   `index/jobs/<job id>.json` (both fsynced and atomic), starts the worker
   thread and returns; only then does the API answer 202.  The job holds the
   writer until it ends, so other uploads and deletes meanwhile get 429 `busy`
   (with a Retry-After estimated from the job's progress).
2. The worker embeds the chunks in small batches (queries go first:
   rag/embeddings.py), publishes the index version that includes the document
   exactly as a synchronous upload does (text into the store, then CURRENT),
   records `done` and removes the pending copy.
3. An upload refused on the way (a `DocumentError`: say a limit changed before
   a resume) ends `failed` with the 4xx error a synchronous upload would have
   had, and its pending text is removed: a refused upload changes nothing.  Any
   other failure ends `failed` with the reason, and the pending text is moved
   to `documents/.quarantine/` (never deleted).

Crash or restart: when the server starts (`resume`, from the API's start-up),
jobs still `queued` or `running` are run again from the start, with the text
read back (checksummed) from `.pending/`: nothing of a half-embedded job was
ever published, and embedding is deterministic.  A job whose document was
published just before the process died is only marked `done`.  A job
interrupted `MAX_ATTEMPTS` times, or whose pending text fails its checksum,
ends `failed` with the reason, its text in quarantine.

Records of finished jobs are pruned at start-up and after each job: those
finished more than RAG_JOB_KEEP_DAYS (default 7) days ago, and all but the
newest `KEEP_FINISHED`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .ingest import DocumentError
from .store import JOB_ID, DocumentStore, crash_point, fsync_dir, is_debris, sha256_bytes, write_atomic

log = logging.getLogger(__name__)

JOBS_DIR = "jobs"
LOCKS_DIR = ".locks"  # jobs/.locks/<id>: held (flock) by the one process running that job
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
MAX_ATTEMPTS = 3
KEEP_FINISHED = 100
PROGRESS_SAVE_S = 5.0  # how often a running job's progress is written to its record


class _Stopping(BaseException):
    """The server is shutting down: the job stops at its next batch, left `running` for the next start."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class Job:
    """One upload job; what `index/jobs/<id>.json` holds and `GET /v1/jobs/{id}` shows."""

    id: str
    status: str
    doc_id: str
    title: str
    filename: str
    created_at: str
    chunks_total: int
    sentences_total: int
    chunks_embedded: int = 0
    sentences_embedded: int = 0
    attempts: int = 1
    started_at: str | None = None
    finished_at: str | None = None
    error: dict | None = None  # {"status", "code", "message"} when failed
    created: float = field(default_factory=time.time)  # for ordering and pruning
    finished: float | None = None
    _started: float | None = field(default=None, repr=False)  # monotonic, this process only

    @property
    def finished_yet(self) -> bool:
        return self.status in (DONE, FAILED)

    @property
    def fraction(self) -> float:
        total = self.chunks_total + self.sentences_total
        return (self.chunks_embedded + self.sentences_embedded) / total if total else 0.0

    def retry_after(self) -> int:
        """Seconds until this job probably ends (for 429 Retry-After), from its pace so far."""
        f = self.fraction
        if self._started is None or f <= 0.02:
            return 30
        elapsed = time.monotonic() - self._started
        return int(min(600, max(5, elapsed * (1 - f) / f + 5)))

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def public(self) -> dict:
        """The API's view (the API adds the resulting document when done)."""
        return {"id": self.id, "status": self.status, "doc_id": self.doc_id, "title": self.title,
                "filename": self.filename, "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "attempts": self.attempts,
                "progress": {"chunks_embedded": self.chunks_embedded, "chunks_total": self.chunks_total,
                             "sentences_embedded": self.sentences_embedded,
                             "sentences_total": self.sentences_total, "percent": round(100 * self.fraction, 1)},
                "error": self.error, "document": None}

    @classmethod
    def from_record(cls, data: dict) -> "Job":
        known = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
        return cls(**{k: v for k, v in data.items() if k in known})


class UploadJobs:
    """The upload jobs of one Assistant's index (one per Assistant: `Assistant.jobs`)."""

    def __init__(self, assistant):
        self.assistant = assistant
        self.index_dir = Path(assistant.settings.index_dir)
        self.dir = self.index_dir / JOBS_DIR
        self.store = DocumentStore(self.index_dir)
        self._lock = threading.Lock()  # guards the records (memory and disk)
        self._jobs: dict[str, Job] | None = None
        self._stamp: int | None = None  # the folder's mtime when `_jobs` was read
        self._unreadable: set[str] = set()
        self._running: dict[str, Job] = {}  # jobs this process runs
        self._claims: dict[str, int] = {}  # their lock files' descriptors (`_claim`)
        self._resumed = False
        self.active: Job | None = None  # the job holding the writer
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.listeners: list = []  # called with each job that ends (the API counts them in /metrics)

    # -- records -------------------------------------------------------------------------------

    def _all(self) -> dict[str, Job]:
        """Every record as on disk (unreadable ones are logged once and skipped), the jobs this process
        runs as it holds them (their progress is saved every PROGRESS_SAVE_S).  Several server processes
        share the folder (`rag serve --workers`): it is read again whenever it changed (its mtime: a
        record is saved by renaming it into place), so a job another process accepted, or finished, shows."""
        try:
            stamp = self.dir.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if self._jobs is None or stamp != self._stamp:
            jobs = {}
            if stamp is not None:
                for path in sorted(self.dir.glob("*.json")):
                    if not JOB_ID.fullmatch(path.stem):
                        continue
                    try:
                        jobs[path.stem] = Job.from_record(json.loads(path.read_text(encoding="utf-8")))
                    except FileNotFoundError:  # pruned by another process meanwhile
                        continue
                    except (OSError, ValueError, TypeError) as exc:
                        if path.name not in self._unreadable:
                            self._unreadable.add(path.name)
                            log.error("job record %s/%s is unreadable (%s): left as it is", JOBS_DIR, path.name,
                                      exc)
            self._jobs, self._stamp = jobs, stamp
        for job_id, job in list(self._running.items()):
            if job_id in self._jobs or not job.finished_yet:
                self._jobs[job_id] = job
        return self._jobs

    def _save(self, job: Job) -> None:
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            data = json.dumps(job.record(), ensure_ascii=False, indent=1).encode("utf-8")
            write_atomic(self.dir / f"{job.id}.json", data)
            self._all()[job.id] = job

    # -- one runner per job, across processes ----------------------------------------------------

    def _claim(self, job_id: str) -> bool:
        """Take `jobs/.locks/<id>` (an fcntl record lock, exclusive, without waiting): the right to run that
        job.  False when another process holds it (it runs the job) or this one runs it already.  The
        kernel drops the lock when its process dies, so a crashed worker's job is free again.  The lock
        belongs to the process (POSIX), not to a descriptor: the job is also never claimed twice here."""
        if job_id in self._claims:
            return False
        locks = self.dir / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / job_id, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
        self._claims[job_id] = fd
        return True

    def _unclaim(self, job: Job) -> None:
        """Give up the right to run `job`; its lock file goes once the job has finished."""
        self._running.pop(job.id, None)
        fd = self._claims.pop(job.id, None)
        if fd is None:
            return
        if job.finished_yet:
            # A process that opened the file just before this unlink locks a file nobody else will: it
            # reads the record next (`resume`), sees the job finished and leaves it.
            (self.dir / LOCKS_DIR / job.id).unlink(missing_ok=True)
        os.close(fd)

    def _read_record(self, job_id: str) -> Job | None:
        try:
            return Job.from_record(json.loads((self.dir / f"{job_id}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._all().get(job_id) if JOB_ID.fullmatch(job_id or "") else None

    def list(self) -> list[Job]:
        with self._lock:
            return sorted(self._all().values(), key=lambda j: j.created, reverse=True)

    def counts(self) -> dict[str, int]:
        with self._lock:
            jobs = list(self._all().values())
        return {s: sum(j.status == s for j in jobs) for s in (QUEUED, RUNNING, DONE, FAILED)}

    def prune(self, keep_days: float | None = None, keep: int = KEEP_FINISHED) -> list[str]:
        """Remove the records of jobs that finished long ago, or beyond the newest `keep`."""
        if keep_days is None:
            try:
                keep_days = float(os.environ.get("RAG_JOB_KEEP_DAYS", "") or 7)
            except ValueError:
                keep_days = 7.0
        cutoff = time.time() - keep_days * 86400
        with self._lock:
            done = sorted((j for j in self._all().values() if j.finished_yet),
                          key=lambda j: j.finished or j.created, reverse=True)
            gone = [j for i, j in enumerate(done) if i >= keep or (j.finished or j.created) < cutoff]
            for j in gone:
                (self.dir / f"{j.id}.json").unlink(missing_ok=True)
                self._jobs.pop(j.id, None)
            if gone:
                fsync_dir(self.dir)
        return [j.id for j in gone]

    # -- accepting a job -------------------------------------------------------------------------

    def submit(self, prepared) -> Job:
        """Accept `prepared` (a `PreparedUpload`) as a job: durable on disk, then indexed in the background.

        Raises `DocumentError` 429 (busy) or 409 (duplicate) like a synchronous upload, before anything
        is written.  On return the text and the record are fsynced and the worker holds the writer.
        """
        a = self.assistant
        a.acquire_writer()
        self._stopping = False  # accepting work: a shutdown of some earlier app over this Assistant is over
        job = None
        try:
            a.check_duplicate(prepared)
            job = Job(id=uuid.uuid4().hex, status=QUEUED, doc_id=prepared.doc_id, title=prepared.info.title,
                      filename=prepared.entry.get("upload", {}).get("filename", ""), created_at=_now(),
                      chunks_total=len(prepared.chunks), sentences_total=prepared.sentence_count)
            self._claim(job.id)  # before the record exists: no other process's resume can take it
            self._running[job.id] = job
            self.store.put_pending(job.id, prepared.entry, prepared.text)
            try:
                self._save(job)
            except BaseException:
                self.store.drop_pending(job.id)
                raise
            crash_point("job:accepted")
            self.active = job
            self._start(self._work, job, prepared)
        except BaseException:
            self.active = None
            if job is not None:
                self._unclaim(job)
            a.release_writer()
            raise
        log.info("upload job %s accepted: %s (%d chunks)", job.id, job.doc_id, job.chunks_total)
        return job

    def _start(self, target, *args) -> None:
        # A daemon: a server that stops mid-job leaves it `running` on disk, to be run again at the next start.
        thread = threading.Thread(target=target, args=args, name="upload-job", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Server shutdown: a running job stops at its next batch (nothing of it published, its record
        still `running`), so the next start runs it again; True if every job thread ended in time."""
        self._stopping = True
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no job runs (tests, tools); True if none does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _work(self, job: Job, prepared) -> None:
        """The worker thread: it owns the writer lock the request thread took, and releases it."""
        try:
            self._run(job, prepared)
        finally:
            self.active = None
            self._unclaim(job)
            self.assistant.release_writer()
            try:
                self.prune()
            except OSError as exc:
                log.error("pruning old job records failed: %s", exc)

    def _run(self, job: Job, prepared) -> None:
        job.status, job.started_at, job._started = RUNNING, _now(), time.monotonic()
        job.chunks_embedded = job.sentences_embedded = 0
        self._save(job)
        last_save = [time.monotonic()]

        def progress(chunks_done: int, sentences_done: int) -> None:
            if self._stopping:
                raise _Stopping
            job.chunks_embedded, job.sentences_embedded = chunks_done, sentences_done
            if chunks_done >= 2:
                crash_point("job:embedding")
            if time.monotonic() - last_save[0] >= PROGRESS_SAVE_S:
                last_save[0] = time.monotonic()
                self._save(job)

        try:
            self.assistant.check_duplicate(prepared)
            self.assistant.publish_upload(prepared, progress=progress)
        except _Stopping:
            log.warning("upload job %s stopped by the server's shutdown: it runs again at the next start", job.id)
            self._save(job)
        except DocumentError as exc:  # refused, as a synchronous upload would be: nothing changes
            self.store.drop_pending(job.id)
            self._finish(job, FAILED, {"status": exc.status, "code": exc.code, "message": str(exc)})
        except Exception as exc:
            log.exception("upload job %s failed", job.id)
            self._fail_keeping_text(job, f"indexing failed: {type(exc).__name__}: {exc}")
        else:
            crash_point("job:published")
            self._finish(job, DONE)
            self.store.drop_pending(job.id)

    def _fail_keeping_text(self, job: Job, reason: str, code: str = "job_failed") -> None:
        """Failed, not refused: the text goes to quarantine (kept for the operator), the record says where."""
        where = ""
        if self.store.holds_pending(job.id):
            where = self.store.quarantine_pending(job.id)
        message = reason + (f"; the uploaded text is kept in index/{where}" if where else "")
        log.error("upload job %s failed: %s", job.id, message)
        self._finish(job, FAILED, {"status": 500, "code": code, "message": message})

    def _finish(self, job: Job, status: str, error: dict | None = None) -> None:
        job.status, job.error, job.finished_at, job.finished = status, error, _now(), time.time()
        if status == DONE:
            job.chunks_embedded, job.sentences_embedded = job.chunks_total, job.sentences_total
        self._save(job)
        log.info("upload job %s %s%s", job.id, status, f": {error['message']}" if error else "")
        for listener in self.listeners:
            try:
                listener(job)
            except Exception:
                log.exception("job listener failed")

    # -- start-up --------------------------------------------------------------------------------

    def resume(self) -> list[Job]:
        """At server start: tidy the records, then run again every job a crash or restart interrupted
        (in one background thread, one job at a time, each holding the writer).  Returns those jobs."""
        with self._lock:
            self._stopping = False
            if self._resumed:
                return []
            self._resumed = True
        if self.dir.is_dir():
            for path in self.dir.iterdir():  # a record being written by a process that is gone
                if path.name.startswith(".") and ".tmp-" in path.name and is_debris(path):
                    path.unlink(missing_ok=True)
        jobs = self.list()
        for job in jobs:
            if job.finished_yet and job.status == DONE and self.store.holds_pending(job.id):
                self.store.drop_pending(job.id)  # died between recording done and removing the copy
        self.prune()
        todo = []
        for job in sorted((j for j in jobs if not j.finished_yet), key=lambda j: j.created):
            # Several server processes start on one index (`rag serve --workers`): each job is run again by
            # the one that claims it; a job another process runs (or claimed first) is left to it.
            if not self._claim(job.id):
                continue
            fresh = self._read_record(job.id)  # as it is now: it may have ended since it was listed
            if fresh is None or fresh.finished_yet:
                self._unclaim(fresh or job)
                continue
            self._running[fresh.id] = fresh
            todo.append(fresh)
        if todo:
            log.warning("resuming %d interrupted upload job(s): %s", len(todo), ", ".join(j.id for j in todo))
            self._start(self._resume_all, todo)
        return todo

    def _resume_all(self, todo: list[Job]) -> None:
        for n, job in enumerate(todo):
            if self._stopping:
                for later in todo[n:]:
                    self._unclaim(later)
                return
            self.assistant._lock.acquire()  # no 429 here: wait for whoever writes now
            self.active = job
            try:
                self._resume_one(job)
            except Exception:
                log.exception("resuming upload job %s failed", job.id)
            finally:
                self.active = None
                self._unclaim(job)
                self.assistant.release_writer()
        self.prune()

    def _resume_one(self, job: Job) -> None:
        from .service import PreparedUpload

        job.attempts += 1
        index = self.assistant.index
        try:
            pending = self.store.read_pending(job.id)
        except FileNotFoundError:
            pending = None
        except ValueError as exc:  # damaged: quarantined, never deleted
            self._fail_keeping_text(job, f"interrupted, and its stored text cannot be used: {exc}", "job_interrupted")
            return
        published = index.uploads.texts.get(job.doc_id)
        if published is not None and (pending is None or sha256_bytes(published.encode("utf-8"))
                                      == pending.text_sha256):
            log.info("upload job %s: %s was published before the interruption", job.id, job.doc_id)
            self._finish(job, DONE)
            self.store.drop_pending(job.id)
            return
        if pending is None:
            self._finish(job, FAILED, {"status": 500, "code": "job_interrupted", "message":
                                       f"interrupted, and its text is missing from index/documents/.pending/{job.id} "
                                       "(look in index/documents/.quarantine/)"})
            return
        if job.attempts > MAX_ATTEMPTS:
            self._fail_keeping_text(job, f"interrupted {job.attempts - 1} times (the server stopped or crashed "
                                    "while it ran); not tried again", "job_interrupted")
            return
        try:
            prepared = PreparedUpload.from_entry(pending.entry, pending.text)
        except DocumentError as exc:
            self.store.drop_pending(job.id)
            self._finish(job, FAILED, {"status": exc.status, "code": exc.code, "message": str(exc)})
            return
        log.info("upload job %s: indexing %s again (attempt %d)", job.id, job.doc_id, job.attempts)
        self._run(job, prepared)
