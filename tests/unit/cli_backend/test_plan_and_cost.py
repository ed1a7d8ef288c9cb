"""Subscription mode in the translator: each turn's cost from the CLI's running totals,
plan windows from `rate_limit_event`, and the plan's and the credit's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from proxy_cli_backend.costs import CostBook, CostMeter, Totals, read_totals
from proxy_cli_backend.translate import TurnTranslator
from proxy_core import (
    CREDIT_HELP,
    Failed,
    FailureReason,
    Finished,
    ModelUsage,
    PlanState,
    PlanStatus,
    PlanWindow,
    Usage,
)
from tests.unit.cli_backend import canned
from tests.unit.cli_backend.test_translate import feed, one_call

NOW = 1_796_190_000.0
SONNET = "claude-sonnet-5-5"
HAIKU = "claude-haiku-5"


def usage_of(input_tokens: int, output_tokens: int = 4) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 10,
    }


def totals(*per_model: tuple[str, dict[str, Any], float]) -> dict[str, Any]:
    """A `modelUsage` (running totals) with each model's usage and cost."""
    out: dict[str, Any] = {}
    for model, usage, model_cost in per_model:
        out |= canned.models(usage, model_cost, model)
    return out


def result(turn_input: int, cost: float, model_usage: dict[str, Any]) -> bytes:
    """A result whose turn used `turn_input` input tokens (4 out, 100 + 10 cached), and
    whose running totals are `cost` and `model_usage`."""
    return canned.result("ok", usage=usage_of(turn_input), total_cost=cost, model_usage=model_usage)


def translator(meter: CostMeter | None = None) -> TurnTranslator:
    return TurnTranslator(costs=meter, wall_clock=lambda: NOW)


def outcome_usage(t: TurnTranslator, *lines: bytes) -> Usage:
    feed(t, *lines)
    usage, finished = t.outcome("")
    assert isinstance(finished, Finished)
    assert isinstance(usage, Usage)
    return usage


# -- cost ------------------------------------------------------------------------


def test_a_first_turn_costs_the_results_total_split_per_model() -> None:
    model_usage = totals(
        (SONNET, usage_of(28), 0.00025),
        (HAIKU, {"input_tokens": 0, "output_tokens": 0}, 0.0),
    )
    usage = outcome_usage(translator(), result(28, 0.0003, model_usage))
    assert usage.cost_usd == 0.0003
    assert usage.models == (
        ModelUsage(SONNET, 28, 4, 100, 10, 0.00025),
    )  # a model that used nothing is left out


def test_later_turns_of_one_process_cost_what_the_running_totals_grew_by() -> None:
    meter = CostMeter()
    first = outcome_usage(
        translator(meter), result(28, 0.000131, canned.models(usage_of(28), 0.000131))
    )
    both = {
        "input_tokens": 59,
        "output_tokens": 8,
        "cache_read_input_tokens": 200,
        "cache_creation_input_tokens": 20,
    }
    second = outcome_usage(translator(meter), result(31, 0.000308, canned.models(both, 0.000308)))
    assert first.cost_usd == 0.000131
    assert second.cost_usd == pytest.approx(0.000177)
    assert second.models == (ModelUsage(SONNET, 31, 4, 100, 10, pytest.approx(0.000177)),)


def test_a_resumed_process_that_restored_the_sessions_totals_is_priced_from_them() -> None:
    book = CostBook()
    outcome_usage(
        translator(CostMeter(book)), result(28, 0.000131, canned.models(usage_of(28), 0.000131))
    )
    # A new process on --resume: the CLI restored the session's totals and added its turn.
    grown = {
        "input_tokens": 59,
        "output_tokens": 8,
        "cache_read_input_tokens": 200,
        "cache_creation_input_tokens": 20,
    }
    resumed = CostMeter(book, resumed=True)
    usage = outcome_usage(translator(resumed), result(31, 0.000268, canned.models(grown, 0.000268)))
    assert usage.cost_usd == pytest.approx(0.000137)


def test_a_resumed_process_that_started_afresh_costs_its_whole_total() -> None:
    book = CostBook()
    outcome_usage(
        translator(CostMeter(book)), result(28, 0.000131, canned.models(usage_of(28), 0.000131))
    )
    resumed = CostMeter(book, resumed=True)
    usage = outcome_usage(
        translator(resumed), result(31, 0.000140, canned.models(usage_of(31), 0.000140))
    )
    assert usage.cost_usd == 0.000140


def test_a_resumed_process_whose_start_cannot_be_told_has_no_cost_rather_than_a_guess() -> None:
    # Restored totals the runner never saw (e.g. from before a restart).
    grown = {"input_tokens": 500, "output_tokens": 80}
    meter = CostMeter(CostBook(), resumed=True)
    usage = outcome_usage(translator(meter), result(31, 0.01, canned.models(grown, 0.01)))
    assert usage.cost_usd is None
    assert usage.models == ()
    assert usage.input_tokens == 31  # the tokens are the turn's as ever


def test_a_resumed_process_after_a_restart_is_priced_from_the_records_reading() -> None:
    # The first server kept the session's reading with the conversation's record.
    t = translator(CostMeter(CostBook()))
    feed(t, result(28, 0.000131, canned.models(usage_of(28), 0.000131)))
    finished = t.outcome("")[-1]
    assert isinstance(finished, Finished)
    assert finished.meter is not None
    # A restarted server's runner has an empty book; the plan hands the reading back.
    grown = {
        "input_tokens": 59,
        "output_tokens": 8,
        "cache_read_input_tokens": 200,
        "cache_creation_input_tokens": 20,
    }
    resumed = CostMeter(CostBook(), resumed=True, saved=finished.meter)
    usage = outcome_usage(translator(resumed), result(31, 0.000268, canned.models(grown, 0.000268)))
    assert usage.cost_usd == pytest.approx(0.000137)


@pytest.mark.parametrize("saved", [None, "", "not json", '{"cost_usd": "x"}'])
def test_a_reading_that_is_not_ours_is_no_start(saved: str | None) -> None:
    grown = {"input_tokens": 500, "output_tokens": 80}
    meter = CostMeter(CostBook(), resumed=True, saved=saved)
    usage = outcome_usage(translator(meter), result(31, 0.01, canned.models(grown, 0.01)))
    assert usage.cost_usd is None


def test_a_failed_turn_that_was_paid_for_reports_its_cost_before_its_failure() -> None:
    t = translator(CostMeter())
    feed(
        t,
        canned.result(
            None,
            is_error=True,
            subtype="error_max_budget_usd",
            errors=["Reached maximum budget ($0.001)"],
            total_cost=0.002,
            model_usage=canned.models(usage_of(28), 0.002),
            usage=usage_of(28),
        ),
    )
    usage, failed = t.outcome("")
    assert isinstance(usage, Usage)
    assert usage.cost_usd == 0.002
    assert isinstance(failed, Failed)


def test_a_result_without_a_cost_reports_none_not_zero() -> None:
    usage = outcome_usage(translator(), canned.result("ok", total_cost=None))
    assert usage.cost_usd is None


@pytest.mark.parametrize(
    ("total", "model_usage"),
    [("0.1", {}), (-1, {}), (0.2, {"m": "not figures", 3: {}}), (0.2, ["a list"])],
)
def test_odd_cost_fields_are_read_tolerantly(total: Any, model_usage: Any) -> None:
    got = read_totals(total, model_usage)
    assert got is None or (got.cost_usd == 0.2 and got.models == ())


def test_a_suspended_turn_reports_its_cost_once_whole_when_it_completes() -> None:
    meter = CostMeter()
    t = translator(meter)
    feed(t, canned.usage_start(input_tokens=30, cache_read=100), *one_call())
    feed(t, canned.message_end("tool_use", 9))
    suspended, _ = t.suspension()
    assert isinstance(suspended, Usage)
    assert suspended.cost_usd is None  # no result has priced it yet
    t.resume(None)
    whole = {
        "input_tokens": 80,
        "output_tokens": 12,
        "cache_read_input_tokens": 300,
        "cache_creation_input_tokens": 20,
    }
    feed(
        t,
        canned.tool_results("u-1", "toolu_1"),
        canned.usage_start("msg_2", input_tokens=50, cache_read=200),
        canned.text_at(0, "Sunny."),
        canned.message_end("end_turn", 3),
        canned.result(
            "Sunny.", usage=whole, total_cost=0.0009, model_usage=canned.models(whole, 0.0009)
        ),
    )
    completed, finished = t.outcome("")
    assert isinstance(finished, Finished)
    assert isinstance(completed, Usage)
    assert completed.cost_usd == 0.0009  # both messages, counted here only
    assert completed.input_tokens == 50  # the tokens the suspension reported are not


def test_a_reminded_reply_costs_both_cli_turns() -> None:
    meter = CostMeter()
    t = translator(meter)
    feed(t, result(28, 0.0001, canned.models(usage_of(28), 0.0001)))
    t.next_turn()
    both = {
        "input_tokens": 60,
        "output_tokens": 8,
        "cache_read_input_tokens": 200,
        "cache_creation_input_tokens": 20,
    }
    usage = outcome_usage(t, result(32, 0.00025, canned.models(both, 0.00025)))
    assert usage.cost_usd == pytest.approx(0.00025)
    assert usage.input_tokens == 60


def test_an_error_result_moves_the_running_totals_on() -> None:
    meter = CostMeter()
    t = translator(meter)
    feed(t, canned.result("API Error: 500", is_error=True, status=500, total_cost=0.0001))
    assert isinstance(t.outcome("")[-1], Failed)
    usage = outcome_usage(
        translator(meter), result(28, 0.0004, canned.models(usage_of(28), 0.0003))
    )
    assert usage.cost_usd == pytest.approx(0.0003)


def test_growth_of_totals_never_goes_below_zero() -> None:
    meter = CostMeter()
    assert meter.turn_cost(Totals(0.5), 0, "s") == Totals(0.5)
    assert meter.turn_cost(Totals(0.2), 0, "s") == Totals(0.0)


# -- plan windows -------------------------------------------------------------------

INFO = {
    "status": "allowed_warning",
    "resetsAt": 1796195549,
    "rateLimitType": "five_hour",
    "utilization": 0.92,
    "overageStatus": "rejected",
    "overageDisabledReason": "org_level_disabled",
    "isUsingOverage": False,
    "unifiedWindows": {
        "five_hour": {"utilization": 0.92, "resetsAt": 1796195549, "status": "allowed"},
        "seven_day": {"utilization": 0.1, "resetsAt": 1796447549, "status": "allowed"},
    },
}


def test_a_rate_limit_event_becomes_the_plan_state_seen_now() -> None:
    events = feed(translator(), canned.rate_limit(INFO))
    assert events == [
        PlanStatus(
            PlanState(
                status="allowed_warning",
                window="five_hour",
                resets_at=1796195549.0,
                windows={
                    "five_hour": PlanWindow(0.92, 1796195549.0),
                    "seven_day": PlanWindow(0.1, 1796447549.0),
                },
                overage_status="rejected",
                overage_disabled_reason="org_level_disabled",
                using_overage=False,
                observed_at=NOW,
            )
        )
    ]


def test_a_bare_allowed_event_without_windows_says_nothing() -> None:
    # What the CLI prints when the upstream sent no window headers.
    assert (
        feed(translator(), canned.rate_limit({"status": "allowed", "isUsingOverage": False})) == []
    )


@pytest.mark.parametrize(
    "info",
    [
        None,
        "rejected",
        {"status": 3},
        {"status": "allowed", "unifiedWindows": "no"},
    ],
)
def test_odd_rate_limit_events_are_skipped(info: Any) -> None:
    assert feed(translator(), canned.rate_limit({"x": info} if info is None else info)) == []


def test_odd_window_figures_are_left_unknown() -> None:
    info = {
        "status": "allowed",
        "rateLimitType": "five_hour",
        "unifiedWindows": {"five_hour": {"utilization": "high", "resetsAt": None}, "x": 1},
    }
    (event,) = feed(translator(), canned.rate_limit(info))
    assert isinstance(event, PlanStatus)
    assert event.state.windows == {"five_hour": PlanWindow(None, None)}


# -- refusals ---------------------------------------------------------------------


def refused(window: str, resets_at: float) -> list[bytes]:
    info = {
        "status": "rejected",
        "resetsAt": resets_at,
        "rateLimitType": window,
        "unifiedWindows": {window: {"utilization": 1, "resetsAt": resets_at}},
    }
    words = "5-hour" if window == "five_hour" else "weekly"
    text = f"You've hit your {words} limit · resets 6:43am (UTC)"
    return [
        canned.rate_limit(info),
        canned.assistant(canned.text(text), model="<synthetic>"),
        canned.result(text, is_error=True, status=429, total_cost=0, model_usage={}),
    ]


@pytest.mark.parametrize(
    ("window", "words", "when"),
    [
        ("five_hour", "5-hour", "2026-12-02 07:10 UTC"),
        ("seven_day", "7-day", "2026-12-02 07:10 UTC"),
    ],
)
def test_a_rejected_window_fails_rate_limited_until_its_reset(
    window: str, words: str, when: str
) -> None:
    t = translator()
    events = feed(t, *refused(window, NOW + 5400))
    assert [type(e) for e in events] == [PlanStatus]  # no text: the CLI's is not a reply
    (failed,) = t.outcome("")
    assert failed == Failed(
        FailureReason.RATE_LIMITED,
        f"The Claude plan's {words} limit is reached; it resets at {when}. Retry after that.",
        retry_after=5400.0,
    )


def test_a_window_resetting_now_still_waits_a_second() -> None:
    t = translator()
    feed(t, *refused("five_hour", NOW - 3))
    (failed,) = t.outcome("")
    assert isinstance(failed, Failed)
    assert failed.retry_after == 1.0


EXTRA_USAGE = (
    "API Error: 400 Third-party apps now draw from your extra usage, not your plan limits. "
    "Enable extra usage at claude.ai/settings/usage to keep going."
)


@pytest.mark.parametrize(
    ("text", "status", "words"),
    [
        (
            EXTRA_USAGE,
            400,
            "Third-party apps now draw from your extra usage, not your plan limits. Enable "
            "extra usage at claude.ai/settings/usage to keep going",
        ),
        ("Credit balance is too low", 400, "Credit balance is too low"),
        (
            "You're out of usage credits. /model to switch models.",
            429,
            "You're out of usage credits. /model to switch models",
        ),
    ],
)
def test_a_credit_refusal_fails_insufficient_quota_in_the_upstreams_words(
    text: str, status: int, words: str
) -> None:
    t = translator()
    feed(t, canned.result(text, is_error=True, status=status, total_cost=0, model_usage={}))
    (failed,) = t.outcome("")
    assert failed == Failed(
        FailureReason.INSUFFICIENT_QUOTA,
        f"The Claude account's credit refused the request: {words}. {CREDIT_HELP}",
    )


def test_a_retry_notice_after_a_rejected_window_fails_until_the_reset() -> None:
    info = {"status": "rejected", "resetsAt": NOW + 600, "rateLimitType": "seven_day"}
    events = feed(translator(), canned.rate_limit(info), canned.api_retry(429, 30_000))
    assert isinstance(events[0], PlanStatus)
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.reason is FailureReason.RATE_LIMITED
    assert failed.retry_after == 600.0
    assert "7-day limit is reached" in failed.message
