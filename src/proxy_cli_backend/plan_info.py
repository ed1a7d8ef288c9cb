"""The CLI's `rate_limit_event` (a subscription's plan windows) read into the core's terms.

In subscription mode the CLI reads the upstream's `anthropic-ratelimit-unified-*`
headers and prints what it saw as `{"type":"rate_limit_event","rate_limit_info":{...}}`:
`status` (allowed, allowed_warning, rejected), the representative window
(`rateLimitType`) and its reset (`resetsAt`, epoch seconds), `unifiedWindows` (each
window's utilization and reset), and the extra-usage (`overage*`) fields. Read
tolerantly: any field may be missing or of another type in a later release.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from proxy_cli_backend.protocol import json_number
from proxy_core import Failed, FailureReason, PlanState, PlanWindow

_WINDOW_WORDS = {
    "five_hour": "5-hour",
    "seven_day": "7-day",
    "seven_day_opus": "7-day Opus",
    "seven_day_sonnet": "7-day Sonnet",
    "seven_day_overage_included": "7-day",
    "overage": "extra usage",
}


def plan_state(info: Any, observed_at: float) -> PlanState | None:
    """The plan state a `rate_limit_info` reports; None when it reports nothing (the CLI
    prints a bare `{"status": "allowed"}` when the upstream sent no window headers)."""
    if not isinstance(info, dict):
        return None
    status = _text(info.get("status"))
    window = _text(info.get("rateLimitType"))
    resets_at = _epoch(info.get("resetsAt"))
    windows = _windows(info.get("unifiedWindows"))
    if status is None or (status == "allowed" and not (window or resets_at or windows)):
        return None
    if window and window not in windows and (resets_at or info.get("utilization") is not None):
        windows[window] = PlanWindow(_share(info.get("utilization")), resets_at)
    return PlanState(
        status=status,
        window=window,
        resets_at=resets_at,
        windows=windows,
        overage_status=_text(info.get("overageStatus")),
        overage_disabled_reason=_text(info.get("overageDisabledReason")),
        using_overage=info.get("isUsingOverage") is True,
        observed_at=observed_at,
    )


def _windows(value: Any) -> dict[str, PlanWindow]:
    if not isinstance(value, dict):
        return {}
    return {
        name: PlanWindow(_share(figures.get("utilization")), _epoch(figures.get("resetsAt")))
        for name, figures in value.items()
        if isinstance(name, str) and isinstance(figures, dict)
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _epoch(value: Any) -> float | None:
    number = json_number(value)
    return number if number is not None and number > 0 else None


def _share(value: Any) -> float | None:
    number = json_number(value)
    return None if number is None else min(1.0, max(0.0, number))


def window_words(window: str | None) -> str:
    """A window's name for people: `five_hour` -> `5-hour`."""
    if window is None:
        return "usage"
    return _WINDOW_WORDS.get(window, window.replace("_", " "))


def reset_words(resets_at: float) -> str:
    """A reset time for people, in UTC: `2026-12-02 06:43 UTC`."""
    moment = datetime.datetime.fromtimestamp(resets_at, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def window_refusal(state: PlanState, now: float) -> Failed:
    """The failure for a request the plan refused: its window is used up until it
    resets. Retry-After is the wait until that reset (at least a second)."""
    words = window_words(state.window)
    if state.resets_at is None:
        return Failed(
            FailureReason.RATE_LIMITED,
            f"The Claude plan's {words} limit is reached (the upstream refused the request).",
        )
    wait = max(1.0, float(math.ceil(state.resets_at - now)))
    return Failed(
        FailureReason.RATE_LIMITED,
        f"The Claude plan's {words} limit is reached; it resets at "
        f"{reset_words(state.resets_at)}. Retry after that.",
        retry_after=wait,
    )
