"""From an Anthropic Messages request to the core's ChatRequest (OpenAI chat shapes).

- `system` (a string or text blocks) becomes the system message.
- A user turn's `tool_result` blocks become `tool` messages, in order, with their
  text and images in place, and its other blocks (text, images) one user message
  after them.
- An assistant turn's text and `tool_use` blocks become ONE assistant message with
  content and `tool_calls` (arguments: the JSON of `input`), as the core recorded
  the reply that made them; its thinking blocks are dropped (the ledger never saw
  them).
- Client tools (`name`, `description`, `input_schema`) become function tools; server
  tools (any `type` other than `custom`) are not offered, only named.

A core error names the chat request's fields (`messages[3]` counts the system
message and the split turns): the `Origins` of the translation name the Anthropic
field instead (`proxy_http.messages.origins`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from proxy_core import (
    AssistantToolCall,
    ChatAssistantMessage,
    ChatError,
    ChatMessage,
    ChatRequest,
    ChatSystemMessage,
    ChatToolMessage,
    ChatUserMessage,
    ContentPart,
    FunctionCall,
    FunctionDefinition,
    FunctionTool,
    ImageUrl,
    ImageUrlContent,
    JsonSchemaFormat,
    JsonSchemaSpec,
    NamedToolChoice,
    TextContent,
    ToolChoiceFunction,
)
from proxy_core.errors import invalid
from proxy_core.openai_wire import ToolChoice as ChatToolChoice
from proxy_core.openai_wire import error_location
from proxy_core.stops import MAX_STOPS
from proxy_http.messages.origins import Origin, Origins
from proxy_http.messages.wire import (
    INPUT_BLOCK_TYPES,
    Base64Source,
    CustomTool,
    ImageBlock,
    InputBlock,
    MessagesInput,
    MessagesRequest,
    TextBlock,
    ToolChoiceAny,
    ToolChoiceAuto,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
)

ENDPOINT: Final = "messages"
"""The surface's name in request log lines and /stats."""

CUSTOM_TOOL_TYPES: Final = (None, "custom")
"""A tool `type` the proxy offers the model (absent, or `custom`); others are server tools."""

# Budgets of `thinking.enabled` as the effort the CLI runs at: below each bound, its level.
_BUDGET_EFFORTS: Final = ((4_096, "low"), (16_384, "medium"), (32_768, "high"))
_TOP_EFFORT: Final = "max"

UNHONOURED: Final = ("temperature", "top_p", "top_k")
"""Accepted without effect, though honoured they would change the reply."""


def invalid_at(path: str, what: str) -> ChatError:
    """An invalid request in Anthropic's wording: `messages.0.content: what`."""
    return invalid(f"{path}: {what}" if path else what, path or None)


class Translated(msgspec.Struct, frozen=True):
    """A Messages request as the core's: the ChatRequest, whether thinking is shown,
    the server tools left out and the fields ignored (for the response headers), and
    where each chat field came from (`Origins.rehome`)."""

    request: ChatRequest
    show_thinking: bool
    origins: Origins
    ignored_tools: tuple[str, ...] = ()
    ignored_fields: tuple[str, ...] = ()


def translate(
    body: MessagesInput,
    *,
    session_id: str | None,
    namespace: str,
    show_by_default: bool,
    endpoint: str = ENDPOINT,
) -> Translated:
    """The ChatRequest `body` states (see the module doc); raises an invalid-request
    ChatError, worded as Anthropic words them, for what it cannot carry."""
    messages, origins = chat_messages(body)
    tools, tool_origins, ignored_tools = function_tools(body.tools)
    choice, parallel = tool_choice(body)
    effort, show = thinking(body, show_by_default)
    stops: Sequence[str] | None = None
    ignored: tuple[str, ...] = ()
    if isinstance(body, MessagesRequest):
        stops = stop_sequences(body.stop_sequences)
        ignored = tuple(name for name in UNHONOURED if getattr(body, name) is not None)
    output = body.output_config
    response_format = (
        JsonSchemaFormat(JsonSchemaSpec(schema=output.format.schema))
        if output is not None and output.format is not None
        else None
    )
    request = ChatRequest(
        model=body.model,
        messages=messages,
        user=body.metadata.user_id if body.metadata else None,
        session_id=session_id,
        reasoning_effort=effort,
        response_format=response_format,
        stop=stops,
        namespace=namespace,
        tools=tools if body.tools is not None else None,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        endpoint=endpoint,
    )
    return Translated(
        request,
        show,
        Origins(tuple(origins), tool_origins),
        ignored_tools,
        ignored,
    )


# -- messages -------------------------------------------------------------------------


def chat_messages(body: MessagesInput) -> tuple[list[ChatMessage], list[Origin]]:
    """The chat messages of `system` and `messages`, and where each came from."""
    out: list[ChatMessage] = []
    origins: list[Origin] = []
    system = _system_parts(body.system)
    if system:
        out.append(ChatSystemMessage(content=system))
        origins.append(Origin("system"))
    for index, turn in enumerate(body.messages):
        path = f"messages[{index}]"
        if isinstance(turn.content, str):
            out.append(_plain(turn.role, turn.content))
            origins.append(Origin(path, (f"{path}.content",)))
            continue
        blocks = [
            _block(raw, f"{path}.content[{position}]") for position, raw in enumerate(turn.content)
        ]
        if turn.role == "user":
            translated = _user_turn(blocks, path)
        elif turn.role == "assistant":
            translated = _assistant(blocks, path)
        else:
            translated = [_system_turn(blocks, path)]
        for message, origin in translated:
            out.append(message)
            origins.append(origin)
    return out, origins


def _plain(role: str, text: str) -> ChatMessage:
    """A turn whose content is a string."""
    if role == "user":
        return ChatUserMessage(content=text)
    if role == "assistant":
        return ChatAssistantMessage(content=text)
    return ChatSystemMessage(content=text)


def _system_turn(blocks: Sequence[InputBlock], path: str) -> tuple[ChatMessage, Origin]:
    """A `system` turn: its text joins the system prompt; it carries nothing else."""
    parts: list[ContentPart] = []
    for position, block in enumerate(blocks):
        if not isinstance(block, TextBlock):
            raise invalid_at(
                f"{path}.content[{position}].type",
                f"a system turn carries only text, not {block_type(block)!r} blocks.",
            )
        parts.append(TextContent(block.text))
    paths = tuple(f"{path}.content[{position}]" for position in range(len(parts)))
    return ChatSystemMessage(content=parts), Origin(path, paths)


def _system_parts(system: object) -> list[ContentPart]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [TextContent(system)]
    assert isinstance(system, list)
    return [TextContent(block.text) for block in system]


def _block(raw: dict[str, Any], path: str) -> InputBlock:
    """One content block, typed; a kind the proxy does not carry is named."""
    kind = raw.get("type")
    if kind not in INPUT_BLOCK_TYPES:
        carried = ", ".join(sorted(INPUT_BLOCK_TYPES))
        raise invalid_at(
            f"{path}.type",
            f"content blocks of type {str(kind)[:40]!r} are not supported by this proxy "
            f"(it carries {carried}).",
        )
    try:
        block: InputBlock = msgspec.convert(raw, InputBlock)
        return block
    except msgspec.ValidationError as error:
        raise _decoding_error(error, path) from None


def _decoding_error(error: msgspec.ValidationError, root: str) -> ChatError:
    what, where = error_location(error)
    if what.startswith("Object missing required field"):
        what = "Field required"
    path = root + (("." if where and not where.startswith("[") else "") + where)
    return invalid_at(path, what)


def _image(block: ImageBlock) -> ImageUrlContent:
    source = block.source
    if isinstance(source, Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return ImageUrlContent(ImageUrl(url))


def _user_turn(blocks: Sequence[InputBlock], path: str) -> list[tuple[ChatMessage, Origin]]:
    results: list[tuple[ChatMessage, Origin]] = []
    parts: list[ContentPart] = []
    part_paths: list[str] = []
    for position, block in enumerate(blocks):
        where = f"{path}.content[{position}]"
        if isinstance(block, ToolResultBlock):
            content, content_paths = _tool_result_content(block, where)
            results.append(
                (
                    ChatToolMessage(
                        content=content,
                        tool_call_id=block.tool_use_id,
                        is_error=True if block.is_error else None,
                    ),
                    Origin(where, content_paths),
                )
            )
        elif isinstance(block, TextBlock):
            parts.append(TextContent(block.text))
            part_paths.append(where)
        elif isinstance(block, ImageBlock):
            parts.append(_image(block))
            part_paths.append(where)
        else:
            raise invalid_at(
                f"{where}.type",
                f"a user turn cannot carry {block_type(block)!r} blocks (they belong to "
                "assistant turns).",
            )
    if parts or not results:
        results.append((ChatUserMessage(content=parts), Origin(path, tuple(part_paths))))
    return results


def _tool_result_content(
    block: ToolResultBlock, path: str
) -> tuple[list[ContentPart], tuple[str, ...]]:
    """A tool result's text and image parts, in order, and the path of each: its images
    stay in the result, which the suspended CLI turn takes with them."""
    content = block.content
    if content is None:
        return [], ()
    if isinstance(content, str):
        return [TextContent(content)], (path,)
    parts: list[ContentPart] = []
    for item in content:
        parts.append(TextContent(item.text) if isinstance(item, TextBlock) else _image(item))
    return parts, tuple(f"{path}.content[{position}]" for position in range(len(content)))


def _assistant(blocks: Sequence[InputBlock], path: str) -> list[tuple[ChatMessage, Origin]]:
    parts: list[ContentPart] = []
    part_paths: list[str] = []
    calls: list[AssistantToolCall] = []
    call_paths: list[str] = []
    for position, block in enumerate(blocks):
        where = f"{path}.content[{position}]"
        if isinstance(block, TextBlock):
            parts.append(TextContent(block.text))
            part_paths.append(where)
        elif isinstance(block, ImageBlock):
            parts.append(_image(block))  # the core refuses it, naming it
            part_paths.append(where)
        elif isinstance(block, ToolUseBlock):
            arguments = msgspec.json.encode(block.input).decode()
            calls.append(AssistantToolCall(block.id, FunctionCall(block.name, arguments)))
            call_paths.append(where)
        elif isinstance(block, ToolResultBlock):
            raise invalid_at(
                f"{where}.type",
                "an assistant turn cannot carry 'tool_result' blocks (they belong to user turns).",
            )
        # Thinking (and redacted thinking) is dropped: the CLI session has its own.
    message = ChatAssistantMessage(content=parts or None, tool_calls=calls or None)
    return [(message, Origin(path, tuple(part_paths), tuple(call_paths)))]


def block_type(block: InputBlock) -> str:
    """A block's `type` on the wire."""
    return str(type(block).__struct_config__.tag)


# -- tools ----------------------------------------------------------------------------


def function_tools(
    tools: list[dict[str, Any]] | None,
) -> tuple[list[FunctionTool], tuple[int, ...], tuple[str, ...]]:
    """The client tools as function tools, the index of each in `tools`, and the
    server tools left out (named by their `type`)."""
    offered: list[FunctionTool] = []
    positions: list[int] = []
    ignored: list[str] = []
    for index, raw in enumerate(tools or ()):
        kind = raw.get("type")
        if kind not in CUSTOM_TOOL_TYPES:
            ignored.append(str(kind)[:64])
            continue
        try:
            tool = msgspec.convert(raw, CustomTool)
        except msgspec.ValidationError as error:
            raise _decoding_error(error, f"tools[{index}]") from None
        definition = FunctionDefinition(tool.name, tool.description, tool.input_schema)
        offered.append(FunctionTool(definition))
        positions.append(index)
    return offered, tuple(positions), tuple(ignored)


def tool_choice(body: MessagesInput) -> tuple[ChatToolChoice | None, bool | None]:
    """`tool_choice` as the chat's, and `parallel_tool_calls` (False when
    `disable_parallel_tool_use`)."""
    choice = body.tool_choice
    if choice is None:
        return None, None
    parallel = False if getattr(choice, "disable_parallel_tool_use", None) else None
    if isinstance(choice, ToolChoiceAuto):
        return "auto", parallel
    if isinstance(choice, ToolChoiceAny):
        return "required", parallel
    if isinstance(choice, ToolChoiceTool):
        return NamedToolChoice(ToolChoiceFunction(choice.name)), parallel
    assert isinstance(choice, ToolChoiceNone)
    return "none", None


# -- options --------------------------------------------------------------------------


def effort_for_budget(budget: int) -> str:
    """The effort a `thinking.budget_tokens` asks for (see docs/messages.md)."""
    for bound, effort in _BUDGET_EFFORTS:
        if budget < bound:
            return effort
    return _TOP_EFFORT


def thinking(body: MessagesInput, show_by_default: bool) -> tuple[str | None, bool]:
    """The effort to run at (None: the CLI's default) and whether thinking is shown.

    `enabled` asks for an effort by its budget, `adaptive` (and `between_tools`) for
    the default; both show thinking unless `display` is `omitted`; `disabled` shows
    none. `output_config.effort` sets the effort whatever `thinking` says. Without
    `thinking`, the server's default (`--reasoning`) decides what is shown.
    """
    config = body.thinking
    effort: str | None = None
    show = show_by_default
    if config is not None:
        show = config.type != "disabled" and config.display != "omitted"
        if config.type == "enabled":
            if config.budget_tokens is None:
                raise invalid_at("thinking.budget_tokens", "Field required")
            effort = effort_for_budget(config.budget_tokens)
    if body.output_config is not None and body.output_config.effort is not None:
        effort = body.output_config.effort
    return effort, show


def stop_sequences(stops: list[str] | None) -> list[str] | None:
    """`stop_sequences` for the core (which takes at most MAX_STOPS distinct ones)."""
    if not stops:
        return None
    distinct = list(dict.fromkeys(stop for stop in stops if stop))
    if len(distinct) > MAX_STOPS:
        raise invalid_at(
            "stop_sequences", f"this proxy applies at most {MAX_STOPS} distinct stop sequences."
        )
    return distinct
