"""Turn an uploaded plan (.txt, .pdf, .docx) into checked plain text and catalog metadata.

Everything here is pure validation and extraction: nothing touches the index,
so a rejected upload cannot leave a trace.  Every rejection is a
`DocumentError` carrying an HTTP-style status and a short machine code, so the
API (and the chat page) can tell the user exactly what was wrong with the file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
import zipfile
from dataclasses import dataclass

KINDS = {".txt": "txt", ".pdf": "pdf", ".docx": "docx"}
MEDIA_TYPES = {
    "txt": "text/plain",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
DEFAULT_MAX_UPLOAD_MB = 20.0
MAX_TITLE_CHARS = 200
MAX_FIELD_CHARS = 200
MAX_ALIASES = 20
MIN_TEXT_CHARS = 20  # fewer non-blank characters than this is not a plan
DOC_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


class DocumentError(ValueError):
    """An upload or delete that cannot be done as asked: a user error, never a crash.

    `status` is the HTTP status the API answers with (403 seed document, 404
    unknown id, 409 duplicate, 413 too large, 415 wrong type, 422 a bad field or
    id, an empty, unreadable or text-less file, 429 busy); `code` is a stable
    machine-readable name.  (400 is for requests that cannot be read at all.)
    """

    def __init__(self, message: str, status: int = 422, code: str = "invalid_document",
                 retry_after: int | None = None, same_as: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after  # seconds, for 429 busy
        self.same_as = same_as  # a 409 for a text already indexed: the document that has it


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default


def check_extracted_size(text: str, chunk_count: int | None = None) -> None:
    """What an upload may cost after extraction (a 74 KB .docx can hold 2 M characters):
    RAG_MAX_UPLOAD_CHARS characters (default 1,000,000) and RAG_MAX_UPLOAD_CHUNKS chunks
    (default 4,000), each a 413 naming the limit, checked before anything is embedded."""
    max_chars = _env_int("RAG_MAX_UPLOAD_CHARS", 1_000_000)
    if len(text) > max_chars:
        raise DocumentError(f"提取后的文本过长：{len(text)} 字，上限 {max_chars} 字（RAG_MAX_UPLOAD_CHARS）"
                            f" (extracted text too long: {len(text)} > {max_chars} characters)", 413, "text_too_long")
    max_chunks = _env_int("RAG_MAX_UPLOAD_CHUNKS", 4_000)
    if chunk_count is not None and chunk_count > max_chunks:
        raise DocumentError(f"文件切分出的检索段落过多：{chunk_count} 段，上限 {max_chunks} 段（RAG_MAX_UPLOAD_CHUNKS）"
                            f" (too many chunks: {chunk_count} > {max_chunks})", 413, "too_many_chunks")


def max_upload_bytes() -> int:
    """Upload size limit from RAG_MAX_UPLOAD_MB (default 20 MB), read at call time."""
    raw = os.environ.get("RAG_MAX_UPLOAD_MB", "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MAX_UPLOAD_MB
    except ValueError:
        mb = DEFAULT_MAX_UPLOAD_MB
    if mb <= 0:
        mb = DEFAULT_MAX_UPLOAD_MB
    return int(mb * 1024 * 1024)


def default_title(filename: str) -> str:
    """The title of a document uploaded without one, by the API, the page or the command line:
    its file name without the extension."""
    return os.path.splitext(os.path.basename(filename or ""))[0].strip() or "未命名文档"


def check_doc_id(doc_id: object) -> str:
    """A doc id is a short lowercase slug: nothing path-like can reach the file system."""
    if not isinstance(doc_id, str) or not DOC_ID_RE.fullmatch(doc_id):
        raise DocumentError(
            f"无效的文档编号 (invalid doc_id {str(doc_id)[:80]!r}): use 1-64 lowercase letters, digits, '-' or '_'",
            422, "invalid_doc_id")
    return doc_id


def slug_doc_id(filename: str, content: bytes) -> str:
    """A readable, stable id for an upload: ASCII part of the file name plus a content hash."""
    stem = os.path.splitext(os.path.basename(filename or ""))[0].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:40].strip("-") or "doc"
    return f"{slug}-{hashlib.sha256(content).hexdigest()[:8]}"


def _kind_from_name(filename: str) -> str:
    name = os.path.basename(filename or "")
    ext = os.path.splitext(name)[1].lower()
    if not name or ext not in KINDS:
        raise DocumentError(
            f"不支持的文件类型 (unsupported file type {ext or name or '(no name)'!r}): upload a .txt, .pdf or .docx file",
            415, "unsupported_type")
    return KINDS[ext]


def _sniff(content: bytes) -> str:
    """What the bytes really are: 'pdf', 'docx', 'zip' (other zip), 'binary' or 'txt'."""
    head = content[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if content[:4] == b"PK\x03\x04":
        try:
            names = set(zipfile.ZipFile(io.BytesIO(content)).namelist())
        except zipfile.BadZipFile:
            return "zip"
        return "docx" if "word/document.xml" in names and "[Content_Types].xml" in names else "zip"
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with BOM
        return "txt"
    if b"\x00" in content[:8192]:
        return "binary"
    return "txt"


def decode_text(content: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030 (common for Chinese files)."""
    if content.startswith(b"\xef\xbb\xbf"):
        return content[3:].decode("utf-8")
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        return content.decode("utf-16")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("gb18030")
    except UnicodeDecodeError:
        raise DocumentError("文本文件编码无法识别 (the .txt file is neither UTF-8 nor GB18030 text)",
                            422, "undecodable_text") from None


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            try:
                reader.decrypt("")  # many "protected" PDFs only restrict printing
            except Exception:
                pass
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError,
            RecursionError, NotImplementedError) as exc:
        if "decrypt" in str(exc).lower() or "encrypt" in str(exc).lower():
            raise DocumentError("PDF 已加密，无法读取 (the PDF is encrypted)", 422, "encrypted_pdf") from None
        raise DocumentError(f"PDF 文件损坏或无法解析 (the PDF cannot be read: {exc})"[:300], 422,
                            "unreadable_pdf") from None
    except Exception as exc:  # pypdf raises many kinds on malformed input; all mean "unreadable"
        raise DocumentError(f"PDF 文件损坏或无法解析 (the PDF cannot be read: {type(exc).__name__})", 422,
                            "unreadable_pdf") from None
    if not pages:
        raise DocumentError("PDF 没有页面 (the PDF has no pages)", 422, "empty_pdf")
    return "\n".join(pages)


def _docx_text(content: bytes) -> str:
    import docx

    try:
        document = docx.Document(io.BytesIO(content))
    except Exception as exc:  # python-docx raises KeyError/ValueError/lxml errors on bad packages
        raise DocumentError(f"DOCX 文件损坏或无法解析 (the .docx cannot be read: {type(exc).__name__})", 422,
                            "unreadable_docx") from None
    lines: list[str] = []
    body = document.element.body
    # Paragraphs and tables in document order; a table row becomes one line.
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append("".join(t.text or "" for t in child.iter() if t.tag.endswith("}t")))
        elif tag == "tbl":
            for row in child.iter():
                if row.tag.endswith("}tr"):
                    cells = []
                    for cell in row:
                        if cell.tag.endswith("}tc"):
                            cells.append("".join(t.text or "" for t in cell.iter() if t.tag.endswith("}t")))
                    lines.append("\t".join(c for c in cells if c))
    return "\n".join(lines)


def extract_text(filename: str, content: bytes, max_bytes: int | None = None) -> tuple[str, str]:
    """(kind, plain text) of an upload, after checking its name, size, magic bytes and text.

    Raises `DocumentError` for: no/unsupported extension (415), empty or over-size
    file (422/413), bytes that are not what the extension says (415), unreadable
    file (422), no extractable text, e.g. a scanned PDF (422).
    """
    kind = _kind_from_name(filename)
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    if not isinstance(content, (bytes, bytearray)):
        raise DocumentError("文件内容必须是字节 (content must be bytes)", 422, "invalid_content")
    content = bytes(content)
    if len(content) == 0:
        raise DocumentError("文件为空 (the uploaded file is empty)", 422, "empty_file")
    if len(content) > limit:
        raise DocumentError(
            f"文件过大：{len(content) / 1048576:.1f} MB，上限 {limit / 1048576:g} MB (file too large)",
            413, "file_too_large")
    actual = _sniff(content)
    if actual != kind:
        what = {"pdf": "a PDF", "docx": "a Word .docx document", "zip": "a ZIP archive",
                "binary": "binary data", "txt": "plain text"}[actual]
        raise DocumentError(
            f"文件内容与扩展名不符 (the file is named .{kind} but its content is {what})", 415, "type_mismatch")
    if kind == "pdf":
        text = _pdf_text(content)
    elif kind == "docx":
        text = _docx_text(content)
    else:
        text = decode_text(content)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if len(re.sub(r"\s+", "", text)) < MIN_TEXT_CHARS:
        if kind == "pdf":
            raise DocumentError("PDF 中没有可提取的文字（可能是扫描件，请先做文字识别）"
                                "(the PDF has no text layer; OCR it first)", 422, "no_text")
        raise DocumentError(f"文件中没有足够的文字 (fewer than {MIN_TEXT_CHARS} characters of text)", 422, "no_text")
    return kind, text


def text_fingerprint(text: str) -> str:
    """Hash of the text without whitespace: the same plan uploaded twice (any format) collides."""
    return hashlib.sha256(re.sub(r"\s+", "", text).encode("utf-8")).hexdigest()


def _field(name: str, value: object, limit: int = MAX_FIELD_CHARS) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DocumentError(f"{name} 必须是文本 ({name} must be a string)", 422, "invalid_field")
    value = " ".join(value.split())
    if len(value) > limit:
        raise DocumentError(f"{name} 过长：{len(value)} 字，上限 {limit} 字 ({name} too long)", 422, "invalid_field")
    return value


@dataclass
class UploadMeta:
    """Checked catalog fields of an upload."""

    doc_id: str
    title: str
    issuer: str
    date: str
    region: str
    aliases: list[str]


def check_metadata(filename: str, content: bytes, title: object, issuer: object = "", date: object = "",
                   region: object = "", doc_id: object = None, aliases: object = None) -> UploadMeta:
    """Validate the catalog fields of an upload; the id defaults to a slug of the file name."""
    t = _field("title", title, MAX_TITLE_CHARS)
    if not t:
        raise DocumentError("标题不能为空 (title is required)", 422, "missing_title")
    d = _field("date", date)
    if d and not _DATE_RE.fullmatch(d):
        raise DocumentError(f"日期格式应为 YYYY、YYYY-MM 或 YYYY-MM-DD (invalid date {d!r})", 422, "invalid_date")
    if aliases is None:
        alias_list: list[str] = []
    elif isinstance(aliases, str):
        alias_list = [a for a in re.split(r"[,，、;；\n]", aliases)]
    elif isinstance(aliases, (list, tuple)):
        alias_list = list(aliases)
    else:
        raise DocumentError("aliases 必须是文本列表 (aliases must be a list of strings)", 422, "invalid_field")
    alias_list = [a for a in (_field("alias", a, 40) for a in alias_list) if a]
    if len(alias_list) > MAX_ALIASES:
        raise DocumentError(f"别名最多 {MAX_ALIASES} 个 (too many aliases)", 422, "invalid_field")
    ident = check_doc_id(doc_id) if doc_id not in (None, "") else slug_doc_id(filename, content)
    return UploadMeta(doc_id=ident, title=t, issuer=_field("issuer", issuer), date=d,
                      region=_field("region", region), aliases=list(dict.fromkeys(alias_list)))


def catalog_entry(meta: UploadMeta, filename: str, kind: str, content: bytes, text: str) -> dict:
    """The uploads/catalog.json entry: DocumentInfo fields plus where the text came from."""
    return {
        "doc_id": meta.doc_id,
        "file": f"uploads/{meta.doc_id}.txt",
        "title": meta.title,
        "short_title": meta.title,
        "issuer": meta.issuer,
        "date": meta.date,
        "region": meta.region,
        "doc_number": None,
        "aliases": meta.aliases,
        "weak_aliases": [],
        "note": f"上传文件：{os.path.basename(filename)}",
        "upload": {
            "filename": os.path.basename(filename),
            "kind": kind,
            "media_type": MEDIA_TYPES[kind],
            "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "text_sha256": text_fingerprint(text),
            "uploaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
