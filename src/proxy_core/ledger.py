"""The ledger: what a CLI session has already seen, as message fingerprints.

A fingerprint covers everything of a message that reaches the CLI's rendering: its
role, `name`, `tool_call_id`, whether it reports an error, its text and images in
order, and its tool calls. Equal fingerprints mean the model saw the same thing, so a
request can continue a CLI session only if it says exactly what that session was
told. The deliberate losses (see `as_seen`) are whitespace, because clients often
trim or pad our replies and CRLF line ends become LF on the way, and the spelling of
a tool call's JSON arguments, because clients re-serialise them (`{"a": 1}` comes
back as `{"a":1}`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from proxy_core.conversation import (
    Base64Image,
    ImagePart,
    Message,
    Part,
    Role,
    TextPart,
    ToolCall,
)


class SessionRecord(msgspec.Struct, frozen=True):
    """One conversation's durable state: its key, its CLI session and what it has seen.

    `fingerprints` covers every message the CLI session has seen, our replies included.
    `system_hash` pins the system prompt the session was started with.
    `resume_point` is an opaque backend marker for where the next turn continues.
    `pending_calls` are the backend's ids of the client tool calls our last reply
    ended with, in its order (empty when it called none): the next request's tool
    messages answer them. `meter` is the backend's opaque reading of what the CLI
    session has cost so far (see `Finished.meter`).
    Times are wall-clock seconds since the epoch.
    """

    key: str
    cli_session_id: str
    model: str
    system_hash: str
    fingerprints: tuple[str, ...]
    created_at: float
    last_used_at: float
    resume_point: str | None = None
    turns: int = 0
    pending_calls: tuple[str, ...] = ()
    meter: str | None = None

    @property
    def message_count(self) -> int:
        return len(self.fingerprints)


def fingerprint(message: Message) -> str:
    """A stable digest of what the model sees of one message (see `as_seen`)."""
    digest = hashlib.sha256()
    for piece in _pieces(as_seen(message)):
        data = piece.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:32]


def as_seen(message: Message) -> Message:
    """The message as the ledger compares it: CRLF read as LF, the whitespace around
    the whole message (the start of its first part, the end of its last, when they are
    text) dropped, and tool call arguments that are JSON in canonical form (see
    `canonical_arguments`). Nothing else of it is changed."""
    parts: list[Part] = [
        TextPart(p.text.replace("\r\n", "\n")) if isinstance(p, TextPart) else p
        for p in message.parts
    ]
    if parts and isinstance(parts[0], TextPart):
        parts[0] = TextPart(parts[0].text.lstrip())
    if parts and isinstance(parts[-1], TextPart):
        parts[-1] = TextPart(parts[-1].text.rstrip())
    kept = tuple(p for p in parts if not (isinstance(p, TextPart) and not p.text))
    calls = tuple(
        msgspec.structs.replace(call, arguments=canonical_arguments(call.arguments))
        for call in message.tool_calls
    )
    return msgspec.structs.replace(message, parts=kept, tool_calls=calls)


def canonical_arguments(arguments: str) -> str:
    """JSON arguments re-encoded with sorted keys and no spaces, so that two spellings
    of the same value compare equal; text that is not JSON is kept as it is."""
    try:
        value = msgspec.json.decode(arguments.encode("utf-8", "surrogatepass"))
        return msgspec.json.encode(value, order="sorted").decode()
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError, OverflowError):
        return arguments


def _pieces(message: Message) -> Iterable[str]:
    # Each piece is length-prefixed when hashed and starts with a tag, so no two
    # different messages give the same sequence (an absent name is not an empty one).
    yield "r" + message.role.value
    yield "-" if message.name is None else "n" + message.name
    yield "-" if message.tool_call_id is None else "i" + message.tool_call_id
    if message.is_error:
        # Only when set, so the fingerprints of every other message stay as they were.
        yield "e"
    for part in message.parts:
        yield _part_piece(part)
    for call in message.tool_calls:
        yield "c" + msgspec.json.encode((call.id, call.name, call.arguments)).decode()


def _part_piece(part: Part) -> str:
    if isinstance(part, TextPart):
        return "t" + part.text
    assert isinstance(part, ImagePart)
    if isinstance(part.source, Base64Image):
        data = hashlib.sha256(part.source.data.encode()).hexdigest()
        return f"b{part.source.media_type}:{data}"
    return "u" + part.source.url


def fingerprints(messages: Sequence[Message]) -> tuple[str, ...]:
    return tuple(fingerprint(m) for m in messages)


def reply_fingerprint(text: str, tool_calls: Sequence[ToolCall] = ()) -> str:
    """The fingerprint of our own reply (its text and the calls it ended with), as the
    client will send it back."""
    parts = (TextPart(text),) if text else ()
    return fingerprint(Message(role=Role.ASSISTANT, parts=parts, tool_calls=tuple(tool_calls)))


def system_hash(system: str | None) -> str:
    return hashlib.sha256((system or "").encode("utf-8", "surrogatepass")).hexdigest()[:32]
