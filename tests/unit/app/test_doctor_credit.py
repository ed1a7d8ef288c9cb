"""doctor explains a plan's usage credit, without spending a request."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from claude_max_api.settings import Settings
from proxy_core import CREDIT_HELP
from tests.support.server import free_port
from tests.unit.app.test_doctor import clean_env, doctor


def recording_cli(directory: Path, status: object) -> tuple[str, Path]:
    """A `claude` stand-in answering `--version` and `auth status`, noting every argv."""
    path, calls = directory / "claude", directory / "calls.jsonl"
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if sys.argv[1:] == ['--version']:\n"
        "    print('2.1.331 (Claude Code)')\n"
        "    sys.exit(0)\n"
        "if sys.argv[1:] == ['auth', 'status']:\n"
        f"    print({json.dumps(json.dumps(status))})\n"
        "    sys.exit(0)\n"
        "sys.exit(2)\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path), calls


def settings_for(cli: str, tmp_path: Path) -> Settings:
    return Settings.from_values(
        host="127.0.0.1",
        port=free_port(),
        cli_path=cli,
        state_dir=str(tmp_path / "state"),
        tools="none",
    )


@pytest.mark.parametrize("method", ["claude.ai", "oauth_token"])
def test_a_plan_login_is_told_what_requests_draw_from_and_where_to_top_up(
    tmp_path: Path, method: str
) -> None:
    cli, calls = recording_cli(tmp_path, {"loggedIn": True, "authMethod": method})
    code, lines = doctor(settings_for(cli, tmp_path), clean_env(tmp_path))
    assert code == 0
    [credit] = [line for line in lines if line.startswith("ok       credit: ")]
    assert "since 2026-06-15" in credit
    assert "monthly usage credit" in credit
    assert "429 insufficient_quota" in credit
    assert credit.endswith(CREDIT_HELP)
    invoked = [json.loads(line) for line in calls.read_text().splitlines()]
    assert all(argv in (["--version"], ["auth", "status"]) for argv in invoked)  # no request


def test_an_api_key_login_has_no_credit_line(tmp_path: Path) -> None:
    status = {"loggedIn": True, "authMethod": "api_key", "apiKeySource": "ANTHROPIC_API_KEY"}
    cli, _ = recording_cli(tmp_path, status)
    code, lines = doctor(settings_for(cli, tmp_path), clean_env(tmp_path))
    assert code == 0
    assert not any("credit:" in line for line in lines)
