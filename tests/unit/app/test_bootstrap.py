"""The composition root maps every setting onto the parts it builds."""

from __future__ import annotations

import msgspec
from structlog.testing import capture_logs

from claude_max_api.bootstrap import (
    build_catalog,
    build_limits,
    live_config,
    runner_config,
    sweep_transcripts,
)
from claude_max_api.settings import Settings
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.live_runner import LiveConfig
from proxy_core import ChatRequest, ChatService, FakeRunner, InMemorySessionStore, ServiceLimits

USER_HI = {"role": "user", "content": "hi"}


def test_every_runner_config_field_is_set_from_settings() -> None:
    settings = Settings.from_values(
        cli_path="/x/claude",
        oauth_token_file="/t/token",
        tools="read-only",
        workdir="/w",
        state_dir="/s",
        allow_root_tools=True,
        cli_extra_env={"A": "1"},
        first_event_timeout=1,
        idle_timeout=2,
        total_timeout=3,
        kill_grace=4,
        cli_exit_wait=8,
        cli_max_line_bytes=5,
        cli_stderr_tail_bytes=6,
        cli_version_timeout=7,
        upstream_retries=9,
        effort="xhigh",
        max_budget_usd=0.25,
    )
    config = runner_config(settings)
    defaults = CliRunnerConfig(state_dir="/default")
    changed = {
        f.name
        for f in msgspec.structs.fields(CliRunnerConfig)
        if getattr(config, f.name) != getattr(defaults, f.name)
    }
    # The token is wiring: load_oauth_token reads it from the file (tested below).
    assert changed == {f.name for f in msgspec.structs.fields(CliRunnerConfig)} - {"oauth_token"}


def test_limits_come_from_settings() -> None:
    limits = build_limits(Settings.from_values(max_concurrent=3, max_queued=1, max_images=2))
    assert (limits.max_concurrent, limits.max_queued, limits.parse.max_images) == (3, 1, 2)


def test_catalog_applies_default_strictness_and_overrides() -> None:
    catalog = build_catalog(
        Settings.from_values(
            default_model="haiku", strict_models=True, model_overrides={"fast": "haiku"}
        )
    )
    assert catalog.strict
    assert catalog.resolve("fast").cli_model == "haiku"


def test_default_settings_give_each_part_its_own_defaults() -> None:
    # The sections are the parts' own configs, so their defaults are the parts' defaults.
    assert runner_config(Settings.from_values(state_dir="/s")) == CliRunnerConfig(state_dir="/s")
    catalog = build_catalog(Settings())
    pool_model = catalog.resolve(Settings().models.default_model).cli_model
    assert live_config(Settings(), catalog) == LiveConfig(pool_model=pool_model)
    assert build_limits(Settings()) == ServiceLimits()


async def test_the_transcript_sweep_keeps_referenced_sessions_and_a_zero_grace_turns_it_off() -> (
    None
):
    runner = FakeRunner()
    service = ChatService(runner, InMemorySessionStore())
    await service.complete(ChatRequest(model="sonnet", messages=[USER_HI], session_id="kept"))
    runner.stored.add("orphan")
    assert await sweep_transcripts(service, 0) == 0
    assert "orphan" in runner.stored
    assert await sweep_transcripts(service, 3600) == 1
    assert runner.stored == {runner.plans[0].cli_session_id}


async def test_a_failing_transcript_sweep_is_logged_not_raised() -> None:
    class BrokenStore(InMemorySessionStore):
        async def cli_session_ids(self) -> set[str]:
            raise OSError("disk gone")

    runner = FakeRunner()
    runner.stored.add("orphan")
    service = ChatService(runner, BrokenStore())
    with capture_logs() as logs:
        assert await sweep_transcripts(service, 3600) == 0
    assert [entry["event"] for entry in logs] == ["transcript_sweep_failed"]
    assert "orphan" in runner.stored
