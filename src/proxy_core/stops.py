"""Stop sequences: OpenAI's `stop`, applied to the reply text as it streams."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from proxy_core.errors import invalid
from proxy_core.openai_wire import Stop

MAX_STOPS = 4  # as OpenAI allows


def parse_stop(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The stop sequences of a request (empty and repeated ones dropped, at most
    MAX_STOPS left); raises ChatError naming `stop`."""
    try:
        items: Stop = msgspec.convert(value, Stop)
    except msgspec.ValidationError:
        raise invalid("stop must be a string or a list of strings.", "stop") from None
    if items is None:
        return ()
    stops = tuple(
        dict.fromkeys(item for item in ([items] if isinstance(items, str) else items) if item)
    )
    if len(stops) > MAX_STOPS:
        raise invalid(f"stop takes at most {MAX_STOPS} sequences.", "stop")
    return stops


class StopScanner:
    """Finds the first stop sequence in text that arrives in pieces.

    `feed` returns the text that is safe to pass on: it holds back the last
    `longest - 1` characters, which could be the start of a stop sequence split
    across pieces. Once a sequence is found, `stopped` is set, the text before it is
    the last that `feed` returns, `text` is the reply up to the sequence and `matched`
    is the sequence (the longest one found there).

    Only the text that may still hold the start of a sequence (from `longest - 1`
    characters before what was passed on) is kept as one string and searched; what
    lies before it is kept in pieces, so a long reply in many small pieces costs time
    in proportion to its length, not to its square.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._holdback = max((len(s) for s in self._stops), default=1) - 1
        self._settled: list[str] = []  # the text before `_base`, in pieces
        self._base = 0
        self._window = ""  # the text from `_base` on
        self._sent = 0
        self.stopped = False
        self.matched: str | None = None

    @property
    def text(self) -> str:
        """The reply so far (up to the stop sequence once stopped)."""
        if self._settled:
            self._settled = ["".join(self._settled)]
            return self._settled[0] + self._window
        return self._window

    @property
    def length(self) -> int:
        """How many characters `text` has."""
        return self._base + len(self._window)

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._window += piece
        start = max(0, self._sent - self._holdback)
        found = self._first_at(start)
        if found is not None:
            # A longer sequence that starts earlier may still complete: it would win.
            pending = self._partial_before(found)
            if pending is None:
                return self._stop(found)
            return self._release(min(pending, self.length - self._holdback))
        return self._release(self.length - self._holdback)

    def rewind(self, length: int) -> None:
        """Keep only the first `length` characters fed (withdrawn text; not once stopped)."""
        if self.stopped:
            return
        if length < self._base:
            text = self.text[:length]
            self._settled, self._base, self._window = [], 0, text
        else:
            self._window = self._window[: length - self._base]
        self._sent = min(self._sent, length)

    def flush(self) -> str:
        """What was held back, at the end of a reply: up to a sequence found in it,
        whose cut waited for a longer one that might have started earlier."""
        if self.stopped:
            return ""
        found = self._first_at(max(0, self._sent - self._holdback))
        return self._release(self.length) if found is None else self._stop(found)

    def _first_at(self, start: int) -> int | None:
        at = start - self._base
        found = [i for i in (self._window.find(s, at) for s in self._stops) if i >= 0]
        return None if not found else min(found) + self._base

    def _partial_before(self, end: int) -> int | None:
        """The first position before `end` where the text so far is a proper prefix
        of some sequence (so that sequence may still complete there)."""
        for position in range(max(self._sent, self.length - self._holdback), end):
            tail = self._window[position - self._base :]
            if any(len(s) > len(tail) and s.startswith(tail) for s in self._stops):
                return position
        return None

    def _stop(self, at: int) -> str:
        self.stopped = True
        local = at - self._base
        self.matched = max((s for s in self._stops if self._window.startswith(s, local)), key=len)
        self._window = self._window[:local]
        return self._release(at)

    def _release(self, upto: int) -> str:
        if upto <= self._sent:
            return ""
        out = self._window[self._sent - self._base : upto - self._base]
        self._sent = upto
        # What lies more than `longest - 1` characters before the passed-on text can
        # no longer start a sequence: it leaves the searched window.
        keep_from = max(self._base, upto - self._holdback)
        if keep_from - self._base > len(self._window) // 2:
            cut = keep_from - self._base
            self._settled.append(self._window[:cut])
            self._window = self._window[cut:]
            self._base = keep_from
        return out
