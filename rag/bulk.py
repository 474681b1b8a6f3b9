"""`rag documents add`: many files into the index in one pass, through the same `Assistant` methods
as an API upload (checks and extraction, duplicates, embedding, publishing).

- **What is imported**: the files named, every .txt/.pdf/.docx under a folder named (recursively,
  hidden files left out) and the files a glob matches, in order, each once.
- **Metadata**: the flags (title, aliases, issuer, date, region, id), or a sidecar next to the
  file — `NAME.json` or `NAME.txt.json` (`.yaml`/`.yml` too) — whose fields win for its file.  The
  title defaults to the file name, as in the API.
- **Batches**: each document is checked and embedded as it comes (larger model calls than the
  server's); a new index version is published every `checkpoint` documents and at the end, not
  once per file.  Ctrl-C publishes what is embedded, then stops.
- **Skipped, failed, resumed**: a file whose bytes or text are already indexed is skipped ("same
  content as <doc_id>"); a file that cannot be added is listed with its reason and the run goes on.
  A rerun after a kill (the last checkpoint is published) skips what is there and adds the rest.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from .index import IndexError_
from .ingest import KINDS, DocumentError, default_title
from .store import crash_point

log = logging.getLogger(__name__)
SIDECARS = (".json", ".yaml", ".yml")
FIELDS = ("title", "issuer", "date", "region", "doc_id", "aliases")
BULK_EMBED_BATCH = 16  # passages per model call: no queries to let go first in a command-line import


@dataclass
class Outcome:
    """What became of one file: `added`, `skipped` (already indexed) or `failed`."""

    path: str
    status: str
    doc_id: str | None = None
    title: str | None = None
    message: str = ""
    code: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


def collect(paths: list[str]) -> tuple[list[tuple[Path, str]], list[Outcome]]:
    """(each document to import with the path as the user would write it, in order and each once; the
    paths that name nothing importable)."""
    files: dict[Path, str] = {}
    missing = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in KINDS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            found = [p]
        elif glob.has_magic(arg):
            found = sorted(Path(m) for m in glob.glob(arg, recursive=True)
                           if Path(m).is_file() and Path(m).suffix.lower() in KINDS)
        else:
            found = None
        if not found:
            what = "没有匹配的文件 (no file matches)" if glob.has_magic(arg) or p.is_dir() \
                else "文件不存在 (no such file)"
            missing.append(Outcome(arg, "failed", message=what, code="not_found"))
        for f in found or []:
            files.setdefault(f.resolve(), str(f))
    return list(files.items()), missing


def sidecar(path: Path) -> dict:
    """The metadata of a sidecar next to `path` (`NAME.json`, `NAME.txt.json`, .yaml, .yml), or {}."""
    for base in (path.with_suffix(""), path):
        for ext in SIDECARS:
            side = base.with_name(base.name + ext)
            if side.is_file() and side != path:
                return _read_sidecar(side)
    return {}


def _read_sidecar(side: Path) -> dict:
    def bad(why: str) -> DocumentError:
        return DocumentError(f"元数据文件 {side.name} 无效：{why} (invalid sidecar {side.name}: {why})", 422,
                             "invalid_sidecar")

    try:
        raw = side.read_text(encoding="utf-8")
        if side.suffix == ".json":
            data = json.loads(raw)
        else:
            try:
                import yaml
            except ImportError:
                raise bad("PyYAML is not installed; use a .json sidecar") from None
            data = yaml.safe_load(raw)
    except DocumentError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise bad(str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__) from None
    except Exception as exc:  # yaml.YAMLError and friends
        raise bad(str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__) from None
    if not isinstance(data, dict):
        raise bad("not an object of fields")
    data = {("doc_id" if k == "id" else k): v for k, v in data.items()}
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise bad(f"unknown fields {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    if data.get("date") is not None and not isinstance(data["date"], str):  # YAML reads 2024-05-01 as a date
        data["date"] = data["date"].isoformat() if hasattr(data["date"], "isoformat") else str(data["date"])
    return {k: v for k, v in data.items() if v is not None}


class BulkImport:
    """Adds files through `assistant` (a writing `Assistant`), publishing every `checkpoint` documents."""

    def __init__(self, assistant, meta: dict | None = None, checkpoint: int = 20, progress: bool = True,
                 batch: int = BULK_EMBED_BATCH):
        self.assistant = assistant
        self.meta = {k: v for k, v in (meta or {}).items() if v not in (None, "", [])}
        self.checkpoint = max(1, checkpoint)
        self.progress = progress
        self.batch = batch
        self.outcomes: list[Outcome] = []
        self.interrupted = False
        self._pending = []  # EmbeddedUpload, not yet published
        self._paths: dict[str, str] = {}  # doc_id -> file

    def run(self, files: list[tuple[Path, str]]) -> list[Outcome]:
        """Import `files` ((path, as shown), from `collect`); returns one outcome per file handled."""
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="file", disable=None if self.progress else True, dynamic_ncols=True)
        try:
            for path, shown in files:
                bar.set_postfix_str(path.name[-30:], refresh=False)
                self._one(path, shown)
                bar.update(1)
                if len(self._pending) >= self.checkpoint:
                    self._publish()
                    crash_point("bulk:checkpoint")
            self._publish()
        except KeyboardInterrupt:  # keep what is embedded, then stop
            self.interrupted = True
            bar.close()
            self._publish()
        finally:
            bar.close()
        return self.outcomes

    def _one(self, path: Path, shown: str) -> None:
        try:
            content = path.read_bytes()
            same = self._same_file(content)
            if same:
                self.outcomes.append(Outcome(shown, "skipped", same, message=f"与 {same} 内容相同 (same content "
                                             f"as {same})", code="duplicate_document"))
                return
            fields = {**self.meta, **sidecar(path)}
            fields.setdefault("title", default_title(path.name))
            prepared = self.assistant.prepare_upload(path.name, content, **fields)
            self.assistant.check_duplicate(prepared, pending=[e.prepared for e in self._pending])
            embedded = self.assistant.embed_upload(prepared, batch=self.batch)
        except DocumentError as exc:
            self.outcomes.append(_refused(shown, exc))
            return
        except OSError as exc:
            self.outcomes.append(Outcome(shown, "failed", message=f"无法读取文件 (cannot read: "
                                         f"{exc.strerror or exc})", code="unreadable_file"))
            return
        except Exception as exc:  # noqa: BLE001  -- one odd file must not stop the run
            log.exception("adding %s failed", shown)
            self.outcomes.append(Outcome(shown, "failed", message=f"处理失败 (failed: {type(exc).__name__}: "
                                         f"{str(exc)[:200]})", code="internal_error"))
            return
        self._pending.append(embedded)
        self._paths[embedded.doc_id] = shown

    def _same_file(self, content: bytes) -> str | None:
        """The indexed or pending upload made from exactly these bytes (no extraction needed to skip it)."""
        sha = hashlib.sha256(content).hexdigest()
        entries = self.assistant.index.uploads.entries + [e.prepared.entry for e in self._pending]
        return next((e["doc_id"] for e in entries if e.get("upload", {}).get("sha256") == sha), None)

    def _publish(self) -> None:
        if not self._pending:
            return
        a, pending = self.assistant, self._pending
        self._pending = []
        try:
            a.acquire_writer()
            try:
                published, refused = a.publish_embedded(pending)
            finally:
                a.release_writer()
        except (DocumentError, IndexError_) as exc:  # e.g. another process held index/LOCK too long
            for e in pending:
                self.outcomes.append(Outcome(self._paths[e.doc_id], "failed", message=f"未能发布，请重新运行 (not "
                                             f"published: {exc}; run the command again)", code="not_published"))
            return
        for info in published:
            self.outcomes.append(Outcome(self._paths[info.doc_id], "added", info.doc_id, info.title))
        for e, exc in refused:  # another process published the same document meanwhile
            self.outcomes.append(_refused(self._paths[e.doc_id], exc))


def _refused(shown: str, exc: DocumentError) -> Outcome:
    if exc.same_as:
        return Outcome(shown, "skipped", exc.same_as, message=str(exc), code=exc.code)
    return Outcome(shown, "failed", message=str(exc), code=exc.code)


def summary(outcomes: list[Outcome], seconds: float) -> str:
    """The human report: counts, then each added, skipped and failed file."""
    by = {s: [o for o in outcomes if o.status == s] for s in ("added", "skipped", "failed")}
    lines = [f"添加 {len(by['added'])} 个，跳过 {len(by['skipped'])} 个，失败 {len(by['failed'])} 个 "
             f"(added {len(by['added'])}, skipped {len(by['skipped'])}, failed {len(by['failed'])}) "
             f"in {seconds:.1f}s"]
    for o in by["added"]:
        lines.append(f"  + {o.doc_id}  《{o.title}》  {o.path}")
    if by["skipped"]:
        lines.append("跳过 (skipped, already indexed):")
        lines += [f"  = {o.path}: {o.message}" for o in by["skipped"]]
    if by["failed"]:
        lines.append("失败 (failed):")
        lines += [f"  ! {o.path}: {o.message}" for o in by["failed"]]
    return "\n".join(lines)


