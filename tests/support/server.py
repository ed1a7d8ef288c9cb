"""Running the HTTP app for tests: in-process (uvicorn in a thread) or as `python -m proxy_http`.

Both bind 127.0.0.1 on a free port and always clean up what they started.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from litestar import Litestar

from claude_max_api.bootstrap import http_app
from claude_max_api.probe import proxy_answers
from claude_max_api.settings import Settings
from proxy_core import ChatService, FakeRunner, InMemorySessionStore, ModelCatalog, ServiceLimits


def bearer(key: str) -> dict[str, str]:
    """The header an OpenAI client sends its API key in."""
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_serve(
    *args: str,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`python -m proxy_http serve --port PORT ARGS...` run to its end, its output captured:
    for a start-up that must fail (a free port unless `port` is given)."""
    argv = [sys.executable, "-m", "proxy_http", "serve", "--port", str(port or free_port())]
    return subprocess.run(
        [*argv, *args],
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class LiveServer:
    """An app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Litestar, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def _run(self) -> None:
        # The server's own loop; signal handlers are not installed off the main thread.
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())
        self.loop.close()

    def start(self, timeout: float = 20.0) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start on {self.base_url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(timeout=5)

    def run_coroutine(self, coro: object, timeout: float = 10.0) -> object:
        """Run a coroutine on the server's loop (e.g. to inspect the service's state)."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)


@contextmanager
def live_app(app: Litestar) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()


def fake_service(
    runner: FakeRunner | None = None,
    *,
    limits: ServiceLimits | None = None,
    catalog: ModelCatalog | None = None,
) -> ChatService:
    """A ChatService over a FakeRunner and an in-memory store."""
    return ChatService(
        runner or FakeRunner(),
        InMemorySessionStore(),
        catalog=catalog,
        limits=limits,
    )


@contextmanager
def live_fake_server(
    runner: FakeRunner | None = None,
    settings: Settings | None = None,
    *,
    limits: ServiceLimits | None = None,
    catalog: ModelCatalog | None = None,
) -> Iterator[tuple[LiveServer, ChatService]]:
    """The app over a FakeRunner, live on 127.0.0.1; yields (server, service)."""
    service = fake_service(runner, limits=limits, catalog=catalog)
    with live_app(http_app(service, settings or Settings())) as server:
        yield server, service


class ServerProcess:
    """`python -m proxy_http serve ...` as a real subprocess in its own process group."""

    def __init__(
        self,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        """`preexec_fn` runs in the child before the server starts (e.g. to set rlimits)."""
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        output = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxy_http", *self.args],
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT if self.log_path else subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=self.preexec_fn,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}: {self.log()}"
                )
            if proxy_answers(self.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer on {self.base_url}: {self.log()}")

    def log(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-4000:]
        return "(no log)"

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL for the whole group; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cli_server_env(
    root: Path,
    claude_bin: str,
    upstream_url: str,
    *,
    upstream_retries: int | None = 0,
    **settings: str,
) -> dict[str, str]:
    """The environment of a `serve` over the real CLI and a fake upstream at `upstream_url`.

    The CLI gets a private HOME under `root` (created), the fake's URL and a dummy key;
    `upstream_retries` None leaves the server's own retry policy. The server keeps its
    sessions in memory and starts no warm pool (a turn's CLI process is then the one
    that appears for it); `settings` (CLAUDE_PROXY_* names) override or add.
    """
    home = root / "home"
    home.mkdir(exist_ok=True)
    cli_env = {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": upstream_url,
        "ANTHROPIC_API_KEY": "test-key-not-secret",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    if upstream_retries is not None:
        cli_env["CLAUDE_CODE_MAX_RETRIES"] = str(upstream_retries)
    return {
        "CLAUDE_PROXY_CLI_PATH": claude_bin,
        "CLAUDE_PROXY_STATE_DIR": str(root / "state"),
        "CLAUDE_PROXY_SESSIONS_DB": ":memory:",
        "CLAUDE_PROXY_CLI_EXTRA_ENV": json.dumps(cli_env),
        "CLAUDE_PROXY_FIRST_EVENT_TIMEOUT": "60",
        "CLAUDE_PROXY_POOL_SIZE": "0",
        **settings,
    }
