"""Budgets as `serve` wires them: the key file's fields reach the service, spend is kept
in the SQLite file at --spend-db, so a second server over the same file enforces what
the first recorded; and a key file with a wrong field stops `serve` at start-up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from litestar.testing import TestClient

from claude_max_api import bootstrap
from claude_max_api.bootstrap import build_app, open_service
from claude_max_api.cli import main
from claude_max_api.settings import Settings
from proxy_core import (
    ChatService,
    FakeRunner,
    Finished,
    ModelUsage,
    TextDelta,
    TurnPlan,
    Usage,
    iso_utc,
    next_midnight,
)
from proxy_core.events import Event
from proxy_http.auth import ApiKeys, api_keys_of
from tests.support.server import bearer

ALICE = "sk-alice-restart-secret-0000000"
BOB = "sk-bob-restart-secret-11111111"
CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}


class CostlyRunner(FakeRunner):
    """A fake runner that the composition root can start, each turn costing $0.30."""

    def __init__(self) -> None:
        super().__init__(self.costly)

    @staticmethod
    def costly(plan: TurnPlan) -> Sequence[Event]:
        usage = Usage(
            input_tokens=10,
            output_tokens=2,
            cost_usd=0.3,
            models=(ModelUsage("claude-sonnet", input_tokens=10, output_tokens=2, cost_usd=0.3),),
        )
        return [TextDelta("ok"), usage, Finished("end_turn", "ok", plan.cli_session_id)]

    async def start(self) -> None:
        return None


def settings_in(tmp_path: Path) -> Settings:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# the team\n{ALICE} label=alice daily_usd=0.50\n{BOB} label=bob\n")
    return Settings.from_values(
        api_key_file=str(key_file),
        state_dir=str(tmp_path / "state"),
        sessions_db=":memory:",
        responses_db=":memory:",
        pool_size=0,
    )


def serving(settings: Settings, keys: ApiKeys, monkeypatch: pytest.MonkeyPatch) -> ChatService:
    """The service `serve` opens, over a fake runner instead of the CLI."""
    monkeypatch.setattr(bootstrap, "build_runner", lambda *_: CostlyRunner())
    return asyncio.run(open_service(settings, keys=keys))


def test_budgets_hold_across_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_in(tmp_path)
    keys = api_keys_of(settings.security.access)
    first = serving(settings, keys, monkeypatch)
    with TestClient(build_app(first, settings, keys=keys), base_url="http://127.0.0.1") as client:
        for _ in range(2):  # $0.30, then $0.60: admitted under the cap, ends above it
            answer = client.post("/v1/chat/completions", json=CHAT, headers=bearer(ALICE))
            assert answer.status_code == 200
    assert (tmp_path / "state" / "spend.sqlite3").exists()

    # A new server over the same files: the spend, not the process, holds the budget.
    keys = api_keys_of(settings.security.access)
    second = serving(settings, keys, monkeypatch)
    runner = second.runner
    assert isinstance(runner, CostlyRunner)
    with TestClient(build_app(second, settings, keys=keys), base_url="http://127.0.0.1") as client:
        before = time.time()
        refused = client.post("/v1/chat/completions", json=CHAT, headers=bearer(ALICE))
        after = time.time()
        served = client.post("/v1/chat/completions", json=CHAT, headers=bearer(BOB))
        usage = client.get("/v1/usage", headers=bearer(ALICE)).json()
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert "daily budget of alice ($0.50)" in error["message"]
    resets = {iso_utc(next_midnight(before)), iso_utc(next_midnight(after))}
    assert any(f"resets at {when}" in error["message"] for when in resets)
    assert 1 <= int(refused.headers["retry-after"]) <= 86400
    assert served.status_code == 200
    assert len(runner.plans) == 1  # bob's turn only
    assert usage["spend"]["by_key"]["alice"]["today"]["cost_usd"] == 0.6


def test_serve_refuses_a_key_file_with_a_wrong_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"{ALICE} label=alice\n{BOB} dayly_usd=1\n")
    code = main(["serve", "--api-key-file", str(key_file), "--responses-db", ":memory:"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot start" in err
    assert f"{key_file} line 2" in err
    assert "unknown field 'dayly_usd'" in err
    assert BOB not in err
    assert ALICE not in err
