"""The proxy server under test, run as a subprocess on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from claude_max_api.probe import proxy_answers
from proxy_cli_backend.procfs import command_line, descendants, rss_bytes


def cli_processes(root: int) -> list[int]:
    """The living `claude` processes below `root` (by their command line)."""
    return [
        info.pid
        for info in descendants(root)
        if info.alive and "stream-json" in (command_line(info.pid) or [])
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ChildServer:
    """`python -m <module> *args` that prints its base URL on its first line of stdout
    (`bench.upstream`, `bench.minimal`); started on enter, terminated on exit."""

    def __init__(
        self,
        module: str,
        args: list[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.argv = [sys.executable, "-m", module, *args]
        self.module = module
        # With a working directory of its own, the harness's modules come by PYTHONPATH.
        path = os.pathsep.join(p for p in sys.path if p)
        self.env = None if env is None else {**env, "PYTHONPATH": path}
        self.cwd = cwd
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"{self.module} did not start: {self.base_url!r}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ProxyServer:
    """`python -m proxy_http serve` with the given flags; killed with its group on exit."""

    def __init__(self, flags: list[str], env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.flags = flags
        self.env = env
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.leftovers: list[int] = []  # CLI processes still alive after shutdown (a bug)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aenter__(self) -> Self:
        self.proc = self._spawn()
        await self._wait_healthy(60.0)
        return self

    def _spawn(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "proxy_http", "serve", "--port", str(self.port)]
        with (self.workdir / f"server-{self.port}.log").open("wb") as log:
            return subprocess.Popen(
                [*argv, "--host", "127.0.0.1", *self.flags],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's log."""
        path = self.workdir / f"server-{self.port}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def _wait_healthy(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}); see its log")
            if await asyncio.to_thread(proxy_answers, self.port):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("the server did not become healthy")

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            answer: dict[str, Any] = (await client.get(self.base_url + "/health")).json()
            return answer

    async def wait_pool_ready(self, within: float = 30.0) -> bool:
        """Wait until the warm pool has a ready process (False if /health does not say)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            details = (await self.health()).get("backend", {}).get("details") or {}
            if "pool_ready" not in details:
                return False
            if details["pool_ready"] >= 1:
                return True
            await asyncio.sleep(0.05)
        return False

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc = self.proc
        if proc is None:
            return
        clis = cli_processes(proc.pid)  # in groups of their own: checked separately
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(proc.wait, 30)
        # Anything left in the server's group (it should be nothing) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        self.leftovers = [pid for pid in clis if rss_bytes(pid)]
        for pid in self.leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
