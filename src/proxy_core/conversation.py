"""Conversation values, and their parsing from OpenAI-shaped messages.

Parsing normalises as it goes, so that equal conversations have equal values:
adjacent text parts are joined with a newline, empty texts dropped, `developer`
becomes system and the legacy `function` role becomes `tool`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Mapping, Sequence
from typing import Annotated

import msgspec
from msgspec import Meta

from proxy_core.errors import invalid


class Role(enum.StrEnum):
    """Who said a message. `developer` and `function` are folded into these on parse."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class TextPart(msgspec.Struct, frozen=True, tag="text"):
    """Plain text."""

    text: str


class Base64Image(msgspec.Struct, frozen=True, tag="base64"):
    """Image bytes carried inline, as a `data:` URL's payload."""

    media_type: str
    data: str


class UrlImage(msgspec.Struct, frozen=True, tag="url"):
    """An image the model fetches from an http(s) URL."""

    url: str


ImageSource = Base64Image | UrlImage


class ImagePart(msgspec.Struct, frozen=True, tag="image"):
    """An image, kept in place among the text."""

    source: ImageSource


Part = TextPart | ImagePart


class ToolCall(msgspec.Struct, frozen=True):
    """A function call an assistant message made (kept so history renders faithfully)."""

    id: str
    name: str
    arguments: str


class Message(msgspec.Struct, frozen=True):
    """One normalised message. `parts` is empty for `null` or empty content."""

    role: Role
    parts: tuple[Part, ...] = ()
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The message's text parts joined by newlines (images left out)."""
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))


class Conversation(msgspec.Struct, frozen=True):
    """A request's conversation: the joined system prompt and the other messages in order."""

    system: str | None
    messages: tuple[Message, ...]


SUPPORTED_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_MIME = re.compile(r"^[\w.+-]+/[\w.+-]+$")
_ROLE_ALIASES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
    "function": Role.TOOL,
}


class ParseLimits(msgspec.Struct, frozen=True):
    """Bounds on what one request may carry; each breach names its limit."""

    max_messages: Annotated[int, Meta(description="Most messages one request may carry.")] = 10_000
    max_message_chars: Annotated[int, Meta(description="Most text characters in one message.")] = (
        4_000_000
    )
    max_images: Annotated[int, Meta(description="Most images in one request.")] = 100
    max_image_bytes: Annotated[int, Meta(description="Largest decoded image, in bytes.")] = (
        20 * 1024 * 1024
    )


def normalize_parts(parts: Sequence[Part]) -> tuple[Part, ...]:
    """Join adjacent text parts with a newline and drop empty texts."""
    out: list[Part] = []
    pending: list[str] = []

    def flush() -> None:
        joined = "\n".join(pending)
        if joined:
            out.append(TextPart(joined))
        pending.clear()

    for part in parts:
        if isinstance(part, TextPart):
            if part.text:
                pending.append(part.text)
        else:
            flush()
            out.append(part)
    flush()
    return tuple(out)


def parse_conversation(messages: object, limits: ParseLimits | None = None) -> Conversation:
    """Validate OpenAI `messages` (plain JSON data) into a Conversation.

    Raises an invalid-request ChatError whose `param` is the offending field path.
    """
    limits = limits or ParseLimits()
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise invalid("'messages' must be an array of message objects.", "messages")
    if not messages:
        raise invalid("'messages' must contain at least one message.", "messages")
    if len(messages) > limits.max_messages:
        raise invalid(
            f"Too many messages: {len(messages)} > max_messages {limits.max_messages}.",
            "messages",
        )
    budget = _ImageBudget(limits)
    system: list[str] = []
    parsed: list[Message] = []
    for index, raw in enumerate(messages):
        message = _parse_message(raw, f"messages[{index}]", limits, budget)
        if message.role is Role.SYSTEM:
            if message.images:
                raise invalid(
                    "System messages cannot contain images.", f"messages[{index}].content"
                )
            system.append(message.text)
        else:
            parsed.append(message)
    if not parsed:
        raise invalid("'messages' must contain at least one non-system message.", "messages")
    return Conversation(system="\n\n".join(system) if system else None, messages=tuple(parsed))


class _ImageBudget:
    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self.count = 0

    def take(self, path: str) -> None:
        self.count += 1
        if self.count > self.limits.max_images:
            raise invalid(f"Too many images: more than max_images {self.limits.max_images}.", path)


def _parse_message(raw: object, path: str, limits: ParseLimits, budget: _ImageBudget) -> Message:
    if not isinstance(raw, Mapping):
        raise invalid("Each message must be an object.", path)
    role_raw = raw.get("role")
    if not isinstance(role_raw, str) or role_raw not in _ROLE_ALIASES:
        raise invalid(
            f"Invalid role {role_raw!r}: expected one of system, developer, user, "
            "assistant, tool, function.",
            f"{path}.role",
        )
    role = _ROLE_ALIASES[role_raw]
    content = raw.get("content")
    parts = _parse_content(content, role, f"{path}.content", limits, budget)
    tool_calls = (
        _parse_tool_calls(raw.get("tool_calls"), f"{path}.tool_calls")
        if role is Role.ASSISTANT
        else ()
    )
    if role is Role.ASSISTANT and raw.get("function_call") is not None and not tool_calls:
        tool_calls = (_parse_function_call(raw.get("function_call"), f"{path}.function_call"),)
    if content is None and role in (Role.USER, Role.SYSTEM, Role.TOOL) and role_raw != "function":
        raise invalid(f"A {role_raw} message must have content.", f"{path}.content")
    name = _optional_str(raw.get("name"), f"{path}.name")
    tool_call_id = _optional_str(raw.get("tool_call_id"), f"{path}.tool_call_id")
    if role_raw == "function" and tool_call_id is None:
        tool_call_id = name
    if role is Role.TOOL and tool_call_id is None and role_raw == "tool":
        raise invalid("A tool message must have 'tool_call_id'.", f"{path}.tool_call_id")
    if role is not Role.TOOL:
        tool_call_id = None
    text_chars = sum(len(p.text) for p in parts if isinstance(p, TextPart))
    if text_chars > limits.max_message_chars:
        raise invalid(
            f"Message text too long: {text_chars} characters > max_message_chars "
            f"{limits.max_message_chars}.",
            f"{path}.content",
        )
    return Message(
        role=role, parts=parts, name=name, tool_calls=tool_calls, tool_call_id=tool_call_id
    )


def _optional_str(value: object, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise invalid("Expected a string.", path)


def _parse_content(
    content: object, role: Role, path: str, limits: ParseLimits, budget: _ImageBudget
) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return normalize_parts([TextPart(content)])
    if not isinstance(content, Sequence) or isinstance(content, bytes):
        raise invalid("Content must be a string, an array of content parts, or null.", path)
    parts: list[Part] = []
    for index, raw in enumerate(content):
        parts.append(_parse_part(raw, role, f"{path}[{index}]", limits, budget))
    return normalize_parts(parts)


def _parse_part(
    raw: object, role: Role, path: str, limits: ParseLimits, budget: _ImageBudget
) -> Part:
    if not isinstance(raw, Mapping):
        raise invalid("Each content part must be an object.", path)
    kind = raw.get("type")
    if kind in ("text", "input_text", "output_text", "refusal"):
        text = raw.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise invalid("A text part must have a string 'text'.", f"{path}.text")
        return TextPart(text)
    if kind == "image_url":
        if role is not Role.USER:
            raise invalid("Only user messages can contain images.", f"{path}.type")
        return _parse_image(raw.get("image_url"), f"{path}.image_url", limits, budget)
    if kind in ("input_audio", "file"):
        raise invalid(f"Content parts of type {kind!r} are not supported.", f"{path}.type")
    raise invalid(f"Unsupported content part type {kind!r}.", f"{path}.type")


def _parse_image(raw: object, path: str, limits: ParseLimits, budget: _ImageBudget) -> ImagePart:
    url = raw.get("url") if isinstance(raw, Mapping) else raw
    if not isinstance(url, str) or not url:
        raise invalid("An image_url part must have a string 'url'.", f"{path}.url")
    budget.take(f"{path}.url")
    if url.startswith("data:"):
        return ImagePart(_parse_data_url(url, f"{path}.url", limits))
    lowered = url.lower()
    if lowered.startswith(("http://", "https://")) and len(url) <= 8192:
        return ImagePart(UrlImage(url))
    raise invalid("An image URL must be a base64 data: URL or an http(s) URL.", f"{path}.url")


def _parse_data_url(url: str, path: str, limits: ParseLimits) -> Base64Image:
    header, comma, payload = url[5:].partition(",")
    params = header.split(";")
    mime = params[0].strip().lower()
    if not comma or params[-1].strip().lower() != "base64" or not _MIME.match(mime):
        raise invalid("Malformed data: URL: expected data:<type>;base64,<data>.", path)
    if mime == "image/jpg":
        mime = "image/jpeg"
    if mime not in SUPPORTED_IMAGE_TYPES:
        raise invalid(f"Unsupported image type {mime!r}: use png, jpeg, gif or webp.", path)
    data = "".join(payload.split())
    # Check the decoded size from the length before decoding anything.
    decoded_size = len(data) * 3 // 4
    if decoded_size > limits.max_image_bytes:
        raise invalid(
            f"Image too large: about {decoded_size} bytes > max_image_bytes "
            f"{limits.max_image_bytes}.",
            path,
        )
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("The image's base64 data is invalid.", path) from None
    if not data:
        raise invalid("The image's base64 data is empty.", path)
    return Base64Image(media_type=mime, data=data)


def _parse_tool_calls(raw: object, path: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise invalid("'tool_calls' must be an array.", path)
    calls: list[ToolCall] = []
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        if not isinstance(item, Mapping):
            raise invalid("Each tool call must be an object.", item_path)
        call_id = item.get("id")
        function = item.get("function")
        if not isinstance(call_id, str):
            raise invalid("A tool call must have a string 'id'.", f"{item_path}.id")
        calls.append(_function_call(function, call_id, f"{item_path}.function"))
    return tuple(calls)


def _parse_function_call(raw: object, path: str) -> ToolCall:
    return _function_call(raw, "function_call", path)


def _function_call(function: object, call_id: str, path: str) -> ToolCall:
    if not isinstance(function, Mapping):
        raise invalid("A tool call must have a 'function' object.", path)
    name = function.get("name")
    arguments = function.get("arguments", "")
    if not isinstance(name, str):
        raise invalid("A function call must have a string 'name'.", f"{path}.name")
    if not isinstance(arguments, str):
        arguments = msgspec.json.encode(arguments).decode()
    return ToolCall(id=call_id, name=name, arguments=arguments)
