"""Where each field of a translated request came from, so that an error the core
raises about the chat request (`messages[4].content[1]`: the system message and the
split turns counted) names the Anthropic field the client sent
(`messages[2].content[2]`), in the Messages API's words."""

from __future__ import annotations

import re
from typing import Final

import msgspec

from proxy_core import ChatError


class Origin(msgspec.Struct, frozen=True):
    """Where one chat message came from: its Anthropic path, and that of each of its
    content parts and tool calls (in order)."""

    path: str
    parts: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()


_CHAT_FIELD = re.compile(r"^(messages|tools)\[(\d+)\](?:\.(content|tool_calls)\[(\d+)\])?(.*)$")
_SCALAR_FIELDS: Final = {
    "stop": "stop_sequences",
    "reasoning_effort": "output_config.effort",
    "response_format": "output_config.format",
    "tool_choice.function.name": "tool_choice.name",
    "tool_choice": "tool_choice",
    "tools": "tools",
    "messages": "messages",
}


# The chat API's words for tool calls and results in a core error, and the Messages
# API's for the same things (in this order: longer phrases first).
_VOCABULARY: Final = (
    ("An assistant message with 'tool_calls'", "An assistant turn with tool_use blocks"),
    ("of the assistant message before it", "of the assistant turn before it"),
    ("The tool message's", "The tool_result block's"),
    ("tool messages", "tool_result blocks"),
    ("a tool message", "a tool_result block"),
    ("'tool_calls'", "tool_use blocks"),
    ("'tool_call_id'", "tool_use_id"),
    ("tool_call_id", "tool_use_id"),
)


def in_messages_terms(message: str) -> str:
    """A core error's message in the Messages API's terms (tool_use, tool_result)."""
    for chat, ours in _VOCABULARY:
        message = message.replace(chat, ours)
    return message


class Origins(msgspec.Struct, frozen=True):
    """Where each chat message and function tool came from (see `rehome`)."""

    messages: tuple[Origin, ...]
    tools: tuple[int, ...]

    def field(self, param: str) -> str:
        """The Anthropic field for the chat request's `param` (the closest one named)."""
        if param in _SCALAR_FIELDS:
            return _SCALAR_FIELDS[param]
        for chat, ours in _SCALAR_FIELDS.items():
            if param.startswith(chat + "."):
                return ours
        found = _CHAT_FIELD.match(param)
        if found is None:
            return param
        kind, index, inner, position, rest = found.groups()
        if kind == "tools":
            tools = self.tools
            where = f"tools[{tools[int(index)]}]" if int(index) < len(tools) else "tools"
            return where + rest.replace(".function.parameters", ".input_schema").replace(
                ".function", ""
            )
        origin = self.messages[int(index)] if int(index) < len(self.messages) else None
        if origin is None:
            return "messages"
        listed = origin.parts if inner == "content" else origin.calls
        if position is not None and int(position) < len(listed):
            return listed[int(position)]
        return origin.path

    def rehome(self, error: ChatError) -> ChatError:
        """`error`, naming the Anthropic field rather than the chat request's."""
        if error.param is None:
            return error
        field = self.field(error.param)
        message = in_messages_terms(error.message.replace(f" (at '{error.param}')", ""))
        return ChatError(
            error.reason,
            f"{field}: {message}",
            param=field,
            retry_after=error.retry_after,
        )
