"""The command line: subcommands and their flags."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from claude_max_api import bootstrap
from claude_max_api.cli import _serve, build_parser, main
from claude_max_api.settings import SETTINGS, Settings
from proxy_core import ChatService, FakeRunner, InMemorySessionStore
from proxy_http.auth import ApiKeys


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

    async def open_service(_: Settings) -> ChatService:
        return service

    built: list[Litestar] = []
    real_build_app = bootstrap.build_app

    def build_app(service: ChatService, settings: Settings, *, keys: ApiKeys) -> Litestar:
        built.append(real_build_app(service, settings, keys=keys))
        raise _Built

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(bootstrap, "open_service", open_service)
    monkeypatch.setattr(bootstrap, "build_app", build_app)
    with pytest.raises(_Built):
        asyncio.run(_serve(Settings.from_values(api_key_file=str(key_file))))
    assert reads == ["first-key\n"]
    with TestClient(built[0], base_url="http://127.0.0.1") as client:
        accepted = client.get("/v1/models", headers={"Authorization": "Bearer first-key"})
        refused = client.get("/v1/models", headers={"Authorization": "Bearer second-key"})
    assert (accepted.status_code, refused.status_code) == (200, 401)
