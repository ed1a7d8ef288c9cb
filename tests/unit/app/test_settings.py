"""Settings precedence: flag > env > default, for every kind of setting."""

from __future__ import annotations

import argparse

import pytest

from claude_max_api.settings import (
    SETTINGS,
    Settings,
    SettingsError,
    add_flags,
    parse_pairs,
    parse_serve_args,
)


def test_defaults_apply_without_flags_or_env() -> None:
    settings = parse_serve_args([], environ={})
    assert settings == Settings()
    assert (settings.server.http.host, settings.server.port) == ("127.0.0.1", 3456)
    assert settings.server.http.max_body_bytes == 32 * 1024 * 1024
    assert settings.server.http.keepalive_interval == 15.0


def test_env_overrides_default() -> None:
    settings = parse_serve_args([], environ={"CLAUDE_PROXY_MAX_CONCURRENT": "9"})
    assert settings.limits.max_concurrent == 9


def test_flag_overrides_env() -> None:
    settings = parse_serve_args(
        ["--max-concurrent", "2"], environ={"CLAUDE_PROXY_MAX_CONCURRENT": "9"}
    )
    assert settings.limits.max_concurrent == 2


def test_seed_port_env_is_honoured_below_the_prefixed_one() -> None:
    assert parse_serve_args([], environ={"PORT": "8000"}).server.port == 8000
    both = {"PORT": "8000", "CLAUDE_PROXY_PORT": "9000"}
    assert parse_serve_args([], environ=both).server.port == 9000
    assert parse_serve_args(["--port", "7000"], environ=both).server.port == 7000


def test_boolean_flag_beats_boolean_env() -> None:
    env = {"CLAUDE_PROXY_STRICT_MODELS": "true"}
    assert parse_serve_args([], environ=env).models.strict_models is True
    assert parse_serve_args(["--no-strict-models"], environ=env).models.strict_models is False


def test_model_overrides_accept_json_and_pairs() -> None:
    from_env = parse_serve_args([], environ={"CLAUDE_PROXY_MODEL_OVERRIDES": '{"fast": "haiku"}'})
    from_flag = parse_serve_args(["--model-overrides", "fast=haiku, big=opus"], environ={})
    assert from_env.models.model_overrides == {"fast": "haiku"}
    assert from_flag.models.model_overrides == {"fast": "haiku", "big": "opus"}


def test_optional_path_setting_reads_env() -> None:
    settings = parse_serve_args([], environ={"CLAUDE_PROXY_CLI_PATH": "/opt/claude"})
    assert settings.backend.cli.cli_path == "/opt/claude"


def test_bad_value_names_its_source() -> None:
    with pytest.raises(SettingsError, match="CLAUDE_PROXY_PORT"):
        parse_serve_args([], environ={"CLAUDE_PROXY_PORT": "eighty"})


def test_bad_log_format_is_refused() -> None:
    with pytest.raises(SettingsError):
        parse_serve_args(["--log-format", "xml"], environ={})


def test_pairs_reject_items_without_equals() -> None:
    with pytest.raises(ValueError, match="key=value"):
        parse_pairs("a=b,c")


def test_every_setting_has_help() -> None:
    assert all(setting.description.strip() for setting in SETTINGS)


def test_an_optional_number_reads_a_number_or_empty_for_none() -> None:
    assert parse_serve_args(["--upstream-retries", "3"], {}).backend.cli.upstream_retries == 3
    empty = {"CLAUDE_PROXY_UPSTREAM_RETRIES": ""}
    assert parse_serve_args([], empty).backend.cli.upstream_retries is None


def test_the_default_effort_is_one_of_claudes_levels() -> None:
    assert parse_serve_args(["--effort", "max"], {}).backend.cli.effort == "max"
    assert parse_serve_args([], {"CLAUDE_PROXY_EFFORT": "high"}).backend.cli.effort == "high"
    assert parse_serve_args([], {"CLAUDE_PROXY_EFFORT": ""}).backend.cli.effort is None
    with pytest.raises(SettingsError, match="effort"):
        parse_serve_args(["--effort", "extreme"], {})


# -- the public contract: every flag and env var of before the sections keeps working ---

PUBLIC_NAMES = (
    "host",
    "port",
    "instance_name",
    "max_body_bytes",
    "max_body_bytes_in_flight",
    "header_timeout",
    "body_timeout",
    "max_connections",
    "keepalive_interval",
    "keepalive_style",
    "stream_hold",
    "reasoning",
    "metrics",
    "dashboard",
    "shutdown_grace",
    "api_keys",
    "api_key_file",
    "admin_api_keys",
    "allow_unauthenticated",
    "allowed_hosts",
    "allowed_origins",
    "metrics_public",
    "watchdog_interval",
    "log_format",
    "log_level",
    "max_concurrent",
    "max_queued",
    "busy_retry_after",
    "max_messages",
    "max_message_chars",
    "max_images",
    "max_image_bytes",
    "max_tool_result_chars",
    "default_model",
    "strict_models",
    "model_overrides",
    "sessions_db",
    "session_ttl",
    "max_sessions",
    "responses_db",
    "response_ttl",
    "max_responses",
    "spend_db",
    "session_sweep_interval",
    "transcript_grace",
    "cli_path",
    "oauth_token_file",
    "tools",
    "workdir",
    "state_dir",
    "allow_root_tools",
    "cli_extra_env",
    "first_event_timeout",
    "idle_timeout",
    "total_timeout",
    "kill_grace",
    "cli_exit_wait",
    "cli_max_line_bytes",
    "cli_stderr_tail_bytes",
    "cli_version_timeout",
    "upstream_retries",
    "effort",
    "max_budget_usd",
    "spawn_per_turn",
    "live_max",
    "live_memory_mb",
    "live_idle_timeout",
    "live_probe_timeout",
    "suspended_timeout",
    "pool_size",
)


def test_the_generated_names_are_the_public_ones() -> None:
    assert sorted(s.name for s in SETTINGS) == sorted(PUBLIC_NAMES)
    for setting in SETTINGS:
        assert setting.flag == "--" + setting.name.replace("_", "-")
        assert setting.env == "CLAUDE_PROXY_" + setting.name.upper()


def test_every_public_flag_is_accepted_by_serve() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    for name in PUBLIC_NAMES:
        flag = "--" + name.replace("_", "-")
        assert parser.parse_known_args([flag, "1"])[1] in ([], ["1"]), flag


def test_a_renamed_field_keeps_its_public_name() -> None:
    env = {
        "CLAUDE_PROXY_LIVE_MAX": "3",
        "CLAUDE_PROXY_LIVE_PROBE_TIMEOUT": "0.5",
        "CLAUDE_PROXY_CLI_EXIT_WAIT": "7",
        "CLAUDE_PROXY_CLI_EXTRA_ENV": "A=1",
    }
    settings = parse_serve_args(["--cli-max-line-bytes", "99"], env)
    assert settings.live.processes.max_live == 3
    assert settings.live.processes.probe_timeout == 0.5
    assert settings.backend.cli.exit_wait == 7
    assert settings.backend.cli.extra_env == {"A": "1"}
    assert settings.backend.cli.max_line_bytes == 99


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("yes", True),
        ("on", True),
        ("1", True),
        ("TRUE", True),
        ("no", False),
        ("off", False),
        ("0", False),
        ("false", False),
        ("", False),
    ],
)
def test_booleans_read_the_forms_users_type(typed: str, expected: bool) -> None:
    settings = parse_serve_args([], {"CLAUDE_PROXY_SPAWN_PER_TURN": typed})
    assert settings.live.spawn_per_turn is expected


def test_a_boolean_that_is_none_of_them_names_its_env_var() -> None:
    with pytest.raises(SettingsError, match="CLAUDE_PROXY_REASONING"):
        parse_serve_args([], {"CLAUDE_PROXY_REASONING": "maybe"})


def test_maps_read_pairs_from_env_and_json_from_flags() -> None:
    env = {"CLAUDE_PROXY_CLI_EXTRA_ENV": "A=1, B=two"}
    settings = parse_serve_args(["--model-overrides", '{"x": "opus"}'], env)
    assert settings.backend.cli.extra_env == {"A": "1", "B": "two"}
    assert settings.models.model_overrides == {"x": "opus"}


def test_numbers_floats_and_comma_lists_read_from_text() -> None:
    env = {
        "CLAUDE_PROXY_SESSION_TTL": "60.5",
        "CLAUDE_PROXY_MAX_IMAGES": "3",
        "CLAUDE_PROXY_API_KEYS": "k1,k2",
        "CLAUDE_PROXY_MAX_BODY_BYTES_IN_FLIGHT": "",
    }
    settings = parse_serve_args([], env)
    assert settings.sessions.session_ttl == 60.5
    assert settings.limits.parse.max_images == 3
    assert settings.security.access.api_keys == "k1,k2"
    assert settings.server.http.max_body_bytes_in_flight is None


def test_a_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(SettingsError, match="--max-images"):
        parse_serve_args(["--max-images", "many"], {})


def test_values_round_trip_through_from_values() -> None:
    settings = parse_serve_args(["--port", "9000", "--live-max", "2"], {})
    assert Settings.from_values(**settings.values()) == settings
    assert settings.with_values(port=1).server.port == 1
    with pytest.raises(TypeError, match="no_such"):
        Settings.from_values(no_such=1)


def test_numbers_read_as_python_reads_them() -> None:
    env = {
        "CLAUDE_PROXY_MAX_QUEUED": " 8 ",
        "CLAUDE_PROXY_MAX_MESSAGES": "1_000",
        "CLAUDE_PROXY_STREAM_HOLD": ".5",
        "CLAUDE_PROXY_UPSTREAM_RETRIES": "+3",
    }
    settings = parse_serve_args([], env)
    assert settings.limits.max_queued == 8
    assert settings.limits.parse.max_messages == 1000
    assert settings.server.http.stream_hold == 0.5
    assert settings.backend.cli.upstream_retries == 3
