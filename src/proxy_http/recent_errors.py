"""The last requests answered with an error, for the status page (`/dashboard`).

`RecentErrors` is a request-log observer, fed like the metrics: `RequestLogMiddleware`
tells it of every request it ends, and it keeps those answered with an error in a
bounded ring: a status of 400 or more, or a stream's error event after its 200. An
entry holds what the request's log line already says (method, path, status, the error
code and the message the client was told, cut at `logging.MESSAGE_LIMIT`) and the id
of the key that sent it: never a key, a header or a body. Each caller sees its own
errors only (`visible_to`); an admin key, or anyone on a server without keys, sees
them all. A request without a valid key (a 401, a refused browser request) belongs to
no key, so only those who see all see it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection

import msgspec

from proxy_http.auth import CALLER_STATE_KEY, Access, Caller
from proxy_http.logging import FinishedRequest

__all__ = ["RECENT_ERRORS_KEY", "ErrorEntry", "RecentErrors"]

RECENT_ERRORS_KEY = "recent_errors"
"""Where the app's state keeps its `RecentErrors` (absent: the status page is off)."""
KEPT = 200
"""Errors kept: enough that one noisy caller does not push every other one's out."""
PATH_LIMIT = 200
"""A path is cut here: a scanner's path is any string, and only its start informs."""


class ErrorEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One request answered with an error. `key` is the namespace of the caller's key
    (its id; "" on a server without keys), None when it presented no valid key."""

    at: float
    method: str
    path: str
    status: int
    code: str
    message: str
    key: str | None


class RecentErrors:
    """A bounded ring of the latest `ErrorEntry`s, fed by the request log (`observe`).

    A 401 on one of `challenge_paths` is left out: a browser opening the status page
    is always answered one first, to make it ask for the key, and that is no error.
    """

    def __init__(
        self,
        *,
        kept: int = KEPT,
        challenge_paths: Collection[str] = (),
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._entries: deque[ErrorEntry] = deque(maxlen=kept)
        self._challenge_paths = frozenset(challenge_paths)
        self._wall_clock = wall_clock

    def observe(self, finished: FinishedRequest) -> None:
        """Keep `finished` if it was answered with an error (a `RequestObserver`)."""
        facts = finished.facts
        # A stream that fails after its 200 was sent tells its client in an error event.
        if finished.status < 400 and not facts.get("error"):
            return
        if finished.status == 401 and finished.path in self._challenge_paths:
            return
        caller = finished.state.get(CALLER_STATE_KEY)
        self._entries.append(
            ErrorEntry(
                at=self._wall_clock(),
                method=finished.method,
                path=finished.path[:PATH_LIMIT],
                status=finished.status,
                code=str(facts.get("error") or facts.get("outcome") or f"http_{finished.status}"),
                message=str(facts.get("message") or ""),
                key=_key_of(caller, keyed=CALLER_STATE_KEY in finished.state),
            )
        )

    def visible_to(self, access: Access, limit: int) -> list[ErrorEntry]:
        """The latest `limit` errors `access` may see, newest first."""
        shown: list[ErrorEntry] = []
        for entry in reversed(self._entries):
            if access.sees_all or (entry.key is not None and entry.key == access.namespace):
                shown.append(entry)
                if len(shown) == limit:
                    break
        return shown


def _key_of(caller: object, *, keyed: bool) -> str | None:
    """The caller's namespace: its key's id; "" when no key check ran (no keys
    configured: the one shared namespace); None for a request without a valid key."""
    if not keyed:
        return ""
    return caller.key_id if isinstance(caller, Caller) else None
