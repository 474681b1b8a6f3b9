"""Server-Sent Events: the answer cut into small pieces, and the event format."""

from __future__ import annotations

import json
import re
from typing import Any

_PIECE = re.compile(r".+?(?:\[\d+\][。；！？.;]?|[，。；！？：、,.;!?:\n]|$)", re.S)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def text_pieces(text: str, max_chars: int = 24) -> list[str]:
    """Split an answer into small deltas at punctuation and citation marks (the stream's pieces)."""
    pieces = []
    for m in _PIECE.finditer(text):
        piece = m.group(0)
        while len(piece) > max_chars:
            pieces.append(piece[:max_chars])
            piece = piece[max_chars:]
        if piece:
            pieces.append(piece)
    assert "".join(pieces) == text
    return pieces


def sse_event_schema(data_description: str) -> dict:
    """OpenAPI 3.1 schema of one Server-Sent Event (the `schema` of a text/event-stream entry)."""
    return {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "string", "description": data_description},
        "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer", "minimum": 0}}}


def sse(data: Any) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"
