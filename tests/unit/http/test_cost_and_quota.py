"""A turn's cost on every surface (`usage.cost`, left out when not known), on the request
log and /stats; the plan-window warning log; the refusals of the plan and of the credit
in each surface's own error shape (the SDKs' models still validate)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import anthropic.types
import pytest
from litestar.testing import TestClient
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response
from structlog.testing import capture_logs

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    CREDIT_HELP,
    ChatService,
    Event,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    PlanState,
    PlanStatus,
    PlanWindow,
    TextDelta,
    TurnPlan,
    Usage,
)

PRICED = Usage(input_tokens=7, output_tokens=3, cache_read_tokens=5, cost_usd=0.0125)
UNPRICED = Usage(input_tokens=7, output_tokens=3, cache_read_tokens=5)
CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
RESPONSES = {"model": "sonnet", "input": "hi"}
MESSAGES = {"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def replying(usage: Usage, *before: Event) -> Callable[[TurnPlan], Sequence[Event]]:
    def script(plan: TurnPlan) -> Sequence[Event]:
        return [*before, TextDelta("ok"), usage, Finished("end_turn", "ok", plan.cli_session_id)]

    return script


def failing(failed: Failed) -> Callable[[TurnPlan], Sequence[Event]]:
    return lambda plan: [failed]


def client_of(script: Callable[[TurnPlan], Sequence[Event]]) -> TestClient[Any]:
    service = ChatService(FakeRunner(script), InMemorySessionStore())
    return TestClient(http_app(service, Settings()), base_url="http://127.0.0.1")


def sse_data(body: str) -> list[Any]:
    return [
        json.loads(line[6:])
        for line in body.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


# -- cost on every surface -------------------------------------------------------------


def test_chat_completions_carry_the_cost_whole_and_in_the_include_usage_chunk() -> None:
    with client_of(replying(PRICED)) as client:
        whole = client.post("/v1/chat/completions", json=CHAT).json()
        stream = client.post(
            "/v1/chat/completions",
            json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        ).text
    assert whole["usage"]["cost"] == 0.0125
    ChatCompletion.model_validate(whole)
    chunks = sse_data(stream)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert [c["usage"]["cost"] for c in chunks if c["usage"] is not None] == [0.0125]


def test_chat_completions_leave_an_unknown_cost_out_rather_than_zero() -> None:
    with client_of(replying(UNPRICED)) as client:
        whole = client.post("/v1/chat/completions", json=CHAT).json()
        stream = client.post(
            "/v1/chat/completions",
            json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        ).text
    assert "cost" not in whole["usage"]
    assert whole["usage"]["prompt_tokens"] == 12
    (last,) = [c for c in sse_data(stream) if c["usage"] is not None]
    assert "cost" not in last["usage"]


@pytest.mark.parametrize(("usage", "cost"), [(PRICED, 0.0125), (UNPRICED, None)])
def test_responses_carry_the_cost_in_their_usage(usage: Usage, cost: float | None) -> None:
    with client_of(replying(usage)) as client:
        whole = client.post("/v1/responses", json=RESPONSES).json()
        stream = client.post("/v1/responses", json={**RESPONSES, "stream": True}).text
    Response.model_validate(whole)
    (completed,) = [e for e in sse_data(stream) if e["type"] == "response.completed"]
    Response.model_validate(completed["response"])
    for body in (whole, completed["response"]):
        assert body["usage"].get("cost") == cost
        assert ("cost" in body["usage"]) == (cost is not None)


@pytest.mark.parametrize(("usage", "cost"), [(PRICED, 0.0125), (UNPRICED, None)])
def test_messages_carry_the_cost_in_their_usage(usage: Usage, cost: float | None) -> None:
    with client_of(replying(usage)) as client:
        whole = client.post("/v1/messages", json=MESSAGES).json()
        stream = client.post("/v1/messages", json={**MESSAGES, "stream": True}).text
    anthropic.types.Message.model_validate(whole)
    (delta,) = [e for e in sse_data(stream) if e["type"] == "message_delta"]
    anthropic.types.RawMessageDeltaEvent.model_validate(delta)
    for found in (whole["usage"], delta["usage"]):
        assert found.get("cost") == cost
        assert ("cost" in found) == (cost is not None)


# -- the log and /stats ------------------------------------------------------------------


def test_the_request_line_and_stats_carry_the_cost() -> None:
    with client_of(replying(PRICED)) as client, capture_logs() as logs:
        client.post("/v1/chat/completions", json=CHAT)
        client.post("/v1/responses", json=RESPONSES)
        stats = client.get("/stats").json()
    lines = [line for line in logs if line["event"] == "request" and "cost_usd" in line]
    assert [line["cost_usd"] for line in lines] == [0.0125, 0.0125]
    assert stats["cost"] == {"totalUsd": 0.025}
    assert stats["tokens"]["totalInput"] == 24  # the token totals stay


def test_an_unknown_cost_is_not_on_the_request_line() -> None:
    with client_of(replying(UNPRICED)) as client, capture_logs() as logs:
        client.post("/v1/chat/completions", json=CHAT)
        stats = client.get("/stats").json()
    (line,) = [line for line in logs if line["event"] == "request" and "status" in line][:1]
    assert "cost_usd" not in line
    assert stats["cost"] == {"totalUsd": 0.0}


WARNING = PlanState(
    status="allowed_warning",
    window="five_hour",
    resets_at=1796195549.0,
    windows={"five_hour": PlanWindow(0.92, 1796195549.0)},
    observed_at=1796190000.0,
)


def test_a_window_turning_to_a_warning_is_logged_once() -> None:
    with client_of(replying(PRICED, PlanStatus(WARNING))) as client, capture_logs() as logs:
        client.post("/v1/chat/completions", json=CHAT)
        client.post("/v1/chat/completions", json=CHAT)  # still a warning: no second line
    warnings = [line for line in logs if line["event"] == "plan_window_warning"]
    assert [(w["window"], w["utilization"], w["resets_at"]) for w in warnings] == [
        ("five_hour", 0.92, "2026-12-02T07:12:29Z")
    ]
    assert warnings[0]["log_level"] == "warning"


# -- refusals in each surface's shape ---------------------------------------------------

QUOTA = Failed(
    FailureReason.INSUFFICIENT_QUOTA,
    f"The Claude account's credit refused the request: Credit balance is too low. {CREDIT_HELP}",
)
WINDOW = Failed(
    FailureReason.RATE_LIMITED,
    "The Claude plan's 5-hour limit is reached; it resets at 2026-12-02 07:10 UTC.",
    retry_after=5400.0,
)


@pytest.mark.parametrize("stream", [False, True])
def test_a_credit_refusal_is_429_insufficient_quota_on_chat_and_responses(stream: bool) -> None:
    with client_of(failing(QUOTA)) as client:
        chat = client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        responses = client.post("/v1/responses", json={**RESPONSES, "stream": stream})
    for answer in (chat, responses):
        assert answer.status_code == 429
        error = answer.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
        assert "Credit balance is too low" in error["message"]
        assert "claude.ai/settings/usage" in error["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_credit_refusal_is_a_429_billing_error_on_messages(stream: bool) -> None:
    with client_of(failing(QUOTA)) as client:
        answer = client.post("/v1/messages", json={**MESSAGES, "stream": stream})
    assert answer.status_code == 429
    body = answer.json()
    anthropic.types.ErrorResponse.model_validate(body)
    assert body["error"]["type"] == "billing_error"
    assert "claude.ai/settings/usage" in body["error"]["message"]


def test_a_credit_refusal_inside_a_responses_stream_fails_it_validly() -> None:
    def script(plan: TurnPlan) -> Sequence[Event]:
        return [TextDelta("partial"), QUOTA]

    with client_of(script) as client:
        stream = client.post("/v1/responses", json={**RESPONSES, "stream": True}).text
    (failed,) = [e for e in sse_data(stream) if e["type"] == "response.failed"]
    response = Response.model_validate(failed["response"])
    assert response.error is not None
    assert response.error.code == "rate_limit_exceeded"  # the SDK's list has no quota code
    assert response.error.message.startswith("insufficient_quota: ")


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/chat/completions", CHAT), ("/v1/responses", RESPONSES), ("/v1/messages", MESSAGES)],
)
@pytest.mark.parametrize("stream", [False, True])
def test_an_exhausted_window_is_429_with_retry_after_on_every_surface(
    path: str, body: dict[str, Any], stream: bool
) -> None:
    with client_of(failing(WINDOW)) as client:
        answer = client.post(path, json={**body, "stream": stream})
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "5400"
    assert "5-hour limit is reached" in answer.json()["error"]["message"]
