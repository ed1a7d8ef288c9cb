"""Every error under /v1/messages has Anthropic's shape and status, whatever produced
it: validation, the key check, the browser guard, the body limits, Litestar's routing,
the service's failures (before a stream and inside one); the request log keeps its
`error` field. Other paths keep OpenAI's shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from anthropic.types import ErrorResponse
from litestar.testing import TestClient
from structlog.testing import capture_logs

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    ChatService,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    InMemorySessionStore,
    ModelCatalog,
    TextDelta,
    TurnPlan,
)
from proxy_http.errors import shape_of

HI = [{"role": "user", "content": "hi"}]
BODY = {"model": "sonnet", "max_tokens": 64, "messages": HI}


def app_with(runner: FakeRunner | None = None, *, strict: bool = False, **settings: Any) -> Any:
    catalog = ModelCatalog(strict=strict)
    service = ChatService(runner or FakeRunner(), InMemorySessionStore(), catalog=catalog)
    return http_app(service, Settings.from_values(**settings))


def anthropic_error(response: Any, status: int, kind: str) -> str:
    """The message of an Anthropic error answer of `status` and type `kind`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert body["request_id"] == response.headers["x-request-id"]
    if kind != "request_too_large":  # Anthropic's, though its SDK's types omit it
        ErrorResponse.model_validate(body)
    message: str = body["error"]["message"]
    assert message
    return message


def test_validation_errors_are_worded_as_anthropic_words_them() -> None:
    with TestClient(app_with(), base_url="http://127.0.0.1") as client:
        missing = client.post("/v1/messages", json={"model": "sonnet", "messages": HI})
        wrong = client.post("/v1/messages", json={**BODY, "max_tokens": 0})
        empty = client.post("/v1/messages", json={**BODY, "messages": []})
        broken = client.post(
            "/v1/messages", content=b'{"model": ', headers={"content-type": "application/json"}
        )
    assert anthropic_error(missing, 400, "invalid_request_error") == "max_tokens: Field required"
    assert anthropic_error(wrong, 400, "invalid_request_error").startswith("max_tokens: ")
    assert anthropic_error(empty, 400, "invalid_request_error").startswith("messages: ")
    assert "not valid JSON" in anthropic_error(broken, 400, "invalid_request_error")


def test_the_key_check_answers_401_and_both_key_headers_work() -> None:
    with TestClient(app_with(api_keys="k-1"), base_url="http://127.0.0.1") as client:
        none = client.post("/v1/messages", json=BODY)
        wrong = client.post("/v1/messages", json=BODY, headers={"x-api-key": "nope"})
        by_x_api_key = client.post(
            "/v1/messages",
            json=BODY,
            headers={"x-api-key": "k-1", "anthropic-version": "2023-06-01"},
        )
        by_bearer = client.post(
            "/v1/messages?beta=true", json=BODY, headers={"authorization": "Bearer k-1"}
        )
        count = client.post("/v1/messages/count_tokens", json=BODY)
    assert "x-api-key" in anthropic_error(none, 401, "authentication_error")
    anthropic_error(wrong, 401, "authentication_error")
    anthropic_error(count, 401, "authentication_error")
    assert (by_x_api_key.status_code, by_bearer.status_code) == (200, 200)
    assert by_x_api_key.json()["type"] == "message"


def test_the_browser_guard_and_the_body_checks_answer_in_anthropic_shape() -> None:
    with TestClient(app_with(max_body_bytes=2048), base_url="http://127.0.0.1") as client:
        foreign = client.post("/v1/messages", json=BODY, headers={"origin": "https://evil.example"})
        rebound = client.post("/v1/messages", json=BODY, headers={"host": "evil.example:3456"})
        text = client.post(
            "/v1/messages", content=json.dumps(BODY), headers={"content-type": "text/plain"}
        )
        large = client.post(
            "/v1/messages", json={**BODY, "messages": [{"role": "user", "content": "x" * 4096}]}
        )
    assert "allowed-origins" in anthropic_error(foreign, 403, "permission_error")
    assert "allowed-hosts" in anthropic_error(rebound, 421, "invalid_request_error")
    assert "Content-Type" in anthropic_error(text, 415, "invalid_request_error")
    assert "too large" in anthropic_error(large, 413, "request_too_large")


async def test_a_stalled_body_is_a_408_timeout_error() -> None:
    app = app_with(body_timeout=0.05)
    sent: list[dict[str, Any]] = []
    chunks = [b'{"model": "sonnet", ']

    async def receive() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(), "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
        "headers": [(b"content-length", b"200"), (b"content-type", b"application/json")],
        "state": {},
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 408
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["error"]["type"] == "timeout_error"
    length = dict(sent[0]["headers"])[b"content-length"]
    assert int(length) == len(b"".join(m.get("body", b"") for m in sent[1:]))


def test_routing_answers_404_and_405_and_an_unknown_model_is_not_found() -> None:
    with TestClient(app_with(strict=True), base_url="http://127.0.0.1") as client:
        path = client.post("/v1/messages/batches", json=BODY)
        method = client.get("/v1/messages")
        model = client.post("/v1/messages", json={**BODY, "model": "gpt-nothing"})
        other = client.post("/v1/nothing", json=BODY)
    anthropic_error(path, 404, "not_found_error")
    anthropic_error(method, 405, "invalid_request_error")
    assert "gpt-nothing" in anthropic_error(model, 404, "not_found_error")
    # Outside the Messages paths, errors keep OpenAI's shape.
    assert other.status_code == 404
    assert set(other.json()) == {"error"}


def failing(
    reason: FailureReason, retry_after: float | None = None, *, after_text: bool = False
) -> Callable[[TurnPlan], Sequence[Event]]:
    def script(plan: TurnPlan) -> Sequence[Event]:
        return [
            *([TextDelta("partial ")] if after_text else []),
            Failed(reason, "it went wrong", retry_after=retry_after),
        ]

    return script


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("reason", "retry_after", "status", "kind"),
    [
        (FailureReason.RATE_LIMITED, 7.0, 429, "rate_limit_error"),
        (FailureReason.OVERLOADED, 3.0, 529, "overloaded_error"),
        (FailureReason.CLI_CRASHED, None, 502, "api_error"),
        (FailureReason.NOT_LOGGED_IN, None, 503, "api_error"),
        (FailureReason.TIMEOUT, None, 504, "timeout_error"),
    ],
)
def test_service_failures_have_anthropic_statuses_and_keep_retry_after(
    reason: FailureReason, retry_after: float | None, status: int, kind: str, stream: bool
) -> None:
    app = app_with(FakeRunner(failing(reason, retry_after)))
    with TestClient(app, base_url="http://127.0.0.1") as client, capture_logs() as logs:
        response = client.post("/v1/messages", json={**BODY, "stream": stream})
    assert "it went wrong" in anthropic_error(response, status, kind)
    if retry_after is not None:
        assert response.headers["retry-after"] == str(int(retry_after))
    (line,) = [entry for entry in logs if entry["event"] == "request"]
    code = shape_of(reason).code  # the request log names the error as for any surface
    assert (line["status"], line["error"], line["endpoint"]) == (status, code, "messages")


def test_a_failure_inside_a_stream_is_an_error_event() -> None:
    app = app_with(FakeRunner(failing(FailureReason.OVERLOADED, after_text=True)))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/v1/messages", json={**BODY, "stream": True})
    assert response.status_code == 200
    events = [block for block in response.text.split("\n\n") if block]
    name, data = events[-1].split("\n")
    assert name == "event: error"
    body = ErrorResponse.model_validate_json(data.removeprefix("data: "))
    assert body.error.type == "overloaded_error"
    assert "it went wrong" in body.error.message
