"""One upstream message's text across the CLI's attempts at it, kept whole for the client.

When the upstream connection drops mid-reply, the CLI ends the partial message (a
`message_stop` with no `message_delta` before it) and asks again: a new streamed
attempt (`message_start`), or a complete message with no stream at all. The new
attempt starts from its own beginning. Forwarding it as it comes would repeat, or
contradict, what the client already has; `MessageText` forwards only what continues
the text already sent, and reports a contradiction as text to withdraw.
"""

from __future__ import annotations

from typing import NamedTuple


class Change(NamedTuple):
    """What the client's copy needs: withdraw its last `void` characters, then add `text`."""

    void: int = 0
    text: str = ""


_NONE = Change()


class MessageText:
    """One kind of content (text or thinking) of the upstream message in progress.

    `sent` is what the client was given of this message, across attempts; `attempt`
    what the current attempt streamed; `confirmed` how much of `sent` the current
    attempt's complete blocks (the CLI's `assistant` events) account for.
    With `withdraws` false (thinking), a contradicting attempt is withheld instead.
    """

    def __init__(self, *, withdraws: bool) -> None:
        self._withdraws = withdraws
        self.new_message()

    def new_message(self) -> None:
        """A new upstream message begins (not a retry of the last one)."""
        self.sent = ""
        self._attempt = ""
        self._confirmed = 0
        self._retrying = False
        self._withheld = False

    def retry(self) -> None:
        """The message was cut off: the next attempt starts from its own beginning."""
        self._attempt = ""
        self._confirmed = 0
        self._retrying = True

    def delta(self, piece: str) -> Change:
        """A streamed piece of the current attempt."""
        self._attempt += piece
        if not self._retrying:
            self.sent += piece
            return Change(text=piece)
        return self._align(self._attempt, keep=0)

    def complete(self, block: str) -> Change:
        """A complete block of the current attempt (it may have been streamed, or not)."""
        change = self._align(block, keep=self._confirmed)
        if not self._withheld:
            self._confirmed = min(len(self.sent), self._confirmed + len(block))
        return change

    def leftover(self) -> Change:
        """At the message's end: sent text that no complete block accounts for is void.

        (A retry that ended shorter than what an earlier attempt had streamed.) Only a
        retried message is checked, and whitespace alone is let go: the complete text
        may lack a trailing newline the stream had.
        """
        rest = self.sent[self._confirmed :]
        if not self._retrying or self._withheld or not self._withdraws or not rest.strip():
            return _NONE
        self.sent = self.sent[: self._confirmed]
        return Change(void=len(rest))

    def _align(self, text: str, *, keep: int) -> Change:
        """Compare `text` (what the attempt has from offset `keep`) with what was sent."""
        if self._withheld:
            return _NONE
        sent = self.sent[keep:]
        if sent.startswith(text):
            return _NONE  # already sent: the attempt repeats it
        if text.startswith(sent):
            rest = text[len(sent) :]
            self.sent += rest
            return Change(text=rest)
        if not self._withdraws:
            self._withheld = True
            return _NONE
        self.sent = self.sent[:keep] + text
        return Change(void=len(sent), text=text)
