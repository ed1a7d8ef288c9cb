"""`GET /v1/usage`: the account's plan windows and what each API key spent.

Authenticated like the API. Every caller sees the subscription (the account's plan
windows are shared by all its callers, and they explain a 429). Spend is scoped: an
admin key, or anyone on a server without keys, sees every caller; any other key sees
only its own spend (its totals, models and its own `by_key` entry). Keys appear under
their labels, or a stand-in `key-<first 8 digits of the key's id>`, never the key.
Times are ISO 8601 in UTC; days and months are UTC (see docs/usage.md).
"""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.types import ControllerRouterHandler

from proxy_core import ChatService, KeySpend, PlanState, SpendReport, SpendTotals
from proxy_http.auth import Access
from proxy_http.routing import error_specs
from proxy_http.wire import iso_time

_DIGITS = 6  # dollars to the millionth: what the CLI prices a turn to


class Window(msgspec.Struct, frozen=True):
    """One plan window: the share used (0..1) and when it resets (null: not reported)."""

    utilization: float | None
    resets_at: str | None


class Overage(msgspec.Struct, frozen=True):
    """Extra usage: its status, why it is disabled, and whether requests draw on it now."""

    status: str | None
    disabled_reason: str | None
    in_use: bool


class Subscription(msgspec.Struct, frozen=True):
    """The account's plan windows as last reported by the CLI (subscription mode).

    `status` is `allowed`, `allowed_warning`, `rejected`, or `unknown` before any
    report (e.g. an API key rather than a subscription: then every field is empty).
    `window` names the representative window and `resets_at` its reset.
    """

    status: str
    window: str | None
    resets_at: str | None
    windows: dict[str, Window]
    overage: Overage
    updated_at: str | None


class Totals(msgspec.Struct, frozen=True):
    """Spend summed: `input_tokens` counts every input token, cached or not;
    `cached_tokens` the part read from the prompt cache; `cache_creation_tokens` the
    part written to it."""

    cost_usd: float
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_creation_tokens: int


class BudgetCaps(msgspec.Struct, frozen=True):
    """A key's caps in USD per UTC day and month (null: none)."""

    daily_usd: float | None
    monthly_usd: float | None


class DayPoint(msgspec.Struct, frozen=True):
    """One UTC day of a key's spend."""

    date: str
    cost_usd: float
    requests: int


class KeyUsage(msgspec.Struct, frozen=True):
    """One key's spend: today, this month, its budget, and the last 30 days (oldest
    first, a day without spend as zero)."""

    today: Totals
    month: Totals
    budget: BudgetCaps | None
    last_30_days: list[DayPoint]


class Spend(msgspec.Struct, frozen=True):
    """What was spent, at API rates as the CLI prices it. `scope` says whose: `all`
    callers (admin key, or no keys) or the caller's `own`. `date` is today (UTC);
    `month` and `by_model` cover this UTC month; `cache_hit_ratio` is this month's
    cached share of input tokens (null before any input)."""

    scope: Literal["all", "own"]
    date: str
    today: Totals
    month: Totals
    by_key: dict[str, KeyUsage]
    by_model: dict[str, Totals]
    cache_hit_ratio: float | None


class UsageReport(msgspec.Struct, frozen=True):
    """The answer of `GET /v1/usage`."""

    subscription: Subscription
    spend: Spend


UNKNOWN_SUBSCRIPTION = Subscription(
    status="unknown",
    window=None,
    resets_at=None,
    windows={},
    overage=Overage(status=None, disabled_reason=None, in_use=False),
    updated_at=None,
)


def _time(seconds: float | None) -> str | None:
    return None if seconds is None else iso_time(seconds)


def subscription_of(state: PlanState | None) -> Subscription:
    """The plan windows as shown (the unknown shape before any report)."""
    if state is None:
        return UNKNOWN_SUBSCRIPTION
    return Subscription(
        status=state.status,
        window=state.window,
        resets_at=_time(state.resets_at),
        windows={
            name: Window(window.utilization, _time(window.resets_at))
            for name, window in sorted(state.windows.items())
        },
        overage=Overage(state.overage_status, state.overage_disabled_reason, state.using_overage),
        updated_at=_time(state.observed_at) if state.observed_at else None,
    )


def _totals(totals: SpendTotals) -> Totals:
    return Totals(
        cost_usd=round(totals.cost_usd, _DIGITS),
        requests=totals.requests,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cached_tokens=totals.cached_tokens,
        cache_creation_tokens=totals.cache_creation_tokens,
    )


def _key_usage(spend: KeySpend, service: ChatService) -> KeyUsage:
    budget = service.spend_ledger.budgets.get(spend.key)
    caps = (
        BudgetCaps(budget.daily_usd, budget.monthly_usd)
        if budget is not None and budget.capped
        else None
    )
    return KeyUsage(
        today=_totals(spend.today),
        month=_totals(spend.month),
        budget=caps,
        last_30_days=[
            DayPoint(day.day, round(day.cost_usd, _DIGITS), day.requests) for day in spend.days
        ],
    )


def spend_of(report: SpendReport, service: ChatService, *, everyone: bool) -> Spend:
    """The spend as shown: keys under their names (labels or stand-ins), never a key."""
    ratio = report.cache_hit_ratio
    return Spend(
        scope="all" if everyone else "own",
        date=report.day,
        today=_totals(report.today),
        month=_totals(report.month),
        by_key={
            service.spend_ledger.name_of(spend.key): _key_usage(spend, service)
            for spend in report.by_key
        },
        by_model={model: _totals(totals) for model, totals in report.by_model.items()},
        cache_hit_ratio=None if ratio is None else round(ratio, 4),
    )


@get(
    "/v1/usage",
    summary="Plan windows and spend per key",
    description=(
        "The account's plan windows (subscription mode) and what was spent today and this "
        "month (UTC), per key (by label, never the key) and per model. An admin key, or "
        "any caller of a server without keys, sees every key; another key sees its own "
        "spend only. Times are ISO 8601 UTC."
    ),
    responses=error_specs(503),
)
async def usage(
    service: NamedDependency[ChatService], access: NamedDependency[Access]
) -> UsageReport:
    return UsageReport(
        subscription=subscription_of(service.subscription),
        spend=await visible_spend(service, access),
    )


async def visible_spend(service: ChatService, access: Access) -> Spend:
    """The spend `access` may see: every caller's for one that sees all, else its own.
    Raises ChatError (STORE_UNAVAILABLE) when the spend store cannot be read."""
    everyone = access.sees_all
    report = await service.spend_ledger.report(None if everyone else access.namespace)
    return spend_of(report, service, everyone=everyone)


ROUTES: tuple[ControllerRouterHandler, ...] = (usage,)
