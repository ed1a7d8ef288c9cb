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
    *blocks: dict[str, Any], uuid: str = "a-1", model: str = "claude-sonnet-5-5"
) -> bytes:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": model}
    message["content"] = list(blocks)
    return line({"type": "assistant", "message": message, "parent_tool_use_id": None, "uuid": uuid})


def tool_result(uuid: str, *, parent: str | None = None) -> bytes:
    """The user line with a tool's result (parent: a subagent's)."""
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}
    message = {"role": "user", "content": [block]}
    return line({"type": "user", "message": message, "parent_tool_use_id": parent, "uuid": uuid})


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def result(
    value: str | None = "done",
    *,
    is_error: bool = False,
    status: int | None = None,
    errors: list[str] | None = None,
    subtype: str = "success",
    structured: Any = None,
) -> bytes:
    usage = {
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
            "total_cost_usd": 0.0001,
            "a_field_from_the_future": {"x": 1},
            **({} if structured is None else {"structured_output": structured}),
        }
    )


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
