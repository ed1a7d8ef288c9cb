"""Canned CLI stdout lines, shaped like what claude 2.1.331 prints (trimmed)."""

from __future__ import annotations

import json
from typing import Any

SESSION = "657b4acd-73c3-4f4f-b85a-78bdb30b242e"


def line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def init() -> bytes:
    return line(
        {"type": "system", "subtype": "init", "session_id": SESSION, "model": "m", "tools": []}
    )


def text_delta(text: str, *, parent: str | None = None) -> bytes:
    event = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }
    return line(
        {
            "type": "stream_event",
            "event": event,
            "session_id": SESSION,
            "parent_tool_use_id": parent,
        }
    )


def thinking_delta(text: str) -> bytes:
    delta = {"type": "thinking_delta", "thinking": text}
    event = {"type": "content_block_delta", "index": 0, "delta": delta}
    return line({"type": "stream_event", "event": event, "parent_tool_use_id": None})


def assistant(
    *blocks: dict[str, Any],
    uuid: str = "a-1",
    model: str = "claude-sonnet-5-5",
    stop_reason: str | None = None,
) -> bytes:
    """A complete assistant message; `stop_reason` is only set on one that was not
    streamed (the CLI's non-streaming fallback), as the CLI prints it."""
    message: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant"}
    message |= {"model": model, "content": list(blocks), "stop_reason": stop_reason}
    return line({"type": "assistant", "message": message, "parent_tool_use_id": None, "uuid": uuid})


def tool_result(uuid: str, *, parent: str | None = None) -> bytes:
    """The user line with a tool's result (parent: a subagent's)."""
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}
    message = {"role": "user", "content": [block]}
    return line({"type": "user", "message": message, "parent_tool_use_id": parent, "uuid": uuid})


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


_PRICED: Any = object()


def result(
    value: str | None = "done",
    *,
    is_error: bool = False,
    status: int | None = None,
    errors: list[str] | None = None,
    subtype: str = "success",
    structured: Any = None,
    total_cost: Any = _PRICED,
    model_usage: Any = None,
    usage: dict[str, Any] | None = None,
) -> bytes:
    """A result; `total_cost` and `model_usage` are the CLI's running totals (by default
    those of a process's first turn: this turn's own usage, priced at $0.0001, or at
    nothing for an error result, as an upstream error that answered nothing is)."""
    if total_cost is _PRICED:
        total_cost = 0.0 if is_error else 0.0001
    usage = usage or {
        "input_tokens": 27,
        "output_tokens": 4,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 10,
        "server_tool_use": {"web_search_requests": 0},
    }
    return line(
        {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "result": value,
            "session_id": SESSION,
            "stop_reason": "end_turn" if not is_error else "stop_sequence",
            "api_error_status": status,
            "usage": usage,
            "errors": errors or [],
            "total_cost_usd": total_cost,
            "modelUsage": model_usage if model_usage is not None else models(usage, total_cost),
            "a_field_from_the_future": {"x": 1},
            **({} if structured is None else {"structured_output": structured}),
        }
    )


def models(usage: dict[str, Any], cost: Any, model: str = "claude-sonnet-5-5") -> dict[str, Any]:
    """A `modelUsage` holding `usage` for one model, as the CLI prints it."""
    figures = {
        "inputTokens": usage.get("input_tokens", 0),
        "outputTokens": usage.get("output_tokens", 0),
        "cacheReadInputTokens": usage.get("cache_read_input_tokens", 0),
        "cacheCreationInputTokens": usage.get("cache_creation_input_tokens", 0),
        "webSearchRequests": 0,
        "costUSD": cost,
        "contextWindow": 1000000,
    }
    return {model: figures}


def rate_limit(info: dict[str, Any]) -> bytes:
    """A `rate_limit_event` (subscription mode) with `info` as its `rate_limit_info`."""
    return line({"type": "rate_limit_event", "rate_limit_info": info, "session_id": SESSION})


def stream(event: dict[str, Any]) -> bytes:
    """A raw upstream stream event as the CLI relays it (with --include-partial-messages)."""
    return line({"type": "stream_event", "event": event, "session_id": SESSION})


def message_start(message_id: str = "msg_1") -> bytes:
    message = {"id": message_id, "type": "message", "role": "assistant", "content": []}
    return stream({"type": "message_start", "message": message})


def message_delta(stop_reason: str = "end_turn") -> bytes:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return stream({"type": "message_delta", "delta": delta, "usage": {"output_tokens": 9}})


def message_stop() -> bytes:
    """Ends every message; after a dropped connection the CLI sends it with no message_delta."""
    return stream({"type": "message_stop"})


def connection_retry(delay_ms: float = 574, attempt: int = 1) -> bytes:
    """The notice for a dropped connection: no status (as the CLI prints it)."""
    return line(
        {
            "type": "system",
            "subtype": "api_retry",
            "attempt": attempt,
            "max_retries": 2,
            "retry_delay_ms": delay_ms,
            "error_status": None,
            "error": "unknown",
            "session_id": SESSION,
        }
    )


def api_retry(status: int, delay_ms: float, attempt: int = 1) -> bytes:
    return line(
        {
            "type": "system",
            "subtype": "api_retry",
            "attempt": attempt,
            "max_retries": 10,
            "retry_delay_ms": delay_ms,
            "error_status": status,
            "error": "rate_limit",
            "session_id": SESSION,
        }
    )


# -- client tools: lines in the order claude 2.1.331 prints them (probe-findings 8a/8b) --


def usage_start(
    message_id: str = "msg_1", *, input_tokens: int = 27, cache_read: int = 100
) -> bytes:
    """A message_start carrying the message's input usage (as the upstream sends it)."""
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": 1,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": 10,
    }
    message = {"id": message_id, "type": "message", "role": "assistant", "content": []}
    return stream({"type": "message_start", "message": {**message, "usage": usage}})


def message_end(stop_reason: str, output_tokens: int) -> bytes:
    """A message_delta with its stop reason and the message's output usage."""
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    usage = {"output_tokens": output_tokens}
    return stream({"type": "message_delta", "delta": delta, "usage": usage})


def tool_start(index: int, tool_use_id: str, name: str) -> bytes:
    block = {"type": "tool_use", "id": tool_use_id, "name": name, "input": {}}
    return stream({"type": "content_block_start", "index": index, "content_block": block})


def text_start(index: int) -> bytes:
    block = {"type": "text", "text": ""}
    return stream({"type": "content_block_start", "index": index, "content_block": block})


def text_at(index: int, value: str) -> bytes:
    delta = {"type": "text_delta", "text": value}
    return stream({"type": "content_block_delta", "index": index, "delta": delta})


def input_delta(index: int, fragment: str) -> bytes:
    delta = {"type": "input_json_delta", "partial_json": fragment}
    return stream({"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int) -> bytes:
    return stream({"type": "content_block_stop", "index": index})


def tool_use(tool_use_id: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_use_id, "name": name, "input": value}


def tools_call(request_id: str, rpc_id: int, tool_use_id: str, name: str, args: Any) -> bytes:
    """The CLI's tools/call of a client tool (`name` without the server's prefix)."""
    meta = {"claudecode/toolUseId": tool_use_id, "progressToken": rpc_id}
    message = {
        "method": "tools/call",
        "params": {"name": name, "arguments": args, "_meta": meta},
        "jsonrpc": "2.0",
        "id": rpc_id,
    }
    request = {"subtype": "mcp_message", "server_name": "client", "message": message}
    return line({"type": "control_request", "request_id": request_id, "request": request})


def tool_results(uuid: str, *tool_use_ids: str) -> bytes:
    """The user line with the results of the given calls."""
    blocks = [{"type": "tool_result", "tool_use_id": i, "content": "r"} for i in tool_use_ids]
    message = {"role": "user", "content": blocks}
    return line({"type": "user", "message": message, "parent_tool_use_id": None, "uuid": uuid})


def result_usage(
    *, input_tokens: int, output_tokens: int, cache_read: int, cache_creation: int
) -> bytes:
    """A successful result with the turn's whole usage."""
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
    }
    return line(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": "done",
            "session_id": SESSION,
            "stop_reason": "end_turn",
            "usage": usage,
        }
    )


def tools_list(request_id: str, rpc_id: int = 1) -> bytes:
    """The CLI asking our MCP server for its tools."""
    message = {"method": "tools/list", "jsonrpc": "2.0", "id": rpc_id}
    request = {"subtype": "mcp_message", "server_name": "client", "message": message}
    return line({"type": "control_request", "request_id": request_id, "request": request})
