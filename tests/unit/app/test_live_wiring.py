"""The live-process settings reach the runner the server builds."""

from __future__ import annotations

from structlog.testing import capture_logs

from claude_max_api.bootstrap import build_catalog, build_runner
from claude_max_api.settings import Settings, parse_serve_args
from proxy_cli_backend.live_runner import LiveCliRunner
from proxy_cli_backend.runner import ClaudeCliRunner


def runner_of(settings: Settings) -> ClaudeCliRunner | LiveCliRunner:
    """The runner the server builds for `settings`, with the catalog it builds."""
    return build_runner(settings, build_catalog(settings))


def test_the_server_keeps_live_processes_by_default() -> None:
    runner = runner_of(parse_serve_args([], environ={}))
    assert isinstance(runner, LiveCliRunner)
    assert runner.live_config.max_live == 8
    assert runner.live_config.live_idle_timeout == 600.0
    assert runner.live_config.pool_size == 1


def test_live_flags_and_env_set_the_cap_the_idle_timeout_and_the_pool() -> None:
    settings = parse_serve_args(
        ["--live-max", "3", "--pool-size", "0", "--default-model", "haiku"],
        environ={"CLAUDE_PROXY_LIVE_IDLE_TIMEOUT": "30"},
    )
    runner = runner_of(settings)
    assert isinstance(runner, LiveCliRunner)
    assert runner.live_config.max_live == 3
    assert runner.live_config.pool_size == 0
    assert runner.live_config.live_idle_timeout == 30.0
    assert runner.live_config.pool_model == "haiku"


def test_the_memory_budget_reaches_the_runner_from_its_flag_and_env() -> None:
    by_flag = runner_of(parse_serve_args(["--live-memory-mb", "1536"], environ={}))
    by_env = runner_of(parse_serve_args([], environ={"CLAUDE_PROXY_LIVE_MEMORY_MB": "512"}))
    assert isinstance(by_flag, LiveCliRunner)
    assert isinstance(by_env, LiveCliRunner)
    assert by_flag.live_config.live_memory_mb == 1536
    assert by_env.live_config.live_memory_mb == 512
    assert runner_of(parse_serve_args([], environ={})).live_config.live_memory_mb == 0


def test_spawn_per_turn_brings_back_a_process_per_request() -> None:
    runner = runner_of(parse_serve_args(["--spawn-per-turn"], environ={}))
    assert isinstance(runner, ClaudeCliRunner)


def test_the_probe_timeout_reaches_the_runner_from_its_flag_and_env() -> None:
    default = runner_of(parse_serve_args([], environ={}))
    from_flag = runner_of(parse_serve_args(["--live-probe-timeout", "0.5"], environ={}))
    from_env = runner_of(parse_serve_args([], environ={"CLAUDE_PROXY_LIVE_PROBE_TIMEOUT": "0"}))
    assert isinstance(default, LiveCliRunner)
    assert isinstance(from_flag, LiveCliRunner)
    assert isinstance(from_env, LiveCliRunner)
    probes = [r.live_config.probe_timeout for r in (default, from_flag, from_env)]
    assert probes == [2.0, 0.5, 0.0]


def test_more_concurrent_turns_than_live_processes_is_allowed_and_logged_once() -> None:
    settings = parse_serve_args(["--live-max", "2", "--max-concurrent", "10"], environ={})
    with capture_logs() as logs:
        runner = runner_of(settings)
        runner_of(parse_serve_args(["--live-max", "4", "--max-concurrent", "4"], environ={}))
    assert isinstance(runner, LiveCliRunner)
    assert runner.live_config.max_live == 2
    warnings = [entry for entry in logs if entry["event"] == "live_max_below_max_concurrent"]
    assert [(w["live_max"], w["max_concurrent"]) for w in warnings] == [(2, 10)]
