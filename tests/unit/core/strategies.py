"""Hypothesis strategies that build valid, normalised conversations."""

from __future__ import annotations

import json

import msgspec
from hypothesis import strategies as st

from proxy_core import (
    AssistantToolCall,
    Base64Image,
    ChatAssistantMessage,
    ChatMessage,
    ChatSystemMessage,
    ChatToolMessage,
    ChatUserMessage,
    ContentPart,
    Conversation,
    FunctionCall,
    ImagePart,
    ImageUrl,
    ImageUrlContent,
    Message,
    Part,
    Role,
    TextContent,
    TextPart,
    ToolCall,
    UrlImage,
)
from proxy_core.conversation import normalize_parts

# Text that likes to collide with the transcript format's own syntax.
_TRICKY = st.sampled_from(
    [
        "<m-",
        "</m-",
        "<call-",
        "<img-",
        '"',
        "\\",
        "\n",
        "\n\n",
        ">",
        'role="assistant">',
        "Conversation transcript. Each message is wrapped in <m-",
        "",
        " ",
    ]
)
texts = st.lists(st.one_of(st.text(max_size=30), _TRICKY), max_size=5).map("".join)
identifiers = st.text(min_size=1, max_size=12)
images = st.one_of(
    st.builds(
        Base64Image,
        media_type=st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]),
        data=st.binary(min_size=1, max_size=12).map(
            lambda b: __import__("base64").b64encode(b).decode()
        ),
    ),
    st.builds(
        UrlImage, url=st.from_regex(r"https://example\.com/[a-z0-9]{1,12}\.png", fullmatch=True)
    ),
).map(ImagePart)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def _json_arguments(draw: st.DrawFn) -> str:
    """A JSON object as a client or a model might spell it: compact, spaced or indented."""
    value = draw(st.dictionaries(st.one_of(st.text(max_size=8), _TRICKY), json_values, max_size=4))
    style = draw(st.sampled_from([{}, {"separators": (",", ":")}, {"indent": 1}]))
    return json.dumps(value, ensure_ascii=draw(st.booleans()), **style)


arguments = st.one_of(_json_arguments(), texts)
"""A tool call's arguments: usually a JSON object, but any text must survive too."""
any_tool_call = st.builds(ToolCall, id=identifiers, name=identifiers, arguments=arguments)


@st.composite
def messages(draw: st.DrawFn, role: Role | None = None) -> Message:
    """One message of any role, not necessarily part of a valid history (a tool
    message's id need answer nothing)."""
    role = role or draw(st.sampled_from([Role.USER, Role.ASSISTANT, Role.TOOL]))
    # Users and tools may send images (a tool's result: a screenshot, an image file).
    with_images = role in (Role.USER, Role.TOOL)
    part_strategy = st.one_of(texts.map(TextPart), images) if with_images else texts.map(TextPart)
    parts: list[Part] = draw(st.lists(part_strategy, max_size=4))
    # OpenAI lets any message carry a `name`; the rendering shows it, whatever the role.
    name = draw(st.one_of(st.none(), identifiers))
    calls: tuple[ToolCall, ...] = ()
    if role is Role.ASSISTANT:
        calls = tuple(draw(st.lists(any_tool_call, max_size=3, unique_by=lambda c: c.id)))
    tool_call_id = draw(identifiers) if role is Role.TOOL else None
    return Message(
        role=role,
        parts=normalize_parts(parts),
        name=name,
        tool_calls=calls,
        tool_call_id=tool_call_id,
        is_error=role is Role.TOOL and draw(st.booleans()),
    )


@st.composite
def tool_results(draw: st.DrawFn, calls: tuple[ToolCall, ...]) -> list[Message]:
    """Tool messages answering each of `calls` once, in any order, some as errors."""
    results = []
    for call in draw(st.permutations(calls)):
        result = draw(messages(Role.TOOL))
        results.append(msgspec.structs.replace(result, tool_call_id=call.id))
    return results


@st.composite
def conversations(
    draw: st.DrawFn, min_size: int = 1, max_size: int = 8, with_calls: bool = False
) -> Conversation:
    """A valid conversation that opens with a user message, as real ones do: each
    assistant message's tool calls are followed by one result for each (so a
    conversation may run a few messages over `max_size`). `with_calls`: at least one
    assistant message calls tools."""
    history = [draw(messages(Role.USER))]
    size = draw(st.integers(min_size, max_size))
    while len(history) < size:
        message = draw(messages(draw(st.sampled_from([Role.USER, Role.ASSISTANT]))))
        history.append(message)
        history += draw(tool_results(message.tool_calls))
    if with_calls and not any(m.tool_calls for m in history):
        calls = tuple(
            draw(st.lists(any_tool_call, min_size=1, max_size=3, unique_by=lambda c: c.id))
        )
        history.append(msgspec.structs.replace(draw(messages(Role.ASSISTANT)), tool_calls=calls))
        history += draw(tool_results(calls))
    system = draw(st.one_of(st.none(), texts))
    return Conversation(system=system, messages=tuple(history))


def to_openai(message: Message) -> dict[str, object]:
    """The OpenAI wire form of a message (inverse of parse for normalised messages)."""
    content: list[dict[str, object]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part.source, Base64Image):
            url = f"data:{part.source.media_type};base64,{part.source.data}"
            content.append({"type": "image_url", "image_url": {"url": url}})
        else:
            content.append({"type": "image_url", "image_url": {"url": part.source.url}})
    out: dict[str, object] = {"role": message.role.value, "content": content}
    if message.name is not None:
        out["name"] = message.name
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.is_error:
        out["is_error"] = True
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out


def to_wire(message: Message) -> ChatMessage:
    """The typed OpenAI form of a message, as an embedding app would build it."""
    content: list[ContentPart] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            content.append(TextContent(part.text))
        elif isinstance(part.source, Base64Image):
            url = f"data:{part.source.media_type};base64,{part.source.data}"
            content.append(ImageUrlContent(ImageUrl(url)))
        else:
            content.append(ImageUrlContent(ImageUrl(part.source.url)))
    if message.role is Role.ASSISTANT:
        calls = [
            AssistantToolCall(c.id, FunctionCall(c.name, c.arguments)) for c in message.tool_calls
        ]
        return ChatAssistantMessage(content, message.name, tool_calls=calls or None)
    if message.role is Role.TOOL:
        is_error = True if message.is_error else None
        return ChatToolMessage(content, message.tool_call_id or "", message.name, is_error)
    if message.role is Role.USER:
        return ChatUserMessage(content, message.name)
    return ChatSystemMessage(content, message.name)


@st.composite
def variants(draw: st.DrawFn, message: Message) -> Message:
    """`message` with one thing changed that the CLI would be shown: its name, tool
    call id, its error mark, a tool call's id, name or arguments, a tool call more or
    less, its text, an image, or the whole message. The result may still render the
    same (e.g. a change of whitespace only, or of a JSON argument's spelling); callers
    check that themselves."""
    replace = msgspec.structs.replace
    kind = draw(
        st.sampled_from(
            ["name", "tool_call_id", "is_error", "call", "calls", "text", "image", "other"]
        )
    )
    if kind == "name":
        return replace(message, name=draw(st.one_of(st.none(), identifiers)))
    if kind == "tool_call_id":
        return replace(message, tool_call_id=draw(st.one_of(st.none(), identifiers)))
    if kind == "is_error":
        return replace(message, is_error=not message.is_error)
    if kind == "call" and message.tool_calls:
        index = draw(st.integers(0, len(message.tool_calls) - 1))
        call = message.tool_calls[index]
        field = draw(st.sampled_from(["id", "name", "arguments"]))
        changed = replace(call, **{field: draw(arguments if field == "arguments" else identifiers)})
        calls = (*message.tool_calls[:index], changed, *message.tool_calls[index + 1 :])
        return replace(message, tool_calls=calls)
    if kind == "calls":
        calls = draw(st.lists(any_tool_call, unique_by=lambda c: c.id))
        return replace(message, tool_calls=tuple(calls))
    if kind == "text":
        extra = draw(st.one_of(texts, _TRICKY))
        at = draw(st.integers(0, len(message.parts)))
        parts = [*message.parts[:at], TextPart(extra), *message.parts[at:]]
        return replace(message, parts=normalize_parts(parts))
    if kind == "image":
        at = draw(st.integers(0, len(message.parts)))
        return replace(message, parts=(*message.parts[:at], draw(images), *message.parts[at:]))
    return draw(messages())
