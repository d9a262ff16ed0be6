"""The HTTP API fuzzed from its own OpenAPI document: no 5xx, every error in its shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.support import running_redis
from webapp import create_app

pytestmark = pytest.mark.slow

# Whatever the input, the answer is one the document describes. Checks about which
# inputs should be accepted are left out: channel names inside the project's own
# key space are refused on purpose, which a JSON Schema pattern cannot say.
DOCUMENTED_SHAPE_CHECKS = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]

# Examples per operation: enough to reach every validation branch, quick in CI.
EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Its own Redis with no worker: fuzzed submissions only pile up in a queue.
    with running_redis(tmp_path_factory.mktemp("fuzz-redis"), durable=False) as server:
        app = create_app({"TESTING": True, "REDIS_URL": server.url})
        yield app
        app.extensions["taskrelay"].close()


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Any) -> Any:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)
    # Event streams stay open by design; they are tested by their own suites.
    return schema.exclude(path_regex=r".*/events$")


def check_case(case: Any) -> None:
    response = case.call()
    # 503 is a documented answer (not ready; broker down), never an accident.
    assert response.status_code < 500 or response.status_code == 503, (
        case.method,
        case.path,
        response.text[:500],
    )
    if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith(
        "application/json"
    ):
        error = response.json()["error"]
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)
        assert error["message"]
    case.validate_response(response, checks=DOCUMENTED_SHAPE_CHECKS)


def test_the_api_answers_every_generated_request_without_a_server_error(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        # Hypothesis drives each operation's strategy directly: one property per operation.
        run = settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )(given(case=operation.as_strategy())(check_case))
        run()
