"""The fake upstream's subscription mode: plan-window headers on demand, and refusals by
an exhausted window, extra usage and an empty credit, over HTTP as the CLI sees them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.fake_upstream import (
    CREDIT_EXHAUSTED_MESSAGE,
    EXTRA_USAGE_MESSAGE,
    FakeAnthropic,
    PlanWindows,
)

PREFIX = "anthropic-ratelimit-unified-"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def post(fake: FakeAnthropic, text: str) -> httpx.Response:
    body = {"model": "m", "max_tokens": 9, "stream": True}
    body["messages"] = [{"role": "user", "content": text}]
    return httpx.post(fake.base_url + "/v1/messages?beta=true", json=body, timeout=10)


def unified(response: httpx.Response) -> dict[str, str]:
    return {k[len(PREFIX) :]: v for k, v in response.headers.items() if k.startswith(PREFIX)}


def test_no_plan_headers_unless_asked(fake: FakeAnthropic) -> None:
    assert unified(post(fake, "hi")) == {}


def test_the_fakes_plan_windows_go_with_every_reply(fake: FakeAnthropic) -> None:
    fake.plan = PlanWindows(five_hour=0.5)
    before = time.time()
    headers = unified(post(fake, "hi"))
    assert headers["status"] == "allowed"
    assert (headers["5h-utilization"], headers["7d-utilization"]) == ("0.5", "0.1")
    assert before + 7199 <= int(headers["5h-reset"]) <= time.time() + 7201
    assert headers["reset"] == headers["5h-reset"]
    assert headers["representative-claim"] == "five_hour"
    assert (headers["overage-status"], headers["overage-disabled-reason"]) == (
        "rejected",
        "org_level_disabled",
    )
    fake.reset()
    assert fake.plan is None


def test_a_plan_marker_sets_the_status(fake: FakeAnthropic) -> None:
    headers = unified(post(fake, "hi [[plan:allowed_warning]]"))
    assert (headers["status"], headers["5h-utilization"]) == ("allowed_warning", "0.92")


@pytest.mark.parametrize(("window", "short"), [("five_hour", "5h"), ("seven_day", "7d")])
def test_a_limit_marker_refuses_with_a_rejected_window(
    fake: FakeAnthropic, window: str, short: str
) -> None:
    before = time.time()
    response = post(fake, f"hi [[limit:{window}:600]]")
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    headers = unified(response)
    assert (headers["status"], headers["representative-claim"]) == ("rejected", window)
    assert headers[f"{short}-utilization"] == "1"
    assert before + 599 <= int(headers["reset"]) <= time.time() + 601
    assert 599 <= int(response.headers["retry-after"]) <= 601


@pytest.mark.parametrize(
    ("marker", "message"),
    [("[[extra-usage]]", EXTRA_USAGE_MESSAGE), ("[[credit-exhausted]]", CREDIT_EXHAUSTED_MESSAGE)],
)
def test_credit_markers_answer_anthropics_400(
    fake: FakeAnthropic, marker: str, message: str
) -> None:
    response = post(fake, f"hi {marker}")
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error", "message": message}
