"""Spend aggregation and budgets, pure: what a turn adds, what the report sums, when a
budget refuses and when it resets (UTC days and months)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy_core import Budget, FailureReason, ModelUsage, SpendEntry, Usage, utc_day
from proxy_core.budget import budget_refusal, next_midnight, next_month
from proxy_core.spend import chart, report, totals, turn_entries


def at(text: str) -> float:
    """The Unix time of an ISO 8601 UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# -- what a turn adds --------------------------------------------------------------


def test_a_turn_adds_one_entry_per_model_and_counts_one_request_under_the_costliest() -> None:
    usage = Usage(
        input_tokens=30,
        output_tokens=12,
        cost_usd=0.05,
        models=(
            ModelUsage("claude-haiku", input_tokens=10, output_tokens=2, cost_usd=0.001),
            ModelUsage("claude-sonnet", input_tokens=20, output_tokens=10, cost_usd=0.049),
        ),
    )
    entries = turn_entries("k1", "2026-12-02", usage, "sonnet")
    assert [(e.model, e.requests, e.cost_usd) for e in entries] == [
        ("claude-haiku", 0, 0.001),
        ("claude-sonnet", 1, 0.049),
    ]
    assert {(e.key, e.day) for e in entries} == {("k1", "2026-12-02")}


def test_a_turn_without_a_split_per_model_is_counted_under_its_own_model() -> None:
    usage = Usage(input_tokens=5, output_tokens=3, cache_read_tokens=7, cost_usd=0.002)
    (entry,) = turn_entries("", "2026-12-02", usage, "sonnet")
    assert (entry.model, entry.requests, entry.cost_usd, entry.cache_read_tokens) == (
        "sonnet",
        1,
        0.002,
        7,
    )


def test_a_turn_whose_cost_is_unknown_adds_nothing() -> None:
    assert turn_entries("k", "2026-12-02", Usage(input_tokens=100), "sonnet") == []


models = st.lists(
    st.builds(
        ModelUsage,
        model=st.sampled_from(["opus", "sonnet", "haiku"]),
        input_tokens=st.integers(0, 10_000),
        output_tokens=st.integers(0, 10_000),
        cache_read_tokens=st.integers(0, 10_000),
        cache_creation_tokens=st.integers(0, 10_000),
        cost_usd=st.floats(0, 5, allow_nan=False),
    ),
    max_size=4,
)


@given(models)
def test_a_turn_adds_its_whole_split_and_exactly_one_request(parts: list[ModelUsage]) -> None:
    usage = Usage(cost_usd=sum(p.cost_usd for p in parts), models=tuple(parts))
    entries = turn_entries("k", "2026-12-02", usage, "sonnet")
    assert sum(e.requests for e in entries) == 1
    assert math.isclose(sum(e.cost_usd for e in entries), usage.cost_usd or 0.0, abs_tol=1e-9)
    assert sum(e.cache_read_tokens for e in entries) == sum(p.cache_read_tokens for p in parts)


# -- the report ----------------------------------------------------------------

entries = st.lists(
    st.builds(
        SpendEntry,
        key=st.sampled_from(["", "aaaa1111", "bbbb2222"]),
        day=st.sampled_from(["2026-10-31", "2026-11-15", "2026-12-01", "2026-12-02"]),
        model=st.sampled_from(["opus", "sonnet"]),
        requests=st.integers(0, 3),
        input_tokens=st.integers(0, 1000),
        output_tokens=st.integers(0, 1000),
        cache_read_tokens=st.integers(0, 1000),
        cache_creation_tokens=st.integers(0, 1000),
        cost_usd=st.floats(0, 10, allow_nan=False),
    ),
    max_size=30,
)


@given(entries)
def test_the_report_parts_add_up_to_its_totals(rows: list[SpendEntry]) -> None:
    shown = report(rows, "2026-12-02")
    month = [e for e in rows if e.day.startswith("2026-12")]
    assert shown.month == totals(month)
    assert shown.today == totals(e for e in month if e.day == "2026-12-02")
    assert math.isclose(
        sum(k.month.cost_usd for k in shown.by_key), shown.month.cost_usd, abs_tol=1e-9
    )
    assert sum(t.requests for t in shown.by_model.values()) == shown.month.requests
    assert sum(k.today.requests for k in shown.by_key) == shown.today.requests
    costs = [k.month.cost_usd for k in shown.by_key]
    assert costs == sorted(costs, reverse=True)


@given(entries)
def test_the_cache_hit_ratio_is_the_cached_share_of_all_input(rows: list[SpendEntry]) -> None:
    month = report(rows, "2026-12-02").month
    ratio = month.cache_hit_ratio
    if month.input_tokens == 0:
        assert ratio is None
    else:
        assert ratio == month.cached_tokens / month.input_tokens
        assert 0.0 <= ratio <= 1.0


def test_input_tokens_count_the_cached_part_as_openai_prompt_tokens_do() -> None:
    row = SpendEntry(
        key="k",
        day="2026-12-02",
        model="m",
        input_tokens=10,
        cache_read_tokens=30,
        cache_creation_tokens=5,
    )
    summed = totals([row])
    assert (summed.input_tokens, summed.cached_tokens, summed.cache_creation_tokens) == (45, 30, 5)


def test_the_chart_has_each_of_the_last_30_days_oldest_first_with_zeros() -> None:
    rows = [
        SpendEntry(key="k", day="2026-12-02", model="m", requests=2, cost_usd=1.5),
        SpendEntry(key="k", day="2026-11-20", model="m", requests=1, cost_usd=0.5),
        SpendEntry(key="k", day="2026-11-02", model="m", requests=1, cost_usd=9.0),  # too old
    ]
    days = chart(rows, "2026-12-02")
    assert len(days) == 30
    assert (days[0].day, days[-1].day) == ("2026-11-03", "2026-12-02")
    assert days[-1].cost_usd == 1.5
    assert days[-1].requests == 2
    assert {d.day: d.cost_usd for d in days if d.cost_usd} == {"2026-11-20": 0.5, "2026-12-02": 1.5}


def test_the_report_includes_keys_without_spend_when_asked() -> None:
    shown = report([], "2026-12-02", include=["quiet"])
    assert [k.key for k in shown.by_key] == ["quiet"]
    assert shown.by_key[0].month.cost_usd == 0.0


# -- budgets and their resets --------------------------------------------------


@pytest.mark.parametrize(
    ("now", "midnight", "month"),
    [
        ("2026-12-02T13:45:00", "2026-12-03T00:00:00", "2027-01-01T00:00:00"),
        ("2026-12-31T23:59:59", "2027-01-01T00:00:00", "2027-01-01T00:00:00"),
        ("2026-02-28T00:00:00", "2026-03-01T00:00:00", "2026-03-01T00:00:00"),
        ("2028-02-28T12:00:00", "2028-02-29T00:00:00", "2028-03-01T00:00:00"),
        ("2026-06-30T00:00:00", "2026-07-01T00:00:00", "2026-07-01T00:00:00"),
    ],
)
def test_budgets_reset_at_the_next_utc_midnight_and_the_first_of_next_month(
    now: str, midnight: str, month: str
) -> None:
    assert next_midnight(at(now)) == at(midnight)
    assert next_month(at(now)) == at(month)


def test_the_utc_day_changes_at_utc_midnight() -> None:
    assert utc_day(at("2026-12-02T23:59:59")) == "2026-12-02"
    assert utc_day(at("2026-12-03T00:00:00")) == "2026-12-03"


def test_a_key_under_its_budgets_is_not_refused() -> None:
    budget = Budget(label="alice", daily_usd=1.0, monthly_usd=10.0)
    now = at("2026-12-02T10:00:00")
    assert budget_refusal(budget, "alice", today_usd=0.99, month_usd=9.99, now=now) is None


def test_a_key_at_its_daily_budget_is_refused_until_the_next_utc_midnight() -> None:
    budget = Budget(label="alice", daily_usd=0.5)
    now = at("2026-12-02T22:00:00")
    refusal = budget_refusal(budget, "alice", today_usd=0.5, month_usd=3.0, now=now)
    assert refusal is not None
    assert refusal.reason is FailureReason.BUDGET_EXCEEDED
    assert refusal.retry_after == 2 * 3600
    assert "daily budget of alice ($0.50)" in refusal.message
    assert "2026-12-03T00:00:00Z" in refusal.message


def test_a_key_over_both_budgets_is_told_the_monthly_reset() -> None:
    budget = Budget(daily_usd=0.5, monthly_usd=2.0)
    now = at("2026-12-31T23:00:00")
    refusal = budget_refusal(budget, "key-ab12cd34", today_usd=1.0, month_usd=2.5, now=now)
    assert refusal is not None
    assert "monthly budget of key-ab12cd34 ($2.00)" in refusal.message
    assert "2027-01-01T00:00:00Z" in refusal.message
    assert refusal.retry_after == 3600
