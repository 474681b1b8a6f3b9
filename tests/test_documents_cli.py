"""`rag documents add|list|show|remove`: bulk import of folders (sidecar metadata, bad files, duplicates,
reruns, interruptions) and the catalog commands, over the one-document seed corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import cli
from rag.config import Settings
from rag.index import KnowledgeIndex
from rag.service import Assistant
from rag.store import DocumentStore
from tests.conftest import kill_when_paused


def plan(n: int) -> str:
    """A small plan of its own (numbers differ, so the texts do)."""
    return (f"第{n}号示例行动计划\n一、发展目标\n到2030年，示例{n}区产业规模达到{100 + n}亿元，培育{n + 3}家龙头企业。\n"
            f"二、重点任务\n（一）支持研发。对研发投入给予{10 + n}%的补贴，单个企业每年最高{n}00万元。\n"
            f"（二）人才引进。引进高层次人才{50 + n}名，给予安家补贴。\n")


@pytest.fixture
def settings(tmp_path, small_seeds, monkeypatch):
    settings = Settings(seeds_dir=small_seeds, index_dir=tmp_path / "index")
    monkeypatch.setenv("RAG_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("RAG_SEEDS_DIR", str(small_seeds))
    monkeypatch.setenv("RAG_INDEX_CHECK_S", "0")  # a running Assistant looks at CURRENT on every query
    return settings


@pytest.fixture
def run(settings, embedder, monkeypatch, capsys):
    """`rag …` in-process; every command opens its own Assistant (with the session's model), as a new
    process would."""
    monkeypatch.setattr(cli, "_assistant", lambda args, **kw: Assistant(settings, embedder=embedder, **kw))

    def run(*argv):
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def saves(monkeypatch):
    """How many index versions were written."""
    count = []
    original = KnowledgeIndex.save

    def save(self, *args, **kwargs):
        count.append(1)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(KnowledgeIndex, "save", save)
    return count


def uploads_on_disk(settings) -> list[str]:
    """The published uploads, checked to agree with the store and with a read-only open."""
    published = KnowledgeIndex.load(settings.index_dir).uploads.doc_ids
    assert sorted(DocumentStore(settings.index_dir).scan().documents) == sorted(published)
    return published


def test_add_a_folder_lists_each_file_and_a_rerun_skips_them_all(settings, run, saves, embedder, tmp_path):
    server = Assistant(settings, embedder=embedder)  # a server running on the same index
    folder = tmp_path / "plans"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.txt").write_text(plan(1), encoding="utf-8")
    (folder / "sub" / "second.txt").write_text(plan(2), encoding="utf-8")
    (folder / "sub" / "second.json").write_text(json.dumps(
        {"title": "第二号示例行动计划", "aliases": ["示例二区"], "region": "示例省示例二区"}, ensure_ascii=False),
        encoding="utf-8")
    (folder / "third.txt").write_text(plan(3), encoding="utf-8")
    (folder / "third.txt.yaml").write_text("date: 2024-05-01\nissuer: 示例三区管委会\n", encoding="utf-8")
    (folder / "bad.pdf").write_text("这不是 PDF 文件，只是文字。" * 3, encoding="utf-8")
    (folder / "later-copy.txt").write_text(plan(1), encoding="utf-8")
    (folder / "notes.md").write_text("not a plan", encoding="utf-8")
    saves.clear()

    code, out, err = run("documents", "add", str(folder), "--issuer", "示例市人民政府", "--json")

    report = json.loads(out)
    assert code == 1, err  # one file failed
    assert len(saves) == 1  # one new version for the whole folder
    added = {Path(o["path"]).name: o for o in report["added"]}
    assert sorted(added) == ["good.txt", "second.txt", "third.txt"]
    assert [(Path(o["path"]).name, o["doc_id"]) for o in report["skipped"]] == [
        ("later-copy.txt", added["good.txt"]["doc_id"])]
    assert [(Path(o["path"]).name, o["code"]) for o in report["failed"]] == [("bad.pdf", "type_mismatch")]
    assert "named .pdf" in report["failed"][0]["message"]

    assert sorted(uploads_on_disk(settings)) == sorted(o["doc_id"] for o in added.values())
    docs = {d.doc_id: d for d in server.corpus.documents}  # the server answers from the new version
    good, second, third = (docs[added[n]["doc_id"]] for n in ("good.txt", "second.txt", "third.txt"))
    assert (good.title, good.issuer) == ("good", "示例市人民政府")  # title: the file name, as in the API
    assert (second.title, second.region, second.issuer) == ("第二号示例行动计划", "示例省示例二区", "示例市人民政府")
    assert "示例二区" in second.aliases
    assert (third.date, third.issuer) == ("2024-05-01", "示例三区管委会")  # the sidecar's fields win
    hits = server.search("研发投入补贴 12%", k=1, documents=[second.doc_id]).hits
    assert hits[0].chunk.doc_id == second.doc_id

    (folder / "bad.pdf").unlink()
    saves.clear()
    code, out, err = run("documents", "add", str(folder))
    assert code == 0, err
    assert len(saves) == 0 and len(uploads_on_disk(settings)) == 3
    assert "added 0, skipped 4, failed 0" in out and "same content as" in out


def test_human_report_names_each_bad_file_and_bad_input_is_one_line(settings, run, tmp_path):
    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / "ok.txt").write_text(plan(4), encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "broken.txt").write_text(plan(5), encoding="utf-8")
    (folder / "broken.json").write_text("{not json", encoding="utf-8")

    code, out, err = run("documents", "add", str(folder), "--quiet")
    assert code == 1 and "added 1, skipped 0, failed 2" in out
    assert f"{folder / 'empty.txt'}: 文件为空" in out and f"{folder / 'broken.txt'}: 元数据文件 broken.json 无效" in out

    for argv, fragment in [(["documents", "add", str(tmp_path / "missing.txt")], "no such file"),
                           (["documents", "add", str(tmp_path / "*.nothing")], "no file matches"),
                           (["documents", "add", str(folder), "--title", "一个标题"], "--title and --id name one file"),
                           (["documents", "add", str(folder / "ok.txt"), "--date", "2024/05"], "invalid date"),
                           (["documents", "show", "no-such-doc"], "unknown doc_id"),
                           (["documents", "remove", "demo-2025"], "seed document 'demo-2025' cannot be deleted"),
                           (["documents", "remove", "no-such-doc"], "unknown doc_id")]:
        code, out, err = run(*argv)
        assert code == 1 and fragment in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("错误："), err


def test_list_show_and_remove(settings, run, tmp_path):
    path = tmp_path / "plan.txt"
    path.write_text(plan(6), encoding="utf-8")
    code, out, _ = run("documents", "add", str(path), "--title", "第六号示例行动计划", "--alias", "示例六区",
                       "--alias", "六区", "--date", "2025", "--json")
    doc_id = json.loads(out)["added"][0]["doc_id"]
    assert code == 0

    code, out, _ = run("documents", "list", "--json")
    rows = {d["doc_id"]: d for d in json.loads(out)}
    assert code == 0 and rows["demo-2025"]["source"] == "seed"
    row = rows[doc_id]
    assert row["source"] == "upload" and row["title"] == "第六号示例行动计划" and row["clause_count"] >= 3
    assert row["upload"]["filename"] == "plan.txt" and row["upload"]["uploaded_at"]
    code, out, _ = run("documents", "list")
    assert code == 0 and doc_id in out and "第六号示例行动计划" in out and "种子 (seed)" in out

    code, out, _ = run("documents", "show", doc_id, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["aliases"][:2] == ["示例六区", "六区"] and shown["date"] == "2025"
    assert [h["title"] for h in shown["outline"]][:2] == ["发展目标", "重点任务"]
    code, out, _ = run("documents", "show", doc_id)
    assert code == 0 and "第六号示例行动计划" in out and "发展目标" in out and "plan.txt" in out

    code, out, err = run("documents", "remove", doc_id)
    assert code == 0 and doc_id in out, err
    assert uploads_on_disk(settings) == []
    code, out, _ = run("documents", "list", "--json")
    assert doc_id not in {d["doc_id"] for d in json.loads(out)}


def test_ctrl_c_keeps_what_was_embedded_and_a_rerun_adds_the_rest(settings, run, tmp_path, monkeypatch):
    folder = tmp_path / "plans"
    folder.mkdir()
    for n in range(1, 6):
        (folder / f"plan-{n}.txt").write_text(plan(10 + n), encoding="utf-8")
    original = Assistant.embed_upload

    def interrupted(self, prepared, *args, **kwargs):
        if prepared.entry["upload"]["filename"] == "plan-3.txt":
            raise KeyboardInterrupt
        return original(self, prepared, *args, **kwargs)
    monkeypatch.setattr(Assistant, "embed_upload", interrupted)

    code, out, err = run("documents", "add", str(folder), "--checkpoint", "10")
    assert code == 130 and "added 2" in out and "3 files left" in err
    assert len(uploads_on_disk(settings)) == 2  # published although no checkpoint was reached

    monkeypatch.setattr(Assistant, "embed_upload", original)
    code, out, err = run("documents", "add", str(folder), "--checkpoint", "10")
    assert code == 0 and "added 3, skipped 2, failed 0" in out, out + err
    assert len(uploads_on_disk(settings)) == 5


def test_a_killed_bulk_import_keeps_its_checkpoints_and_a_rerun_finishes(settings, run, embedder, tmp_path):
    Assistant(settings, embedder=embedder)  # the index exists: the child only adds
    folder = tmp_path / "plans"
    folder.mkdir()
    for n in range(1, 6):
        (folder / f"plan-{n}.txt").write_text(plan(20 + n), encoding="utf-8")
    # killed after the first checkpoint: two documents published
    kill_when_paused(["-m", "rag.cli", "documents", "add", str(folder), "--checkpoint", "2", "--quiet"],
                     "bulk:checkpoint", tmp_path / "child.log")
    assert len(uploads_on_disk(settings)) == 2
    Assistant(settings, embedder=embedder, allow_rebuild=False)  # a read command opens it as it is

    code, out, err = run("documents", "add", str(folder), "--json")
    report = json.loads(out)
    assert code == 0, err
    assert (len(report["added"]), len(report["skipped"]), report["failed"]) == (3, 2, [])
    assert len(uploads_on_disk(settings)) == 5
