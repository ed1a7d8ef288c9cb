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
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._holdback = max((len(s) for s in self._stops), default=1) - 1
        self._text = ""
        self._sent = 0
        self.stopped = False
        self.matched: str | None = None

    @property
    def text(self) -> str:
        """The reply so far (up to the stop sequence once stopped)."""
        return self._text

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._text += piece
        start = max(0, self._sent - self._holdback)
        found = self._first_at(start)
        if found is not None:
            # A longer sequence that starts earlier may still complete: it would win.
            pending = self._partial_before(found)
            if pending is None:
                return self._stop(found)
            return self._release(min(pending, len(self._text) - self._holdback))
        return self._release(len(self._text) - self._holdback)

    def rewind(self, length: int) -> None:
        """Keep only the first `length` characters fed (withdrawn text; not once stopped)."""
        if not self.stopped:
            self._text = self._text[:length]
            self._sent = min(self._sent, length)

    def flush(self) -> str:
        """What was held back, at the end of a reply: up to a sequence found in it,
        whose cut waited for a longer one that might have started earlier."""
        if self.stopped:
            return ""
        found = self._first_at(max(0, self._sent - self._holdback))
        return self._release(len(self._text)) if found is None else self._stop(found)

    def _first_at(self, start: int) -> int | None:
        found = [i for i in (self._text.find(s, start) for s in self._stops) if i >= 0]
        return min(found, default=None)

    def _partial_before(self, end: int) -> int | None:
        """The first position before `end` where the text so far is a proper prefix
        of some sequence (so that sequence may still complete there)."""
        for position in range(max(self._sent, len(self._text) - self._holdback), end):
            tail = self._text[position:]
            if any(len(s) > len(tail) and s.startswith(tail) for s in self._stops):
                return position
        return None

    def _stop(self, at: int) -> str:
        self.stopped = True
        self.matched = max((s for s in self._stops if self._text.startswith(s, at)), key=len)
        self._text = self._text[:at]
        return self._release(at)

    def _release(self, upto: int) -> str:
        if upto <= self._sent:
            return ""
        out = self._text[self._sent : upto]
        self._sent = upto
        return out
