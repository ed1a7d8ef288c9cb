"""A turn's reply text as its caller receives it: streamed as it comes, or held whole.

Stop sequences cut it (`StopScanner`), and text the backend withdraws (`TextRetracted`:
its reply was redone after a dropped upstream connection) is dropped. A streaming
caller cannot take back text it was given: `retract` says when that would be needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy_core.stops import StopScanner


class ReplyText:
    """The reply of one turn. `whole`: the caller takes it at the end, not streamed."""

    def __init__(self, stops: Sequence[str] = (), *, whole: bool = False) -> None:
        self._scanner = StopScanner(stops) if stops else None
        self._whole = whole
        self._raw = ""  # the backend's text so far (without a scanner)
        self.text = ""  # what the caller was given

    @property
    def stopped(self) -> bool:
        """A stop sequence was found: the reply ends before it."""
        return self._scanner is not None and self._scanner.stopped

    def add(self, piece: str) -> str:
        """Take a piece of the backend's text; returns what to pass on now."""
        if self._scanner is not None:
            passed = self._scanner.feed(piece)
        else:
            self._raw += piece
            passed = piece
        if self._whole:
            return ""
        self.text += passed
        return passed

    def retract(self, chars: int) -> bool:
        """Withdraw the backend's last `chars` characters.

        False (and nothing changes) when some of them were passed on already.
        """
        full = self._full()
        keep = max(0, len(full) - chars)
        if not self._whole and keep < len(self.text):
            return False
        if self._scanner is not None:
            self._scanner.rewind(keep)
        else:
            self._raw = self._raw[:keep]
        return True

    def finish(self) -> str:
        """At the end (or a stop): the rest to pass on; everything when held whole."""
        if self._scanner is not None:
            self._scanner.flush()
        full = self._full()
        rest = full[len(self.text) :]
        self.text = full
        return rest

    def _full(self) -> str:
        return self._scanner.text if self._scanner is not None else self._raw
