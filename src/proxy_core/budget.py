"""Budgets: a caller's daily and monthly spending caps, and the refusal past them.

Days and months are UTC: a daily budget resets at the next UTC midnight, a monthly one
on the first of the next month at 00:00 UTC. A caller over either gets
`FailureReason.BUDGET_EXCEEDED` before its turn runs, saying which budget, by the
caller's label (never its key), and when it resets; `retry_after` is the seconds
until then.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from proxy_core.errors import FailureReason
from proxy_core.events import Failed


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator set for one caller: the `label` its spend is shown under (None:
    a stand-in made from its id), and its caps in USD per UTC day and month (None: no
    cap)."""

    label: str | None = None
    daily_usd: float | None = None
    monthly_usd: float | None = None

    @property
    def capped(self) -> bool:
        """Whether any cap applies (only then is the caller's spend read before a turn)."""
        return self.daily_usd is not None or self.monthly_usd is not None


def next_midnight(now: float) -> float:
    """The Unix time of the next 00:00 UTC after `now`."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (today + timedelta(days=1)).timestamp()


def next_month(now: float) -> float:
    """The Unix time of the first of the next month, 00:00 UTC, after `now`."""
    moment = datetime.fromtimestamp(now, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def iso_utc(seconds: float) -> str:
    """A Unix time as ISO 8601 in UTC, to the second (`2026-12-03T00:00:00Z`)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def budget_refusal(
    budget: Budget, name: str, *, today_usd: float, month_usd: float, now: float
) -> Failed | None:
    """The refusal of a caller (`name`: its label) that spent `today_usd` today and
    `month_usd` this month, or None while both are under their caps. A cap reached
    exactly counts as used up. Over both, the monthly one is named: it resets last."""
    over: tuple[str, float, float, float] | None = None
    if budget.monthly_usd is not None and month_usd >= budget.monthly_usd:
        over = ("monthly", budget.monthly_usd, month_usd, next_month(now))
    elif budget.daily_usd is not None and today_usd >= budget.daily_usd:
        over = ("daily", budget.daily_usd, today_usd, next_midnight(now))
    if over is None:
        return None
    period, cap, spent, resets = over
    when = "today" if period == "daily" else "this month"
    return Failed(
        FailureReason.BUDGET_EXCEEDED,
        f"The {period} budget of {name} (${cap:.2f}) is used up: ${spent:.2f} spent {when} "
        f"(UTC). It resets at {iso_utc(resets)}.",
        retry_after=max(1.0, resets - now),
    )
