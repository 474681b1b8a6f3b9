"""Resolve the clause ids of an uploaded-document gold file from its quotes.

Question writers name clauses by the document's own headings ("第三章.第十六条");
the parser may split an article into paragraphs (".p1") or a heading may hold the
quote.  This rewrites each gold clause_id to the parser's id of the one clause
whose heading or text holds the quote, and fails loudly when none or several do.
It changes ids only, never questions, quotes or expected facts.

usage: python scripts/resolve_gold_ids.py evals/uploaded_gold.jsonl evals/documents
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rag.clauses import parse_document  # noqa: E402
from rag.evaluate import norm  # noqa: E402


def main(gold_path: str, docs_dir: str) -> int:
    docs = json.loads((Path(docs_dir) / "catalog.json").read_text(encoding="utf-8"))["documents"]
    parsed = {d["doc_id"]: parse_document(d["doc_id"], (Path(docs_dir) / d["file"]).read_text(encoding="utf-8"))
              for d in docs}
    lines, problems = [], 0
    for line in Path(gold_path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        for g in item["gold"]:
            clauses = parsed[g["doc_id"]].clauses
            holders = [c.clause_id for c in clauses if norm(g["quote"]) in norm(c.text)]
            if not holders:  # a heading title: the first clause under that heading, at any depth
                holders = [c.clause_id for c in clauses if any(norm(g["quote"]) in norm(s) for s in c.section)][:1]
            if len(holders) > 1 and g["clause_id"] in holders:  # the writer's own reading settles a tie
                holders = [g["clause_id"]]
            if len(holders) != 1:
                print(f"{item['id']}: quote {g['quote']!r} held by {holders}", file=sys.stderr)
                problems += 1
                continue
            g["clause_id"] = holders[0]
        lines.append(json.dumps(item, ensure_ascii=False))
    if problems:
        return 1
    Path(gold_path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
