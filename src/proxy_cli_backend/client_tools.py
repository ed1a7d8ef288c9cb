"""Client tools as the CLI sees them: an in-process ("sdk") MCP server that we serve.

The CLI is started with `--mcp-config` naming a server of type `sdk` and with
`--allowedTools` listing its tools, and told in `initialize` that we serve it
(`sdkMcpServers`). It then sends its MCP traffic to us as `mcp_message` control
requests: `initialize`, `tools/list` (answered with the client's definitions, their
JSON Schemas unchanged) and `tools/call`. A `tools/call` is the model calling a
client tool; the client runs it, so its answer is held until the client's next
request brings the result (`supply`). The CLI waits for it meanwhile: its turn is
suspended, not ended.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import structlog

from proxy_cli_backend.protocol import (
    encode_control_error,
    encode_control_request,
    encode_control_response,
)
from proxy_core import Block, ClientTool, TextBlock, ToolOffer, ToolResult

log = structlog.get_logger(__name__)

SERVER = "client"
PREFIX = f"mcp__{SERVER}__"
"""How the CLI (and the model) names a client tool: `mcp__client__<name>`."""

_PROTOCOL = "2025-06-18"
CALL_TIMEOUT_MS = 24 * 3600 * 1000
"""How long the CLI waits for a client tool's result: longer than a suspended turn may
wait, so the proxy's own expiry (which ends the process) always comes first."""
_META_ID = "claudecode/toolUseId"
# The CLI cuts a tool result over 50,000 characters to a preview (and a file on its own
# disk): a client's result is the client's data, so each tool asks for the most room the
# CLI grants (the core refuses longer results: ParseLimits.max_tool_result_chars).
_MAX_RESULT_META = "anthropic/maxResultSizeChars"
MAX_RESULT_CHARS = 500_000  # the CLI does not go higher (a larger ask is cut to it)
TOOL_ENV = {"ENABLE_TOOL_SEARCH": "false"}
"""The CLI's environment when it serves client tools: every definition is sent to the
model whole, never deferred behind a tool-search step (agents offer 30 tools and more,
and expect each to be callable at once)."""
NOT_RUN = (
    "Not run: only one tool call per reply is allowed here (parallel_tool_calls is false). "
    "Call it again in a later reply if it is still needed."
)


def upstream_name(name: str) -> str:
    """The name the model calls a client tool by."""
    return PREFIX + name


def client_name(name: str) -> str | None:
    """The client's own name of a tool the model called, or None for another tool."""
    return name[len(PREFIX) :] if name.startswith(PREFIX) else None


def announce() -> list[str]:
    """`initialize`'s `sdkMcpServers`: the servers the CLI's driver serves itself."""
    return [SERVER]


def announce_line(request_id: str) -> bytes:
    """The `initialize` control request that tells the CLI we serve the client tools."""
    return encode_control_request(request_id, "initialize", hooks=None, sdkMcpServers=announce())


def mcp_config(call_timeout_ms: int) -> str:
    """The `--mcp-config` JSON: one sdk server, with a tool-call limit above the longest
    a suspended turn may wait (the CLI's own default would give up first)."""
    server = {"type": "sdk", "name": SERVER, "timeout": call_timeout_ms}
    return json.dumps({"mcpServers": {SERVER: server}}, separators=(",", ":"))


def offered(offer: ToolOffer | None) -> tuple[ClientTool, ...]:
    """The client tools a turn offers the model (none without an offer)."""
    return offer.offered if offer is not None else ()


def bridge_for(offer: ToolOffer | None) -> ToolBridge | None:
    """The MCP server for a turn's tools; None when it offers none."""
    tools = offered(offer)
    return ToolBridge(tools) if tools else None


def tools_key(tools: Sequence[ClientTool]) -> str | None:
    """A digest of the offered definitions (None for none): a process serves only the
    tools it was started with."""
    if not tools:
        return None
    return hashlib.sha256(msgspec.json.encode(tools)).hexdigest()[:32]


def instruction(offer: ToolOffer | None) -> str | None:
    """The words that make the model call when the client's tool_choice requires it
    (None when it does not): added to the turn's prompt (`with_instruction`), and sent
    again as a reminder if a reply ends without the call."""
    if offer is None or not offer.must_call:
        return None
    names = [upstream_name(tool.name) for tool in offer.offered]
    if offer.forced is not None:
        return f"[tool_choice] Call the `{names[0]}` tool now: this reply must call it."
    listed = ", ".join(f"`{name}`" for name in names)
    return f"[tool_choice] Call one of these tools: {listed}. This reply must call at least one."


def with_instruction(prompt: Sequence[Block], words: str | None) -> tuple[Block, ...]:
    """A turn's prompt, ending with the `instruction` when there is one."""
    return (*prompt, TextBlock(words)) if words else tuple(prompt)


class ToolBridge:
    """Answers the CLI's MCP requests for one process's client tools.

    A `tools/call` is answered at once when its result is known (supplied, or refused
    as a call beyond the reply's limit); otherwise it is held until `supply`.
    """

    def __init__(self, tools: Sequence[ClientTool]) -> None:
        self.tools = tuple(tools)
        self._held: dict[str, tuple[str, Any]] = {}  # tool_use id -> (request id, rpc id)
        self._results: dict[str, ToolResult] = {}  # tool_use id -> result not yet asked for

    @property
    def held(self) -> int:
        """Calls the CLI waits on that have no result yet."""
        return len(self._held)

    def handle(self, request_id: str, request: dict[str, Any]) -> bytes | None:
        """The stdin line answering a control request, or None while its call is held."""
        if request.get("subtype") != "mcp_message":
            return encode_control_error(request_id, f"unsupported request {request.get('subtype')}")
        message = request.get("message")
        if not isinstance(message, dict):
            return encode_control_error(request_id, "mcp_message without a message")
        if request.get("server_name") != SERVER:
            return _rpc(request_id, _error(message.get("id"), -32601, "unknown server"))
        method, rpc_id = message.get("method"), message.get("id")
        if rpc_id is None:  # a notification: nothing to answer but the control request
            if method == "notifications/cancelled":
                self._cancelled(message.get("params"))
            return _rpc(request_id, {"jsonrpc": "2.0", "result": {}})
        if method == "initialize":
            return _rpc(request_id, _result(rpc_id, self._initialize(message)))
        if method == "tools/list":
            return _rpc(request_id, _result(rpc_id, {"tools": self._listing()}))
        if method == "tools/call":
            return self._call(request_id, rpc_id, message.get("params"))
        if method == "ping":
            return _rpc(request_id, _result(rpc_id, {}))
        return _rpc(request_id, _error(rpc_id, -32601, f"method not found: {method}"))

    def cancel(self, request_id: str) -> None:
        """The CLI gave up on a control request: forget the call it held."""
        for tool_use_id, (held, _) in list(self._held.items()):
            if held == request_id:
                del self._held[tool_use_id]

    def _cancelled(self, params: Any) -> None:
        """The CLI gave up on a tools/call (its time limit, an interrupt): forget it."""
        rpc_id = params.get("requestId") if isinstance(params, dict) else None
        for tool_use_id, (_, held) in list(self._held.items()):
            if held == rpc_id:
                del self._held[tool_use_id]

    def supply(self, results: Iterable[ToolResult]) -> list[bytes]:
        """Take the client's results; the lines answering the calls already held."""
        lines: list[bytes] = []
        for result in results:
            held = self._held.pop(result.call_id, None)
            if held is None:
                self._results[result.call_id] = result
            else:
                lines.append(_rpc(held[0], _result(held[1], _content(result))))
        return lines

    def refuse(self, tool_use_ids: Iterable[str]) -> list[bytes]:
        """Answer calls the client is not given (beyond the reply's limit) as not run."""
        return self.supply(ToolResult(call_id, NOT_RUN, is_error=True) for call_id in tool_use_ids)

    def _initialize(self, message: dict[str, Any]) -> dict[str, Any]:
        params = message.get("params")
        asked = params.get("protocolVersion") if isinstance(params, dict) else None
        return {
            "protocolVersion": asked if isinstance(asked, str) else _PROTOCOL,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": SERVER, "version": "1"},
        }

    def _listing(self) -> list[dict[str, Any]]:
        return [
            {
                "name": tool.name,
                "description": tool.description,
                "inputSchema": tool.parameters,
                "_meta": {_MAX_RESULT_META: MAX_RESULT_CHARS},
            }
            for tool in self.tools
        ]

    def _call(self, request_id: str, rpc_id: Any, params: Any) -> bytes | None:
        meta = params.get("_meta") if isinstance(params, dict) else None
        tool_use_id = meta.get(_META_ID) if isinstance(meta, dict) else None
        if not isinstance(tool_use_id, str):
            log.warning("client_tool_call_without_id", params=str(params)[:200])
            return _rpc(request_id, _error(rpc_id, -32602, "tools/call without a tool use id"))
        result = self._results.pop(tool_use_id, None)
        if result is not None:
            return _rpc(request_id, _result(rpc_id, _content(result)))
        self._held[tool_use_id] = (request_id, rpc_id)
        return None


def _content(result: ToolResult) -> dict[str, Any]:
    """A result as MCP content: its text, its images (MCP image blocks, which the CLI
    passes on as image blocks of the same tool_result), then the notes, which the
    client sent after the whole result."""
    content: list[dict[str, Any]] = []
    if result.text:
        content.append({"type": "text", "text": result.text})
    content.extend(
        {"type": "image", "data": image.data, "mimeType": image.media_type}
        for image in result.images
    )
    content.extend({"type": "text", "text": note} for note in result.notes if note)
    return {"content": content, "isError": result.is_error}


def _result(rpc_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "result": result}


def _error(rpc_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}


def _rpc(request_id: str, response: dict[str, Any]) -> bytes:
    return encode_control_response(request_id, {"mcp_response": response})
