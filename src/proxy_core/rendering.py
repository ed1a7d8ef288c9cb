"""Prompt rendering: messages -> the blocks one CLI user turn carries, and back.

A lone user message is sent as itself (its text and images), as the API would.
Anything else is a transcript: a fixed first line that names a tag, then each
message wrapped in that tag with its role. The tag carries a nonce chosen so that
it occurs in no message, so no text can close its own slot or forge another
message; `parse_rendering` recovers the messages exactly. An assistant message's
tool calls follow its text as `<call-NONCE id=".." name="..">arguments</call-NONCE>`,
and a tool result that reports a failure carries `is_error="true"`. A transcript
with tool calls says in its first line that those tags are a record: a fresh CLI
session that continues a tool conversation must call tools for real, not write tags.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from proxy_core.conversation import (
    ImagePart,
    ImageSource,
    Message,
    Part,
    Role,
    TextPart,
    ToolCall,
    normalize_parts,
)


class TextBlock(msgspec.Struct, frozen=True, tag="text"):
    text: str


class ImageBlock(msgspec.Struct, frozen=True, tag="image"):
    source: ImageSource


Block = TextBlock | ImageBlock

_LEAD = "Conversation transcript. Each message is wrapped in <m-"
_HEADER = (
    _LEAD + '{nonce} role="..."> and </m-{nonce}> tags; '
    "reply to the last message as the assistant.\n\n"
)
_TOOLS_HEADER = (
    _LEAD + '{nonce} role="..."> and </m-{nonce}> tags; '
    "reply to the last message as the assistant. Earlier tool calls are shown as "
    '<call-{nonce}> tags and their results as role="tool" messages, only as a record: '
    "to call a tool now, use the tool itself, never write such a tag.\n\n"
)


def render_messages(messages: Sequence[Message]) -> tuple[Block, ...]:
    """Render messages as the content blocks of one user turn."""
    if not messages:
        raise ValueError("nothing to render")
    if len(messages) == 1 and _plain_user(messages[0]):
        return _merge(messages[0].parts)
    nonce = choose_nonce(messages)
    header = _TOOLS_HEADER if _has_calls(messages) else _HEADER
    segments: list[str | ImageSource] = [header.format(nonce=nonce)]
    for message in messages:
        segments.append(_open_tag(message, nonce) + "\n")
        for part in message.parts:
            segments.append(part.text if isinstance(part, TextPart) else part.source)
        for call in message.tool_calls:
            attrs = f" id={_attr(call.id)} name={_attr(call.name)}"
            segments.append(f"\n<call-{nonce}{attrs}>{call.arguments}</call-{nonce}>")
        segments.append(f"\n</m-{nonce}>\n\n")
    return _blocks(segments)


def _has_calls(messages: Sequence[Message]) -> bool:
    return any(message.tool_calls for message in messages)


def _plain_user(message: Message) -> bool:
    if message.role is not Role.USER or message.name is not None or not message.parts:
        return False
    first = message.parts[0]
    return not (isinstance(first, TextPart) and first.text.startswith(_LEAD))


def _merge(parts: Iterable[Part]) -> tuple[Block, ...]:
    return _blocks(p.text if isinstance(p, TextPart) else p.source for p in parts)


def _blocks(segments: Iterable[str | ImageSource]) -> tuple[Block, ...]:
    blocks: list[Block] = []
    text: list[str] = []
    for segment in segments:
        if isinstance(segment, str):
            text.append(segment)
            continue
        if "".join(text):
            blocks.append(TextBlock("".join(text)))
        text.clear()
        blocks.append(ImageBlock(segment))
    if "".join(text):
        blocks.append(TextBlock("".join(text)))
    return tuple(blocks)


def _attr(value: str) -> str:
    return msgspec.json.encode(value).decode()


def _open_tag(message: Message, nonce: str) -> str:
    attrs = f" role={_attr(message.role.value)}"
    if message.name is not None:
        attrs += f" name={_attr(message.name)}"
    if message.tool_call_id is not None:
        attrs += f" tool_call_id={_attr(message.tool_call_id)}"
    if message.is_error:
        attrs += f" is_error={_attr('true')}"
    return f"<m-{nonce}{attrs}>"


def _strings(messages: Sequence[Message]) -> Iterable[str]:
    for message in messages:
        yield from (p.text for p in message.parts if isinstance(p, TextPart))
        for value in (message.name, message.tool_call_id):
            if value is not None:
                yield value
                yield _attr(value)
        for call in message.tool_calls:
            yield from (call.id, call.name, call.arguments, _attr(call.id), _attr(call.name))


def choose_nonce(messages: Sequence[Message]) -> str:
    """A short hex nonce, deterministic for the same messages, absent from all their text."""
    strings = list(_strings(messages))
    seed = hashlib.sha256("\x00".join(strings).encode("utf-8", "surrogatepass")).hexdigest()
    counter = 0
    while True:
        nonce = hashlib.sha256(f"{seed}:{counter}".encode()).hexdigest()[:8]
        marker = "-" + nonce
        if not any(marker in s for s in strings):
            return nonce
        counter += 1


class RenderingError(ValueError):
    """A rendering that this module could not have produced."""


def _flag(attrs: dict[str, str], name: str) -> bool:
    value = attrs.get(name)
    if value not in (None, "true"):
        raise RenderingError(f"unexpected {name}={value!r}")
    return value == "true"


def parse_rendering(blocks: Sequence[Block]) -> tuple[Message, ...]:
    """Recover the messages from `render_messages` output."""
    first = blocks[0] if blocks else None
    if not (isinstance(first, TextBlock) and first.text.startswith(_LEAD)):
        parts = [
            TextPart(b.text) if isinstance(b, TextBlock) else ImagePart(b.source) for b in blocks
        ]
        return (Message(role=Role.USER, parts=normalize_parts(parts)),)
    return _Parser(blocks).messages()


class _Parser:
    def __init__(self, blocks: Sequence[Block]) -> None:
        first = blocks[0]
        assert isinstance(first, TextBlock)
        end = first.text.find(" ", len(_LEAD))
        self.nonce = first.text[len(_LEAD) : end]
        self.images: list[ImageSource] = []
        text: list[str] = []
        for block in blocks:
            if isinstance(block, TextBlock):
                text.append(block.text)
            else:
                text.append(f"<img-{self.nonce} {len(self.images)}>")
                self.images.append(block.source)
        self.text = "".join(text)
        plain, tools = (h.format(nonce=self.nonce) for h in (_HEADER, _TOOLS_HEADER))
        # Whether the header is the one for a transcript with tool calls; checked
        # against the calls once they are parsed.
        self.tools_header = self.text.startswith(tools)
        if not (self.tools_header or self.text.startswith(plain)):
            raise RenderingError("transcript header mismatch")
        self.pos = len(tools if self.tools_header else plain)

    def messages(self) -> tuple[Message, ...]:
        out: list[Message] = []
        nonce = self.nonce
        while self.pos < len(self.text):
            attrs = self._tag(f"<m-{nonce}")
            self._expect("\n")
            close = self.text.find(f"\n</m-{nonce}>\n\n", self.pos)
            if close < 0:
                raise RenderingError("unterminated message")
            body = self.text[self.pos : close]
            self.pos = close + len(f"\n</m-{nonce}>\n\n")
            out.append(self._message(attrs, body))
        if self.tools_header != _has_calls(out):
            raise RenderingError("the header does not match the transcript's tool calls")
        return tuple(out)

    def _message(self, attrs: dict[str, str], body: str) -> Message:
        nonce = self.nonce
        calls: list[ToolCall] = []
        call_at = body.find(f"\n<call-{nonce}")
        content, call_text = (body, "") if call_at < 0 else (body[:call_at], body[call_at:])
        while call_text:
            sub = _Parser.__new__(_Parser)
            sub.text, sub.pos, sub.nonce, sub.images = call_text, 1, nonce, self.images
            call_attrs = sub._tag(f"<call-{nonce}")
            end = call_text.find(f"</call-{nonce}>", sub.pos)
            if end < 0:
                raise RenderingError("unterminated tool call")
            calls.append(ToolCall(call_attrs["id"], call_attrs["name"], call_text[sub.pos : end]))
            call_text = call_text[end + len(f"</call-{nonce}>") :]
        return Message(
            role=Role(attrs["role"]),
            parts=self._parts(content),
            name=attrs.get("name"),
            tool_calls=tuple(calls),
            tool_call_id=attrs.get("tool_call_id"),
            is_error=_flag(attrs, "is_error"),
        )

    def _parts(self, content: str) -> tuple[Part, ...]:
        marker = f"<img-{self.nonce} "
        parts: list[Part] = []
        while True:
            at = content.find(marker)
            if at < 0:
                parts.append(TextPart(content))
                return normalize_parts(parts)
            parts.append(TextPart(content[:at]))
            end = content.index(">", at)
            parts.append(ImagePart(self.images[int(content[at + len(marker) : end])]))
            content = content[end + 1 :]

    def _expect(self, literal: str) -> None:
        if not self.text.startswith(literal, self.pos):
            raise RenderingError(f"expected {literal!r} at {self.pos}")
        self.pos += len(literal)

    def _tag(self, opening: str) -> dict[str, str]:
        self._expect(opening)
        attrs: dict[str, str] = {}
        while self.text.startswith(" ", self.pos):
            eq = self.text.index("=", self.pos)
            name = self.text[self.pos + 1 : eq]
            self.pos = eq + 1
            attrs[name] = self._json_string()
        self._expect(">")
        return attrs

    def _json_string(self) -> str:
        start = self.pos
        if not self.text.startswith('"', start):
            raise RenderingError("expected a quoted attribute")
        i = start + 1
        while self.text[i] != '"':
            i += 2 if self.text[i] == "\\" else 1
        self.pos = i + 1
        return msgspec.json.decode(self.text[start : self.pos], type=str)
