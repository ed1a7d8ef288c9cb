"""Conversation values, and their parsing from OpenAI messages (`openai_wire`).

The wire types check each field's shape; parsing adds the limits and checks a type
cannot state (counts, sizes, image URLs, images only from users and tools) and
normalises as it goes, so that equal conversations have equal values: adjacent text
parts are joined with a newline, empty texts dropped, `developer` becomes system and
the legacy `function` role becomes `tool`. It also checks that tool calls and their results
pair up, as the upstream does: every result answers a call of the assistant message
before it, once, and every call is answered before the conversation goes on.

The CLI's billing header is the CLI's alone: a system prompt that starts with an
`x-anthropic-billing-header:` line replaces the CLI's own with it (and loses its prompt
caching), so such lines never reach the system prompt from a client. Claude Code sends
one as its first system block when it is the client.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Sequence
from typing import Annotated

import msgspec
from msgspec import Meta

from proxy_core.errors import ChatError, invalid
from proxy_core.openai_wire import (
    ChatAssistantMessage,
    ChatFunctionMessage,
    ChatMessage,
    ChatToolMessage,
    ChatUserMessage,
    Content,
    ContentPart,
    FunctionCall,
    ImageUrl,
    ImageUrlContent,
    InputAudioContent,
    InputTextContent,
    OutputTextContent,
    RefusalContent,
    TextContent,
    convert,
)


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
    """One normalised message. `parts` is empty for `null` or empty content.

    `is_error` marks a tool message whose result the client reports as a failure.
    """

    role: Role
    parts: tuple[Part, ...] = ()
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False

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
    # The CLI passes a tool result on whole only up to 500,000 characters (beyond, the
    # model gets a preview and a path on the CLI's disk): a longer one is refused
    # rather than cut where the client cannot see it.
    max_tool_result_chars: Annotated[
        int, Meta(description="Most text characters in one tool result (the CLI's limit).")
    ] = 500_000


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
    """The Conversation that OpenAI `messages` state.

    `messages` are typed (`list[ChatMessage]` of `proxy_core.openai_wire`) or their
    plain JSON data, which is decoded into those types first. Raises an
    invalid-request ChatError whose `param` is the offending field path.
    """
    limits = limits or ParseLimits()
    typed = typed_messages(messages, limits)
    return assemble(typed, read_messages(typed, limits))


def typed_messages(messages: object, limits: ParseLimits) -> list[ChatMessage]:
    """`messages` as typed wire messages, checked to be 1 to `max_messages` of them
    (the first stage of `parse_conversation`)."""
    typed = convert(messages, list[ChatMessage], "messages")
    if not typed:
        raise invalid("'messages' must contain at least one message.", "messages")
    if len(typed) > limits.max_messages:
        raise invalid(
            f"Too many messages: {len(typed)} > max_messages {limits.max_messages}.",
            "messages",
        )
    return typed


def read_messages(
    typed: Sequence[ChatMessage],
    limits: ParseLimits,
    known: Sequence[Message] = (),
    known_images: int = 0,
) -> list[Message]:
    """Each typed message as the core's, system messages included, in order (the second
    stage of `parse_conversation`).

    `known`, when given, is what the first `len(known)` typed messages were read as
    before, holding `known_images` images: they are taken as they are, since reading a
    message depends on nothing but the message, except the count of images across the
    request; when the known ones alone hold too many, everything is read again, so
    the error names the same image a full reading would.
    """
    reader = _Reader(limits)
    out: list[Message] = []
    if known and known_images <= limits.max_images:
        out.extend(known)
        reader.images = known_images
    for index in range(len(out), len(typed)):
        out.append(reader.message(typed[index], f"messages[{index}]"))
    return out


def assemble(typed: Sequence[ChatMessage], read: Sequence[Message]) -> Conversation:
    """The Conversation of messages read from `typed` (the last stage of
    `parse_conversation`): system messages join the system prompt, and the tool
    results must pair with their calls."""
    system_role = Role.SYSTEM
    messages = tuple(message for message in read if message.role is not system_role)
    if not messages:
        raise invalid("'messages' must contain at least one non-system message.", "messages")
    system = [m.text for m in read if m.role is system_role] if len(messages) < len(read) else []
    _check_tool_results(typed, read)
    joined = _without_billing_lines("\n\n".join(system))
    return Conversation(system=joined if system else None, messages=messages)


BILLING_HEADER = "x-anthropic-billing-header:"
"""How the CLI's billing line starts (it takes a system prompt starting so as its own)."""


def _without_billing_lines(system: str) -> str:
    """`system` without the lines that claim to be the CLI's billing header."""
    if BILLING_HEADER not in system.lower():  # the common case: one scan, no copy
        return system
    lines = system.split("\n")
    kept = [line for line in lines if not line.lstrip().lower().startswith(BILLING_HEADER)]
    return "\n".join(kept).strip("\n")


class _Reader:
    """Turns typed messages into the core's, counting images across the whole request."""

    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self.images = 0

    def message(self, raw: ChatMessage, path: str) -> Message:
        content = f"{path}.content"
        if isinstance(raw, ChatUserMessage):
            message = Message(Role.USER, self.parts(raw.content, Role.USER, content), raw.name)
        elif isinstance(raw, ChatAssistantMessage):
            parts = self.parts(raw.content, Role.ASSISTANT, content)
            message = Message(Role.ASSISTANT, parts, raw.name, tool_calls=_tool_calls(raw))
        elif isinstance(raw, ChatToolMessage | ChatFunctionMessage):
            # The legacy function message answers the call its `name` stands for.
            call_id = raw.tool_call_id
            if isinstance(raw, ChatFunctionMessage) and call_id is None:
                call_id = raw.name
            if call_id is None:
                raise invalid(
                    "A function message must have a 'name': the function call it answers.",
                    f"{path}.name",
                )
            parts = self.parts(raw.content, Role.TOOL, content)
            is_error = isinstance(raw, ChatToolMessage) and bool(raw.is_error)
            message = Message(Role.TOOL, parts, raw.name, tool_call_id=call_id, is_error=is_error)
        else:
            message = Message(Role.SYSTEM, self.parts(raw.content, Role.SYSTEM, content), raw.name)
        text_chars = sum(len(p.text) for p in message.parts if isinstance(p, TextPart))
        if message.role is Role.TOOL and text_chars > self.limits.max_tool_result_chars:
            raise invalid(
                f"Tool result too long: {text_chars} characters > max_tool_result_chars "
                f"{self.limits.max_tool_result_chars} (the CLI would pass the model only a "
                "preview of it).",
                content,
            )
        if text_chars > self.limits.max_message_chars:
            raise invalid(
                f"Message text too long: {text_chars} characters > max_message_chars "
                f"{self.limits.max_message_chars}.",
                content,
            )
        return message

    def parts(self, content: Content | None, role: Role, path: str) -> tuple[Part, ...]:
        if content is None:
            return ()
        if isinstance(content, str):
            return normalize_parts([TextPart(content)])
        return normalize_parts(
            [self.part(part, role, f"{path}[{index}]") for index, part in enumerate(content)]
        )

    def part(self, part: ContentPart, role: Role, path: str) -> Part:
        if isinstance(part, TextContent | InputTextContent | OutputTextContent):
            return TextPart(part.text)
        if isinstance(part, RefusalContent):
            return TextPart(part.refusal)
        if isinstance(part, ImageUrlContent):
            # A tool's result may hold images (a screenshot, a file read), as the
            # Anthropic API allows inside a tool_result; OpenAI itself refuses them
            # there, so for chat clients this is an extension.
            if role not in (Role.USER, Role.TOOL):
                raise invalid("Only user and tool messages can contain images.", f"{path}.type")
            return self.image(part.image_url, f"{path}.image_url.url")
        kind = "input_audio" if isinstance(part, InputAudioContent) else "file"
        raise invalid(f"Content parts of type {kind!r} are not supported.", f"{path}.type")

    def image(self, image_url: ImageUrl | str, path: str) -> ImagePart:
        url = image_url if isinstance(image_url, str) else image_url.url
        if not url:
            raise invalid("An image_url part must have a non-empty 'url'.", path)
        self.images += 1
        if self.images > self.limits.max_images:
            raise invalid(f"Too many images: more than max_images {self.limits.max_images}.", path)
        if url.startswith("data:"):
            return ImagePart(_parse_data_url(url, path, self.limits))
        if url.lower().startswith(("http://", "https://")) and len(url) <= 8192:
            return ImagePart(UrlImage(url))
        raise invalid("An image URL must be a base64 data: URL or an http(s) URL.", path)


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


def _tool_calls(message: ChatAssistantMessage) -> tuple[ToolCall, ...]:
    """The calls an assistant message made; the legacy `function_call` when it has none,
    whose id is the function's name (the legacy function message answers by name)."""
    calls = tuple(_tool_call(call.id, call.function) for call in message.tool_calls or ())
    if not calls and message.function_call is not None:
        return (_tool_call(message.function_call.name, message.function_call),)
    return calls


def _tool_call(call_id: str, function: FunctionCall) -> ToolCall:
    arguments = function.arguments
    if not isinstance(arguments, str):
        arguments = msgspec.json.encode(arguments).decode()
    return ToolCall(id=call_id, name=function.name, arguments=arguments)


def _check_tool_results(typed: Sequence[ChatMessage], read: Sequence[Message]) -> None:
    """Raise unless the tool messages answer the calls as the upstream requires: each
    answers a call of the last assistant message before it, no call is answered twice,
    and every call of an assistant message is answered before the next user or
    assistant message (or the end). `read[i]` is `typed[i]` read; system messages are
    left out of the pairing, and the index in `typed` says which wire field a message
    came from."""
    calls_at = 0  # the index of the last assistant message that made calls
    unanswered: list[str] = []
    answered: set[str] = set()
    tool, assistant, system = Role.TOOL, Role.ASSISTANT, Role.SYSTEM
    for index, message in enumerate(read):
        role = message.role
        if role is system:
            continue
        if role is tool:
            call_id = message.tool_call_id or ""
            if call_id in unanswered:
                unanswered.remove(call_id)
                answered.add(call_id)
                continue
            field = f"messages[{index}].{_answer_field(typed[index])}"
            if call_id in answered:
                raise invalid(
                    f"The tool call {call_id!r} is answered twice: a call takes exactly one "
                    "tool message.",
                    field,
                )
            raise invalid(
                f"The tool message's tool_call_id {call_id!r} matches no call: a tool message "
                "must respond to one of the 'tool_calls' of the assistant message before it.",
                field,
            )
        if unanswered:
            raise _unanswered(typed, calls_at, unanswered)
        if role is assistant and message.tool_calls:
            calls_at = index
            unanswered = _call_ids(typed[index], message, index)
    if unanswered:
        raise _unanswered(typed, calls_at, unanswered)


def _call_ids(raw: ChatMessage, message: Message, index: int) -> list[str]:
    ids: list[str] = []
    for position, call in enumerate(message.tool_calls):
        if call.id in ids:
            raise invalid(
                f"The tool call id {call.id!r} occurs twice in one message; each call needs "
                "its own id.",
                f"messages[{index}].tool_calls[{position}].id",
            )
        ids.append(call.id)
    return ids


def _unanswered(typed: Sequence[ChatMessage], index: int, ids: Sequence[str]) -> ChatError:
    raw = typed[index]
    legacy = isinstance(raw, ChatAssistantMessage) and not raw.tool_calls
    return invalid(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(ids)
        + ".",
        f"messages[{index}].{'function_call' if legacy else 'tool_calls'}",
    )


def _answer_field(raw: ChatMessage) -> str:
    """The field of a tool (or legacy function) message that names the call it answers."""
    if isinstance(raw, ChatFunctionMessage) and raw.tool_call_id is None:
        return "name"
    return "tool_call_id"
