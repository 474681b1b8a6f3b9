"""A light Unigram tokenizer: the `tokenizers` library's result, in a tenth of its memory.

Loading the embedded model's tokenizer.json with `tokenizers` costs ~280 MB and
~1 s (its Unigram model keeps a character trie of all 250,002 XLM-R pieces):
more than the whole rest of a one-shot `rag ask`.  This module runs the same
pipeline with the heavy part replaced:

1. special tokens (`<s>`, `</s>`, `<pad>`, `<unk>`, `<mask>`: not normalised) are
   split out of the raw text, leftmost-longest, as `tokenizers`' added vocabulary does;
2. every other piece goes through the tokenizer's own normalizer and
   pre-tokenizer — the `tokenizers` objects themselves, built from the saved
   tokenizer.json with its vocabulary left out (a few KB);
3. each pre-token is segmented by the Viterbi search of `tokenizers`' Unigram
   model (`encode_optimized` in tokenizers/src/models/unigram/model.rs): the
   same scores, the same order of candidates, strict `>` on ties, unknown
   characters scored `min_score - 10` and consecutive unknowns fused into one
   `<unk>`; here over a dict of pieces instead of a trie;
4. the result is truncated to the max length less the two special tokens and
   framed by `<s>` … `</s>` (the tokenizer's TemplateProcessing).

tests/test_onnx_backend.py checks the ids against `tokenizers` (and
sentence-transformers) on every seed passage and sentence, the evaluation
questions and edge cases (whitespace runs, full-width forms, unknown characters,
literal special tokens, over-long texts).
"""

from __future__ import annotations

import json
import re
from array import array
from pathlib import Path

PIECES_FILE = "unigram_pieces.txt"  # one piece per "\n"-separated field (pieces hold no "\n"), in id order
SCORES_FILE = "unigram_scores.bin"  # float64 little-endian, in id order
PIPELINE_FILE = "tokenizer_pipeline.json"  # tokenizer.json without its vocabulary
K_UNK_PENALTY = 10.0


def write_light_files(tokenizer_json: Path, out: Path) -> None:
    """Split a Unigram tokenizer.json into the files `LightUnigramTokenizer` reads."""
    config = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model = config["model"]
    if model.get("type") != "Unigram" or model.get("byte_fallback"):
        raise ValueError("only Unigram tokenizers without byte fallback are supported")
    pieces = [p for p, _ in model["vocab"]]
    if any("\n" in p for p in pieces) or len(set(pieces)) != len(pieces):
        raise ValueError("pieces must be distinct and hold no newline")
    (out / PIECES_FILE).write_text("\n".join(pieces), encoding="utf-8")
    scores = array("d", (float(s) for _, s in model["vocab"]))
    if scores.itemsize != 8:
        raise ValueError("float64 expected")
    (out / SCORES_FILE).write_bytes(scores.tobytes())
    pipeline = dict(config, model={**model, "vocab": [[pieces[model["unk_id"]], 0.0]], "unk_id": 0},
                    truncation=None, padding=None)
    pipeline["x_vocab_size"] = len(pieces)
    pipeline["x_unk_id"] = model["unk_id"]
    pipeline["x_min_score"] = min(scores)
    (out / PIPELINE_FILE).write_text(json.dumps(pipeline, ensure_ascii=False), encoding="utf-8")


class LightUnigramTokenizer:
    def __init__(self, folder: Path, max_length: int):
        from tokenizers import Tokenizer

        folder = Path(folder)
        pipeline = json.loads((folder / PIPELINE_FILE).read_text(encoding="utf-8"))
        shell = Tokenizer.from_str(json.dumps({k: v for k, v in pipeline.items() if not k.startswith("x_")}))
        self._normalize = shell.normalizer.normalize_str if shell.normalizer else (lambda s: s)
        self._pre_tokenize = shell.pre_tokenizer.pre_tokenize_str if shell.pre_tokenizer else (lambda s: [(s, None)])
        pieces = (folder / PIECES_FILE).read_text(encoding="utf-8").split("\n")
        if len(pieces) != pipeline["x_vocab_size"]:
            raise ValueError(f"{folder / PIECES_FILE}: {len(pieces)} pieces, expected {pipeline['x_vocab_size']}")
        self._ids = {p: i for i, p in enumerate(pieces)}
        scores = array("d")
        scores.frombytes((folder / SCORES_FILE).read_bytes())
        if len(scores) != len(pieces):
            raise ValueError(f"{folder / SCORES_FILE}: {len(scores)} scores for {len(pieces)} pieces")
        self._scores = scores
        self._unk_id = int(pipeline["x_unk_id"])
        self._unk_score = float(pipeline["x_min_score"]) - K_UNK_PENALTY
        # The longest piece starting with each character bounds the candidates tried at a position.
        longest: dict[str, int] = {}
        for p in pieces:
            if len(p) > longest.get(p[0], 0):
                longest[p[0]] = len(p)
        self._longest = longest
        specials = {t["content"]: t["id"] for t in pipeline.get("added_tokens", [])}
        if any(t.get("normalized") or t.get("lstrip") or t.get("rstrip") or t.get("single_word")
               for t in pipeline.get("added_tokens", [])):
            raise ValueError("added tokens with normalized/lstrip/rstrip/single_word are not supported")
        self._specials = specials
        self._special_re = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))) \
            if specials else None
        self._bos, self._eos = self._template(pipeline.get("post_processor"))
        self.max_length = int(max_length)
        self._cache: dict[str, tuple[int, ...]] = {}

    @staticmethod
    def _template(post: dict | None) -> tuple[list[int], list[int]]:
        if not post or post.get("type") != "TemplateProcessing":
            raise ValueError("a TemplateProcessing post-processor is expected")
        specials = post["special_tokens"]
        before, after, seen = [], [], False
        for item in post["single"]:
            if "Sequence" in item:
                seen = True
            else:
                (after if seen else before).extend(specials[item["SpecialToken"]["id"]]["ids"])
        return before, after

    def _viterbi(self, word: str) -> tuple[int, ...]:
        """tokenizers' Unigram::encode_optimized + tokenize, on characters."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        ids, scores, longest = self._ids, self._scores, self._longest
        n = len(word)
        best = [0.0] * (n + 1)
        start_of = [-1] * (n + 1)
        id_of = [0] * (n + 1)
        unk = self._unk_id
        for s in range(n):
            till_here = best[s]
            single = False
            for end in range(s + 1, min(n, s + longest.get(word[s], 0)) + 1):
                i = ids.get(word[s:end])
                if i is None:
                    continue
                cand = scores[i] + till_here
                if start_of[end] < 0 or cand > best[end]:
                    best[end], start_of[end], id_of[end] = cand, s, i
                if end == s + 1:
                    single = True
            if not single:
                cand = self._unk_score + till_here
                if start_of[s + 1] < 0 or cand > best[s + 1]:
                    best[s + 1], start_of[s + 1], id_of[s + 1] = cand, s, unk
        out: list[str] = []
        fused: list[str] = []
        end = n
        while end > 0:
            s = start_of[end]
            if id_of[end] == unk:
                fused.append(word[s:end])
            else:
                if fused:
                    out.append("".join(reversed(fused)))
                    fused = []
                out.append(word[s:end])
            end = s
        if fused:
            out.append("".join(reversed(fused)))
        result = tuple(ids.get(t, unk) for t in reversed(out))
        if len(self._cache) < 100_000:
            self._cache[word] = result
        return result

    def _model_ids(self, text: str) -> list[int]:
        out: list[int] = []
        if not text:
            return out
        for word, _ in self._pre_tokenize(self._normalize(text)):
            out.extend(self._viterbi(word))
        return out

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        pos = 0
        if self._special_re is not None:
            for m in self._special_re.finditer(text):
                ids.extend(self._model_ids(text[pos:m.start()]))
                ids.append(self._specials[m.group()])
                pos = m.end()
        ids.extend(self._model_ids(text[pos:]))
        room = max(0, self.max_length - len(self._bos) - len(self._eos))
        return self._bos + ids[:room] + self._eos

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]
