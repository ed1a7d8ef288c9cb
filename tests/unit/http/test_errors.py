"""Failure reasons map to OpenAI error bodies and HTTP statuses."""

from __future__ import annotations

import pytest

from proxy_core import FailureReason
from proxy_http.errors import chat_error_body, retry_after_header, validation_param


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        (FailureReason.INVALID_REQUEST, 400),
        (FailureReason.MODEL_NOT_FOUND, 404),
        (FailureReason.BUSY, 429),
        (FailureReason.RATE_LIMITED, 429),
        (FailureReason.UPSTREAM_ERROR, 502),
        (FailureReason.CLI_CRASHED, 502),
        (FailureReason.NOT_LOGGED_IN, 503),
        (FailureReason.BACKEND_UNAVAILABLE, 503),
        (FailureReason.OVERLOADED, 503),
        (FailureReason.TIMEOUT, 504),
    ],
)
def test_reason_maps_to_status(reason: FailureReason, status: int) -> None:
    assert chat_error_body(reason, "x")[0] == status


def test_every_reason_has_a_status_below_500_or_a_gateway_one() -> None:
    for reason in FailureReason:
        assert chat_error_body(reason, "x")[0] in {400, 404, 429, 502, 503, 504}


def test_invalid_request_keeps_its_param() -> None:
    _, body = chat_error_body(FailureReason.INVALID_REQUEST, "bad", "messages[3].content[1].type")
    assert body.error.param == "messages[3].content[1].type"
    assert body.error.type == "invalid_request_error"


def test_not_logged_in_message_says_what_to_run() -> None:
    _, body = chat_error_body(FailureReason.NOT_LOGGED_IN, "Not logged in")
    assert body.error.message.startswith("Not logged in. ")
    assert "/login" in body.error.message


def test_empty_message_falls_back_to_the_hint() -> None:
    _, body = chat_error_body(FailureReason.OVERLOADED, "")
    assert "retry later" in body.error.message


@pytest.mark.parametrize(
    ("seconds", "header"), [(None, {}), (0.2, {"Retry-After": "1"}), (7.2, {"Retry-After": "8"})]
)
def test_retry_after_is_whole_seconds(seconds: float | None, header: dict[str, str]) -> None:
    assert retry_after_header(seconds) == header


@pytest.mark.parametrize(
    ("message", "key", "param"),
    [
        ("Expected `int`, got `str`", "n", "n"),
        ("Object missing required field `model`", "data", "model"),
        (
            "Object missing required field `include_usage`",
            "stream_options",
            "stream_options.include_usage",
        ),
        ("Expected `object`, got `int`", "messages[0]", "messages[0]"),
        ("Expected `object`, got `array`", "data", None),
    ],
)
def test_validation_param_names_the_field(message: str, key: str, param: str | None) -> None:
    assert validation_param(message, key) == param
