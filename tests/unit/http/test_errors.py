"""Failure reasons map to OpenAI error bodies and HTTP statuses."""

from __future__ import annotations

import msgspec
import pytest
from litestar.exceptions import ValidationException

from proxy_core import LOGIN_HELP, FailureReason
from proxy_http.errors import chat_error_body, retry_after_header, validation_error


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
    assert LOGIN_HELP in body.error.message


def test_empty_message_falls_back_to_the_hint() -> None:
    _, body = chat_error_body(FailureReason.OVERLOADED, "")
    assert "retry later" in body.error.message


@pytest.mark.parametrize(
    ("seconds", "header"), [(None, {}), (0.2, {"Retry-After": "1"}), (7.2, {"Retry-After": "8"})]
)
def test_retry_after_is_whole_seconds(seconds: float | None, header: dict[str, str]) -> None:
    assert retry_after_header(seconds) == header


def decoding_failed(message: str) -> ValidationException:
    """What Litestar raises when msgspec refuses a handler's arguments: its message
    and path are msgspec's, the body decoded as the `data` argument."""
    error = ValidationException("Validation failed for POST /v1/chat/completions")
    error.__cause__ = msgspec.ValidationError(message)
    return error


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ("Expected `int`, got `str` - at `$.data.n`", "n"),
        ("Object missing required field `model` - at `$.data`", "model"),
        (
            "Object missing required field `include_usage` - at `$.data.stream_options`",
            "stream_options.include_usage",
        ),
        ("Expected `object`, got `int` - at `$.data.messages[0]`", "messages[0]"),
        ("Expected `object`, got `array` - at `$.data`", None),
        (
            "Invalid value 'audio' - at `$.data.messages[0].content[1].type`",
            "messages[0].content[1].type",
        ),
        ("Expected `int` >= 1 - at `$.limit`", "limit"),
    ],
)
def test_validation_param_names_the_field(message: str, param: str | None) -> None:
    error = validation_error(decoding_failed(message))
    assert error.reason is FailureReason.INVALID_REQUEST
    assert error.param == param
    assert error.message.startswith(message.split(" - at ")[0])


def test_a_missing_body_says_the_body_is_empty() -> None:
    error = validation_error(decoding_failed("Object missing required field `data`"))
    assert (error.param, error.message.startswith("The request body is empty")) == (None, True)
