"""Finding the CLI and reading its version."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from proxy_cli_backend.binary import find_cli
from proxy_cli_backend.config import CliRunnerConfig, default_state_dir
from proxy_core import ChatError, FailureReason


def fake_cli(tmp_path: Path, output: str = "2.1.331 (Claude Code)") -> Path:
    path = tmp_path / "claude"
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_an_explicit_path_wins_and_the_version_is_read(tmp_path: Path) -> None:
    binary = find_cli(str(fake_cli(tmp_path)))
    assert binary.path == str(tmp_path / "claude")
    assert binary.version == "2.1.331"


def test_claude_cli_path_env_is_used_when_no_path_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CLI_PATH", str(fake_cli(tmp_path)))
    assert find_cli(None).path == str(tmp_path / "claude")


def test_claude_on_path_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_CLI_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    fake_cli(tmp_path)
    assert find_cli(None).path == str(tmp_path / "claude")


def test_a_missing_cli_is_backend_unavailable_with_install_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAUDE_CLI_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ChatError) as missing:
        find_cli(None)
    assert missing.value.reason is FailureReason.BACKEND_UNAVAILABLE
    assert "npm install" in missing.value.message


def test_default_state_dir_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/xdg")
    assert default_state_dir() == "/xdg/claude-max-api-proxy"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir().endswith("/.local/state/claude-max-api-proxy")


def test_workdir_defaults_under_the_state_dir() -> None:
    assert CliRunnerConfig(state_dir="/s").resolved_workdir == "/s/workdir"
