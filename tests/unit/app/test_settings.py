"""Settings precedence: flag > env > default, for every kind of setting."""

from __future__ import annotations

import msgspec
import pytest

from claude_max_api.settings import HELP, Settings, SettingsError, parse_pairs, parse_serve_args


def test_defaults_apply_without_flags_or_env() -> None:
    settings = parse_serve_args([], environ={})
    assert settings == Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 3456)
    assert settings.max_body_bytes == 32 * 1024 * 1024
    assert settings.keepalive_interval == 15.0


def test_env_overrides_default() -> None:
    settings = parse_serve_args([], environ={"CLAUDE_PROXY_MAX_CONCURRENT": "9"})
    assert settings.max_concurrent == 9


def test_flag_overrides_env() -> None:
    settings = parse_serve_args(
        ["--max-concurrent", "2"], environ={"CLAUDE_PROXY_MAX_CONCURRENT": "9"}
    )
    assert settings.max_concurrent == 2


def test_seed_port_env_is_honoured_below_the_prefixed_one() -> None:
    assert parse_serve_args([], environ={"PORT": "8000"}).port == 8000
    both = {"PORT": "8000", "CLAUDE_PROXY_PORT": "9000"}
    assert parse_serve_args([], environ=both).port == 9000
    assert parse_serve_args(["--port", "7000"], environ=both).port == 7000


def test_boolean_flag_beats_boolean_env() -> None:
    env = {"CLAUDE_PROXY_STRICT_MODELS": "true"}
    assert parse_serve_args([], environ=env).strict_models is True
    assert parse_serve_args(["--no-strict-models"], environ=env).strict_models is False


def test_model_overrides_accept_json_and_pairs() -> None:
    from_env = parse_serve_args([], environ={"CLAUDE_PROXY_MODEL_OVERRIDES": '{"fast": "haiku"}'})
    from_flag = parse_serve_args(["--model-overrides", "fast=haiku, big=opus"], environ={})
    assert from_env.model_overrides == {"fast": "haiku"}
    assert from_flag.model_overrides == {"fast": "haiku", "big": "opus"}


def test_optional_path_setting_reads_env() -> None:
    settings = parse_serve_args([], environ={"CLAUDE_PROXY_CLI_PATH": "/opt/claude"})
    assert settings.cli_path == "/opt/claude"


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
    assert {f.name for f in msgspec.structs.fields(Settings)} == set(HELP)


def test_an_optional_number_reads_a_number_or_empty_for_none() -> None:
    assert parse_serve_args(["--upstream-retries", "3"], {}).upstream_retries == 3
    empty = {"CLAUDE_PROXY_UPSTREAM_RETRIES": ""}
    assert parse_serve_args([], empty).upstream_retries is None


def test_the_default_effort_is_one_of_claudes_levels() -> None:
    assert parse_serve_args(["--effort", "max"], {}).effort == "max"
    assert parse_serve_args([], {"CLAUDE_PROXY_EFFORT": "high"}).effort == "high"
    assert parse_serve_args([], {"CLAUDE_PROXY_EFFORT": ""}).effort is None
    with pytest.raises(SettingsError, match="effort"):
        parse_serve_args(["--effort", "extreme"], {})
