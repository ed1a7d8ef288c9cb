"""The command line: subcommands and their flags."""

from __future__ import annotations

import pytest

from claude_max_api.cli import build_parser, main
from claude_max_api.settings import SETTINGS, Settings


def test_serve_help_lists_a_flag_for_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for setting in SETTINGS:
        assert setting.flag in out


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
