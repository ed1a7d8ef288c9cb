"""Fixtures for contract tests: the real `claude` binary against a fake Anthropic upstream.

A missing CLI fails the run loudly (never a skip): `make test` installs the pinned one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.runner import ClaudeCliRunner
from tests.support.fake_upstream import FakeAnthropic

ROOT = Path(__file__).resolve().parents[2]


def _pinned(name: str, package_dir: str) -> Path:
    """Where `make test` installs the pinned `name` (its version in `.<name>-version`)."""
    version = (ROOT / f".{package_dir}-version").read_text().strip()
    return ROOT / ".tools" / f"{name}-{version}" / "node_modules" / ".bin" / name


def pinned_cli_path() -> Path:
    return _pinned("claude", "claude-cli")


def pinned_codex_path() -> Path:
    return _pinned("codex", "codex")


def _executable(what: str, variable: str, pinned: Path) -> str:
    """$`variable`, else the pinned path; the test fails loudly (never skips) when it is
    not an executable."""
    path = os.environ.get(variable) or str(pinned)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"The {what} needed by the contract tests is missing at {path}. "
            "Run `make test` (it installs the pinned version with npm), or set "
            f"{variable} to an executable.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def claude_bin() -> str:
    """Path of the real CLI: $CLAUDE_PROXY_TEST_CLI, else the pinned project-local one."""
    return _executable("claude CLI", "CLAUDE_PROXY_TEST_CLI", pinned_cli_path())


@pytest.fixture(scope="session")
def codex_bin() -> str:
    """Path of the Codex CLI: $CLAUDE_PROXY_TEST_CODEX, else the pinned project-local one."""
    return _executable("Codex CLI", "CLAUDE_PROXY_TEST_CODEX", pinned_codex_path())


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeAnthropic) -> FakeAnthropic:
    """The session's fake upstream, with its recordings and latency reset for this test."""
    fake_upstream_server.reset()
    return fake_upstream_server


@pytest.fixture
def cli_env(tmp_path: Path, fake_upstream: FakeAnthropic) -> dict[str, str]:
    """Environment for the CLI: a private HOME, the fake upstream, no retries or telemetry."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": fake_upstream.base_url,
        "ANTHROPIC_API_KEY": "test-key-not-secret",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }


RunnerFactory = Callable[..., ClaudeCliRunner]


@pytest.fixture
async def make_runner(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[RunnerFactory]:
    """Build (not start) runners wired to the fake upstream; all are closed afterwards."""
    runners: list[ClaudeCliRunner] = []

    def factory(**overrides: Any) -> ClaudeCliRunner:
        settings: dict[str, Any] = {
            "cli_path": claude_bin,
            "state_dir": str(tmp_path / "state"),
            "extra_env": cli_env,
            "first_event_timeout": 30.0,
            "idle_timeout": 30.0,
            "total_timeout": 60.0,
            "kill_grace": 2.0,
        }
        settings.update(overrides)
        runner = ClaudeCliRunner(CliRunnerConfig(**settings))
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        await runner.aclose()


# -- processes, read from /proc ------------------------------------------------


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, pgid, state) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[2]), fields[0]


def _start_time(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()[19]


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def live_descendants(root: int | None = None) -> list[int]:
    """Processes (zombies included) descending from `root` (default: this test process)."""
    root = os.getpid() if root is None else root
    parents: dict[int, int] = {}
    for pid in _all_pids():
        stat = _stat(pid)
        if stat is not None:
            parents[pid] = stat[0]
    found: list[int] = []
    frontier = {root}
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = set(children)
    return sorted(found)


def processes_in_groups(pgids: set[int]) -> list[int]:
    """Live processes whose process group is one of `pgids` (orphans included)."""
    found: list[int] = []
    for pid in _all_pids():
        stat = _stat(pid)
        if stat is not None and stat[1] in pgids:
            found.append(pid)
    return found


def process_groups_of(pids: list[int]) -> set[int]:
    groups: set[int] = set()
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            groups.add(stat[1])
    return groups


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return []


def cli_processes(root: int | None = None) -> list[int]:
    """Live `claude ... stream-json` processes descending from `root` (default: this
    test process)."""
    return [pid for pid in live_descendants(root) if "stream-json" in _cmdline(pid)]


class ProcessWatch:
    """Records the process groups of every CLI process seen while a block runs.

    `leftovers()` lists what is still alive in those groups, orphans included.
    """

    def __init__(self) -> None:
        self.groups: set[int] = set()
        self.seen: set[tuple[int, str]] = set()  # (pid, start time) of CLIs and descendants
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        clis = cli_processes()
        self.groups |= process_groups_of(clis)
        for pid in clis:
            for member in [pid, *live_descendants(pid)]:
                started = _start_time(member)
                if started is not None:
                    self.seen.add((member, started))

    async def _poll(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> ProcessWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def leftovers(self) -> list[int]:
        """Processes still alive in the seen groups, or seen ones still alive (orphans)."""
        alive = {pid for pid, started in self.seen if _start_time(pid) == started}
        return sorted(alive | set(processes_in_groups(self.groups)))

    async def wait_gone(self, within: float = 2.0) -> list[int]:
        """Leftovers after waiting up to `within` seconds for them to disappear."""
        deadline = time.monotonic() + within
        while True:
            left = self.leftovers()
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.05)
