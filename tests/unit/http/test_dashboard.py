"""GET /dashboard over a fake runner: what the page shows after some requests (turns,
spend per label with budgets, plan windows, errors), escaping of everything from state,
the auth (Bearer, x-api-key, HTTP Basic for this page only, the Basic challenge), the
scoping (a member key sees its own spend and errors only), the security headers, the
browser guard in front of it, and `--no-dashboard`."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    ChatError,
    ChatService,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    InMemorySpendStore,
    PlanState,
    PlanStatus,
    PlanWindow,
    SpendEntry,
    TextDelta,
    TurnPlan,
    Usage,
)
from proxy_core.events import Event
from proxy_http.auth import Access, ApiKeys, key_id, parse_key_file
from proxy_http.dashboard import DashboardView, render_dashboard
from proxy_http.gauges import ServerGauges
from proxy_http.logging import FinishedRequest
from proxy_http.recent_errors import ErrorEntry, RecentErrors
from proxy_http.routes.usage import DayPoint, KeyUsage, Spend, Totals
from tests.support.plans import NOW, PLAN, RESETS
from tests.support.server import bearer

ALICE = "sk-alice-dash-key-000000000000"
BOB = "sk-bob-dash-key-1111111111111"
ADMIN = "sk-admin-dash-key-333333333333"
KEY_FILE = f"{ALICE} label=alice daily_usd=0.50 monthly_usd=20\n{BOB} label=bob\n"
HOSTILE = "<script>alert('owned')</script> onclick=alert(1)"


def script(plan: TurnPlan) -> Sequence[Event]:
    """Replies `ok` at $0.125 with the plan windows; `fail: WHY` fails with WHY (after
    some text when it starts `fail: late`)."""
    text = plan.messages[-1].text
    if text.startswith("fail: "):
        early = [] if not text.startswith("fail: late") else [TextDelta("partial")]
        return [*early, Failed(FailureReason.CLI_CRASHED, text.removeprefix("fail: "))]
    return [
        PlanStatus(PLAN),
        TextDelta("ok"),
        Usage(input_tokens=10, output_tokens=4, cost_usd=0.125),
        Finished("end_turn", "ok", plan.cli_session_id),
    ]


def app_over(*, keyed: bool = True, **settings: Any) -> Litestar:
    found, budgets = parse_key_file(KEY_FILE, "keys")
    keys = ApiKeys(found, [ADMIN], budgets) if keyed else ApiKeys([])
    service = ChatService(
        FakeRunner(script),
        InMemorySessionStore(),
        spend=InMemorySpendStore(),
        budgets=keys.budgets,
        wall_clock=lambda: NOW,
    )
    return http_app(service, Settings.from_values(**settings), keys=keys)


@pytest.fixture
def client() -> Iterator[TestClient[Any]]:
    with TestClient(app_over(), base_url="http://127.0.0.1") as client:
        yield client


def basic(password: str, user: str = "anyone") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def chat(client: TestClient[Any], key: str, text: str = "hi") -> Any:
    body = {"model": "sonnet", "messages": [{"role": "user", "content": text}]}
    return client.post("/v1/chat/completions", json=body, headers=bearer(key))


def text_of(page: str) -> str:
    """The page's text as a reader sees it: tags gone, entities decoded, spaces folded."""
    without_style = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", without_style)).split())


def page(client: TestClient[Any], headers: dict[str, str]) -> str:
    answer = client.get("/dashboard", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    return answer.text


def test_the_page_shows_turns_spend_windows_and_errors(client: TestClient[Any]) -> None:
    for key in (ALICE, BOB, BOB):
        assert chat(client, key).status_code == 200
    failed = chat(client, BOB, "fail: the CLI fell over")
    assert failed.status_code == 502
    code = failed.json()["error"]["code"]

    shown = text_of(page(client, bearer(ADMIN)))

    assert "Active turns 0 of 4" in shown
    assert "Queued turns 0 of" in shown
    assert "Conversations kept 2" in shown  # bob's second turn continued his first
    assert "spend shown for every key" in shown
    assert "Today (2026-12-02, UTC) $0.3750 (3 requests)" in shown
    assert "bob $0.2500 $0.2500" in shown
    assert "alice $0.1250 of $0.5000 budget $0.1250 of $20.00 budget" in shown
    assert "five_hour (binding) 85% 2026-12-03 00:00:00 UTC" in shown
    assert "seven_day 30% 2026-12-04 00:00:00 UTC" in shown
    assert "Status allowed_warning" in shown
    assert "Extra usage rejected (org_level_disabled)" in shown
    assert f"POST /v1/chat/completions 502 bob {code} the CLI fell over" in shown


def test_each_key_has_a_30_day_chart_with_todays_bar(client: TestClient[Any]) -> None:
    assert chat(client, ALICE).status_code == 200
    body = page(client, bearer(ALICE))
    charts = re.findall(r"<svg class=chart .*?</svg>", body, flags=re.S)
    assert len(charts) == 1
    bars = re.findall(r'<rect [^>]*class="(spent|idle)"><title>([^<]*)</title>', charts[0])
    assert len(bars) == 30
    assert bars[-1] == ("spent", "2026-12-02: $0.1250, 1 request")
    assert {kind for kind, _ in bars[:-1]} == {"idle"}


def test_before_any_plan_report_the_page_says_so(client: TestClient[Any]) -> None:
    shown = text_of(page(client, bearer(ADMIN)))
    assert "No plan reported yet" in shown
    assert "No error since the server started." in shown


def test_a_member_key_sees_only_its_own_spend_and_errors(client: TestClient[Any]) -> None:
    assert chat(client, ALICE).status_code == 200
    assert chat(client, BOB).status_code == 200
    assert chat(client, BOB, "fail: bob's secret trouble").status_code == 502
    assert chat(client, ALICE, "fail: alice's own trouble").status_code == 502

    body = page(client, bearer(ALICE))
    shown = text_of(body)

    assert "spend shown for your key only" in shown
    assert "alice $0.1250" in shown
    assert "bob" not in body  # neither bob's label nor his error
    assert "alice's own trouble" in shown
    assert key_id(BOB) not in body
    assert BOB not in body
    assert ALICE not in body


def test_no_key_appears_on_the_page(client: TestClient[Any]) -> None:
    for key in (ALICE, BOB):
        chat(client, key)
    client.post("/v1/chat/completions", json={}, headers=bearer("sk-wrong-key"))
    body = page(client, bearer(ADMIN))
    for key in (ALICE, BOB, ADMIN, "sk-wrong-key"):
        assert key not in body
    assert "no valid key" in text_of(body)  # the 401 is listed, without its key


def test_an_error_message_from_state_renders_as_text(client: TestClient[Any]) -> None:
    assert chat(client, ALICE, f"fail: {HOSTILE}").status_code == 502
    client.get(f"/v1/{HOSTILE}", headers=bearer(ALICE))
    body = page(client, bearer(ALICE))
    assert "<script" not in body.lower()
    assert html.escape(HOSTILE) in body
    assert text_of(body).count(HOSTILE) == 2  # the message, and the path of the 404


def test_the_page_forbids_scripts_framing_sniffing_and_caching(client: TestClient[Any]) -> None:
    answer = client.get("/dashboard", headers=bearer(ADMIN))
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in answer.headers["content-security-policy"].split(";")
        if directive.strip()
    }
    assert policy["default-src"] == ["'none'"]
    assert "script-src" not in policy  # so default-src 'none' forbids every script
    assert policy["frame-ancestors"] == ["'none'"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert "<script" not in answer.text
    assert "src=" not in answer.text


def test_without_a_key_a_browser_is_asked_for_basic_credentials(client: TestClient[Any]) -> None:
    answer = client.get("/dashboard")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith('Basic realm="claude-max-api-proxy"')
    assert answer.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    "headers",
    [basic(ALICE), basic(ALICE, user=""), bearer(ALICE), {"x-api-key": ALICE}],
    ids=["basic", "basic-without-user", "bearer", "x-api-key"],
)
def test_the_key_is_accepted_as_basic_bearer_or_x_api_key(
    client: TestClient[Any], headers: dict[str, str]
) -> None:
    assert "spend shown for your key only" in text_of(page(client, headers))


@pytest.mark.parametrize(
    "headers",
    [basic("sk-not-a-key"), {"Authorization": "Basic !!!not-base64"}, basic("")],
    ids=["wrong-key", "malformed", "empty-password"],
)
def test_wrong_basic_credentials_get_the_challenge_again(
    client: TestClient[Any], headers: dict[str, str]
) -> None:
    answer = client.get("/dashboard", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic ")


def test_basic_credentials_open_no_other_path(client: TestClient[Any]) -> None:
    usage = client.get("/v1/usage", headers=basic(ADMIN))
    assert usage.status_code == 401
    assert usage.headers["www-authenticate"].startswith("Bearer ")
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=body, headers=basic(ADMIN)).status_code == 401


def test_a_stream_that_fails_after_its_200_is_listed(client: TestClient[Any]) -> None:
    body = {
        "model": "sonnet",
        "stream": True,
        "messages": [{"role": "user", "content": "fail: late, mid-stream"}],
    }
    streamed = client.post("/v1/chat/completions", json=body, headers=bearer(ALICE))
    assert streamed.status_code == 200
    assert "late, mid-stream" in streamed.text  # the client's error event
    shown = text_of(page(client, bearer(ALICE)))
    assert "POST /v1/chat/completions 200 cli_crashed late, mid-stream" in shown


def test_the_browsers_challenge_is_not_listed_as_an_error(client: TestClient[Any]) -> None:
    assert client.get("/dashboard").status_code == 401
    shown = text_of(page(client, bearer(ADMIN)))
    assert "No error since the server started." in shown


NAVIGATION = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


def test_a_navigation_from_the_address_bar_is_served(client: TestClient[Any]) -> None:
    answer = client.get("/dashboard", headers={**NAVIGATION, **basic(ADMIN)})
    assert answer.status_code == 200


def test_a_cross_site_request_is_refused(client: TestClient[Any]) -> None:
    cross = {**NAVIGATION, "Sec-Fetch-Site": "cross-site", **basic(ADMIN)}
    assert client.get("/dashboard", headers=cross).status_code == 403
    from_page = {"Origin": "https://evil.example", **basic(ADMIN)}
    assert client.get("/dashboard", headers=from_page).status_code == 403


def test_a_rebinding_host_is_refused(client: TestClient[Any]) -> None:
    rebound = {**NAVIGATION, "Host": "evil.example", **basic(ADMIN)}
    assert client.get("/dashboard", headers=rebound).status_code == 421


def test_a_server_without_keys_shows_everything_without_credentials() -> None:
    with TestClient(app_over(keyed=False), base_url="http://127.0.0.1") as client:
        assert (
            client.post(
                "/v1/chat/completions",
                json={"model": "sonnet", "messages": [{"role": "user", "content": "fail: boom"}]},
            ).status_code
            == 502
        )
        chat(client, "unused")
        shown = text_of(page(client, {}))
    assert "spend shown for every key" in shown
    assert "anonymous $0.1250" in shown
    assert "boom" in shown


class UnreadableSpend(InMemorySpendStore):
    async def entries(self, *, since: str, key: str | None = None) -> list[SpendEntry]:
        raise ChatError(FailureReason.STORE_UNAVAILABLE, "the spend database is locked")


class UncountableSessions(InMemorySessionStore):
    async def count(self) -> int:
        raise ChatError(FailureReason.STORE_UNAVAILABLE, "the session database is locked")


def test_unreadable_stores_leave_the_rest_of_the_page_shown() -> None:
    service = ChatService(FakeRunner(script), UncountableSessions(), spend=UnreadableSpend())
    app = http_app(service, Settings(), keys=ApiKeys([]))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        shown = text_of(page(client, {}))
    assert "Spend Unavailable: the spend database is locked" in shown
    assert "Conversations kept unknown" in shown
    assert "Active turns 0 of 4" in shown


def test_no_dashboard_removes_the_page_and_its_basic_credentials() -> None:
    app = app_over(dashboard=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/dashboard", headers=bearer(ADMIN)).status_code == 404
        refused = client.get("/dashboard", headers=basic(ADMIN))
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer ")


def test_every_string_from_state_is_escaped_where_it_is_shown() -> None:
    hostile_plan = PlanState(
        status=HOSTILE,
        window=HOSTILE,
        windows={HOSTILE: PlanWindow(utilization=0.5, resets_at=RESETS)},
        overage_status=HOSTILE,
        overage_disabled_reason=HOSTILE,
        observed_at=NOW,
    )
    day = DayPoint(HOSTILE, 0.5, 1)
    totals = Totals(0.5, 1, 1, 1, 0, 0)
    view = DashboardView(
        now=NOW,
        gauges=ServerGauges(
            active_turns=0,
            queued_turns=0,
            concurrency_limit=1,
            queue_limit=1,
            cli_processes=0,
            plan=hostile_plan,
        ),
        sessions=0,
        spend=Spend(
            scope="all",
            date=HOSTILE,
            today=totals,
            month=totals,
            by_key={HOSTILE: KeyUsage(totals, totals, None, [day])},
            by_model={},
            cache_hit_ratio=None,
        ),
        errors=[
            ErrorEntry(
                at=NOW,
                method=HOSTILE,
                path=HOSTILE,
                status=500,
                code=HOSTILE,
                message=HOSTILE,
                key="k",
            )
        ],
        names={"k": HOSTILE},
        everyone=True,
    )
    body = render_dashboard(view)
    assert "<script" not in body.lower()
    assert '<span class="status-other">' in body  # no attribute is made of state
    # Window name and status (twice: the row, and the binding window), overage status
    # and reason, date, key name, chart tooltip, error method, path, code, message, key.
    assert body.count(html.escape(HOSTILE)) >= 13


def test_the_ring_keeps_the_latest_errors_newest_first() -> None:
    recent = RecentErrors(kept=3, wall_clock=lambda: NOW)
    for status in (500, 200, 404, 429, 502, 503):
        recent.observe(FinishedRequest("GET", f"/{status}", status, 0.1, None, {}))
    shown = recent.visible_to(Access(namespace="", sees_all=True), limit=10)
    assert [entry.status for entry in shown] == [503, 502, 429]
    assert [entry.code for entry in shown] == ["http_503", "http_502", "http_429"]
    assert recent.visible_to(Access(namespace="", sees_all=True), limit=2)[0].status == 503
