"""Reading a request's history incrementally: each message read and fingerprinted once.

A follow-up request repeats the whole conversation so far, and reading each message
into the core's form and fingerprinting it for the ledger costs some microseconds a
message, every turn. `HistoryMemo` remembers, per conversation, the messages of its
last request as they were read and fingerprinted; the next request of it reuses what
it finds there, at the same position, equal to what it sends (compared whole, with
`==`), and reads and fingerprints only the rest.

The result is always what reading everything afresh gives, since reading and
fingerprinting a message depend on nothing but the message (the images counted across
the request aside: see `conversation.read_messages`). So the ledger's judgement of a
request (continue, or start over because something it saw differs) is unchanged: the
memo only saves the work of recomputing a value it already holds for an equal input.

Conversations are told apart by their scope (the caller's namespace and the session
hint the request carries) and their opening (the messages up to the first user
message), so one conversation's lookup never reaches another's entries, and an
opening shared by two is at worst recomputed. The memo is bounded: at most
`max_conversations` conversations, and at most `max_chars` characters of message text
across them, the least recently used dropped first.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Sequence

import msgspec

from proxy_core.conversation import (
    Base64Image,
    Conversation,
    ImagePart,
    Message,
    ParseLimits,
    Role,
    TextPart,
    UrlImage,
    assemble,
    read_messages,
    typed_messages,
)
from proxy_core.ledger import fingerprint
from proxy_core.openai_wire import ChatAssistantMessage, ChatMessage, ChatUserMessage

DEFAULT_MAX_CONVERSATIONS = 512
DEFAULT_MAX_CHARS = 64_000_000


class _Entry:
    """One message as a request sent it, as it was read, and its fingerprint (None for a
    system message: the ledger pins the system prompt whole instead)."""

    __slots__ = ("fingerprint", "message", "reusable", "weight", "wire")

    def __init__(self, wire: ChatMessage, message: Message) -> None:
        self.wire = wire
        self.message = message
        self.fingerprint = None if message.role is Role.SYSTEM else fingerprint(message)
        self.reusable = _reusable(wire)
        self.weight = _weight(message)


class _Chain:
    """A conversation's messages of its last request, in order."""

    __slots__ = ("entries", "weight")

    def __init__(self, entries: list[_Entry], weight: int) -> None:
        self.entries = entries
        self.weight = weight


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
        self.hits = 0  # messages reused rather than read again
        self.misses = 0  # messages read (and fingerprinted) afresh

    @property
    def conversations(self) -> int:
        """How many conversations the memo holds now."""
        return len(self._chains)

    @property
    def chars(self) -> int:
        """About how many characters of message text the memo holds now."""
        return self._weight

    def read(self, messages: object, limits: ParseLimits, scope: Hashable = ()) -> ReadHistory:
        """`messages` read as `parse_conversation` reads them (the same errors too), with
        their fingerprints; `scope` separates callers and sessions (see the module)."""
        typed = typed_messages(messages, limits)
        key = (scope, _opening(typed))
        chain = self._chains.get(key)
        reused: list[_Entry | None] = []
        if chain is not None:
            self._chains.move_to_end(key)
            for entry, raw in zip(chain.entries, typed, strict=False):
                reused.append(entry if entry.reusable and entry.wire == raw else None)
        known = [None if entry is None else entry.message for entry in reused]
        read = read_messages(typed, limits, known)
        conversation = assemble(typed, read)
        entries: list[_Entry] = []
        seen: list[str] = []
        weight = 0
        for index, message in enumerate(read):
            found = reused[index] if index < len(reused) else None
            if found is None:
                self.misses += 1
                entry = _Entry(typed[index], message)
            else:
                self.hits += 1
                entry = found
            if entry.fingerprint is not None:
                seen.append(entry.fingerprint)
            entries.append(entry)
            weight += entry.weight
        self._keep(key, _Chain(entries, weight))
        return ReadHistory(conversation, tuple(seen))

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


def _opening(typed: Sequence[ChatMessage]) -> bytes:
    """The messages up to the first user message, encoded: with the scope, what tells
    one conversation from another (as the automatic session key does)."""
    end = next((i for i, m in enumerate(typed) if isinstance(m, ChatUserMessage)), 0)
    return msgspec.msgpack.encode(typed[: end + 1])


def _reusable(raw: ChatMessage) -> bool:
    """Whether a message may be reused when an equal one comes: not when it carries tool
    arguments as a JSON value, which `==` compares loosely (1 equals 1.0 and True) though
    they read differently."""
    if not isinstance(raw, ChatAssistantMessage):
        return True
    calls = [call.function for call in raw.tool_calls or ()]
    if raw.function_call is not None:
        calls.append(raw.function_call)
    return all(isinstance(call.arguments, str) for call in calls)


def _weight(message: Message) -> int:
    """About how many characters of a message the memo keeps (its text, its images'
    data or URLs, its calls), counted twice: the request's form and the core's."""
    size = 64
    for part in message.parts:
        if isinstance(part, TextPart):
            size += len(part.text)
        elif isinstance(part, ImagePart):
            source = part.source
            size += len(source.data) if isinstance(source, Base64Image) else 0
            size += len(source.url) if isinstance(source, UrlImage) else 0
    for call in message.tool_calls:
        size += len(call.id) + len(call.name) + len(call.arguments)
    return 2 * size
