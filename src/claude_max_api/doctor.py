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
from claude_max_api.listen import address_of, bind_sockets, cannot_listen, port_holder, spare_port
from claude_max_api.probe import BUSY
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
    """Whether `serve` could listen on host:port now (binding as `serve` does); a
    claude-max-api server already there is a finding, not a problem."""
    try:
        for sock in bind_sockets(host, port):
            sock.close()
    except OSError as error:
        if isinstance(error, socket.gaierror) or error.errno != errno.EADDRINUSE:
            failure = cannot_listen(host, port, error)
            return Finding("port", False, failure.problem, failure.remedy)
        return _port_in_use(host, port)
    return Finding("port", True, f"{address_of(host, port)} is free")


def _port_in_use(host: str, port: int) -> Finding:
    holder = port_holder(host, port)
    where = address_of(host, port)
    if holder is None:
        return Finding(
            "port",
            False,
            f"{where} is in use by another process",
            f"stop it, or pick a free port: claude-max-api serve --port {spare_port(port)}",
        )
    answer = "busy (at its connection limit)" if holder == BUSY else holder
    return Finding(
        "port",
        True,
        f"a claude-max-api server is already running on {where} (its /health answers: {answer}); "
        f"to start another, pick a free port: claude-max-api serve --port {spare_port(port)}",
    )


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
