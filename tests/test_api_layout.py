"""The API is a package laid out as FastAPI's "Bigger Applications": one router per resource,
schemas, errors and dependencies in their own modules; importing it pulls in no chat page."""

from __future__ import annotations

import subprocess
import sys

from rag.config import PROJECT_ROOT


def _paths(router) -> set[tuple[str, str]]:
    return {(m, r.path) for r in router.routes for m in getattr(r, "methods", ())}


def test_one_router_per_resource():
    from rag.api.routers import documents, openai, ops, questions

    assert {("POST", "/v1/ask"), ("POST", "/v1/search")} <= _paths(questions.router)
    assert {("GET", "/v1/documents"), ("POST", "/v1/documents"), ("DELETE", "/v1/documents/{doc_id}"),
            ("GET", "/v1/documents/{doc_id}/clauses/{clause_id}"), ("GET", "/v1/jobs"),
            ("GET", "/v1/jobs/{job_id}")} <= _paths(documents.router)
    assert {("POST", "/v1/chat/completions"), ("GET", "/v1/models")} <= _paths(openai.router)
    assert {("GET", "/healthz"), ("GET", "/metrics")} <= _paths(ops.router)


def test_schemas_errors_and_dependencies_modules():
    from rag.api import create_app, dependencies, errors, schemas

    assert callable(create_app)
    assert issubclass(schemas.AskRequest, schemas.BaseModel) and hasattr(schemas, "ChatRequest")
    assert errors.error_body(404, "unknown_document", "x")["error"]["type"] == "not_found_error"
    assert callable(dependencies.require_key) and callable(dependencies.require_admin)
    assert callable(dependencies.get_service)


def test_importing_the_api_imports_no_chat_page():
    code = "import sys, rag.api; bad = [m for m in ('gradio', 'ui.app') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
