"""The one /health probe: is a proxy answering on this port? (doctor, setup-openclaw,
the bench and the test servers ask it.)"""

from __future__ import annotations

import urllib.error
import urllib.request


def proxy_answers(port: int, *, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """Whether GET http://<host>:<port>/health answers 2xx within `timeout` seconds."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=timeout) as reply:
            return 200 <= int(reply.status) < 300
    except (OSError, urllib.error.URLError, ValueError):
        return False
