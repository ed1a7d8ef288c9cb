"""Pausing idle CLI processes between turns, where no paused process can outlive its server.

An idle CLI process keeps using CPU after its turn (about 40–130 ms a second at first,
10–40 ms later, on the 2-core bench machine): with a few of them idle, that is CPU the
running turn and the CLI processes starting meanwhile do not get. The live runner stops
an idle process (SIGSTOP to its group) and continues it (SIGCONT) when its next turn
comes, or when it is ended.

A stopped process cannot notice that its stdin closed, so a server that died without
ending it (SIGKILL, a crash) would leave it stopped for good. On Linux each live (and
pooled) CLI process is therefore started with SIGCONT as its parent-death signal
(`prctl(PR_SET_PDEATHSIG)`, set between fork and exec): when the server dies, its CLI
processes are continued, read the end of their stdin and exit, as they would have
without the pause. SIGCONT does nothing to a running process. Where that signal is not
available, processes are never paused.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
_SIGCONT = int(signal.SIGCONT)


def _prctl() -> Callable[..., Any] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., Any] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


_PRCTL = _prctl()


def supported() -> bool:
    """Whether CLI processes may be paused here (their parent's death continues them)."""
    return _PRCTL is not None


def continue_on_parent_death() -> None:
    """The `preexec_fn` of a CLI process: SIGCONT when the thread that started it ends.

    It runs in the child between fork and exec, so it only calls prctl: nothing that
    takes a lock another thread of the server might have held at the fork.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGCONT)
