"""Spend: what each caller's turns cost, per model and per UTC day, and its aggregates.

A turn whose usage carries a cost adds one `SpendEntry` per model it used to the
caller's bucket (its namespace: the API key's id; "" when no keys are configured).
Days are UTC dates (`2026-12-02`), so a day and a month mean the same everywhere.
Everything here is pure: `SpendLedger` (spend_ledger.py) reads and writes the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import msgspec

from proxy_core.events import Usage


class SpendEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What one caller (`key`, its namespace) spent on one model on one UTC day.

    Token counts are Anthropic's: `input_tokens` excludes the cache reads and cache
    writes, which have their own counts. `requests` counts turns (one per turn, under
    the model that cost it the most).
    """

    key: str
    day: str
    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float = 0.0


class SpendTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Spend summed over some entries. `input_tokens` counts every input token, cached
    or not (as OpenAI's `prompt_tokens`); `cached_tokens` is the part read from the
    cache and `cache_creation_tokens` the part written to it."""

    cost_usd: float = 0.0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0

    @property
    def cache_hit_ratio(self) -> float | None:
        """The share of input tokens read from the cache (None: no input yet)."""
        return self.cached_tokens / self.input_tokens if self.input_tokens else None


class DaySpend(msgspec.Struct, frozen=True):
    """One UTC day's cost and requests (a point of a chart)."""

    day: str
    cost_usd: float
    requests: int


class KeySpend(msgspec.Struct, frozen=True, kw_only=True):
    """One caller's spend: today, this month, and each of the last days (oldest first)."""

    key: str
    today: SpendTotals
    month: SpendTotals
    days: tuple[DaySpend, ...] = ()


class SpendReport(msgspec.Struct, frozen=True, kw_only=True):
    """Spend as of `day` (UTC): totals for the day and its month, per caller and per
    model (this month), and the month's cache hit ratio."""

    day: str
    today: SpendTotals
    month: SpendTotals
    by_key: tuple[KeySpend, ...]
    by_model: dict[str, SpendTotals]

    @property
    def cache_hit_ratio(self) -> float | None:
        """This month's share of input tokens read from the cache."""
        return self.month.cache_hit_ratio


CHART_DAYS = 30
"""How many days each caller's chart covers (`KeySpend.days`)."""


def utc_day(seconds: float) -> str:
    """The UTC date of a Unix time (`2026-12-02`)."""
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def month_start(day: str) -> str:
    """The first day of `day`'s month."""
    return day[:8] + "01"


def days_before(day: str, count: int) -> str:
    """The date `count` days before `day`."""
    return (date.fromisoformat(day) - timedelta(days=count)).isoformat()


def turn_entries(key: str, day: str, usage: Usage, model: str) -> list[SpendEntry]:
    """What one turn adds to `key`'s spend on `day`: one entry per model it used, its
    request counted under the model that cost the most; `model` (the turn's own) when
    the usage has no split per model. None of it without a cost."""
    if usage.cost_usd is None:
        return []
    if not usage.models:
        return [
            SpendEntry(
                key=key,
                day=day,
                model=model,
                requests=1,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_creation_tokens=usage.cache_creation_tokens,
                cost_usd=usage.cost_usd,
            )
        ]
    main = max(range(len(usage.models)), key=lambda i: usage.models[i].cost_usd)
    return [
        SpendEntry(
            key=key,
            day=day,
            model=part.model or model,
            requests=1 if index == main else 0,
            input_tokens=part.input_tokens,
            output_tokens=part.output_tokens,
            cache_read_tokens=part.cache_read_tokens,
            cache_creation_tokens=part.cache_creation_tokens,
            cost_usd=part.cost_usd,
        )
        for index, part in enumerate(usage.models)
    ]


def totals(entries: Iterable[SpendEntry]) -> SpendTotals:
    """The entries summed (input tokens counted with their cached part)."""
    cost = 0.0
    requests = uncached = output = cached = created = 0
    for entry in entries:
        cost += entry.cost_usd
        requests += entry.requests
        uncached += entry.input_tokens
        output += entry.output_tokens
        cached += entry.cache_read_tokens
        created += entry.cache_creation_tokens
    return SpendTotals(
        cost_usd=cost,
        requests=requests,
        input_tokens=uncached + cached + created,
        output_tokens=output,
        cached_tokens=cached,
        cache_creation_tokens=created,
    )


def cost_since(entries: Iterable[SpendEntry], key: str, first_day: str) -> float:
    """What `key` spent from `first_day` on."""
    return sum(e.cost_usd for e in entries if e.key == key and e.day >= first_day)


def chart(entries: Sequence[SpendEntry], day: str, days: int = CHART_DAYS) -> tuple[DaySpend, ...]:
    """Cost and requests per day over the `days` days ending with `day`, oldest first
    (a day without spend is a zero)."""
    cost: dict[str, float] = {}
    requests: dict[str, int] = {}
    for entry in entries:
        cost[entry.day] = cost.get(entry.day, 0.0) + entry.cost_usd
        requests[entry.day] = requests.get(entry.day, 0) + entry.requests
    shown = [days_before(day, back) for back in range(days - 1, -1, -1)]
    return tuple(DaySpend(d, cost.get(d, 0.0), requests.get(d, 0)) for d in shown)


def report(entries: Sequence[SpendEntry], day: str, include: Iterable[str] = ()) -> SpendReport:
    """The report as of `day` over `entries` (which should reach back `CHART_DAYS` days,
    or to the month's start if that is earlier), with a caller's entry for each key of
    `include` even without spend. Callers come in order of this month's cost, highest
    first; models by name."""
    month = month_start(day)
    this_month = [e for e in entries if month <= e.day <= day]
    today = [e for e in this_month if e.day == day]
    keys = sorted({e.key for e in entries} | set(include))
    by_key = [
        KeySpend(
            key=key,
            today=totals(e for e in today if e.key == key),
            month=totals(e for e in this_month if e.key == key),
            days=chart([e for e in entries if e.key == key], day),
        )
        for key in keys
    ]
    by_key.sort(key=lambda spend: (-spend.month.cost_usd, spend.key))
    models = sorted({e.model for e in this_month})
    return SpendReport(
        day=day,
        today=totals(today),
        month=totals(this_month),
        by_key=tuple(by_key),
        by_model={model: totals(e for e in this_month if e.model == model) for model in models},
    )


def report_start(day: str) -> str:
    """The earliest day `report` needs entries from, as of `day`."""
    return min(month_start(day), days_before(day, CHART_DAYS - 1))
