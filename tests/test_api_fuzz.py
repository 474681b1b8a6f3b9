"""Property-based fuzzing of the OpenAPI schema (schemathesis): no input yields a 5xx.

Runs against the real app over a private copy of the index (uploads and deletes
are among the fuzzed operations), with a bounded number of examples per
operation so the run stays within a couple of minutes.  Besides "no server
error", responses must conform to the documented schema, status codes and
content types.
"""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from rag.api import create_app
from rag.config import Settings
from rag.security import KeyConfig
from rag.service import Assistant

pytestmark = pytest.mark.slow
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzz_assistant(assistant, session_index_dir, embedder, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("fuzz") / "index"
    shutil.copytree(session_index_dir, index_dir)
    return Assistant(Settings(index_dir=index_dir), embedder=embedder)


@pytest.fixture(scope="module")
def api_schema(fuzz_assistant):
    app = create_app(fuzz_assistant, keys=KeyConfig(), with_ui=False)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# The schema does not depend on the assistant, so the operations are known at collection time.
_OPENAPI = create_app(object(), keys=KeyConfig(), with_ui=False).openapi()
OPERATIONS = [(path, method) for path, ops in _OPENAPI["paths"].items() for method in ops]
CASES = [(path, method, mode) for path, method in OPERATIONS
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         # an operation without parameters or body has no invalid input to generate
         if mode is GenerationMode.POSITIVE or _OPENAPI["paths"][path][method].get("parameters")
         or _OPENAPI["paths"][path][method].get("requestBody")]


@pytest.mark.parametrize("path,method,mode", CASES, ids=[f"{m.upper()} {p} {g.value}" for p, m, g in CASES])
def test_no_input_makes_the_server_fail(api_schema, path, method, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                 content_type_conformance, response_schema_conformance])

    fuzz()


def test_the_fuzzed_index_still_holds_the_seeds(fuzz_assistant):
    """Whatever the fuzzer uploaded or tried to delete, the seed documents are all still there."""
    ids = [d.doc_id for d in fuzz_assistant.corpus.documents]
    assert ids[:5] == ["miit-2011-12th-fyp", "shenzhen-2022", "suzhou-sip-2022", "qingpu-2023", "xiamen-huli-2024"]
