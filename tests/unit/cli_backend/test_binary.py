"""Finding the CLI (the explicit setting, $CLAUDE_CLI_PATH, PATH, a checkout's pinned
CLI, in that order) and reading its version."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from proxy_cli_backend import binary
from proxy_cli_backend.binary import PACKAGE_CHECKOUT, CliNotFound, find_cli, locate_cli
from proxy_cli_backend.config import CliRunnerConfig, default_state_dir
from proxy_core import INSTALL_HELP, ChatError, FailureReason

ROOT = Path(__file__).resolve().parents[3]


def fake_cli(tmp_path: Path, output: str = "2.1.331 (Claude Code)") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "claude"
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def checkout(root: Path, version: str = "9.9.9", *, with_cli: bool = True) -> Path:
    """A directory laid out like a checkout after `make cli`: the version file, the CLI."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".claude-cli-version").write_text(f"{version}\n")
    if with_cli:
        fake_cli(root / ".tools" / f"claude-{version}" / "node_modules" / ".bin")
    return root


def pinned(root: Path, version: str = "9.9.9") -> str:
    return str(root / ".tools" / f"claude-{version}" / "node_modules" / ".bin" / "claude")


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


def test_a_missing_cli_is_backend_unavailable_with_install_advice(tmp_path: Path) -> None:
    with pytest.raises(ChatError) as missing:
        locate_cli(None, environ={"PATH": str(tmp_path)}, checkouts=[])
    assert missing.value.reason is FailureReason.BACKEND_UNAVAILABLE
    assert INSTALL_HELP in missing.value.message


def test_an_explicit_path_beats_the_env_path_and_pinned_clis(tmp_path: Path) -> None:
    wanted = fake_cli(tmp_path / "explicit")
    environ = {"CLAUDE_CLI_PATH": str(fake_cli(tmp_path / "env")), "PATH": str(tmp_path / "env")}
    found = locate_cli(str(wanted), environ=environ, checkouts=[checkout(tmp_path / "co")])
    assert found == str(wanted)


def test_claude_cli_path_beats_path_and_pinned_clis(tmp_path: Path) -> None:
    wanted = fake_cli(tmp_path / "env")
    environ = {"CLAUDE_CLI_PATH": str(wanted), "PATH": str(fake_cli(tmp_path / "bin").parent)}
    assert locate_cli(None, environ=environ, checkouts=[checkout(tmp_path / "co")]) == str(wanted)


def test_claude_on_path_beats_a_pinned_cli(tmp_path: Path) -> None:
    on_path = fake_cli(tmp_path / "bin")
    environ = {"PATH": str(on_path.parent)}
    assert locate_cli(None, environ=environ, checkouts=[checkout(tmp_path / "co")]) == str(on_path)


def test_the_pinned_cli_of_the_first_checkout_is_the_last_fallback(tmp_path: Path) -> None:
    package, cwd = checkout(tmp_path / "package"), checkout(tmp_path / "cwd", "1.0.0")
    environ = {"PATH": str(tmp_path / "empty")}
    assert locate_cli(None, environ=environ, checkouts=[package, cwd]) == pinned(package)


def test_a_checkout_without_its_cli_gives_way_to_the_next(tmp_path: Path) -> None:
    package = checkout(tmp_path / "package", with_cli=False)
    cwd = checkout(tmp_path / "cwd", "1.0.0")
    environ = {"PATH": str(tmp_path / "empty")}
    assert locate_cli(None, environ=environ, checkouts=[package, cwd]) == pinned(cwd, "1.0.0")


def test_the_error_names_every_place_looked_at_in_order(tmp_path: Path) -> None:
    package = checkout(tmp_path / "package", with_cli=False)
    cwd = checkout(tmp_path / "cwd", "1.0.0", with_cli=False)
    not_a_checkout = tmp_path / "elsewhere"
    not_a_checkout.mkdir()
    with pytest.raises(CliNotFound) as missing:
        locate_cli(None, environ={"PATH": str(tmp_path)}, checkouts=[package, not_a_checkout, cwd])
    looked = missing.value.looked_at
    assert len(looked) == 3
    assert "`claude` on PATH" in looked[0]
    assert pinned(package) in looked[1]
    assert pinned(cwd, "1.0.0") in looked[2]
    message = missing.value.message
    assert (
        message.index("on PATH")
        < message.index(pinned(package))
        < message.index(pinned(cwd, "1.0.0"))
    )


def test_an_explicit_path_that_is_missing_is_the_only_place_tried(tmp_path: Path) -> None:
    environ = {"PATH": str(fake_cli(tmp_path / "bin").parent)}
    missing_path = str(tmp_path / "nowhere" / "claude")
    with pytest.raises(CliNotFound) as missing:
        locate_cli(missing_path, environ=environ, checkouts=[checkout(tmp_path / "co")])
    assert missing.value.looked_at == (f"at {missing_path!r} (from --cli-path)",)


def test_by_default_the_checkout_is_the_one_this_package_sits_in() -> None:
    # Tests run from the source tree: src/proxy_cli_backend/ is two levels below it.
    assert PACKAGE_CHECKOUT == ROOT
    assert (PACKAGE_CHECKOUT / ".claude-cli-version").is_file()


def test_by_default_the_package_checkout_then_the_current_directory_are_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = checkout(tmp_path / "package", with_cli=False)
    cwd = checkout(tmp_path / "cwd", "1.0.0")
    monkeypatch.setattr(binary, "PACKAGE_CHECKOUT", package)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CLAUDE_CLI_PATH", raising=False)
    assert find_cli(None).path == pinned(cwd, "1.0.0")
    fake_cli(Path(pinned(package)).parent)
    assert find_cli(None).path == pinned(package)


def test_default_state_dir_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/xdg")
    assert default_state_dir() == "/xdg/claude-max-api-proxy"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir().endswith("/.local/state/claude-max-api-proxy")


def test_workdir_defaults_under_the_state_dir() -> None:
    assert CliRunnerConfig(state_dir="/s").resolved_workdir == "/s/workdir"
