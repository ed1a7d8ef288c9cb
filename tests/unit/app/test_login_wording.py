"""One wording for logging in and for installing the CLI, wherever a user meets it:
the 503 bodies, doctor, the start-up warning and the CLI-missing message."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from claude_max_api.bootstrap import readiness_checks
from claude_max_api.doctor import run_doctor
from claude_max_api.settings import Settings
from proxy_cli_backend.binary import CliNotFound, locate_cli
from proxy_cli_backend.runner import ClaudeCliRunner
from proxy_core import INSTALL_HELP, LOGIN_HELP, ChatService, FailureReason, InMemorySessionStore
from proxy_http.errors import chat_error_body
from tests.support.server import free_port
from tests.unit.app.test_doctor import LOGGED_IN, LOGGED_OUT, clean_env, fake_cli


def settings_for(cli: str, tmp_path: Path) -> Settings:
    return Settings.from_values(
        port=free_port(), cli_path=cli, state_dir=str(tmp_path / "state"), tools="none"
    )


def doctor_output(settings: Settings, tmp_path: Path) -> str:
    out = io.StringIO()
    run_doctor(settings, out=out, environ=clean_env(tmp_path), euid=lambda: 1000)
    return out.getvalue()


def test_the_texts_name_the_commands_that_exist() -> None:
    # `claude auth login` and `claude setup-token` are the CLI's own commands (2.1.x).
    for command in ("`make login`", "`claude auth login`", "`claude setup-token`"):
        assert command in LOGIN_HELP
    for name in ("CLAUDE_CODE_OAUTH_TOKEN", "--oauth-token-file", "ANTHROPIC_API_KEY"):
        assert name in LOGIN_HELP
    assert "`make cli`" in INSTALL_HELP


def test_the_not_logged_in_503_says_it() -> None:
    status, body = chat_error_body(FailureReason.NOT_LOGGED_IN, "Not logged in")
    assert status == 503
    assert LOGIN_HELP in body.error.message


def test_the_backend_unavailable_503_says_how_to_install() -> None:
    status, body = chat_error_body(FailureReason.BACKEND_UNAVAILABLE, "The backend is closed.")
    assert status == 503
    assert INSTALL_HELP in body.error.message


def test_the_cli_missing_message_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(CliNotFound) as missing:
        locate_cli(None, environ={"PATH": str(tmp_path)}, checkouts=[])
    assert INSTALL_HELP in missing.value.message


def test_doctor_gives_the_same_login_and_install_fixes(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    logged_out = fake_cli(tmp_path / "bin", LOGGED_OUT, exit_code=1)
    assert f"login: the CLI is not logged in -> fix: {LOGIN_HELP}\n" in doctor_output(
        settings_for(logged_out, tmp_path), tmp_path
    )
    missing = str(tmp_path / "nowhere" / "claude")
    assert f"-> fix: {INSTALL_HELP}\n" in doctor_output(settings_for(missing, tmp_path), tmp_path)


async def started_service(cli: str, tmp_path: Path) -> ChatService:
    runner = ClaudeCliRunner(settings_for(cli, tmp_path).backend.cli)
    await runner.start()
    return ChatService(runner, InMemorySessionStore())


async def two_readiness_checks_log(cli: str, tmp_path: Path) -> list[dict[str, Any]]:
    """What two runs of the readiness checks log, over a service started with `cli`."""
    service = await started_service(cli, tmp_path)
    try:
        checks = readiness_checks(service, settings_for(cli, tmp_path))
        with capture_logs() as logs:
            checks()
            checks()  # later runs (every /health refresh) log nothing
    finally:
        await service.aclose()
    return logs


async def test_the_first_readiness_check_warns_how_to_log_in(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    cli = fake_cli(tmp_path / "bin", LOGGED_OUT, exit_code=1)
    logs = await two_readiness_checks_log(cli, tmp_path)
    [warning] = [entry for entry in logs if entry["event"] == "cli_not_logged_in"]
    assert warning["log_level"] == "warning"
    assert (warning["path"], warning["version"]) == (cli, "2.1.331")
    assert warning["fix"] == LOGIN_HELP


async def test_a_logged_in_cli_gets_one_info_line_at_the_first_check(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    cli = fake_cli(tmp_path / "bin", LOGGED_IN)
    logs = await two_readiness_checks_log(cli, tmp_path)
    assert [(e["event"], e["log_level"]) for e in logs] == [("cli_ready", "info")]
    assert (logs[0]["path"], logs[0]["version"]) == (cli, "2.1.331")
    assert logs[0]["login"] == "logged in (claude.ai)"


def test_the_readme_gives_the_same_login_advice() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    assert LOGIN_HELP in " ".join(readme.split())
