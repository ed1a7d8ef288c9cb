"""Schemathesis against the served OpenAPI schema: no input makes the server fail (5xx),
and every error it answers is in its API's shape (Anthropic's under /v1/messages,
OpenAI's elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode

from tests.support.server import LiveServer, live_fake_server

KEY = "fuzz-key"


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[LiveServer]:
    with live_fake_server() as (server, _):
        yield server


def assert_openai_error(body: object) -> None:
    assert isinstance(body, dict), body
    error = body.get("error")
    assert isinstance(error, dict), body
    assert isinstance(error.get("message"), str)
    assert error["message"]
    assert isinstance(error.get("type"), str)
    assert set(error) <= {"message", "type", "param", "code"}


def assert_anthropic_error(body: object) -> None:
    assert isinstance(body, dict), body
    assert body.get("type") == "error", body
    error = body.get("error")
    assert isinstance(error, dict), body
    assert set(error) == {"type", "message"}
    assert error["message"]
    assert isinstance(error["type"], str)


OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/{response_id}"),
    ("DELETE", "/v1/responses/{response_id}"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model_id}"),
    ("GET", "/health"),
    ("GET", "/stats"),
    ("GET", "/metrics"),
    ("GET", "/v1/usage"),
    ("GET", "/dashboard"),
    ("GET", "/v1/sessions"),
    ("DELETE", "/v1/sessions"),
    ("DELETE", "/v1/sessions/{session_id}"),
]


def test_the_schema_lists_every_fuzzed_operation(fuzz_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(fuzz_server.base_url + "/schema/openapi.json")
    served = {(op.method.upper(), op.path) for op in _operations(schema)}
    assert set(OPERATIONS) <= served


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


# Negative cases (inputs that break the schema) exist only where there is input to break.
CASES = [(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS] + [
    ("POST", "/v1/chat/completions", GenerationMode.NEGATIVE),
    ("POST", "/v1/responses", GenerationMode.NEGATIVE),
    ("POST", "/v1/messages", GenerationMode.NEGATIVE),
    ("GET", "/v1/sessions", GenerationMode.NEGATIVE),
    ("DELETE", "/v1/sessions", GenerationMode.NEGATIVE),
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_input_breaks_the_server_and_errors_have_their_api_s_shape(
    fuzz_server: LiveServer, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(fuzz_server.base_url + "/schema/openapi.json")
    (operation,) = [
        op for op in _operations(schema) if (op.method.upper(), op.path) == (method, path)
    ]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=40 if method == "POST" else 10,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: Case) -> None:
        response = case.call(base_url=fuzz_server.base_url, timeout=30)
        assert response.status_code < 500, (response.status_code, response.text[:500])
        if response.status_code >= 400:
            if path.startswith("/v1/messages"):
                assert_anthropic_error(response.json())
            else:
                assert_openai_error(response.json())

    check()
