"""Reasoning effort: OpenAI's `reasoning_effort` as the level Claude runs a turn at."""

from __future__ import annotations

import enum

from proxy_core.errors import invalid


class Effort(enum.StrEnum):
    """The levels Claude Code accepts (`--effort`); `max` is Claude's own, above xhigh."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    XHIGH = "xhigh"
    MAX = "max"


# OpenAI's values, plus Claude's own names. Claude has no level without thinking, so
# `none` and `minimal` ask for the least there is.
_REASONING_EFFORTS: dict[str, Effort] = {
    "none": Effort.LOW,
    "minimal": Effort.LOW,
    **{effort.value: effort for effort in Effort},
}

REASONING_EFFORT_VALUES: tuple[str, ...] = tuple(_REASONING_EFFORTS)


def parse_effort(value: str | None) -> Effort | None:
    """The level for a `reasoning_effort` (None when absent); raises ChatError if unknown."""
    if value is None:
        return None
    found = _REASONING_EFFORTS.get(value.strip().lower())
    if found is None:
        accepted = ", ".join(REASONING_EFFORT_VALUES)
        message = f"Unknown reasoning_effort {value[:40]!r}: use one of {accepted}."
        raise invalid(message, "reasoning_effort")
    return found
