"""reasoning_effort: OpenAI's values and Claude's own map to an Effort; others are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy_core import REASONING_EFFORT_VALUES, ChatError, Effort, FailureReason, parse_effort


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("none", Effort.LOW),
        ("minimal", Effort.LOW),
        ("low", Effort.LOW),
        ("medium", Effort.MEDIUM),
        ("high", Effort.HIGH),
        ("xhigh", Effort.XHIGH),
        ("max", Effort.MAX),
        (" High ", Effort.HIGH),
    ],
)
def test_each_reasoning_effort_maps_to_its_level(value: str, expected: Effort) -> None:
    assert parse_effort(value) is expected


def test_no_reasoning_effort_means_the_default() -> None:
    assert parse_effort(None) is None


def test_every_claude_level_is_accepted_by_its_own_name() -> None:
    assert {parse_effort(effort.value) for effort in Effort} == set(Effort)
    assert set(REASONING_EFFORT_VALUES) >= {effort.value for effort in Effort}


@given(st.text(max_size=60).filter(lambda t: t.strip().lower() not in REASONING_EFFORT_VALUES))
def test_any_other_value_is_an_invalid_request_naming_the_param(value: str) -> None:
    with pytest.raises(ChatError) as caught:
        parse_effort(value)
    assert caught.value.reason is FailureReason.INVALID_REQUEST
    assert caught.value.param == "reasoning_effort"
    assert "medium" in caught.value.message
