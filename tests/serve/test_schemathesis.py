"""Property-based API tests: schemathesis generates requests from the OpenAPI schema (valid and
invalid bodies, JSON and multipart, per operation); no request may produce a 5xx.

(`schemathesis.pytest.from_fixture` + `@schema.parametrize()` does not run under this pytest
version, so each operation's strategy drives a hypothesis test directly.)
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from omnifuse import runtime
from omnifuse.serve import ServeConfig, create_app
from omnifuse.serve.index import VectorIndex


@pytest.fixture(scope="module")
def api_schema(serve_model_dir, shapes_index):
    app = create_app(
        ServeConfig(model_dir="unused"),
        predictor=runtime.load(serve_model_dir),
        index=VectorIndex.load(shapes_index),
    )
    with TestClient(app):  # runs the lifespan: batcher started, model ready
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/embed", "/v1/classify", "/v1/search", "/healthz"}
    if mode == GenerationMode.NEGATIVE:  # only operations with something to get wrong
        operations = [op for op in operations if len(op.body) or len(op.query) or len(op.path_parameters)]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            case.call_and_validate(checks=[not_a_server_error])

        run()
