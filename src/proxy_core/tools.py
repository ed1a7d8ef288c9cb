"""Client tools: the functions a request offers the model, and how it must use them.

OpenAI's `tools`, `tool_choice` and `parallel_tool_calls` (or the legacy `functions`
and `function_call`) become one `ToolOffer`. Each definition is checked the way the
upstream would check it, so a bad one is a 400 naming its field rather than a
failure deep inside a turn. A tool's JSON Schema is passed on unchanged, except
that a schema without a `type` is given `"type": "object"` (OpenAI accepts `{}`
for "no parameters"; MCP and the Anthropic API need the type).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from proxy_core.conversation import Base64Image
from proxy_core.errors import invalid
from proxy_core.openai_wire import (
    FunctionDefinition,
    FunctionTool,
    NamedToolChoice,
    ToolChoice,
    ToolChoiceFunction,
    convert,
)

# fullmatch, not `$`: `$` also matches before a trailing newline.
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_TOOLS = 128
# One definition's description and schema travel to the CLI in an MCP answer; real ones
# are a few KiB.
MAX_SCHEMA_BYTES = 64 * 1024
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


class ClientTool(msgspec.Struct, frozen=True):
    """One function the client offers: `parameters` is its JSON Schema (an object)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: dict(_NO_PARAMETERS))
    strict: bool | None = None


class ChoiceMode(enum.StrEnum):
    """How the model must use the offered tools in its reply."""

    AUTO = "auto"  # call or not, as it sees fit
    NONE = "none"  # no tool is offered for this reply
    REQUIRED = "required"  # call at least one
    FUNCTION = "function"  # call `ToolOffer.forced`


class ToolOffer(msgspec.Struct, frozen=True):
    """The client tools of one request and the rules for using them.

    `parallel`: more than one call may come in one reply. `legacy`: the request used
    `functions` (the reply then names its one call `function_call`).
    """

    tools: tuple[ClientTool, ...]
    choice: ChoiceMode = ChoiceMode.AUTO
    forced: str | None = None
    parallel: bool = True
    legacy: bool = False

    @property
    def offered(self) -> tuple[ClientTool, ...]:
        """The tools the model sees this turn: none for `none`, only the named one when
        a function is forced, else all."""
        if self.choice is ChoiceMode.NONE:
            return ()
        if self.choice is ChoiceMode.FUNCTION:
            return tuple(t for t in self.tools if t.name == self.forced)
        return self.tools

    @property
    def must_call(self) -> bool:
        """The reply must call a tool (`required`, or a named function)."""
        return self.choice in (ChoiceMode.REQUIRED, ChoiceMode.FUNCTION) and bool(self.offered)

    @property
    def max_calls(self) -> int | None:
        """The most calls one reply may hand the client (None: no limit)."""
        return None if self.parallel else 1


class ToolResult(msgspec.Struct, frozen=True):
    """A client's answer to one call of a suspended turn: `call_id` is the backend's id
    of the call, `text` the result's text and `images` its images, in order, after the
    text (inline data only: an MCP image carries its bytes, never a URL; none on an
    error result, of which the CLI keeps only the text); `is_error` marks a result the
    client reported as a failure. `notes` are texts the client sent
    after its results in the same request (a user message after the tool messages:
    Claude Code's reminders, an Anthropic user turn with text beside its tool_result
    blocks); they go with the last result, as text blocks of their own after its
    images, so the waiting turn goes on with them rather than starting over."""

    call_id: str
    text: str
    is_error: bool = False
    notes: tuple[str, ...] = ()
    images: tuple[Base64Image, ...] = ()


def parse_tool_offer(
    tools: Sequence[FunctionTool] | Sequence[Mapping[str, object]] | None = None,
    tool_choice: ToolChoice | Mapping[str, object] | None = None,
    parallel_tool_calls: bool | None = None,
    *,
    functions: object = None,
    function_call: object = None,
) -> ToolOffer | None:
    """The ToolOffer a request states, or None when it offers no tools.

    `tools` and `tool_choice` are typed (`proxy_core.openai_wire`) or plain JSON data;
    the legacy `functions` / `function_call` stand in for them when `tools` is absent.
    Raises an invalid-request ChatError naming the field: a name outside
    `^[a-zA-Z0-9_-]{1,64}$`, parameters that are not an object schema, a duplicate
    name, an unknown type, a choice naming a function not offered, a choice that asks
    for a call when no tools are given.
    """
    # A lone `function_call` is legacy too, so that forcing a call without functions is
    # refused rather than ignored.
    legacy = not tools and (
        functions is not None or (function_call is not None and tool_choice is None)
    )
    if legacy:
        definitions = convert(functions, list[FunctionDefinition] | None, "functions") or []
        root, choice_root = "functions", "function_call"
        choice = _legacy_choice(function_call)
        parallel = False
    else:
        typed = convert(tools, list[FunctionTool] | None, "tools") or []
        definitions = [tool.function for tool in typed]
        root, choice_root = "tools", "tool_choice"
        choice = convert(tool_choice, ToolChoice | None, "tool_choice")
        parallel = parallel_tool_calls is not False
    if not definitions:
        if choice in ("required",) or isinstance(choice, NamedToolChoice):
            raise invalid(
                f"'{choice_root}' asks for a tool call but no '{root}' are given.", choice_root
            )
        return None
    if len(definitions) > MAX_TOOLS:
        raise invalid(f"Too many tools: {len(definitions)} > {MAX_TOOLS}.", root)
    parsed: list[ClientTool] = []
    seen: set[str] = set()
    for index, definition in enumerate(definitions):
        path = f"{root}[{index}]" if legacy else f"{root}[{index}].function"
        tool = _tool(definition, path)
        if tool.name in seen:
            raise invalid(f"Duplicate tool name {tool.name!r}.", f"{path}.name")
        seen.add(tool.name)
        parsed.append(tool)
    mode, forced = _mode(choice)
    if forced is not None and forced not in seen:
        param = "function_call.name" if legacy else "tool_choice.function.name"
        raise invalid(f"{choice_root} names {forced!r}, which is not among the tools.", param)
    return ToolOffer(tuple(parsed), mode, forced, parallel=parallel, legacy=legacy)


def _tool(definition: FunctionDefinition, path: str) -> ClientTool:
    if not TOOL_NAME.fullmatch(definition.name):
        raise invalid(
            f"Invalid tool name {definition.name!r}: it must match ^[a-zA-Z0-9_-]{{1,64}}$.",
            f"{path}.name",
        )
    schema = definition.parameters
    if schema is None:
        schema = dict(_NO_PARAMETERS)
    elif "type" not in schema:
        schema = {"type": "object", **schema}
    elif schema["type"] != "object":
        raise invalid(
            f"The parameters of {definition.name!r} must be a JSON Schema of type 'object'.",
            f"{path}.parameters",
        )
    size = len(msgspec.json.encode(schema)) + len((definition.description or "").encode())
    if size > MAX_SCHEMA_BYTES:
        raise invalid(
            f"The definition of {definition.name!r} is over {MAX_SCHEMA_BYTES // 1024} KiB.", path
        )
    return ClientTool(
        name=definition.name,
        description=definition.description or "",
        parameters=schema,
        strict=definition.strict,
    )


def _mode(choice: ToolChoice | None) -> tuple[ChoiceMode, str | None]:
    if isinstance(choice, NamedToolChoice):
        return ChoiceMode.FUNCTION, choice.function.name
    return ChoiceMode(choice or "auto"), None


def _legacy_choice(value: object) -> ToolChoice | None:
    """`function_call`: "none", "auto", or {"name": ...} forcing one function."""
    if value is None:
        return None
    if value == "none":
        return "none"
    if value == "auto":
        return "auto"
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return NamedToolChoice(ToolChoiceFunction(value["name"]))
    raise invalid("'function_call' must be 'none', 'auto' or {\"name\": ...}.", "function_call")
