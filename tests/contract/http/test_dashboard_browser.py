"""The status page in a real browser: Debian's chromium, headless, against a live
server over a fake runner. After priced turns, a budget refusal and a failed turn, the
page the browser built shows the spend under the key's label, the plan windows and
the errors; the browser reaches it with the key as HTTP Basic credentials (in the URL,
as a person would type them at the prompt), and without them is shown nothing of it. A
screenshot of it is left in test-artifacts/dashboard.png."""

from __future__ import annotations

import html
import re
import struct
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from claude_max_api.bootstrap import http_app
from claude_max_api.settings import Settings
from proxy_core import (
    ChatService,
    Failed,
    FailureReason,
    FakeRunner,
    Finished,
    InMemorySessionStore,
    PlanState,
    PlanStatus,
    PlanWindow,
    TextDelta,
    TurnPlan,
    Usage,
)
from proxy_core.events import Event
from proxy_http.auth import ApiKeys, parse_key_file
from tests.support.browser import ARTIFACTS, WINDOW, Chromium, chromium_path
from tests.support.server import LiveServer, live_app

MEMBER = "sk-browser-member-key-0000000000"
ADMIN = "sk-browser-admin-key-1111111111"
# Two turns at $0.125 pass a $0.20 daily budget (checked before each turn); the third is
# refused.
KEY_FILE = f"{MEMBER} label=team-frontend daily_usd=0.20 monthly_usd=5\n"
COST = 0.125
RESETS = datetime(2030, 1, 1, 5, 0, tzinfo=UTC).timestamp()
PLAN = PlanState(
    status="allowed",
    window="five_hour",
    resets_at=RESETS,
    windows={
        "five_hour": PlanWindow(utilization=0.42, resets_at=RESETS),
        "seven_day": PlanWindow(utilization=0.17, resets_at=RESETS + 4 * 86400),
    },
    overage_status="rejected",
    observed_at=RESETS - 3600,
)


def script(plan: TurnPlan) -> Sequence[Event]:
    text = plan.messages[-1].text
    if text.startswith("fail: "):
        return [Failed(FailureReason.CLI_CRASHED, text.removeprefix("fail: "))]
    return [
        PlanStatus(PLAN),
        TextDelta("ok"),
        Usage(input_tokens=12, output_tokens=3, cost_usd=COST),
        Finished("end_turn", "ok", plan.cli_session_id),
    ]


class Visited:
    """The live server after the requests, and what they were answered."""

    def __init__(self, server: LiveServer, codes: list[str]) -> None:
        self.server = server
        self.codes = codes

    def url(self, password: str | None = None) -> str:
        base = self.server.base_url
        if password is not None:
            base = base.replace("http://", f"http://browser:{password}@")
        return base + "/dashboard"


@pytest.fixture(scope="module")
def visited() -> Iterator[Visited]:
    found, budgets = parse_key_file(KEY_FILE, "keys")
    keys = ApiKeys(found, [ADMIN], budgets)
    service = ChatService(FakeRunner(script), InMemorySessionStore(), budgets=keys.budgets)
    with live_app(http_app(service, Settings(), keys=keys)) as server:
        codes: list[str] = []
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for text in ("fail: the CLI fell over", "hi", "again", "over budget now"):
                answer = client.post(
                    "/v1/chat/completions",
                    json={"model": "sonnet", "messages": [{"role": "user", "content": text}]},
                    headers={"Authorization": f"Bearer {MEMBER}"},
                )
                codes.append(str(answer.status_code))
                if answer.status_code != 200:
                    codes[-1] = answer.json()["error"]["code"]
        yield Visited(server, codes)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Chromium:
    return Chromium(chromium_path(), tmp_path_factory.mktemp("chromium-profile"))


def text_of(dom: str) -> str:
    """What the page reads as: tags gone, entities decoded, spaces folded (style and
    the charts' tooltips left out)."""
    shown = re.sub(r"<(style|svg)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", shown)).split())


def test_the_requests_were_answered_as_planned(visited: Visited) -> None:
    assert visited.codes == ["cli_crashed", "200", "200", "insufficient_quota"]


def test_the_browser_shows_spend_windows_and_errors(visited: Visited, browser: Chromium) -> None:
    shown = text_of(browser.dom(visited.url(ADMIN)))
    assert "claude-max-api-proxy status" in shown
    assert "spend shown for every key" in shown
    assert "team-frontend $0.2500 of $0.2000 budget $0.2500 of $5.00 budget" in shown
    assert "This month $0.2500 (2 requests)" in shown
    assert "five_hour (binding) 42% 2030-01-01 05:00:00 UTC" in shown
    assert "seven_day 17% 2030-01-05 05:00:00 UTC" in shown
    assert "POST /v1/chat/completions 429 team-frontend insufficient_quota" in shown
    assert "POST /v1/chat/completions 502 team-frontend cli_crashed the CLI fell over" in shown
    assert MEMBER not in shown
    assert ADMIN not in shown


def test_the_member_key_sees_its_own_page(visited: Visited, browser: Chromium) -> None:
    shown = text_of(browser.dom(visited.url(MEMBER)))
    assert "spend shown for your key only" in shown
    assert "team-frontend $0.2500" in shown
    assert "cli_crashed" in shown


@pytest.mark.parametrize("password", [None, "sk-not-a-key"], ids=["no-key", "wrong-key"])
def test_without_a_valid_key_the_browser_shows_nothing_of_it(
    visited: Visited, browser: Chromium, password: str | None
) -> None:
    dom = browser.dom(visited.url(password))
    assert "claude-max-api-proxy status" not in dom
    assert "team-frontend" not in dom


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its signature and IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_a_screenshot_is_left_among_the_test_artifacts(visited: Visited, browser: Chromium) -> None:
    shot = browser.screenshot(visited.url(ADMIN), ARTIFACTS / "dashboard.png")
    assert png_size(shot) == WINDOW
    # A blank page of that size compresses to a few kilobytes; text, tables and bars
    # take tens.
    assert shot.stat().st_size > 30_000
