"""Upload extraction (rag/ingest.py) on real .txt/.pdf/.docx files, plus the file builders other API tests use.

No model needed: these check that every kind of bad file is refused with the
right status and code before anything reaches the index.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from rag.ingest import (DocumentError, check_doc_id, check_metadata, extract_text, max_upload_bytes, slug_doc_id,
                        text_fingerprint)

PLAN_LINES = [
    "成都市集成电路产业高质量发展行动计划",
    "一、发展目标",
    "到2026年，成都市集成电路产业规模突破1500亿元，培育营收超50亿元的龙头企业5家。",
    "二、重点任务",
    "（一）做强芯片设计。支持企业开展首轮流片，按流片费用的40%给予补助，单个企业每年最高2000万元。",
    "（二）建设特色园区。在高新区建设集成电路设计产业园，打造西部芯谷。",
    "三、保障措施",
    "（一）加强组织领导。建立市级集成电路产业发展联席会议制度。",
]


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF with real text: a Type0 font (Identity-H) and a ToUnicode CMap.

    Each string is drawn as UTF-16 code units, and the identity ToUnicode map
    lets any PDF reader (pypdf here) recover the Chinese text exactly.
    """
    objs: list[bytes] = []

    def add(body) -> int:
        objs.append(body if isinstance(body, bytes) else body.encode("latin-1"))
        return len(objs)

    cmap = (b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
            b"1 beginbfrange\n<0000> <FFFF> <0000>\nendbfrange\n"
            b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n")
    tounicode = add(b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream")
    desc = add("<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [0 -200 1000 900] "
               "/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 80 >>")
    cid = add(f"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
              f"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
              f"/FontDescriptor {desc} 0 R /DW 1000 >>")
    font = add(f"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /Identity-H "
               f"/DescendantFonts [{cid} 0 R] /ToUnicode {tounicode} 0 R >>")
    contents = []
    for lines in pages:
        ops = [b"BT", b"/F1 12 Tf", b"14 TL", b"50 800 Td"]
        ops += [b"<" + line.encode("utf-16-be").hex().upper().encode() + b"> Tj T*" for line in lines]
        ops += [b"ET", b"0 0 m 100 100 l S"]  # a drawn line, so an empty page still has content
        stream = b"\n".join(ops)
        contents.append(add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"))
    pages_id = len(objs) + len(pages) + 1
    kids = [add(f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 595 842] "
                f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {c} 0 R >>") for c in contents]
    assert add(f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>") == pages_id
    catalog = add(f"<< /Type /Catalog /Pages {pages_id} 0 R >>")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, catalog, xref)
    return bytes(out)


def make_docx(lines: list[str], table: list[list[str]] | None = None) -> bytes:
    """A real Word document written with python-docx."""
    import docx

    document = docx.Document()
    for line in lines:
        document.add_paragraph(line)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def _nows(text: str) -> str:
    return "".join(text.split())


# -- the good kinds ----------------------------------------------------------------------

def test_txt_utf8_gb18030_utf16_and_bom_all_decode_to_the_same_text():
    text = "\n".join(PLAN_LINES)
    for raw in (text.encode("utf-8"), b"\xef\xbb\xbf" + text.encode("utf-8"), text.encode("gb18030"),
                text.encode("utf-16")):
        kind, got = extract_text("plan.txt", raw)
        assert kind == "txt"
        assert got == text


def test_pdf_text_is_extracted_from_every_page():
    data = make_pdf([PLAN_LINES[:3], PLAN_LINES[3:]])
    kind, text = extract_text("成都.pdf", data)
    assert kind == "pdf"
    assert _nows(text) == _nows("".join(PLAN_LINES))
    assert "成都市集成电路产业规模突破1500亿元" in text


def test_docx_paragraphs_and_tables_in_document_order():
    data = make_docx(PLAN_LINES, table=[["指标", "2026年目标"], ["产业规模", "1500亿元"]])
    kind, text = extract_text("Plan.DOCX", data)  # extension case does not matter
    assert kind == "docx"
    lines = text.split("\n")
    assert lines[: len(PLAN_LINES)] == PLAN_LINES
    assert lines[-1] == "产业规模\t1500亿元"


# -- the bad ones ------------------------------------------------------------------------------

def _refused(filename, content, status, code, **kw):
    with pytest.raises(DocumentError) as info:
        extract_text(filename, content, **kw)
    assert (info.value.status, info.value.code) == (status, code), str(info.value)
    return str(info.value)


def test_a_pdf_that_is_really_text_is_refused_as_a_type_mismatch():
    msg = _refused("plan.pdf", "\n".join(PLAN_LINES).encode(), 415, "type_mismatch")
    assert ".pdf" in msg and "plain text" in msg


def test_a_txt_that_is_really_a_pdf_or_docx_is_refused():
    _refused("plan.txt", make_pdf([PLAN_LINES]), 415, "type_mismatch")
    _refused("plan.txt", make_docx(PLAN_LINES), 415, "type_mismatch")
    _refused("plan.docx", make_pdf([PLAN_LINES]), 415, "type_mismatch")


def test_a_docx_that_is_some_other_zip_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    msg = _refused("plan.docx", buf.getvalue(), 415, "type_mismatch")
    assert "ZIP" in msg


def test_binary_data_named_txt_is_refused():
    _refused("plan.txt", bytes(range(256)) * 4, 415, "type_mismatch")


@pytest.mark.parametrize("name", ["plan.exe", "plan", "plan.doc", "plan.txt.zip", ""])
def test_unsupported_extensions_are_415(name):
    msg = _refused(name, "\n".join(PLAN_LINES).encode(), 415, "unsupported_type")
    assert ".txt, .pdf or .docx" in msg


def test_empty_file_is_refused():
    _refused("plan.txt", b"", 422, "empty_file")


def test_over_the_size_limit_is_413_and_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAG_MAX_UPLOAD_MB", "0.001")
    assert max_upload_bytes() == int(0.001 * 1024 * 1024)
    msg = _refused("plan.txt", "\n".join(PLAN_LINES * 10).encode(), 413, "file_too_large")
    assert "MB" in msg
    monkeypatch.delenv("RAG_MAX_UPLOAD_MB")
    assert max_upload_bytes() == 20 * 1024 * 1024
    _refused("plan.txt", b"x" * 101, 413, "file_too_large", max_bytes=100)


def test_a_pdf_without_text_is_refused_with_a_clear_message():
    msg = _refused("scan.pdf", make_pdf([[], []]), 422, "no_text")
    assert "OCR" in msg


def test_a_truncated_pdf_is_refused_as_unreadable():
    data = make_pdf([PLAN_LINES])
    _refused("plan.pdf", data[: len(data) // 3], 422, "unreadable_pdf")


def test_a_corrupt_docx_is_refused_as_unreadable():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<not xml")
        z.writestr("word/document.xml", "<also not xml")
    _refused("plan.docx", buf.getvalue(), 422, "unreadable_docx")


def test_text_that_is_too_short_or_undecodable_is_refused():
    _refused("plan.txt", "  \n 短 \n".encode(), 422, "no_text")
    _refused("plan.txt", b"\x81\x30" * 50 + b"\xff\xff\xff", 422, "undecodable_text")


# -- metadata and ids -------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["../etc", "..", "a/b", "a\\b", "A-Upper", "x" * 65, "", ".hidden", "a.b", "名字",
                                 "-lead", None, 5])
def test_path_like_or_malformed_doc_ids_are_refused(bad):
    with pytest.raises(DocumentError) as info:
        check_doc_id(bad)
    assert info.value.status == 422 and info.value.code == "invalid_doc_id"


def test_generated_ids_are_valid_slugs_for_any_file_name():
    for name in ("成都计划.pdf", "../../etc/passwd.txt", "Chengdu Plan 2026.docx", "", "a" * 300 + ".txt"):
        doc_id = slug_doc_id(name, b"content")
        assert check_doc_id(doc_id) == doc_id
    assert slug_doc_id("Chengdu Plan.pdf", b"x").startswith("chengdu-plan-")
    assert slug_doc_id("a.txt", b"x") != slug_doc_id("a.txt", b"y")


def test_metadata_is_checked_and_normalized():
    meta = check_metadata("a.txt", b"x", "  成都市  行动计划 ", issuer="成都市人民政府", date="2026-03",
                          region="四川省成都市", aliases="成都，Chengdu, 成都")
    assert meta.title == "成都市 行动计划"
    assert meta.aliases == ["成都", "Chengdu"]
    for kwargs, code in (({"title": ""}, "missing_title"), ({"title": "t" * 201}, "invalid_field"),
                         ({"title": "t", "date": "2026/03/01"}, "invalid_date"),
                         ({"title": "t", "aliases": 5}, "invalid_field")):
        with pytest.raises(DocumentError) as info:
            check_metadata("a.txt", b"x", **kwargs)
        assert info.value.code == code


def test_text_fingerprint_ignores_whitespace_only():
    assert text_fingerprint("一、 目标\n到2026年") == text_fingerprint("一、目标 到2026年")
    assert text_fingerprint("一、目标") != text_fingerprint("二、目标")
