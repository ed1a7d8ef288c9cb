"""`GET /v1/usage` over a fake runner: the subscription's shape before and after the plan
windows are seen, spend scoped by the key (an admin sees all, a team member only its
own), labels and stand-ins instead of keys; and a key over its budget answered 429
`insufficient_quota` with the reset time on all three API surfaces."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    ChatService,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    InMemorySpendStore,
    ModelUsage,
    PlanStatus,
    SpendEntry,
    TextDelta,
    TurnPlan,
    Usage,
)
from proxy_core.events import Event
from proxy_http.auth import ApiKeys, key_id, parse_key_file
from tests.support.plans import NOW, PLAN
from tests.support.server import bearer

ALICE = "sk-alice-secret-key-000000000000"
BOB = "sk-bob-secret-key-1111111111111"
PLAIN = "sk-plain-secret-key-22222222222"
ADMIN = "sk-admin-secret-key-3333333333"
KEY_FILE = f"{ALICE} label=alice daily_usd=0.50 monthly_usd=20\n{BOB} label=bob\n{PLAIN}\n"


def script(plan: TurnPlan) -> Sequence[Event]:
    return [
        PlanStatus(PLAN),
        TextDelta("ok"),
        Usage(
            input_tokens=10,
            output_tokens=4,
            cache_read_tokens=30,
            cost_usd=0.125,
            models=(
                ModelUsage(
                    "claude-sonnet",
                    input_tokens=10,
                    output_tokens=4,
                    cache_read_tokens=30,
                    cost_usd=0.125,
                ),
            ),
        ),
        Finished("end_turn", "ok", plan.cli_session_id),
    ]


def keys() -> ApiKeys:
    found, budgets = parse_key_file(KEY_FILE, "keys")
    return ApiKeys(found, [ADMIN], budgets)


def app_over(
    spend: InMemorySpendStore, runner: FakeRunner | None = None, *, keyed: bool = True
) -> Litestar:
    accepted = keys() if keyed else ApiKeys([])
    service = ChatService(
        runner or FakeRunner(script),
        InMemorySessionStore(),
        spend=spend,
        budgets=accepted.budgets,
        wall_clock=lambda: NOW,
    )
    return http_app(service, Settings(), keys=accepted)


CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def client() -> Iterator[TestClient[Any]]:
    with TestClient(app_over(InMemorySpendStore()), base_url="http://127.0.0.1") as client:
        yield client


def test_before_any_plan_report_the_subscription_is_unknown(client: TestClient[Any]) -> None:
    shown = client.get("/v1/usage", headers=bearer(ADMIN))
    assert shown.status_code == 200
    assert shown.json()["subscription"] == {
        "status": "unknown",
        "window": None,
        "resets_at": None,
        "windows": {},
        "overage": {"status": None, "disabled_reason": None, "in_use": False},
        "updated_at": None,
    }


def test_the_plan_windows_are_shown_with_iso_utc_times(client: TestClient[Any]) -> None:
    assert client.post("/v1/chat/completions", json=CHAT, headers=bearer(BOB)).status_code == 200
    subscription = client.get("/v1/usage", headers=bearer(BOB)).json()["subscription"]
    assert subscription["status"] == "allowed_warning"
    assert subscription["window"] == "five_hour"
    assert subscription["windows"] == {
        "five_hour": {"utilization": 0.85, "resets_at": "2026-12-03T00:00:00Z"},
        "seven_day": {"utilization": 0.3, "resets_at": "2026-12-04T00:00:00Z"},
    }
    assert subscription["overage"] == {
        "status": "rejected",
        "disabled_reason": "org_level_disabled",
        "in_use": False,
    }
    assert subscription["updated_at"] == "2026-12-02T21:00:00Z"


def totals(cost: float, requests: int) -> dict[str, Any]:
    return {
        "cost_usd": cost,
        "requests": requests,
        "input_tokens": 40 * requests,
        "output_tokens": 4 * requests,
        "cached_tokens": 30 * requests,
        "cache_creation_tokens": 0,
    }


def test_an_admin_sees_every_key_by_label_or_stand_in(client: TestClient[Any]) -> None:
    for key in (ALICE, BOB, BOB, PLAIN):
        assert (
            client.post("/v1/chat/completions", json=CHAT, headers=bearer(key)).status_code == 200
        )
    spend = client.get("/v1/usage", headers=bearer(ADMIN)).json()["spend"]
    assert spend["scope"] == "all"
    assert spend["date"] == "2026-12-02"
    assert spend["today"] == spend["month"] == totals(0.5, 4)
    plain = f"key-{key_id(PLAIN)[:8]}"
    assert next(iter(spend["by_key"])) == "bob"  # the highest cost this month first
    assert set(spend["by_key"]) == {"bob", "alice", plain}
    assert spend["by_key"]["bob"]["month"] == totals(0.25, 2)
    assert spend["by_key"]["alice"]["budget"] == {"daily_usd": 0.5, "monthly_usd": 20.0}
    assert spend["by_key"]["bob"]["budget"] is None  # a label, no cap
    days = spend["by_key"]["alice"]["last_30_days"]
    assert len(days) == 30
    assert days[-1] == {"date": "2026-12-02", "cost_usd": 0.125, "requests": 1}
    assert spend["by_model"] == {"claude-sonnet": totals(0.5, 4)}
    assert spend["cache_hit_ratio"] == 0.75


def test_a_team_member_sees_only_its_own_spend(client: TestClient[Any]) -> None:
    for key in (ALICE, BOB, BOB):
        client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
    spend = client.get("/v1/usage", headers=bearer(ALICE)).json()["spend"]
    assert spend["scope"] == "own"
    assert list(spend["by_key"]) == ["alice"]
    assert spend["today"] == spend["month"] == totals(0.125, 1)
    assert spend["by_model"] == {"claude-sonnet": totals(0.125, 1)}


def test_a_key_without_spend_sees_its_own_empty_entry(client: TestClient[Any]) -> None:
    spend = client.get("/v1/usage", headers=bearer(PLAIN)).json()["spend"]
    assert spend["by_key"] == {
        f"key-{key_id(PLAIN)[:8]}": {
            "today": totals(0.0, 0),
            "month": totals(0.0, 0),
            "budget": None,
            "last_30_days": [
                {"date": day["date"], "cost_usd": 0.0, "requests": 0}
                for day in spend["by_key"][f"key-{key_id(PLAIN)[:8]}"]["last_30_days"]
            ],
        }
    }
    assert spend["cache_hit_ratio"] is None


def test_usage_needs_a_key(client: TestClient[Any]) -> None:
    assert client.get("/v1/usage").status_code == 401


def test_usage_never_shows_a_key_to_an_admin_or_a_member(client: TestClient[Any]) -> None:
    for key in (ALICE, BOB, PLAIN, ADMIN):
        client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
    for key in (ALICE, PLAIN, ADMIN):
        text = client.get("/v1/usage", headers=bearer(key)).text
        for secret in (ALICE, BOB, PLAIN, ADMIN):
            assert secret not in text


def test_a_server_without_keys_shows_one_anonymous_bucket() -> None:
    with TestClient(app_over(InMemorySpendStore(), keyed=False), base_url="http://127.0.0.1") as c:
        c.post("/v1/chat/completions", json=CHAT)
        spend = c.get("/v1/usage").json()["spend"]
    assert spend["scope"] == "all"
    assert list(spend["by_key"]) == ["anonymous"]
    assert spend["by_key"]["anonymous"]["today"] == totals(0.125, 1)


def test_an_unreadable_spend_store_is_a_503_not_a_crash() -> None:
    spend = InMemorySpendStore()
    spend.fail("disk I/O error", reads=True)
    with TestClient(app_over(spend), base_url="http://127.0.0.1") as client:
        answer = client.get("/v1/usage", headers=bearer(ADMIN))
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "store_unavailable"


def test_the_openapi_schema_describes_usage(client: TestClient[Any]) -> None:
    schema = client.get("/schema/openapi.json", headers=bearer(PLAIN)).json()
    assert "get" in schema["paths"]["/v1/usage"]


# -- budgets on the three surfaces ------------------------------------------------


def spent_alice(cost: float) -> InMemorySpendStore:
    """A spend store in which alice spent `cost` today."""
    spend = InMemorySpendStore()
    row = SpendEntry(key=key_id(ALICE), day="2026-12-02", model="claude-sonnet", cost_usd=cost)
    asyncio.run(spend.add([row]))
    return spend


SURFACES = [
    ("/v1/chat/completions", CHAT),
    ("/v1/chat/completions", {**CHAT, "stream": True}),
    ("/v1/responses", {"model": "sonnet", "input": "hi"}),
    ("/v1/responses", {"model": "sonnet", "input": "hi", "stream": True}),
    ("/v1/messages", {"model": "sonnet", "max_tokens": 50, "messages": CHAT["messages"]}),
    (
        "/v1/messages",
        {"model": "sonnet", "max_tokens": 50, "messages": CHAT["messages"], "stream": True},
    ),
]


@pytest.mark.parametrize(("path", "body"), SURFACES)
def test_a_key_over_its_budget_gets_429_insufficient_quota_before_any_turn_runs(
    path: str, body: dict[str, Any]
) -> None:
    runner = FakeRunner(script)
    with TestClient(app_over(spent_alice(0.5), runner), base_url="http://127.0.0.1") as client:
        refused = client.post(path, json=body, headers=bearer(ALICE))
        served = client.post(path, json=body, headers=bearer(BOB))
    assert runner.plans
    assert len(runner.plans) == 1
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(3 * 3600)  # until 00:00 UTC
    error = refused.json()["error"]
    if path == "/v1/messages":
        assert error["type"] == "billing_error"
    else:
        assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "daily budget of alice ($0.50)" in error["message"]
    assert "resets at 2026-12-03T00:00:00Z" in error["message"]
    assert ALICE not in refused.text
    assert served.status_code == 200
