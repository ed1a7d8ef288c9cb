"""Subscription mode end to end: the official SDKs -> the server -> the real claude CLI,
logged in with an OAuth token (CLAUDE_CODE_OAUTH_TOKEN, no API key) -> the fake upstream,
which answers with a subscription's plan-window headers (`anthropic-ratelimit-unified-*`).

Checks what the CLI's subscription mode brings to every client: each reply's cost, the
account's plan windows, and its refusals (an exhausted window, extra usage, no credit)
as 429s in the API's own shape, never as reply text.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from claude_max_api.bootstrap import build_app, build_catalog, build_limits, build_runner
from claude_max_api.settings import Settings
from proxy_core import ChatService, InMemorySessionStore, PlanState
from proxy_http.auth import api_keys_of
from tests.support.fake_upstream import EXTRA_USAGE_MESSAGE, FakeAnthropic, PlanWindows
from tests.support.server import LiveServer, live_app

Proxy = tuple[LiveServer, ChatService]


@pytest.fixture(scope="module")
def plan_upstream() -> Iterator[FakeAnthropic]:
    """A fake upstream of its own that reports a subscriber's plan windows on every reply."""
    with FakeAnthropic(plan=PlanWindows()) as fake:
        yield fake


@pytest.fixture(scope="module")
def proxy(
    claude_bin: str, plan_upstream: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    """The served app over the real CLI in subscription mode, in this process (so a test
    can read the service's plan state); yields the server and its service."""
    root = tmp_path_factory.mktemp("subscription")
    home = root / "home"
    home.mkdir()
    cli_env = {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": plan_upstream.base_url,
        "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-test-not-secret",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    settings = Settings.from_values(
        cli_path=claude_bin,
        state_dir=str(root / "state"),
        sessions_db=":memory:",
        cli_extra_env=cli_env,
        first_event_timeout=60,
        pool_size=0,
        stream_hold=60,
    )
    catalog = build_catalog(settings)
    runner = build_runner(settings, catalog)
    service = ChatService(
        runner, InMemorySessionStore(), catalog=catalog, limits=build_limits(settings)
    )
    keys = api_keys_of(settings.security.access)
    with live_app(build_app(service, settings, keys=keys)) as server:
        server.run_coroutine(runner.start(), timeout=60)
        yield server, service


def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=90
    )


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": f"{text} ({uuid.uuid4().hex[:8]})"}]


def cost_of(usage: Any) -> Any:
    """The `cost` field of an SDK usage object (an extra field to the SDKs' models)."""
    return (usage.model_extra or {}).get("cost")


def test_cost_is_in_the_whole_body_and_the_include_usage_chunk(proxy: Proxy) -> None:
    server, _ = proxy
    whole = sdk(server).chat.completions.create(model="sonnet", messages=ask("price me"))
    assert whole.usage is not None
    cost = cost_of(whole.usage)
    assert isinstance(cost, float)
    assert cost > 0
    chunks = list(
        sdk(server).chat.completions.create(
            model="sonnet",
            messages=ask("price me streamed"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    (last,) = [c for c in chunks if c.usage is not None]
    streamed = cost_of(last.usage)
    assert isinstance(streamed, float)
    assert streamed > 0


def test_a_follow_up_turn_costs_its_own_tokens_not_the_running_total(proxy: Proxy) -> None:
    # The CLI's total_cost_usd grows turn by turn in one process: a long reply first
    # (output tokens are dear), then a short question whose input replays it (cheaper).
    server, _ = proxy
    client = sdk(server)
    session = {"X-Session-Id": f"cost-{uuid.uuid4().hex[:8]}"}
    long_reply = "word " * 800
    first = ask(f"[[reply:{long_reply}]]")
    one = client.chat.completions.create(model="sonnet", messages=first, extra_headers=session)
    assert one.choices[0].message.content == long_reply
    follow = [*first, {"role": "assistant", "content": long_reply}, *ask("ok")]
    two = client.chat.completions.create(model="sonnet", messages=follow, extra_headers=session)
    assert one.usage is not None
    assert two.usage is not None
    first_cost, second_cost = cost_of(one.usage), cost_of(two.usage)
    assert isinstance(first_cost, float)
    assert isinstance(second_cost, float)
    assert 0 < second_cost < first_cost / 2


def test_cost_is_in_the_responses_and_messages_usage(proxy: Proxy) -> None:
    server, _ = proxy
    response = sdk(server).responses.create(model="sonnet", input=f"responses {uuid.uuid4()}")
    assert response.usage is not None
    assert isinstance(cost_of(response.usage), float)
    assert cost_of(response.usage) > 0
    messages = anthropic.Anthropic(
        base_url=server.base_url, api_key="unused", max_retries=0, timeout=90
    ).messages.create(model="sonnet", max_tokens=100, messages=ask("messages"))
    assert isinstance(cost_of(messages.usage), float)
    assert cost_of(messages.usage) > 0


def test_the_plan_windows_reach_the_service_and_a_warning_is_logged(proxy: Proxy) -> None:
    server, service = proxy
    before = time.time()
    sdk(server).chat.completions.create(model="sonnet", messages=ask("windows"))
    state = service.subscription
    assert isinstance(state, PlanState)
    assert (state.status, state.window) == ("allowed", "five_hour")
    assert state.observed_at >= before
    five, seven = state.windows["five_hour"], state.windows["seven_day"]
    assert (five.utilization, seven.utilization) == (0.25, 0.1)
    assert five.resets_at is not None
    assert seven.resets_at is not None
    assert before + 7000 < five.resets_at < before + 7400
    assert seven.resets_at > five.resets_at
    assert (state.overage_status, state.overage_disabled_reason) == (
        "rejected",
        "org_level_disabled",
    )
    with capture_logs() as logs:
        sdk(server).chat.completions.create(
            model="sonnet", messages=ask("[[plan:allowed_warning]]")
        )
    warnings = [line for line in logs if line["event"] == "plan_window_warning"]
    assert [(w["window"], w["utilization"]) for w in warnings] == [("five_hour", 0.92)]
    assert service.subscription is not None
    assert service.subscription.status == "allowed_warning"


def test_windows_and_spend_are_visible_at_usage_and_metrics(proxy: Proxy) -> None:
    server, _ = proxy
    before = httpx.get(server.base_url + "/v1/usage", timeout=30).json()["spend"]["today"]
    reply = sdk(server).chat.completions.create(model="sonnet", messages=ask("visible"))
    assert reply.usage is not None
    cost = cost_of(reply.usage)
    usage = httpx.get(server.base_url + "/v1/usage", timeout=30).json()
    plan = usage["subscription"]
    assert (plan["status"], plan["window"]) == ("allowed", "five_hour")
    assert plan["windows"]["five_hour"]["utilization"] == 0.25
    assert plan["windows"]["seven_day"]["utilization"] == 0.1
    assert plan["windows"]["five_hour"]["resets_at"].endswith("Z")
    today = usage["spend"]["today"]
    assert today["requests"] == before["requests"] + 1
    assert today["cost_usd"] == pytest.approx(before["cost_usd"] + cost, abs=2e-6)
    metrics = httpx.get(server.base_url + "/metrics", timeout=30).text
    gauges = {
        sample.labels["window"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "claude_proxy_plan_window_utilization_ratio"
    }
    assert gauges == {"five_hour": 0.25, "seven_day": 0.1}


SURFACES = {
    "/v1/chat/completions": lambda text: {"messages": [{"role": "user", "content": text}]},
    "/v1/responses": lambda text: {"input": text},
    "/v1/messages": lambda text: {
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
    },
}


def error_message(body: dict[str, Any]) -> str:
    """The message of an OpenAI or Anthropic error body."""
    message = body["error"]["message"]
    assert isinstance(message, str)
    return message


@pytest.mark.parametrize("path", SURFACES)
def test_an_exhausted_window_answers_429_with_retry_after_until_its_reset(
    proxy: Proxy, path: str
) -> None:
    server, service = proxy
    for stream in (False, True):
        before = time.time()
        text = ask("[[limit:five_hour:5400]]")[0]["content"]
        response = httpx.post(
            server.base_url + path,
            json={"model": "sonnet", "stream": stream, **SURFACES[path](text)},
            timeout=90,
        )
        assert response.status_code == 429, response.text
        # The window resets 5400 s after the upstream answered (a little after `before`).
        wait = float(response.headers["retry-after"])
        assert 5400 - 120 <= wait <= 5400 + (time.time() - before) + 1
        message = error_message(response.json())
        assert "5-hour limit is reached" in message
        state = service.subscription
        assert state is not None
        assert (state.status, state.window) == ("rejected", "five_hour")
        assert state.resets_at is not None
        reset = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(state.resets_at))
        assert f"resets at {reset}" in message
        assert "You've hit your" not in response.text  # the CLI's text is no reply


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ("[[extra-usage]]", EXTRA_USAGE_MESSAGE.split(".")[0]),
        # The CLI passes this one on in its own words.
        ("[[credit-exhausted]]", "Credit balance is too low"),
    ],
)
def test_a_credit_refusal_answers_429_insufficient_quota(
    proxy: Proxy, marker: str, words: str
) -> None:
    server, _ = proxy
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(server).chat.completions.create(model="sonnet", messages=ask(marker))
    assert caught.value.status_code == 429
    assert caught.value.code == "insufficient_quota"
    assert words in caught.value.message
    assert "claude.ai/settings/usage" in caught.value.message
