"""Logging around noisy libraries: one logger quieted for the duration of a call.

Shared by the code that drives libraries which log expected conditions as errors (Milvus Lite's
server, the ONNX exporter): their messages are noise there, and the caller's own checks decide.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager


@contextmanager
def quieted(name: str | None, level: int):
    """Only records of `level` and above from logger `name` (None: the root logger) while inside."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
