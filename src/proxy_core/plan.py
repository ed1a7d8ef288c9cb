"""A subscription's plan windows: the rate-limit state the upstream reports per account.

In subscription mode every upstream answer carries the account's windows (5-hour,
7-day, ...): how much of each is used and when it resets, which one is the binding
("representative") one, and whether extra usage (overage) is on. The backend reports
what it sees as `PlanStatus` events; `PlanTracker` keeps the latest.
"""

from __future__ import annotations

import msgspec

ALLOWED = "allowed"
WARNING = "allowed_warning"
REJECTED = "rejected"


class PlanWindow(msgspec.Struct, frozen=True):
    """One window: the share used (0..1, None: not reported) and when it resets
    (epoch seconds, None: not reported)."""

    utilization: float | None = None
    resets_at: float | None = None


class PlanState(msgspec.Struct, frozen=True, kw_only=True):
    """The account's plan windows as one upstream answer reported them.

    `status` is `allowed`, `allowed_warning` or `rejected`; `window` names the
    representative window (`five_hour`, `seven_day`, ...) and `resets_at` its reset;
    `windows` has every window reported; `overage_status` / `overage_disabled_reason`
    / `using_overage` describe extra usage; `observed_at` is when it was seen (epoch s).
    """

    status: str
    window: str | None = None
    resets_at: float | None = None
    windows: dict[str, PlanWindow] = msgspec.field(default_factory=dict)
    overage_status: str | None = None
    overage_disabled_reason: str | None = None
    using_overage: bool = False
    observed_at: float = 0.0


class PlanTracker:
    """The latest plan state of the account, and whether the last update turned it to a
    warning (so the caller warns once per change, not per request)."""

    def __init__(self) -> None:
        self.latest: PlanState | None = None

    def update(self, state: PlanState) -> bool:
        """Keep `state` (unless an older observation); True when the status just turned
        `allowed_warning`."""
        previous = self.latest
        if previous is not None and state.observed_at < previous.observed_at:
            return False
        self.latest = state
        return state.status == WARNING and (previous is None or previous.status != WARNING)
