"""The command line: subcommands and their flags."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from claude_max_api import bootstrap
from claude_max_api.cli import _serve, build_parser, main
from claude_max_api.settings import SETTINGS, Settings, parse_value
from proxy_core import ChatService, FakeRunner, InMemorySessionStore
from proxy_http.auth import ApiKeys


def test_serve_help_lists_a_flag_for_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for setting in SETTINGS:
        assert setting.flag in out


def help_lines(argv: list[str]) -> dict[str, str]:
    """Each flag's help in `python -m proxy_http <argv> --help`, its wrapped lines joined
    (a `--name, --no-name` pair under both names)."""
    result = subprocess.run(
        [sys.executable, "-m", "proxy_http", *argv, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    entries: list[tuple[str, list[str]]] = []  # (the flags as invoked, help lines)
    for line in result.stdout.splitlines():
        if line.startswith("  -"):
            invocation, _, first = line.strip().partition("  ")
            entries.append((invocation, [first.strip()] if first.strip() else []))
        elif entries and line.startswith("    "):
            entries[-1][1].append(line.strip())
    return {
        flag: " ".join(help_parts)
        for invocation, help_parts in entries
        for flag in re.findall(r"--[a-z][a-z-]*", invocation)
    }


@pytest.mark.parametrize("command", ["serve", "doctor"])
def test_every_flag_of_a_command_ends_its_help_with_its_default(command: str) -> None:
    lines = help_lines([command])
    for setting in SETTINGS:
        match = re.search(r"\(default: ([^()]+)\)$", lines[setting.flag])
        assert match is not None, lines[setting.flag]
        shown = match.group(1)
        if setting.default_text is not None:
            assert shown == setting.default_text
        elif setting.default is None:
            assert shown == "unset"
        else:
            # What the help says is the default reads back as the default itself.
            # An empty mapping is shown as `none` (and read back from an empty value).
            raw = "" if setting.default == {} and shown == "none" else shown
            assert parse_value(setting, raw, "help") == setting.default, setting.name
        if setting.type is bool:
            assert lines[f"--no-{setting.flag[2:]}"] == lines[setting.flag]


def test_the_help_says_unset_for_a_setting_without_a_default() -> None:
    lines = help_lines(["serve"])
    assert lines["--api-keys"].endswith("(default: unset)")
    assert lines["--port"].endswith("(default: 3456)")
    assert lines["--strict-models"].endswith("(default: false)")
    assert lines["--model-overrides"].endswith("(default: none)")


def test_setup_openclaw_help_shows_each_default() -> None:
    lines = help_lines(["setup-openclaw"])
    assert set(lines) >= {"--port", "--primary", "--fallback", "--api-key", "--dry-run"}
    for flag, line in lines.items():
        assert flag == "--help" or "(default: " in line, flag


def test_the_top_level_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy_http", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for command in ("serve", "doctor", "setup-openclaw"):
        assert command in result.stdout


def test_unknown_command_is_refused() -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["launch"])
    assert exit_.value.code == 2


def test_bad_setting_value_exits_with_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--port", "eighty"])
    assert exit_.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_doctor_receives_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []

    def fake_doctor(settings: Settings) -> int:
        seen.append(settings)
        return 3

    monkeypatch.setattr("claude_max_api.doctor.run_doctor", fake_doctor)
    assert main(["doctor", "--port", "4000"]) == 3
    assert seen[0].server.port == 4000


def test_setup_openclaw_gets_its_arguments_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str] | None] = []

    def fake_setup(argv: list[str] | None) -> int:
        seen.append(argv)
        return 0

    monkeypatch.setattr("claude_max_api.openclaw.setup_openclaw", fake_setup)
    assert main(["setup-openclaw", "--dry-run", "--port", "4000"]) == 0
    assert seen == [["--dry-run", "--port", "4000"]]


class _Built(Exception):
    """Stops `serve` once it has built its app."""


def test_serve_reads_the_key_file_once_and_its_app_enforces_those_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("first-key\n")
    reads: list[str] = []
    real_read_text = Path.read_text

    def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        text = real_read_text(self, *args, **kwargs)
        if self == key_file:
            reads.append(text)
            # A second read would see another key: the app must enforce the first one.
            key_file.write_text("second-key\n")
        return text

    service = ChatService(FakeRunner(), InMemorySessionStore())

    async def open_service(_: Settings, *, keys: ApiKeys | None = None) -> ChatService:
        return service

    built: list[Litestar] = []
    real_build_app = bootstrap.build_app

    def build_app(service: ChatService, settings: Settings, *, keys: ApiKeys) -> Litestar:
        built.append(real_build_app(service, settings, keys=keys))
        raise _Built

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(bootstrap, "open_service", open_service)
    monkeypatch.setattr(bootstrap, "build_app", build_app)
    # Its stored responses stay in memory: the test writes nothing outside tmp_path.
    settings = Settings.from_values(api_key_file=str(key_file), responses_db=":memory:")
    with pytest.raises(_Built):
        asyncio.run(_serve(settings))
    assert reads == ["first-key\n"]
    with TestClient(built[0], base_url="http://127.0.0.1") as client:
        accepted = client.get("/v1/models", headers={"Authorization": "Bearer first-key"})
        refused = client.get("/v1/models", headers={"Authorization": "Bearer second-key"})
    assert (accepted.status_code, refused.status_code) == (200, 401)
