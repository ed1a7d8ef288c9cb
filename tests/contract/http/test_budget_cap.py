"""`--max-budget-usd` with the real CLI (and the fake upstream): a turn that costs more
than the cap is answered 429 `insufficient_quota` in the CLI's words and ours, not as a
reply; the openai SDK sees it as what it is (RateLimitError, code insufficient_quota)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from claude_max_api.bootstrap import build_app, build_catalog, build_limits, build_runner
from claude_max_api.settings import Settings
from proxy_core import ChatService, InMemorySessionStore, InMemorySpendStore
from proxy_http.auth import ApiKeys
from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import LiveServer, live_app


@pytest.fixture
def capped(claude_bin: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[LiveServer]:
    """The served app over the real CLI, each CLI turn capped at $0.00001."""
    settings = Settings.from_values(
        cli_path=claude_bin,
        state_dir=str(tmp_path / "state"),
        cli_extra_env=cli_env,
        first_event_timeout=60,
        pool_size=0,
        responses_db=":memory:",
        max_budget_usd=0.00001,
    )
    catalog = build_catalog(settings)
    runner = build_runner(settings, catalog)
    service = ChatService(
        runner,
        InMemorySessionStore(),
        catalog=catalog,
        limits=build_limits(settings),
        spend=InMemorySpendStore(),
    )
    with live_app(build_app(service, settings, keys=ApiKeys([]))) as server:
        server.run_coroutine(runner.start(), timeout=60)
        yield server


def test_a_turn_over_the_cli_cost_cap_is_429_insufficient_quota(
    capped: LiveServer, fake_upstream: FakeAnthropic
) -> None:
    client = openai.OpenAI(
        base_url=capped.base_url + "/v1", api_key="unused", max_retries=0, timeout=90
    )
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "an expensive question"}]
        )
    error = refused.value
    assert error.code == "insufficient_quota"
    assert "Reached maximum budget ($0.00001)" in error.message
    assert "--max-budget-usd" in error.message
    assert "echo:" not in error.message  # the reply the cap threw away is not shown
    # The CLI checks its cap after the upstream answered: the turn was paid for.
    assert len(fake_upstream.message_requests) == 1
