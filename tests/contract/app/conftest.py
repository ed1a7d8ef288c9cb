"""Fixtures for the application's commands: a real `serve` for them to find."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeAnthropic
from tests.support.server import ServerProcess, cli_server_env


@pytest.fixture
def running_server(
    claude_bin: str, fake_upstream: FakeAnthropic, tmp_path: Path
) -> Iterator[ServerProcess]:
    """`serve` over the real CLI and the fake upstream, on a free port of 127.0.0.1."""
    env = cli_server_env(tmp_path, claude_bin, fake_upstream.base_url)
    with ServerProcess(env=env, log_path=tmp_path / "server.log") as server:
        yield server


def gated_cli(directory: Path, claude_bin: str, gate: Path) -> str:
    """The real CLI behind a wrapper whose `auth status` waits until `gate` exists
    (when AUTH_STATUS_GATE names it), to hold the setup checks in the middle of a run;
    it writes its pid to `<gate>.pid` first."""
    wrapper = directory / "claude"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = auth ] && [ -n "$AUTH_STATUS_GATE" ]; then\n'
        '  echo $$ > "$AUTH_STATUS_GATE.pid"\n'
        '  while [ ! -e "$AUTH_STATUS_GATE" ]; do sleep 0.05; done\n'
        "fi\n"
        f'exec "{claude_bin}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """The file whose creation lets a gated `auth status` go on."""
    return tmp_path / "auth-status-may-answer"


@pytest.fixture
def server_with_held_checks(
    claude_bin: str, fake_upstream: FakeAnthropic, tmp_path: Path, gate: Path
) -> Iterator[ServerProcess]:
    """`serve` whose readiness checks block in `auth status` until `gate` is created."""
    env = cli_server_env(tmp_path, claude_bin, fake_upstream.base_url)
    cli_env = {**json.loads(env["CLAUDE_PROXY_CLI_EXTRA_ENV"]), "AUTH_STATUS_GATE": str(gate)}
    env["CLAUDE_PROXY_CLI_EXTRA_ENV"] = json.dumps(cli_env)
    env["CLAUDE_PROXY_CLI_PATH"] = gated_cli(tmp_path, claude_bin, gate)
    try:
        with ServerProcess(env=env, log_path=tmp_path / "server.log") as server:
            yield server
    finally:
        gate.touch()
