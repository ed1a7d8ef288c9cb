"""`claude-max-api doctor`: check a setup and say, for each problem, what to run.

The backend's checks (CLI, login, root, CLAUDECODE, writable dirs) come through the
composition root; the HTTP checks (port free, host exposed without auth) live here.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import TextIO

from claude_max_api.bootstrap import Finding, backend_findings
from claude_max_api.probe import proxy_answers
from claude_max_api.settings import Settings
from proxy_http.auth import ApiKeyError, api_keys_of, is_loopback


def run_doctor(
    settings: Settings,
    *,
    out: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    euid: Callable[[], int] = os.geteuid,
) -> int:
    """Print every finding, one line each (problems with their fix); 1 if any problem."""
    stream = out or sys.stdout
    findings = [
        *backend_findings(settings, environ=environ, euid=euid),
        check_port(settings.server.http.host, settings.server.port),
        check_exposure(settings),
    ]
    for finding in findings:
        stream.write(format_finding(finding) + "\n")
    problems = sum(not f.ok for f in findings)
    if problems:
        stream.write(
            f"{problems} problem(s) found; fix them and run `claude-max-api doctor` again\n"
        )
    else:
        stream.write("everything looks ready: start the server with `claude-max-api serve`\n")
    stream.flush()
    return 1 if problems else 0


def format_finding(finding: Finding) -> str:
    """`ok       name: detail`, or `PROBLEM  name: detail -> fix: what to run` on one line."""
    if finding.ok:
        return f"ok       {finding.name}: {finding.detail}"
    fix = f" -> fix: {finding.fix}" if finding.fix else ""
    return f"PROBLEM  {finding.name}: {finding.detail}{fix}"


def check_port(host: str, port: int) -> Finding:
    """Whether `serve` could bind host:port now (as uvicorn does, with SO_REUSEADDR)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            who = "a claude-max-api proxy" if proxy_answers(port) else "another process"
            return Finding(
                "port",
                False,
                f"{host}:{port} is in use by {who}",
                f"stop it, or pick a free port: claude-max-api serve --port {port + 1}",
            )
        return Finding(
            "port",
            False,
            f"cannot bind {host}:{port}: {error.strerror or error}",
            "choose an address of this machine: claude-max-api serve --host 127.0.0.1",
        )
    return Finding("port", True, f"{host}:{port} is free")


def check_exposure(settings: Settings) -> Finding:
    """A non-loopback host without API keys lets anyone on the network spend the account."""
    host, access = settings.server.http.host, settings.security.access
    if is_loopback(host):
        return Finding("exposure", True, f"{host} is reachable from this machine only")
    try:
        keys = api_keys_of(access)
    except ApiKeyError as error:
        return Finding("exposure", False, str(error), "fix --api-key-file or --api-keys")
    if keys:
        return Finding("exposure", True, f"{host} is exposed, and API keys are required")
    if settings.security.allow_unauthenticated:
        return Finding(
            "exposure",
            True,
            f"{host} is exposed without API keys, as --allow-unauthenticated asks",
        )
    return Finding(
        "exposure",
        False,
        f"{host} is reachable from the network and no API keys are set, "
        "so anyone who can reach it can use the Claude account (serve refuses to start)",
        "claude-max-api serve --host 127.0.0.1  (or set --api-keys / --api-key-file)",
    )
