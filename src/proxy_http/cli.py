"""`claude-max-api`: serve / doctor / setup-openclaw (also `python -m proxy_http`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator, Sequence

import uvicorn

from proxy_http.settings import Settings, SettingsError, add_flags, load_settings

_DESCRIPTION = "OpenAI-compatible API server driving the Claude Code CLI."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="claude-max-api", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="Run the HTTP server.",
        description="Run the HTTP server. Every flag also has a CLAUDE_PROXY_* env var.",
    )
    add_flags(serve)
    doctor = commands.add_parser(
        "doctor", help="Check the setup and say what to fix.", description="Check the setup."
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
        from proxy_http.openclaw import setup_openclaw

        return setup_openclaw(args[1:])
    parser = build_parser()
    namespace = parser.parse_args(args)
    try:
        settings = load_settings(namespace)
    except SettingsError as error:
        parser.error(str(error))
    if namespace.command == "doctor":
        from proxy_http.doctor import run_doctor

        return run_doctor(settings)
    return serve(settings)


def serve(settings: Settings) -> int:
    """Run the server until SIGINT/SIGTERM; non-zero when the backend cannot start."""
    from proxy_http.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    import structlog

    from proxy_http.bootstrap import BackendStartupError, build_app, open_service

    try:
        service = await open_service(settings)
    except BackendStartupError as error:
        print(f"claude-max-api: cannot start: {error}", file=sys.stderr)
        return 1
    config = uvicorn.Config(
        build_app(service, settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
    )
    server = _QuietSignalsServer(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # First signal: stop accepting and drain; a second one forces the exit.
        loop.add_signal_handler(signum, server.handle_exit, signum, None)
    structlog.get_logger("proxy_http").info(
        "serving", url=f"http://{settings.host}:{settings.port}", tools=settings.tools
    )
    try:
        await server.serve()
    except SystemExit as exit_:  # uvicorn exits this way when it cannot bind
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0 if server.started else 1


class _QuietSignalsServer(uvicorn.Server):
    """uvicorn, minus its own signal capture (which re-raises the signal at exit).

    `_serve` installs loop handlers instead, so a SIGTERM/SIGINT shutdown exits 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


if __name__ == "__main__":
    sys.exit(main())
