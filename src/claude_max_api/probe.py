"""The one /health probe: is a claude-max-api server answering on this port? (doctor,
setup-openclaw, serve's port check, the bench and the test servers ask it.)"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

BUSY = "busy"
"""`proxy_health`'s answer for a server that only said it is at its connection limit."""

_VERDICTS = ("ok", "degraded")
# /health lists every live CLI process: read it whole, within a bound for strangers.
_MAX_BODY = 8 * 1024 * 1024


def proxy_health(port: int, *, host: str = "127.0.0.1", timeout: float = 2.0) -> str | None:
    """The verdict of the claude-max-api server at host:port: `ok`, `degraded`, or
    `busy` (it answered only that it is at capacity); None when none answers there.

    A server at its connection limit answers a 503 at once, so the probe asks again
    until `timeout` seconds have passed before it settles for `busy`.
    """
    deadline = time.monotonic() + timeout
    verdict: str | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return verdict
        answer = _ask(_health_url(host, port), left)
        if answer != BUSY:
            return answer
        verdict = BUSY
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def proxy_answers(port: int, *, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """Whether a claude-max-api server's /health answers (ok or degraded) at host:port
    within `timeout` seconds."""
    return proxy_health(port, host=host, timeout=timeout) in _VERDICTS


def probe_host(bind_host: str) -> str:
    """The address to reach a server bound to `bind_host` (a wildcard: this machine)."""
    if bind_host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind_host == "::":
        return "::1"
    return bind_host


def _health_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/health"


def _ask(url: str, timeout: float) -> str | None:
    """One GET of /health: its verdict, BUSY, or None (no answer, or not ours)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return _verdict(reply.read(_MAX_BODY))
    except urllib.error.HTTPError as error:
        with error:
            return BUSY if _is_busy(error.code, error.read(_MAX_BODY)) else None
    except (OSError, ValueError):
        return None


def _verdict(body: bytes) -> str | None:
    """`status` of a /health body (ours has one: `ok` or `degraded`); None otherwise."""
    try:
        status = json.loads(body).get("status")
    except (ValueError, AttributeError):
        return None
    return status if status in _VERDICTS else None


def _is_busy(code: int, body: bytes) -> bool:
    """Our at-capacity answer: a 503 (or 429) whose OpenAI error code is `server_busy`."""
    if code not in (429, 503):
        return False
    try:
        error = json.loads(body).get("error")
        return isinstance(error, dict) and error.get("code") == "server_busy"
    except (ValueError, AttributeError):
        return False
