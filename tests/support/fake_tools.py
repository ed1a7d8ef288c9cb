"""The fake upstream's client-tool behaviour: a scripted model that calls the tools it is offered.

`tool_reply` decides, from a Messages API request body, the content blocks of a reply that
calls tools (or reports tool results); `fake_upstream` streams them. The markers and rules
are listed in `fake_upstream`'s docstring. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from proxy_core import Role, TextBlock, parse_rendering
from proxy_core.rendering import RenderingError

Block = dict[str, Any]

_CALL = re.compile(r"\[\[call:([^:\]\s]+)")
_SAY = re.compile(r"\[\[say:(.*?)\]\]", re.DOTALL)
_ARGS = "[[args:"
_CALL_THE = re.compile(r"Call the `([^`]+)` tool")
_ONE_OF = "Call one of these tools:"
# One backticked name of a list: separators (commas, "or", bullets, new lines) before it.
_LISTED_NAME = re.compile(r"[\s,;]*(?:(?:or|and)\s+)?(?:[-*]\s+)?`([^`]+)`")
_DECODER = json.JSONDecoder()
# Past this depth an example object keeps only its required properties and an array is
# empty, so a recursive schema (a tree whose nodes hold nodes) still ends.
_MAX_DEPTH = 6
_GIVE_UP_DEPTH = 4 * _MAX_DEPTH


class MarkerError(ValueError):
    """A call or args marker whose JSON does not parse."""


@dataclass(frozen=True)
class _Call:
    name: str
    input: Any
    given: bool  # False: generate the input from the tool's schema


def text_block(text: str) -> Block:
    return {"type": "text", "text": text}


def tool_use_block(name: str, tool_input: Any) -> Block:
    return {
        "type": "tool_use",
        "id": f"toolu_{uuid.uuid4().hex[:20]}",
        "name": name,
        "input": tool_input,
    }


# -- what a request carries --------------------------------------------------------


def offered_tools(body: Any) -> list[str]:
    """Names of the tools a request offers (its `tools`), in order."""
    tools = body.get("tools") if isinstance(body, dict) else None
    return [t["name"] for t in tools or [] if isinstance(t, dict) and "name" in t]


def tool_results(body: Any) -> list[dict[str, Any]]:
    """The tool_result blocks of the last user message: tool_use_id, text, is_error."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    found: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            found.append(
                {
                    "tool_use_id": block.get("tool_use_id"),
                    "text": _result_text(block.get("content")),
                    "is_error": bool(block.get("is_error")),
                }
            )
    return found


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


def _system_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    if isinstance(system, str):
        return system
    return "\n".join(
        b.get("text", "") for b in system or [] if isinstance(b, dict) and b.get("type") == "text"
    )


def _user_texts(body: dict[str, Any]) -> Iterator[str]:
    for message in body.get("messages", []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content
            continue
        for block in content or []:
            if isinstance(block, dict) and block.get("type") == "text":
                yield block.get("text", "")


# -- markers -----------------------------------------------------------------------


def _json_at(text: str, start: int, marker: str) -> tuple[Any, int]:
    """The JSON value at `start` and the index after the `]]` that must follow it."""
    try:
        value, end = _DECODER.raw_decode(text, start)
    except ValueError as error:
        raise MarkerError(f"{marker} holds no JSON value: {text[start : start + 40]!r}") from error
    if not text.startswith("]]", end):
        raise MarkerError(f"{marker} does not end with ]] after its JSON")
    return value, end + 2


def _calls(text: str) -> list[_Call]:
    calls: list[_Call] = []
    for match in _CALL.finditer(text):
        name, after = match.group(1), match.end()
        if text.startswith("]]", after):
            calls.append(_Call(name, None, given=False))
        elif text.startswith(":", after):
            value, _ = _json_at(text, after + 1, f"[[call:{name}:...]]")
            calls.append(_Call(name, value, given=True))
        else:
            raise MarkerError(f"[[call:{name}... is not closed")
    return calls


def _args(body: dict[str, Any]) -> tuple[bool, Any]:
    """The first `[[args:JSON]]` in any user message: (found, value)."""
    for text in _user_texts(body):
        start = text.find(_ARGS)
        if start >= 0:
            value, _ = _json_at(text, start + len(_ARGS), "[[args:...]]")
            return True, value
    return False, None


# -- the reply -----------------------------------------------------------------------


def tool_reply(body: dict[str, Any], own: str) -> list[Block] | None:
    """The reply's content blocks when the request calls tools or reports tool results.

    `own` is the last user message's own text. None means: nothing to do with tools here
    (the fake answers as it otherwise would, e.g. the echo). A last user message that is
    the proxy's transcript of a whole conversation (a fresh CLI session) is read as a
    model reads it: only its last message asks something now, and tool messages at its
    end are the results it reports.
    """
    results = tool_results(body)
    tail = transcript_tail(body)
    if tail is not None:
        said, results, transcript = tail
        # An instruction the proxy appends after the transcript still counts.
        own = said + own.removeprefix(transcript)
    try:
        source = own if _CALL.search(own) or not results else _joined(results, plain=True)
        calls = _calls(source)
        if calls:
            return _call_blocks(body, calls, _SAY.findall(source))
        if not results:
            instructed = _instructed(body, own)
            if instructed is not None:
                return instructed
    except MarkerError as error:
        return [text_block(f"bad marker: {error}")]
    if results:
        return [text_block(f"tool result seen: {_joined(results, plain=False)}")]
    return None


def transcript_tail(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str] | None:
    """When the last user message starts with a rendered transcript: the text of its last
    message if a user wrote it, the results of the tool messages it ends with, and the
    transcript's own text."""
    messages = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = messages[-1].get("content") if messages else None
    first = content[0] if isinstance(content, list) and content else None
    if not (isinstance(first, dict) and first.get("type") == "text"):
        return None
    transcript = first.get("text", "")
    try:
        parsed = parse_rendering((TextBlock(transcript),))
    except (RenderingError, ValueError, KeyError, IndexError):
        return None
    if len(parsed) < 2 and parsed and parsed[0].role is Role.USER:
        return None  # a plain user message, not a transcript
    results: list[dict[str, Any]] = []
    for message in reversed(parsed):
        if message.role is not Role.TOOL:
            break
        results.insert(
            0,
            {
                "tool_use_id": message.tool_call_id,
                "text": message.text,
                "is_error": message.is_error,
            },
        )
    last = parsed[-1] if parsed else None
    said = last.text if last is not None and last.role is Role.USER else ""
    return said, results, transcript


def _joined(results: list[dict[str, Any]], *, plain: bool) -> str:
    if plain:
        return "\n".join(r["text"] for r in results)
    return " | ".join(("error: " if r["is_error"] else "") + r["text"] for r in results)


def _resolve(name: str, offered: list[str]) -> str | None:
    """The offered tool called `name`, or whose name ends with `__name` (an MCP prefix)."""
    if name in offered:
        return name
    return next((o for o in offered if o.endswith(f"__{name}")), None)


def _schema_of(body: dict[str, Any], name: str) -> Any:
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("name") == name:
            return tool.get("input_schema", {})
    return {}


def _call_blocks(body: dict[str, Any], calls: list[_Call], says: list[str]) -> list[Block]:
    offered = offered_tools(body)
    blocks = [text_block(text) for text in says]
    for call in calls:
        name = _resolve(call.name, offered)
        if name is None:
            return [text_block(f"tool {call.name} is not offered")]
        tool_input = call.input if call.given else example_input(_schema_of(body, name))
        blocks.append(tool_use_block(name, tool_input))
    return blocks


def _instructed(body: dict[str, Any], own: str) -> list[Block] | None:
    """A call the request's text explicitly asks for (the user's text first, then the
    system prompt), or None."""
    for text in (own, _system_text(body)):
        wanted = _instructed_names(text)
        if wanted:
            return _instructed_call(body, wanted)
    return None


def _instructed_names(text: str) -> list[str]:
    match = _CALL_THE.search(text)
    if match:
        return [match.group(1)]
    start = text.find(_ONE_OF)
    if start < 0:
        return []
    names: list[str] = []
    position = start + len(_ONE_OF)
    while (listed := _LISTED_NAME.match(text, position)) is not None:
        names.append(listed.group(1))
        position = listed.end()
    return names


def _instructed_call(body: dict[str, Any], wanted: list[str]) -> list[Block]:
    offered = offered_tools(body)
    name = next((n for w in wanted if (n := _resolve(w, offered)) is not None), None)
    if name is None:
        return [text_block(f"tool {' or '.join(wanted)} is not offered")]
    found, value = _args(body)
    tool_input = value if found else example_input(_schema_of(body, name))
    return [tool_use_block(name, tool_input)]


# -- example input from a JSON schema -------------------------------------------------


def example_input(schema: Any) -> Any:
    """A small valid instance of a JSON schema: every property, one item per array,
    the first enum value or anyOf/oneOf branch, `$ref`s into `$defs`/`definitions`
    resolved. A tool's schema with no type is taken as an object."""
    if isinstance(schema, dict) and "type" not in schema and not _is_composite(schema):
        schema = {**schema, "type": "object"}
    return _example(schema, schema, 0)


def _is_composite(schema: dict[str, Any]) -> bool:
    return any(k in schema for k in ("$ref", "anyOf", "oneOf", "allOf", "enum", "const"))


def _example(schema: Any, root: Any, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > _GIVE_UP_DEPTH:  # a $ref cycle: stop somewhere
        return "example" if not isinstance(schema, dict) else {}
    if "$ref" in schema:
        return _example(_pointer(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _example(schema[key][0], root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = _example(part, root, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    return _typed(schema, _type_of(schema), root, depth)


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _typed(schema: dict[str, Any], kind: str, root: Any, depth: int) -> Any:
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        items = schema.get("items", {})
        if depth >= _MAX_DEPTH:
            return []
        if isinstance(items, list):  # a tuple schema: one value per position
            return [_example(item, root, depth + 1) for item in items]
        return [_example(items, root, depth + 1)]
    simple: dict[str, Any] = {
        "string": "example",
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "null": None,
    }
    return simple.get(kind, "example")


def _object(schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    required = [r for r in schema.get("required") or [] if isinstance(r, str)]
    names = required if depth >= _MAX_DEPTH else [*properties, *required]
    value: dict[str, Any] = {}
    for name in names:
        if name not in value:
            value[name] = _example(properties.get(name, {"type": "string"}), root, depth + 1)
    return value


def _pointer(root: Any, ref: Any) -> Any:
    """The subschema a local `$ref` (`#/$defs/Name`, `#/definitions/Name`) points at."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return {}
    node = root
    for part in ref[1:].split("/")[1:]:
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return {}
        node = node[key]
    return node
