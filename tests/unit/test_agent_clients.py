"""The agent-client runner of the contract tests: bounded runs, private config, clean env."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.agent_clients import ClaudeClient, CodexClient, run_bounded


def gone(pid: int) -> bool:
    """A process that no longer runs (absent, or a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def test_a_run_past_its_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    # The shell starts a grandchild and waits; only killing the group ends both.
    run = run_bounded(
        ["sh", "-c", "sleep 300 & echo $!; wait"], {"PATH": "/usr/bin:/bin"}, tmp_path, 1
    )

    assert run.timed_out
    assert run.exit_code != 0
    assert gone(int(run.stdout.split()[0]))
    assert "timed out" in run.describe()


def test_a_finished_run_reports_its_exit_code_and_output(tmp_path: Path) -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    run = run_bounded([sys.executable, "-c", script], {}, tmp_path, 30)

    assert (run.exit_code, run.stdout, run.stderr, run.timed_out) == (3, "out\n", "err\n", False)


def test_codex_gets_the_issue_config_at_the_base_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "a-real-key")
    monkeypatch.setenv("CODEX_HOME", "/home/someone/.codex")
    codex = CodexClient("codex", tmp_path, "http://127.0.0.1:1234/", api_key="k")

    config = tomllib.loads((codex.codex_home / "config.toml").read_text())
    assert config["model"] == "sonnet"
    assert config["model_provider"] == "proxy"
    provider = config["model_providers"]["proxy"]
    assert provider["base_url"] == "http://127.0.0.1:1234/v1"
    assert (provider["env_key"], provider["wire_api"]) == ("PROXY_API_KEY", "responses")
    assert "OPENAI_API_KEY" not in codex.env
    assert codex.env["CODEX_HOME"] == str(codex.codex_home)
    assert codex.env["PROXY_API_KEY"] == "k"
    assert codex.env["HOME"].startswith(str(tmp_path))


def test_the_claude_client_talks_only_to_the_base_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "a-real-token")
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "a-real-token")
    monkeypatch.setenv("CLAUDECODE", "1")
    client = ClaudeClient("claude", tmp_path, "http://127.0.0.1:1234/", api_key="k")

    assert client.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1234"
    assert client.env["ANTHROPIC_API_KEY"] == "k"
    assert client.env["CLAUDE_CONFIG_DIR"] == str(client.config_dir)
    for name in ("ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDECODE"):
        assert name not in client.env
