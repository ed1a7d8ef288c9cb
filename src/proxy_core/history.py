"""Reading a request's history incrementally: each message read and fingerprinted once.

A follow-up request repeats the whole conversation so far, and reading each message
into the core's form and fingerprinting it for the ledger costs microseconds a
message, every turn. `HistoryMemo` remembers, per conversation, the messages of its
last request as they were sent (their exact encoding), read and fingerprinted; the
next request of it takes over the longest run of messages from the start that it
sends byte for byte the same (the running prefix), and reads and fingerprints only
the rest.

The result is always what reading everything afresh gives, since reading and
fingerprinting a message depend on nothing but the message (the images counted across
the request aside: see `conversation.read_messages`). So the ledger's judgement of a
request (continue, or start over because something it saw differs, anywhere) is
unchanged: the memo only saves recomputing values it holds for an identical input.
Messages are compared as their msgpack encoding, so that nothing compares equal that
reads differently (a JSON argument `1` is not `1.0` nor `true`), and a caller that
changes its message objects after a request cannot change what the memo holds.

Conversations are told apart by their scope (the caller's namespace and the session
hint the request carries) and their opening (the messages up to the first user
message), so one conversation's lookup never reaches another's entries, and an
opening shared by two is at worst read again. The memo is bounded: at most
`max_conversations` conversations, and at most `max_chars` characters of messages
across them (counted as their encoded size, twice: the request's form and the core's),
the least recently used dropped first.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Sequence

import msgspec

from proxy_core.conversation import (
    Conversation,
    ImagePart,
    Message,
    ParseLimits,
    Role,
    assemble,
    read_messages,
    typed_messages,
)
from proxy_core.ledger import fingerprint
from proxy_core.openai_wire import ChatMessage, ChatUserMessage

DEFAULT_MAX_CONVERSATIONS = 512
DEFAULT_MAX_CHARS = 64_000_000

_ENCODER = msgspec.msgpack.Encoder()


class _Chain:
    """A conversation's last request: each message's encoding, what it was read as and
    its fingerprint (None for a system message: the ledger pins the system prompt
    whole instead), and the images before each position (`images[i]`: in the first i)."""

    __slots__ = ("images", "marks", "packed", "read", "weight")

    def __init__(
        self,
        packed: list[bytes],
        read: list[Message],
        marks: list[str | None],
        images: list[int],
    ) -> None:
        self.packed = packed
        self.read = read
        self.marks = marks
        self.images = images
        self.weight = 2 * sum(len(p) for p in packed)


class ReadHistory(msgspec.Struct, frozen=True):
    """A request's conversation and its messages' fingerprints (`ledger.fingerprints`)."""

    conversation: Conversation
    seen: tuple[str, ...]


class HistoryMemo:
    """The messages of recent requests, read and fingerprinted, per conversation.

    Not thread-safe: one event loop uses it (the service's).
    """

    def __init__(
        self,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if max_conversations < 1 or max_chars < 1:
            raise ValueError("a history memo needs room for something")
        self.max_conversations = max_conversations
        self.max_chars = max_chars
        self._chains: collections.OrderedDict[Hashable, _Chain] = collections.OrderedDict()
        self._weight = 0
        self.hits = 0  # messages taken over rather than read again
        self.misses = 0  # messages read (and fingerprinted) afresh

    @property
    def conversations(self) -> int:
        """How many conversations the memo holds now."""
        return len(self._chains)

    @property
    def chars(self) -> int:
        """About how many characters of messages the memo holds now."""
        return self._weight

    def read(self, messages: object, limits: ParseLimits, scope: Hashable = ()) -> ReadHistory:
        """`messages` read as `parse_conversation` reads them (the same errors too), with
        their fingerprints; `scope` separates callers and sessions (see the module)."""
        typed = typed_messages(messages, limits)
        packed = [_ENCODER.encode(message) for message in typed]
        key = (scope, _opening(typed, packed))
        chain = self._chains.get(key)
        same = 0
        if chain is not None:
            self._chains.move_to_end(key)
            same = _common_prefix(packed, chain.packed)
        known = chain.read[:same] if chain is not None and same else []
        images = chain.images[same] if chain is not None else 0
        read = read_messages(typed, limits, known, images)
        conversation = assemble(typed, read)
        marks = chain.marks[:same] if chain is not None else []
        counts = chain.images[: same + 1] if chain is not None else [0]
        for message in read[same:]:
            marks.append(None if message.role is Role.SYSTEM else fingerprint(message))
            counts.append(counts[-1] + sum(isinstance(p, ImagePart) for p in message.parts))
        self.hits += same
        self.misses += len(read) - same
        self._keep(key, _Chain(packed, read, marks, counts))
        return ReadHistory(conversation, tuple(mark for mark in marks if mark is not None))

    def forget(self) -> None:
        """Drop everything the memo holds."""
        self._chains.clear()
        self._weight = 0

    def _keep(self, key: Hashable, chain: _Chain) -> None:
        old = self._chains.pop(key, None)
        if old is not None:
            self._weight -= old.weight
        if chain.weight > self.max_chars:
            return  # a conversation larger than the whole memo is read afresh each time
        self._chains[key] = chain
        self._weight += chain.weight
        while len(self._chains) > self.max_conversations or self._weight > self.max_chars:
            _, dropped = self._chains.popitem(last=False)
            self._weight -= dropped.weight


def _opening(typed: Sequence[ChatMessage], packed: Sequence[bytes]) -> bytes:
    """The messages up to the first user message, encoded (msgpack is self-delimiting,
    so their concatenation is unambiguous): with the scope, what tells one conversation
    from another (as the automatic session key does)."""
    end = next((i for i, m in enumerate(typed) if isinstance(m, ChatUserMessage)), 0)
    return b"".join(packed[: end + 1])


def _common_prefix(ours: Sequence[bytes], theirs: Sequence[bytes]) -> int:
    """How many messages from the start are the same in both."""
    length = min(len(ours), len(theirs))
    if ours[:length] == theirs[:length]:  # the usual follow-up: one comparison in C
        return length
    for index in range(length):
        if ours[index] != theirs[index]:
            return index
    return length
