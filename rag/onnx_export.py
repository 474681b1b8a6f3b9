"""Export the embedded model to ONNX (fp32 and dynamic int8), at set-up time, offline.

Part of `rag models prepare`.  The prepared sentence-transformers folder
(rag/embedded_model.py) is loaded with torch once; a small wrapper runs its BERT
on `input_ids` + `attention_mask` and does what the sentence-transformers
modules after it do — mean pooling over the attention mask, L2 normalisation —
so the graph's output is the sentence embedding.  The batch and sequence axes are
dynamic, and the example input is a padded batch so the attention mask is a real
input of the traced graph (a trace on an unpadded batch may drop it: padded
batches then come out wrong).

`model.onnx` is quantised with `onnxruntime.quantization.quantize_dynamic`
(int8 weights, per output channel; a few outlier-prone layers stay fp32:
`INT8_FP32_NODES`) into `model-int8.onnx`.  Before the folder is published both are
checked against sentence-transformers on padded and unpadded batches of real
passages and queries (fp32 must reach cosine >= 0.999 on every vector); the
figures go into `onnx_config.json`.  Everything is written to a temporary
sibling and renamed into place, like the model folder itself.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .embedded_model import FORMAT_VERSION as SOURCE_FORMAT, ModelPrepError, publish_folder
from .logs import quieted
from .onnx_embedder import CONFIG_FILE, DATA_SUFFIX, MODEL_FILES, ONNX_FORMAT_VERSION, OnnxEmbeddings, read_onnx_config
from .unigram import write_light_files

OPSET = 17
# Left in fp32 by the int8 export: the FFN down-projections of the first six layers, whose inputs (after
# GELU) have the outliers that a per-tensor dynamic activation scale handles worst.  Measured on the seeds
# (cosine to fp32 / top-5 agreement of dense retrieval): all quantised 0.9973 / 0.825; these six kept
# 0.9991 / 0.904; the last six kept instead 0.9974 / 0.830; all twelve kept 0.9993 / 0.900 at 2/3 the speed.
INT8_FP32_NODES = [f"/bert/encoder/layer.{i}/output/dense/MatMul" for i in range(6)]
FP32_MIN_COSINE = 0.999  # the bar: fp32 vectors must match torch's on padded and unpadded batches
INT8_MIN_COSINE = 0.99  # a sanity floor; int8's real bar is retrieval quality (rag eval, README)

# Texts the export is checked on: queries and passages of very different lengths, so a batch is padded.
CHECK_TEXTS = [
    "深圳到2025年集成电路产业营收目标是多少？",
    "人才",
    "What is Suzhou Industrial Park's talent target?",
    "到2025年，全市集成电路产业营收突破2500亿元，设计业、制造业、封测业协调发展，培育一批具有国际竞争力的龙头企业，"
    "形成较为完善的产业生态。加快建设12英寸晶圆制造生产线，推动化合物半导体、第三代半导体等特色工艺发展。",
    "（一）做强设计业。支持设计企业开展车规级芯片研发，对流片费用给予最高30%的补贴。",
    "第三代半导体 碳化硅 氮化镓 功率器件",
    "Supports   spaces\tand\nnewlines  ",
    "专栏1 重点工程" * 60,  # longer than the max sequence length: truncated
]


class _PooledEncoder:
    """Built lazily (torch is imported only when exporting)."""

    @staticmethod
    def make(bert):
        import torch

        class PooledEncoder(torch.nn.Module):
            def __init__(self, bert):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask):
                tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
                summed = (tokens * mask).sum(dim=1)
                counts = mask.sum(dim=1).clamp(min=1e-9)  # sentence-transformers' Pooling (mean tokens)
                return torch.nn.functional.normalize(summed / counts, p=2, dim=1)  # its Normalize module

        return PooledEncoder(bert).eval()




def _to_external_data(graph: Path) -> None:
    """Re-save `graph` with its weights in `<graph>.data` (onnxruntime maps that file, see rag/onnx_embedder.py)."""
    import onnx

    model = onnx.load(str(graph))
    tmp = graph.with_name(graph.name + ".tmp")
    onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=graph.name + DATA_SUFFIX, size_threshold=1024)
    os.replace(tmp, graph)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def check_against(model, onnx: OnnxEmbeddings, texts: list[str]) -> dict:
    """Cosines between sentence-transformers' vectors and the ONNX runner's, for queries and passages,
    in one padded batch and one text at a time (unpadded).  Token ids must agree exactly."""
    figures = {}
    for kind, prompt in (("query", onnx.query_prompt), ("passage", onnx.passage_prompt)):
        want_ids = [list(map(int, row[row_mask.astype(bool)]))
                    for row, row_mask in zip(*(model.preprocess([prompt + t for t in texts])[k].numpy()
                                               for k in ("input_ids", "attention_mask")))]
        got_ids = onnx.token_ids(texts, prompt)
        if want_ids != got_ids:
            bad = next(i for i, (w, g) in enumerate(zip(want_ids, got_ids)) if w != g)
            raise ModelPrepError(f"ONNX tokenization differs from sentence-transformers' on {texts[bad]!r}")
        torch_vecs = model.encode(texts, prompt=prompt or None, batch_size=len(texts), normalize_embeddings=True,
                                  convert_to_numpy=True)
        padded = onnx._encode(texts, prompt, batch_size=len(texts), max_padding=float("inf"))  # one padded batch
        single = np.vstack([onnx._encode([t], prompt, batch_size=1) for t in texts])
        figures[kind] = {"padded_min": float(_cosines(torch_vecs, padded).min()),
                         "unpadded_min": float(_cosines(torch_vecs, single).min())}
    return figures


def export_onnx(st_folder: Path, out: Path, force: bool = False, log=print) -> Path:
    """Export, quantise and check into `out` unless a current export is already there."""
    out = Path(out)
    if read_onnx_config(out) is not None and not force:
        return out
    try:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelPrepError(f"{exc.name} is needed to export the ONNX model (run `make setup`)") from exc

    started = time.perf_counter()
    model = SentenceTransformer(str(st_folder), device="cpu")
    bert = model[0].auto_model.eval()
    prompts = dict(getattr(model, "prompts", {}) or {})
    tokenizer = model.tokenizer
    wrapper = _PooledEncoder.make(bert)
    example = model.preprocess(CHECK_TEXTS[:2])  # two lengths: a padded batch
    example = (example["input_ids"], example["attention_mask"])
    if bool(example[1].all()):
        raise ModelPrepError("the export's example batch must contain padding")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    try:
        fp32, int8 = tmp / MODEL_FILES["onnx"], tmp / MODEL_FILES["onnx-int8"]
        # The tracer's warnings (Python values of tensors in transformers' mask code, constant for this model)
        # and the quantiser's pre-processing advice are noise in `make setup`: the checks below are the proof.
        with torch.no_grad(), warnings.catch_warnings(), quieted(None, logging.ERROR):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, example, str(fp32), input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"], opset_version=OPSET, dynamo=False,
                dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                              "attention_mask": {0: "batch", 1: "sequence"},
                              "sentence_embedding": {0: "batch"}})
            # per-channel int8 weights: cosine to fp32 ~0.997 on the seeds' passages (per-tensor: ~0.988)
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=INT8_FP32_NODES)
        for graph in (fp32, int8):
            _to_external_data(graph)
        # The tokenizer sentence-transformers really runs: transformers builds its own normalizer and
        # pre-tokenizer for XLM-R (whitespace runs, trailing spaces) instead of the folder's tokenizer.json.
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        write_light_files(tmp / "tokenizer.json", tmp)
        config = {
            "format_version": ONNX_FORMAT_VERSION, "source_format_version": SOURCE_FORMAT,
            "source": str(st_folder), "opset": OPSET, "torch": torch.__version__,
            "prompts": prompts, "max_seq_length": int(model.max_seq_length),
            "pad_token_id": int(tokenizer.pad_token_id),
            "dimension": int(model.get_embedding_dimension()),
            "inputs": ["input_ids", "attention_mask"], "output": "sentence_embedding",
            "pooling": "mean over attention_mask, then L2 normalisation (in the graph)",
            "int8": {"quantize_dynamic": "QInt8 weights, per channel", "fp32_nodes": INT8_FP32_NODES},
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
        checks = {}
        for backend, floor in (("onnx", FP32_MIN_COSINE), ("onnx-int8", INT8_MIN_COSINE)):
            figures = check_against(model, OnnxEmbeddings(tmp, backend), CHECK_TEXTS)
            worst = min(v for f in figures.values() for v in f.values())
            if worst < floor:
                raise ModelPrepError(f"the {backend} export's vectors match sentence-transformers' only to cosine "
                                     f"{worst:.5f} (< {floor}): {figures}")
            checks[backend] = figures
        config["checks"] = checks
        config["sizes_mb"] = {b: round(((tmp / f).stat().st_size + (tmp / (f + DATA_SUFFIX)).stat().st_size) / 1e6, 1)
                              for b, f in MODEL_FILES.items()}
        config["export_seconds"] = round(time.perf_counter() - started, 1)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp's 0700, like the files onnx writes 0600: make them readable as usual
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        publish_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log("ONNX export checked against sentence-transformers (min cosine): "
        + "; ".join(f"{b} " + ", ".join(f"{k} {f['padded_min']:.5f} padded / {f['unpadded_min']:.5f} unpadded"
                                       for k, f in checks[b].items()) for b in checks))
    return out
