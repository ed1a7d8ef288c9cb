"""From a Responses API request to the core's chat shapes: input items to OpenAI chat
messages, flat function tools to chat tools, `tool_choice` and `text.format` to their
chat forms. Pure: what the route does with them is `routes`' business.

An assistant `message` item followed by `function_call` items becomes ONE assistant
chat message with those tool calls (as the reply that made them was recorded by the
core), and a `function_call_output` item a `tool` message answering its `call_id` (its
text and `input_image` parts in order), so a replayed history matches the session's
ledger. Item types we cannot use
(`reasoning`, `item_reference`, hosted tools' calls...) are dropped; tool types other
than `function` are ignored and reported (`Translated.ignored_tools`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import structlog

from proxy_core import ChatError
from proxy_core.errors import invalid
from proxy_core.openai_wire import convert, invalid_field
from proxy_http.responses.wire import (
    FlatFunctionTool,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputAudio,
    InputFile,
    InputImage,
    InputPart,
    InputText,
    MessageItem,
    OutputText,
    Refusal,
    ResponsesRequest,
)

_log = structlog.get_logger("proxy_http.responses")

ChatDict = dict[str, Any]
"""One OpenAI chat message (or tool, or format) as plain JSON data."""

Mode = Literal["auto", "none", "required"]
_MODES: dict[str, Mode] = {"auto": "auto", "none": "none", "required": "required"}


class Translated(msgspec.Struct, frozen=True):
    """What a request says, in the core's chat shapes.

    `messages` are the input's chat messages (no system message: `instructions` stays
    apart, since a continuation may keep its chain's); `sources[i]` is the request
    field that `messages[i]` came from (`input[3]`), for error paths. `tools` are the
    function tools in the chat shape (None: no `tools`), `tool_sources[i]` the index of
    `tools[i]` in the request; `ignored_tools` the other tool types, in order, once
    each; `ignored_choice` whether a `tool_choice` naming a tool we ignore was dropped.
    """

    messages: list[ChatDict]
    sources: list[str]
    tools: list[ChatDict] | None
    tool_sources: list[int]
    ignored_tools: tuple[str, ...]
    tool_choice: Mode | ChatDict | None
    ignored_choice: bool
    response_format: ChatDict | None


def translate(request: ResponsesRequest) -> Translated:
    """The request in chat shapes; raises an invalid-request ChatError naming the field."""
    messages, sources = input_messages(request.input)
    tools, tool_sources, ignored = function_tools(request.tools)
    choice, ignored_choice = tool_choice(request.tool_choice)
    return Translated(
        messages=messages,
        sources=sources,
        tools=tools,
        tool_sources=tool_sources,
        ignored_tools=ignored,
        tool_choice=choice,
        ignored_choice=ignored_choice,
        response_format=response_format(request.text.format if request.text else None),
    )


# -- input ------------------------------------------------------------------------


def input_messages(value: str | list[dict[str, Any]] | None) -> tuple[list[ChatDict], list[str]]:
    """The chat messages of `input` and the field each came from; an empty input is
    refused (there is nothing to answer)."""
    if isinstance(value, str):
        if not value.strip():
            raise invalid("input is empty: send the user's message.", "input")
        return [{"role": "user", "content": value}], ["input"]
    messages: list[ChatDict] = []
    sources: list[str] = []
    for index, item in enumerate(value or ()):
        where = f"input[{index}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            message = _message(convert(item, MessageItem, where), where)
            messages.append(message)
            sources.append(where)
        elif kind == "function_call":
            call = convert(item, FunctionCallItem, where)
            _add_call(messages, sources, call, where)
        elif kind == "function_call_output":
            result = convert(item, FunctionCallOutputItem, where)
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": result.call_id,
                    "content": _content(result.output, f"{where}.output"),
                }
            )
            sources.append(where)
        else:
            # Reasoning we cannot replay, references to items we never stored, hosted
            # tools' calls: the model can do nothing with them.
            _log.debug("input_item_dropped", item_type=str(kind), param=where)
    if not messages:
        raise invalid("input has no message: send at least one input item.", "input")
    return messages, sources


def _message(item: MessageItem, where: str) -> ChatDict:
    return {"role": item.role, "content": _content(item.content, f"{where}.content")}


def _add_call(
    messages: list[ChatDict], sources: list[str], call: FunctionCallItem, where: str
) -> None:
    """A replayed call joins the assistant message before it (the reply that made it),
    else starts an assistant message of its own."""
    entry = {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    if messages and messages[-1]["role"] == "assistant":
        messages[-1].setdefault("tool_calls", []).append(entry)
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [entry]})
    sources.append(where)


def _content(content: str | Sequence[InputPart], where: str) -> str | list[ChatDict]:
    if isinstance(content, str):
        return content
    return [_part(part, f"{where}[{index}]") for index, part in enumerate(content)]


def _part(part: InputPart, where: str) -> ChatDict:
    if isinstance(part, InputText | OutputText):
        return {"type": "text", "text": part.text}
    if isinstance(part, Refusal):
        return {"type": "text", "text": part.refusal}
    if isinstance(part, InputImage):
        if part.image_url is None:
            raise invalid_field(
                "Images by file_id cannot be read: send image_url (a data: or https URL)",
                f"{where}.image_url",
            )
        image: ChatDict = {"url": part.image_url}
        if part.detail is not None:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    assert isinstance(part, InputFile | InputAudio)
    kind = "input_file" if isinstance(part, InputFile) else "input_audio"
    raise invalid_field(f"{kind} parts are not supported: send text and images", f"{where}.type")


# -- tools --------------------------------------------------------------------------


def function_tools(
    tools: list[dict[str, Any]] | None,
) -> tuple[list[ChatDict] | None, list[int], tuple[str, ...]]:
    """The function tools in the chat shape, the request index of each, and the other
    tool types (ignored: the CLI cannot serve hosted tools), in order, once each."""
    if tools is None:
        return None, [], ()
    offered: list[ChatDict] = []
    sources: list[int] = []
    ignored: list[str] = []
    for index, tool in enumerate(tools):
        kind = tool.get("type")
        if not isinstance(kind, str) or not kind:
            raise invalid_field("A tool needs a type", f"tools[{index}].type")
        if kind != "function":
            if kind not in ignored:
                ignored.append(kind)
            continue
        flat = convert(tool, FlatFunctionTool, f"tools[{index}]")
        function: ChatDict = {"name": flat.name}
        for field in ("description", "parameters", "strict"):
            if (value := getattr(flat, field)) is not None:
                function[field] = value
        offered.append({"type": "function", "function": function})
        sources.append(index)
    return offered, sources, tuple(ignored)


def tool_choice(value: object) -> tuple[Mode | ChatDict | None, bool]:
    """The chat `tool_choice`, and whether the request's named a tool we ignore (then
    dropped: the model chooses as with `auto`)."""
    if value is None:
        return None, False
    if isinstance(value, str):
        mode = _MODES.get(value)
        if mode is None:
            raise invalid_field(
                f"Unknown tool_choice {value[:40]!r}: use auto, none, required or "
                '{"type": "function", "name": ...}',
                "tool_choice",
            )
        return mode, False
    if not isinstance(value, dict):
        raise invalid_field("tool_choice must be a string or an object", "tool_choice")
    if value.get("type") != "function":
        return None, True
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_field("A function tool_choice needs a name", "tool_choice.name")
    return {"type": "function", "function": {"name": name}}, False


# -- text.format ------------------------------------------------------------------------


class _JsonSchemaFormat(msgspec.Struct, frozen=True):
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


def response_format(value: dict[str, Any] | None) -> ChatDict | None:
    """The chat `response_format` of `text.format` (None for plain text)."""
    if value is None:
        return None
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = convert(value, _JsonSchemaFormat, "text.format")
        schema = {k: v for k, v in msgspec.structs.asdict(spec).items() if v is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise invalid_field(
        f"Unknown text.format type {str(kind)[:40]!r}: use text, json_object or json_schema",
        "text.format.type",
    )


# -- error paths --------------------------------------------------------------------------

_MESSAGE = re.compile(r"^messages\[(\d+)\](.*)$")
_TOOL = re.compile(r"^tools\[(\d+)\](?:\.function)?(.*)$")
_RENAMED = {
    "tool_choice.function.name": "tool_choice.name",
    "reasoning_effort": "reasoning.effort",
    "response_format": "text.format",
}


def _request_path(translated: Translated, param: str, leading: Sequence[str]) -> str:
    if found := _MESSAGE.match(param):
        index, rest = int(found.group(1)), found.group(2)
        if index < len(leading):
            return leading[index]
        sources = translated.sources
        index -= len(leading)
        return sources[index] + rest if index < len(sources) else "input"
    if found := _TOOL.match(param):
        index, rest = int(found.group(1)), found.group(2)
        if index < len(translated.tool_sources):
            return f"tools[{translated.tool_sources[index]}]{rest}"
        return "tools"
    if param.startswith("response_format.json_schema"):
        return "text.format" + param.removeprefix("response_format.json_schema")
    return _RENAMED.get(param, param)


def refused(error: ChatError, translated: Translated, leading: Sequence[str]) -> ChatError:
    """A core ChatError (its `param` a chat request's path) naming the Responses
    request's field instead; `leading` names the fields the core's messages before the
    input's came from (`instructions`, a continuation's history)."""
    if error.param is None:
        return error
    param = _request_path(translated, error.param, leading)
    if param == error.param:
        return error
    # The core's message names its field too: quoted as a path, or by its bare name.
    if error.param in _RENAMED:
        message = error.message.replace(error.param, param)
    else:
        message = error.message.replace(f"'{error.param}'", f"'{param}'")
    return ChatError(error.reason, message, param=param, retry_after=error.retry_after)
