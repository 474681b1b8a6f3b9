"""HTTP API (FastAPI) over the one `Assistant`: ask, search, documents, OpenAI-compatible chat.

`create_app()` builds the app; `rag serve` runs it with uvicorn.  Every route
under `/v1` answers JSON (or Server-Sent Events when streaming); every bad
input gets a 4xx `{"error": {"code", "message", ...}}` naming the problem.
The chat page (`ui.app.build_ui`, when present) is mounted at `/`, after the
API routes, so `/v1`, `/healthz`, `/metrics` and `/docs` keep precedence.

Layout (FastAPI's "Bigger Applications"): `app.py` (create_app), `routers/` (one
router per resource: questions, documents, openai, ops), `schemas.py` (request and
response models), `errors.py` (the error body and handlers), `dependencies.py`
(auth and the service, via `Depends`), `service.py` (what the routers share),
`json_body.py` (strict JSON reading), `middleware.py`, `streaming.py` (SSE).
"""

from .app import create_app
from .errors import ApiError, error_body
from .json_body import MAX_JSON_DEPTH, parse_json_body
from .routers.openai import chat_to_question, references_block
from .schemas import MODEL_ID
from .streaming import text_pieces

__all__ = ["create_app", "ApiError", "error_body", "MAX_JSON_DEPTH", "parse_json_body", "chat_to_question",
           "references_block", "MODEL_ID", "text_pieces"]
