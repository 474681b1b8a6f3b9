"""The embedded model over onnxruntime: the same vectors as sentence-transformers, without torch.

`rag models prepare` exports the embedded multilingual-e5-small twice into
`<cache>/models/multilingual-e5-small-onnx/` (rag/onnx_export.py): `model.onnx`
(fp32) and `model-int8.onnx` (dynamic int8), each taking `input_ids` and
`attention_mask` with dynamic batch and sequence axes and returning the
mean-pooled (over the attention mask), L2-normalised sentence embedding.  The
weights are stored beside each graph (`*.onnx.data`, ONNX external data), which
onnxruntime maps into memory instead of copying: the int8 session costs ~40 MB
and 0.2 s to open instead of ~150 MB (peak ~220 MB) and 0.4 s, since only the
rows of the 250,002-word embedding table that a text uses are ever read.  Beside
them `onnx_config.json` records what the sentence-transformers model does around
the network — its prompts (`query: ` / `passage: `), its max sequence length, the
padding id — and `tokenizer.json` is the model's own tokenizer file.

`OnnxEmbeddings` tokenizes exactly as sentence-transformers does (prompt
prepended to the text, truncation to the max sequence length counting the special
tokens, right padding within a batch) — with rag/unigram.py, the tokenizer's own
pipeline in a tenth of the `tokenizers` library's memory — and
has the same interface as `rag.embeddings.SentenceTransformerEmbeddings`
(`embed_passages`, `embed_query_vector`, `_encode`, the prompts, the lock).
This module imports only numpy, onnxruntime and tokenizers: no torch, no
transformers, no LangChain (it is on the fast path of `rag ask`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .model_lock import EmbedderMethods, QueriesFirstLock
from .unigram import PIECES_FILE, PIPELINE_FILE, SCORES_FILE, LightUnigramTokenizer

ONNX_FORMAT_VERSION = 2  # bump when the exported folder changes: `rag models prepare` re-exports
ONNX_DIR_NAME = "multilingual-e5-small-onnx"
CONFIG_FILE = "onnx_config.json"
MODEL_FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
DATA_SUFFIX = ".data"  # weights beside each graph (external data): onnxruntime maps them, pages load on use
TOKENIZER_FILES = ("tokenizer.json", PIECES_FILE, SCORES_FILE, PIPELINE_FILE)
# fp32 queries per model call.  Measured on this 2-core machine (load average ~6) over the gold questions
# (~21 tokens): 16.9 ms CPU per query one per call, 12.3 at 8 per call (up to MAX_PADDING).
QUERY_BATCH = 8
MAX_PADDING = 0.25  # a batch's padding tokens, at most this share of its real tokens (`OnnxEmbeddings.batches`)


class OnnxModelMissing(RuntimeError):
    """The exported ONNX model is not there (or out of date): `rag models prepare` makes it."""


def onnx_dir(models_dir: Path) -> Path:
    return Path(models_dir) / ONNX_DIR_NAME


def read_onnx_config(folder: Path) -> dict | None:
    """The folder's onnx_config.json when it is complete and current, else None."""
    from .embedded_model import FORMAT_VERSION as SOURCE_FORMAT

    try:
        config = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("format_version") != ONNX_FORMAT_VERSION \
            or config.get("source_format_version") != SOURCE_FORMAT:
        return None
    needed = (*MODEL_FILES.values(), *(f + DATA_SUFFIX for f in MODEL_FILES.values()), *TOKENIZER_FILES)
    if not all((Path(folder) / name).is_file() for name in needed):
        return None
    return config


def _threads() -> int:
    """Cores a model call may use: RAG_EMBED_THREADS, else every core (at most 4)."""
    try:
        n = int(os.environ.get("RAG_EMBED_THREADS", "") or 0)
    except ValueError:
        n = 0
    return n if n > 0 else max(1, min(4, os.cpu_count() or 1))


class OnnxEmbeddings(EmbedderMethods):
    """Normalized embeddings of the embedded model through onnxruntime (`backend` onnx or onnx-int8)."""

    def __init__(self, folder: Path, backend: str = "onnx-int8", model_name: str = "", batch_size: int = 1,
                 threads: int | None = None):
        """`batch_size` 1 (the default): every text runs alone, unpadded, so its vector never depends on
        the texts it was embedded with (int8's dynamic activation scales are per call) — and measured
        on this 2-core machine, one text per call is also the fastest per CPU second (int8: 26.5 vs 20.1
        passages/s at 8, fp32 12.7 vs 10.8; again with batches of similar length, `rag bench --batch-sizes`:
        300-character passages cost the same CPU at 1, 2, 4, 8 and 16 a call — the matrix products are
        already large).  `threads`: cores a call of several texts may use; each
        runs on one onnxruntime thread, and that many run side by side (the session is thread-safe)."""
        if backend not in MODEL_FILES:
            raise ValueError(f"unknown ONNX backend {backend!r}: {', '.join(MODEL_FILES)}")
        folder = Path(folder)
        config = read_onnx_config(folder)
        model_file = folder / MODEL_FILES[backend]
        if config is None:
            why = "is missing" if not model_file.exists() else "is incomplete or from an older version"
            raise OnnxModelMissing(
                f"the ONNX embedding model {model_file} {why}: run `rag models prepare` (or `make setup`) to "
                f"export it, or set RAG_EMBED_BACKEND=torch")
        try:
            import onnxruntime as ort
            import tokenizers  # noqa: F401  (rag/unigram.py uses its normalizer and pre-tokenizer)
        except ImportError as exc:
            raise OnnxModelMissing(f"{exc.name} is not installed (run `make setup`), or set "
                                   "RAG_EMBED_BACKEND=torch") from exc
        self.backend = backend
        self.model_name = model_name
        self.batch_size = batch_size
        # Queries arriving together (the server's micro-batches, rag/query_batch.py) share model calls in fp32:
        # ~25% less CPU per query (QUERY_BATCH).  int8 keeps one text per call (see above).
        self.query_batch_size = QUERY_BATCH if backend == "onnx" else 1
        self.folder = folder
        self.query_prompt = config["prompts"].get("query", "")
        self.passage_prompt = config["prompts"].get("passage", config["prompts"].get("document", ""))
        self.max_seq_length = int(config["max_seq_length"])
        self.pad_id = int(config["pad_token_id"])
        self._dimension = int(config["dimension"])
        self.threads = threads or _threads()

        # tokenizer.json's pipeline without the `tokenizers` Unigram model's 280 MB trie (rag/unigram.py)
        self.tokenizer = LightUnigramTokenizer(folder, self.max_seq_length)

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallel across texts instead (see _encode)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self._output = self.session.get_outputs()[0].name
        self._lock = QueriesFirstLock()  # queries go first (see rag/model_lock.py)
        self._pool = None  # ThreadPoolExecutor of `threads` workers, made on the first call of several batches

    @property
    def dimension(self) -> int:
        return self._dimension

    def token_ids(self, texts: list[str], prompt: str = "") -> list[list[int]]:
        """The token ids sentence-transformers would feed the model (prompt + text, truncated)."""
        return self.tokenizer.encode_batch([prompt + t for t in texts])

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        return self.session.run([self._output], {"input_ids": input_ids, "attention_mask": mask})[0]

    def batches(self, ids: list[list[int]], batch_size: int, max_padding: float = MAX_PADDING) -> list[list[int]]:
        """Rows of `ids` grouped into model calls of at most `batch_size` texts, longest first, texts of
        similar length together: a batch is cut where padding to its longest text would exceed
        `max_padding` of its real tokens, so batching saves per-call overhead without paying for padding."""
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: list[list[int]] = []
        for i in order:
            batch = out[-1] if out else None
            if batch is not None and len(batch) < batch_size:
                width = len(ids[batch[0]])  # the longest: rows come longest first
                real = sum(len(ids[j]) for j in batch) + len(ids[i])
                if width * (len(batch) + 1) <= real * (1 + max_padding):
                    batch.append(i)
                    continue
            out.append([i])
        return out

    def _encode(self, texts: list[str], prompt: str, show_progress: bool = False,
                background: bool = False, batch_size: int | None = None,
                max_padding: float = MAX_PADDING) -> np.ndarray:
        """`background`: passages (index builds, uploads) wait while any query waits for the model.
        `batch_size`: texts per model call (default: `query_batch_size` for queries, `batch_size` else);
        `max_padding` as for `batches` (infinite: every batch as full as `batch_size` allows)."""
        texts = list(texts)
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts, prompt or "")
        if batch_size is None:
            batch_size = self.query_batch_size if prompt == self.query_prompt and not background else self.batch_size
        batches = self.batches(ids, max(1, batch_size), max_padding)
        bar = None
        if show_progress:
            from tqdm import tqdm

            bar = tqdm(total=len(batches), desc="Batches")
        with self._lock.hold(background):
            if len(batches) == 1 or self.threads == 1:
                results = map(lambda rows: self._run([ids[i] for i in rows]), batches)
            else:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="onnx-embed")
                results = self._pool.map(lambda rows: self._run([ids[i] for i in rows]), batches)
            for rows, vecs in zip(batches, results):
                out[rows] = vecs
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        return out
