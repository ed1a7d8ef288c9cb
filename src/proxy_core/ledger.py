"""The ledger: what a CLI session has already seen, as message fingerprints.

A fingerprint covers a message's role, its text with surrounding whitespace
stripped (clients often trim or pad our replies), its images and tool calls, so
equal fingerprints mean the model saw the same thing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from proxy_core.conversation import Base64Image, Message, Role, TextPart, UrlImage


class SessionRecord(msgspec.Struct, frozen=True):
    """One conversation's durable state: its key, its CLI session and what it has seen.

    `fingerprints` covers every message the CLI session has seen, our replies included.
    `system_hash` pins the system prompt the session was started with.
    `resume_point` is an opaque backend marker for where the next turn continues.
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

    @property
    def message_count(self) -> int:
        return len(self.fingerprints)


def fingerprint(message: Message) -> str:
    """A stable digest of what the model sees of one message."""
    digest = hashlib.sha256()
    for piece in _pieces(message):
        data = piece.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:32]


def _pieces(message: Message) -> Iterable[str]:
    yield message.role.value
    yield message.tool_call_id or ""
    text = "\n".join(p.text for p in message.parts if isinstance(p, TextPart))
    yield text.strip().replace("\r\n", "\n")
    for image in message.images:
        if isinstance(image.source, Base64Image):
            yield "b:" + hashlib.sha256(image.source.data.encode()).hexdigest()
        else:
            assert isinstance(image.source, UrlImage)
            yield "u:" + image.source.url
    for call in message.tool_calls:
        yield f"call:{call.id}:{call.name}:{call.arguments}"


def fingerprints(messages: Sequence[Message]) -> tuple[str, ...]:
    return tuple(fingerprint(m) for m in messages)


def reply_fingerprint(text: str) -> str:
    """The fingerprint of our own reply, as the client will send it back."""
    return fingerprint(Message(role=Role.ASSISTANT, parts=(TextPart(text),) if text else ()))


def system_hash(system: str | None) -> str:
    return hashlib.sha256((system or "").encode("utf-8", "surrogatepass")).hexdigest()[:32]
