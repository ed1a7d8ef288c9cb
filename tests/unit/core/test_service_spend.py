"""The service records what each turn cost under its caller, and refuses a caller over
its budget before the backend runs anything."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from proxy_core import (
    Budget,
    ChatError,
    ChatRequest,
    ChatService,
    FailureReason,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    InMemorySpendStore,
    ModelUsage,
    SpendEntry,
    TextDelta,
    TurnPlan,
    Usage,
)
from proxy_core.events import Event

TEAM = "aaaa1111bbbb2222"


class Clock:
    """A settable wall clock (Unix seconds)."""

    def __init__(self, iso: str) -> None:
        self.now = 0.0
        self.set(iso)

    def set(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def costing(cost: float, *parts: ModelUsage) -> FakeRunner:
    """A runner whose every turn replies `ok` and costs `cost` (split over `parts`)."""

    def script(plan: TurnPlan) -> Sequence[Event]:
        return [
            TextDelta("ok"),
            Usage(input_tokens=10, output_tokens=2, cost_usd=cost, models=parts),
            Finished("end_turn", "ok", plan.cli_session_id),
        ]

    return FakeRunner(script)


def ask(text: str = "hi", namespace: str = TEAM) -> ChatRequest:
    return ChatRequest(
        model="sonnet", messages=[{"role": "user", "content": text}], namespace=namespace
    )


def service_with(
    runner: FakeRunner,
    spend: InMemorySpendStore,
    clock: Clock,
    budgets: dict[str, Budget] | None = None,
) -> ChatService:
    return ChatService(
        runner, InMemorySessionStore(), spend=spend, budgets=budgets, wall_clock=clock
    )


async def test_each_turn_adds_its_cost_per_model_under_its_callers_key() -> None:
    spend = InMemorySpendStore()
    runner = costing(
        0.03,
        ModelUsage("claude-sonnet", input_tokens=8, cost_usd=0.025),
        ModelUsage("claude-haiku", input_tokens=2, cost_usd=0.005),
    )
    service = service_with(runner, spend, Clock("2026-12-02T10:00:00"))
    await service.complete(ask("one"))
    await service.complete(ask("two", namespace=""))
    rows = await spend.entries(since="2026-12-01")
    by_row = {(e.key, e.model): (e.requests, round(e.cost_usd, 6)) for e in rows}
    assert by_row == {
        (TEAM, "claude-sonnet"): (1, 0.025),
        (TEAM, "claude-haiku"): (0, 0.005),
        ("", "claude-sonnet"): (1, 0.025),
        ("", "claude-haiku"): (0, 0.005),
    }
    shown = await service.spend_ledger.report()
    assert round(shown.today.cost_usd, 6) == 0.06
    assert shown.today.requests == 2


async def test_a_turn_without_a_split_is_counted_under_the_model_it_ran() -> None:
    spend = InMemorySpendStore()
    service = service_with(costing(0.01), spend, Clock("2026-12-02T10:00:00"))
    await service.complete(ask())
    (row,) = await spend.entries(since="2026-12-01")
    assert (row.model, row.requests, row.day) == ("sonnet", 1, "2026-12-02")


async def test_a_turn_whose_cost_is_unknown_is_not_recorded() -> None:
    spend = InMemorySpendStore()
    service = service_with(FakeRunner(), spend, Clock("2026-12-02T10:00:00"))
    await service.complete(ask())
    assert await spend.entries(since="2000-01-01") == []


async def test_a_caller_over_its_daily_budget_is_refused_before_anything_runs() -> None:
    clock = Clock("2026-12-02T21:30:00")
    runner = costing(0.4)
    budgets = {TEAM: Budget(label="alice", daily_usd=0.5)}
    service = service_with(runner, InMemorySpendStore(), clock, budgets)
    await service.complete(ask("one"))  # $0.40: under
    await service.complete(ask("two"))  # admitted at $0.40, ends at $0.80: the overshoot
    assert len(runner.plans) == 2
    with pytest.raises(ChatError) as refused:
        await service.complete(ask("three"))
    assert len(runner.plans) == 2  # no turn ran, nothing was spent
    error = refused.value
    assert error.reason is FailureReason.BUDGET_EXCEEDED
    assert "daily budget of alice ($0.50)" in error.message
    assert "2026-12-03T00:00:00Z" in error.message
    assert error.retry_after == 2.5 * 3600
    assert (await service.stats()).errors == 1


async def test_the_daily_budget_resets_at_utc_midnight_but_the_monthly_one_holds() -> None:
    clock = Clock("2026-11-30T23:59:00")
    budgets = {TEAM: Budget(daily_usd=1.0, monthly_usd=1.5)}
    service = service_with(costing(1.0), InMemorySpendStore(), clock, budgets)
    await service.complete(ask("one"))
    with pytest.raises(ChatError):
        await service.complete(ask("two"))
    clock.set("2026-12-01T00:00:00")  # a new day and a new month: both reset
    await service.complete(ask("three"))
    clock.set("2026-12-02T00:00:01")  # a new day, $1 of the month's $1.50 spent
    await service.complete(ask("four"))
    with pytest.raises(ChatError) as refused:
        await service.complete(ask("five"))
    assert "monthly budget of key-aaaa1111 ($1.50)" in refused.value.message
    assert "2027-01-01T00:00:00Z" in refused.value.message


async def test_callers_without_a_budget_are_never_refused_nor_read_before_a_turn() -> None:
    spend = InMemorySpendStore()
    spend.fail(reads=True)  # a store that answers nothing
    service = service_with(costing(5.0), spend, Clock("2026-12-02T10:00:00"))
    completion = await service.complete(ask())
    assert completion.text == "ok"


async def test_a_budget_that_cannot_be_checked_fails_closed() -> None:
    spend = InMemorySpendStore()
    spend.fail("disk I/O error", reads=True)
    runner = costing(0.1)
    budgets = {TEAM: Budget(label="alice", monthly_usd=10.0)}
    service = service_with(runner, spend, Clock("2026-12-02T10:00:00"), budgets)
    with pytest.raises(ChatError) as refused:
        await service.complete(ask())
    assert refused.value.reason is FailureReason.STORE_UNAVAILABLE
    assert "budget of alice cannot be checked" in refused.value.message
    assert "disk I/O error" in refused.value.message
    assert runner.plans == []


async def test_a_spend_store_that_refuses_the_write_costs_the_record_not_the_reply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spend = InMemorySpendStore()
    spend.fail("database or disk is full")
    service = service_with(costing(0.2), spend, Clock("2026-12-02T10:00:00"))
    with caplog.at_level(logging.WARNING, logger="proxy_core.spend"):
        async with service.open_turn(ask()) as turn:
            events = [event async for event in turn.events()]
    assert isinstance(events[-1], Finished)
    assert turn.failure is None
    assert turn.spend_error is not None
    assert "disk is full" in turn.spend_error
    assert service.spend_ledger.unrecorded == 1
    assert any("spend_not_recorded" in r.getMessage() for r in caplog.records)


async def test_days_past_the_retention_are_pruned_once_a_day() -> None:
    spend = InMemorySpendStore()
    clock = Clock("2025-01-01T12:00:00")
    service = service_with(costing(0.1), spend, clock)
    await service.complete(ask("old"))
    clock.set("2026-02-01T12:00:00")  # 396 days later: kept
    await service.complete(ask("newer"))
    assert {e.day for e in await spend.entries(since="2000-01-01")} == {
        "2025-01-01",
        "2026-02-01",
    }
    clock.set("2026-02-10T12:00:00")  # 405 days after the first: pruned
    await service.complete(ask("newest"))
    assert {e.day for e in await spend.entries(since="2000-01-01")} == {
        "2026-02-01",
        "2026-02-10",
    }


async def test_turns_of_one_key_started_together_are_all_admitted_and_may_overshoot() -> None:
    runner = costing(0.4)
    runner.gate = asyncio.Event()  # holds every turn until both have started
    budgets = {TEAM: Budget(label="alice", daily_usd=0.5)}
    service = service_with(runner, InMemorySpendStore(), Clock("2026-12-02T10:00:00"), budgets)
    together = [asyncio.create_task(service.complete(ask(text))) for text in ("a", "b")]
    for _ in range(1000):  # until both checked the budget ($0 spent) and started
        if len(runner.plans) == 2:
            break
        await asyncio.sleep(0)
    assert len(runner.plans) == 2
    runner.gate.set()
    await asyncio.gather(*together)
    report = await service.spend_ledger.report(TEAM)
    assert round(report.today.cost_usd, 6) == 0.8  # over the $0.50 cap by one turn
    with pytest.raises(ChatError) as refused:
        await service.complete(ask("c"))
    assert refused.value.reason is FailureReason.BUDGET_EXCEEDED


async def test_a_capped_callers_month_is_read_from_the_store_once_then_kept() -> None:
    spend = InMemorySpendStore()
    budgets = {TEAM: Budget(label="alice", daily_usd=1.0)}
    clock = Clock("2026-12-02T10:00:00")
    service = service_with(costing(0.3), spend, clock, budgets)
    for text in ("a", "b", "c", "d"):
        await service.complete(ask(text))  # admitted at $0, $0.30, $0.60, $0.90
    with pytest.raises(ChatError) as refused:
        await service.complete(ask("e"))  # $1.20 spent: over
    assert refused.value.reason is FailureReason.BUDGET_EXCEEDED
    assert service.spend_ledger.loads == 1
    clock.set("2027-01-01T00:00:01")  # a new month is read afresh
    await service.complete(ask("f"))
    assert service.spend_ledger.loads == 2


async def test_a_restarted_service_counts_what_the_store_kept_before_it() -> None:
    spend = InMemorySpendStore()
    budgets = {TEAM: Budget(label="alice", daily_usd=0.5)}
    clock = Clock("2026-12-02T10:00:00")
    await service_with(costing(0.6), spend, clock, budgets).complete(ask("one"))
    restarted = service_with(costing(0.6), spend, clock, budgets)
    with pytest.raises(ChatError) as refused:
        await restarted.complete(ask("two"))
    assert refused.value.reason is FailureReason.BUDGET_EXCEEDED


class SlowReads(InMemorySpendStore):
    """A spend store whose reads answer only on `release`, with what it held when asked,
    so a turn can be recorded between the read and its answer."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def entries(self, *, since: str, key: str | None = None) -> list[SpendEntry]:
        held = await super().entries(since=since, key=key)
        await self.release.wait()
        return held


async def test_a_turn_recorded_while_its_callers_month_loads_is_counted_once() -> None:
    spend = SlowReads()
    spend.release.set()
    budgets = {TEAM: Budget(label="alice", daily_usd=1.0)}
    clock = Clock("2026-12-02T10:00:00")
    earlier = service_with(costing(0.5), spend, clock, budgets)
    await earlier.complete(ask("before the restart"))  # $0.50 in the store
    spend.release.clear()
    ledger = service_with(costing(0.5), spend, clock, budgets).spend_ledger
    check = asyncio.create_task(ledger.refusal(TEAM))  # loads, held in the read
    await asyncio.sleep(0)
    recording = asyncio.create_task(ledger.record(TEAM, Usage(cost_usd=0.4), "sonnet"))
    await asyncio.sleep(0)
    spend.release.set()
    assert await check is None  # $0.50: under
    assert await recording is None
    refusal = await ledger.refusal(TEAM)
    assert refusal is None  # $0.90: still under, not $1.30
    assert ledger.loads == 1
    await ledger.record(TEAM, Usage(cost_usd=0.2), "sonnet")
    refusal = await ledger.refusal(TEAM)  # $1.10: over
    assert refusal is not None
    assert refusal.reason is FailureReason.BUDGET_EXCEEDED


async def test_a_turn_whose_record_the_store_refused_still_counts_against_the_cap() -> None:
    spend = InMemorySpendStore()
    spend.fail("database or disk is full")  # writes are refused, reads answer
    budgets = {TEAM: Budget(label="alice", daily_usd=0.5)}
    service = service_with(costing(0.6), spend, Clock("2026-12-02T10:00:00"), budgets)
    await service.complete(ask("one"))  # admitted at $0; its $0.60 is not in the store
    assert service.spend_ledger.unrecorded == 1
    with pytest.raises(ChatError) as refused:
        await service.complete(ask("two"))
    assert refused.value.reason is FailureReason.BUDGET_EXCEEDED
