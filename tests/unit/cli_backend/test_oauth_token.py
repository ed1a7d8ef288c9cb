"""The OAuth token of a headless server: read once from its file, handed to the CLI as
CLAUDE_CODE_OAUTH_TOKEN, and shown nowhere."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from claude_max_api.bootstrap import load_oauth_token
from claude_max_api.doctor import run_doctor
from claude_max_api.settings import Settings
from proxy_cli_backend.command import child_env
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.oauth_token import TokenFileError, read_token_file, with_oauth_token
from tests.support.server import free_port
from tests.unit.app.test_doctor import clean_env, fake_cli

TOKEN = "sk-ant-oat01-not-a-real-token-7f3c"


def token_file(tmp_path: Path, text: str = f"{TOKEN}\n") -> str:
    path = tmp_path / "token"
    path.write_text(text)
    return str(path)


def test_the_token_is_the_file_s_one_line_without_whitespace(tmp_path: Path) -> None:
    assert read_token_file(token_file(tmp_path, f"  {TOKEN}\r\n\n")) == TOKEN


@pytest.mark.parametrize(
    ("text", "says"),
    [("", "is empty"), (" \n\t\n", "is empty"), (f"{TOKEN}\nsecond line\n", "more than a token")],
)
def test_an_unusable_file_names_itself_and_never_its_content(
    tmp_path: Path, text: str, says: str
) -> None:
    path = token_file(tmp_path, text)
    with pytest.raises(TokenFileError) as unusable:
        read_token_file(path)
    message = str(unusable.value)
    assert path in message
    assert says in message
    assert TOKEN not in message
    assert "second line" not in message


def test_a_missing_file_says_it_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=r"cannot read .*No such file"):
        read_token_file(str(tmp_path / "absent"))


def test_with_oauth_token_reads_the_file_once_into_the_config(tmp_path: Path) -> None:
    config = CliRunnerConfig(oauth_token_file=token_file(tmp_path))
    loaded = with_oauth_token(config)
    assert loaded.oauth_token == TOKEN
    token_file(tmp_path, "rotated\n")  # a loaded config does not read it again
    assert with_oauth_token(loaded) is loaded
    assert with_oauth_token(CliRunnerConfig()) == CliRunnerConfig()


def test_the_child_gets_the_token_over_an_inherited_one(tmp_path: Path) -> None:
    config = CliRunnerConfig(oauth_token=TOKEN, extra_env={"CLAUDE_CODE_OAUTH_TOKEN": "extra"})
    env = child_env(config, {"CLAUDE_CODE_OAUTH_TOKEN": "inherited"}, is_root=False)
    assert env["CLAUDE_CODE_OAUTH_TOKEN"] == TOKEN


def test_an_inherited_token_passes_through_when_none_is_configured() -> None:
    env = child_env(CliRunnerConfig(), {"CLAUDE_CODE_OAUTH_TOKEN": "inherited"}, is_root=False)
    assert env["CLAUDE_CODE_OAUTH_TOKEN"] == "inherited"


def test_no_dump_of_the_settings_or_the_config_shows_the_token(tmp_path: Path) -> None:
    settings = load_oauth_token(Settings.from_values(oauth_token_file=token_file(tmp_path)))
    assert settings.backend.cli.oauth_token == TOKEN
    for dump in (repr(settings), str(settings), repr(settings.backend), repr(settings.backend.cli)):
        assert TOKEN not in dump
    assert "oauth_token=<hidden>" in repr(settings.backend.cli)


def doctor_output(tmp_path: Path, token_path: str, status: object) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    settings = Settings.from_values(
        port=free_port(),
        cli_path=fake_cli(bin_dir, status),
        state_dir=str(tmp_path / "state"),
        oauth_token_file=token_path,
    )
    out = io.StringIO()
    run_doctor(settings, out=out, environ=clean_env(tmp_path), euid=lambda: 1000)
    return out.getvalue()


def test_doctor_names_the_token_file_as_the_login_and_never_the_token(tmp_path: Path) -> None:
    output = doctor_output(
        tmp_path, token_file(tmp_path), {"loggedIn": True, "authMethod": "oauth_token"}
    )
    assert "ok       login: logged in (oauth token from --oauth-token-file)\n" in output
    assert TOKEN not in output


def test_doctor_reports_an_unreadable_token_file(tmp_path: Path) -> None:
    absent = str(tmp_path / "absent")
    output = doctor_output(tmp_path, absent, {"loggedIn": False, "authMethod": "none"})
    [line] = [line for line in output.splitlines() if "oauth_token_file" in line]
    assert line.startswith(f"PROBLEM  oauth_token_file: cannot read {absent}")
