"""`claude-max-api`: serve / doctor / setup-openclaw (also `python -m proxy_http`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from litestar.types import ASGIApp, Receive, Scope, Send

from claude_max_api.settings import Settings, SettingsError, add_flags, load_settings

if TYPE_CHECKING:
    from proxy_http.streaming import ActiveTurns

_DESCRIPTION = "OpenAI-compatible API server driving the Claude Code CLI."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="claude-max-api", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="Run the HTTP server.",
        usage="%(prog)s [options]",
        description="Run the HTTP server. Every flag also has a CLAUDE_PROXY_* env var.",
    )
    add_flags(serve)
    doctor = commands.add_parser(
        "doctor",
        help="Check the setup and say what to fix.",
        usage="%(prog)s [options]",
        description="Check the setup without spending a request: the CLI, its login, the "
        "port, the directories. Takes the same flags as `serve`.",
    )
    add_flags(doctor)
    commands.add_parser(
        "setup-openclaw",
        help="Configure OpenClaw to use this proxy (see `setup-openclaw --help`).",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "setup-openclaw":
        # Its options belong to that command alone; hand them over untouched.
        from claude_max_api.openclaw import setup_openclaw

        return setup_openclaw(args[1:])
    parser = build_parser()
    namespace = parser.parse_args(args)
    try:
        settings = load_settings(namespace)
    except SettingsError as error:
        parser.error(str(error))
    if namespace.command == "doctor":
        from claude_max_api.doctor import run_doctor

        return run_doctor(settings)
    return serve(settings)


def serve(settings: Settings) -> int:
    """Run the server until SIGINT/SIGTERM; non-zero when the backend cannot start."""
    from proxy_http.logging import configure_logging

    configure_logging(settings.server.log_format, settings.server.log_level)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    from claude_max_api.bootstrap import (
        BackendStartupError,
        TokenFileError,
        build_app,
        instance_name,
        kill_leftover_children,
        load_oauth_token,
        open_service,
    )
    from claude_max_api.listen import cannot_listen, listening_sockets
    from proxy_http.auth import ApiKeyError, api_keys_of, exposure_refusal, full_tools_warning
    from proxy_http.connections import guarded_protocol
    from proxy_http.open_files import AcceptFailureLog, connection_cap, raise_open_files_limit
    from proxy_http.routing import ACTIVE_TURNS_KEY

    log = structlog.get_logger("proxy_http")
    try:
        # Read once: the exposure check below and the served app judge the same keys.
        keys = api_keys_of(settings.security.access)
    except ApiKeyError as error:
        print(f"claude-max-api: cannot start: {error}", file=sys.stderr)
        return 2
    refusal = exposure_refusal(
        settings.server.http.host,
        keys,
        allow_unauthenticated=settings.security.allow_unauthenticated,
    )
    if refusal is not None:
        print(f"claude-max-api: {refusal}", file=sys.stderr)
        return 2
    try:
        settings = load_oauth_token(settings)  # once: every CLI process gets this token
    except TokenFileError as error:
        print(f"claude-max-api: cannot start: --oauth-token-file: {error}", file=sys.stderr)
        return 2
    host = settings.server.http.host
    try:
        # Before anything starts (no CLI process yet): a port in use is one clear line.
        # Listening at once claims the port; connections wait for the start-up to end.
        listeners = listening_sockets(host, settings.server.port)
    except OSError as error:
        failure = cannot_listen(host, settings.server.port, error)
        print(f"claude-max-api: cannot start: {failure.line}", file=sys.stderr)
        return 1
    if warning := full_tools_warning(host, full_tools=settings.backend.cli.full_tools):
        log.warning("full_tools_exposed", host=host, danger=warning)
    files = raise_open_files_limit()  # before the first CLI process, which inherits it
    log.info("open_files_limit", soft=files.soft, soft_before=files.before, hard=files.hard)
    max_connections = connection_cap(settings.server.max_connections, files.soft)
    if max_connections != settings.server.max_connections:
        log.warning(
            "max_connections_lowered",
            max_connections=max_connections,
            setting=settings.server.max_connections,
            open_files_limit=files.soft,
        )
    loop = asyncio.get_running_loop()
    accept_failures = AcceptFailureLog(loop.get_exception_handler())
    loop.set_exception_handler(accept_failures)
    try:
        service = await open_service(settings, keys=keys)
    except BackendStartupError as error:
        print(f"claude-max-api: cannot start: {error}", file=sys.stderr)
        _close(listeners)
        return 1
    try:
        app = build_app(service, settings, keys=keys)
    except BackendStartupError as error:  # the response database cannot be opened
        print(f"claude-max-api: cannot start: {error}", file=sys.stderr)
        await service.aclose()
        _close(listeners)
        return 1
    active: ActiveTurns = app.state[ACTIVE_TURNS_KEY]
    instance = instance_name(settings)
    quiet = _QuietWhenForced(app)
    config = uvicorn.Config(
        quiet,
        host=settings.server.http.host,
        port=settings.server.port,
        http=guarded_protocol(
            header_timeout=settings.server.header_timeout,
            max_connections=max_connections,
            retry_after=settings.limits.busy_retry_after,
            instance=instance,
        ),
        ws="none",  # no WebSocket endpoint: an upgrade request is a plain HTTP request
        log_config=None,
        access_log=False,
        lifespan="on",
        # A fallback only: the drain below ends every turn with an error at the grace.
        timeout_graceful_shutdown=math.ceil(
            settings.server.shutdown_grace + settings.backend.cli.kill_grace + 5
        ),
    )
    server = _QuietSignalsServer(config)
    shutdown = _Shutdown(server, active, settings.server.shutdown_grace, quiet)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, shutdown.on_signal, signum)
    log.info(
        "serving",
        url=f"http://{settings.server.http.host}:{settings.server.port}",
        instance=instance,
        tools=settings.backend.cli.tools,
        auth="api keys" if keys else "none",
    )
    code = 0
    try:
        await server.serve(sockets=listeners)
    except SystemExit as exit_:  # uvicorn exits this way when the app's start-up fails
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        _close(listeners)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        shutdown.stop()
        if server.force_exit:
            # uvicorn skipped the app's shutdown: end the turns, then run it (it closes
            # the service), briefly. Whatever still runs is cancelled when the loop ends.
            active.abort_all("The server was stopped.")
            closing = server.lifespan.shutdown() if server.started else service.aclose()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closing, settings.backend.cli.kill_grace + 5)
        killed = kill_leftover_children(service)
        if killed:
            log.warning("children_killed_at_exit", count=killed)
        accept_failures.flush()
    if code == 0 and not server.started:
        code = 1
    return code


def _close(sockets: Sequence[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


class _Shutdown:
    """SIGTERM/SIGINT: stop accepting, give turns `grace` seconds, then end them with an error.

    A second signal forces the exit at once (the children are still killed).
    """

    def __init__(
        self,
        server: uvicorn.Server,
        active: ActiveTurns,
        grace: float,
        quiet: _QuietWhenForced,
    ) -> None:
        self._server = server
        self._active = active
        self._grace = grace
        self._quiet = quiet
        self._drain: asyncio.Task[None] | None = None

    def on_signal(self, signum: int) -> None:
        log = structlog.get_logger("proxy_http")
        if self._drain is None:
            log.info("shutting_down", signal=signal.Signals(signum).name, grace_s=self._grace)
            self._server.should_exit = True
            self._drain = asyncio.get_running_loop().create_task(self._end_turns())
        else:
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            self._quiet.forced = True
            self._server.force_exit = True
            self._active.abort_all("The server was stopped.")

    async def _end_turns(self) -> None:
        await self._active.wait_idle(self._grace)
        # Keep ending turns (a request read just now may open one) until the server exits.
        while True:
            if count := self._active.abort_all("The server is shutting down; retry later."):
                structlog.get_logger("proxy_http").warning("turns_cancelled", count=count)
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self._drain is not None:
            self._drain.cancel()


class _QuietWhenForced:
    """ASGI wrapper: after a forced exit, what the loop's end cancels is not an error.

    A forced exit leaves requests (and, if closing the service outlasts its bound, the
    app's lifespan) running; the loop cancels them as it ends, and uvicorn and Litestar
    would log each cancellation as a traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.forced = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind: str = scope["type"]  # Litestar's Scope type leaves out "lifespan"
        if kind == "lifespan":
            send = self._lifespan_send(send)
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if not self.forced:
                raise

    def _lifespan_send(self, send: Send) -> Send:
        async def quiet_send(message: Any) -> None:
            # Litestar reports a cancelled shutdown as failed, with the traceback.
            if self.forced and message["type"] == "lifespan.shutdown.failed":
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    return
            await send(message)

        return quiet_send


class _QuietSignalsServer(uvicorn.Server):
    """uvicorn, minus its own signal capture (which re-raises the signal at exit).

    `_serve` installs loop handlers instead, so a SIGTERM/SIGINT shutdown exits 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


if __name__ == "__main__":
    sys.exit(main())
