"""A subscription's plan state for unit tests of what shows it (/v1/usage, the status
page): a five-hour window 85% used, in warning, three hours before it resets at 00:00
UTC on 2026-12-03."""

from __future__ import annotations

from datetime import UTC, datetime

from proxy_core import PlanState, PlanWindow

NOW = datetime(2026, 12, 2, 21, 0, tzinfo=UTC).timestamp()
RESETS = NOW + 3 * 3600

PLAN = PlanState(
    status="allowed_warning",
    window="five_hour",
    resets_at=RESETS,
    windows={
        "five_hour": PlanWindow(utilization=0.85, resets_at=RESETS),
        "seven_day": PlanWindow(utilization=0.3, resets_at=RESETS + 86400),
    },
    overage_status="rejected",
    overage_disabled_reason="org_level_disabled",
    using_overage=False,
    observed_at=NOW,
)
