"""A turn's reply text as its caller receives it: streamed as it comes, or held whole.

Stop sequences cut it (`StopScanner`), and text the backend withdraws (`TextRetracted`:
its reply was redone after a dropped upstream connection) is dropped. A streaming
caller cannot take back text it was given: `retract` says when that would be needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy_core.stops import StopScanner


class ReplyText:
    """The reply of one turn. `whole`: the caller takes it at the end, not streamed.

    Pieces are kept in a list and counted, not concatenated onto an attribute: that
    would copy the whole reply on every delta (CPython appends in place only to a
    local), which is quadratic in its length on the streaming path.
    """

    def __init__(self, stops: Sequence[str] = (), *, whole: bool = False) -> None:
        self._scanner = StopScanner(stops) if stops else None
        self._whole = whole
        self._pieces: list[str] = []  # the backend's text so far (without a scanner)
        self._length = 0  # its length
        self._given = 0  # how many characters the caller was given
        self._final: str | None = None

    @property
    def text(self) -> str:
        """What the caller was given (the whole reply once finished)."""
        if self._final is not None:
            return self._final
        return self._full()[: self._given]

    @property
    def stopped(self) -> bool:
        """A stop sequence was found: the reply ends before it."""
        return self._scanner is not None and self._scanner.stopped

    @property
    def stop_sequence(self) -> str | None:
        """The stop sequence the reply was cut at (None while not stopped)."""
        return self._scanner.matched if self._scanner is not None else None

    def add(self, piece: str) -> str:
        """Take a piece of the backend's text; returns what to pass on now."""
        if self._scanner is not None:
            passed = self._scanner.feed(piece)
        else:
            self._pieces.append(piece)
            self._length += len(piece)
            passed = piece
        if self._whole:
            return ""
        self._given += len(passed)
        return passed

    def settle(self) -> str:
        """The text pauses (the model turned to tool calls): text held back because it
        might begin a stop sequence is decided now, as at the end. Returns what to pass
        on (nothing when held whole); `stopped` tells whether a sequence was found."""
        if self._scanner is None:
            return ""
        passed = self._scanner.flush()
        if self._whole:
            return ""
        self._given += len(passed)
        return passed

    def retract(self, chars: int) -> bool:
        """Withdraw the backend's last `chars` characters.

        False (and nothing changes) when some of them were passed on already.
        """
        length = self._scanner.length if self._scanner is not None else self._length
        keep = max(0, length - chars)
        if keep < self._given:
            return False
        if self._scanner is not None:
            self._scanner.rewind(keep)
        else:
            self._pieces = [self._full()[:keep]]
            self._length = keep
        return True

    def finish(self) -> str:
        """At the end (or a stop): the rest to pass on; everything when held whole."""
        if self._scanner is not None:
            self._scanner.flush()
        full = self._full()
        rest = full[self._given :]
        self._given = len(full)
        self._final = full
        return rest

    def _full(self) -> str:
        if self._scanner is not None:
            return self._scanner.text
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""
