"""The SDK MCP server we serve the CLI: its answers to the CLI's MCP requests, the held
tool calls and their results; and the words and config the CLI is given for it."""

from __future__ import annotations

import json
from typing import Any

from proxy_cli_backend.client_tools import (
    MAX_RESULT_CHARS,
    NOT_RUN,
    ToolBridge,
    announce_line,
    client_name,
    instruction,
    mcp_config,
    upstream_name,
)
from proxy_core import Base64Image, ChoiceMode, ClientTool, ToolOffer, ToolResult

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = ClientTool("get_weather", "The weather of a city.", SCHEMA, strict=True)
TIME = ClientTool("get_time", "The time in a city.")


def mcp(message: dict[str, Any], server: str = "client") -> dict[str, Any]:
    """The `request` of an mcp_message control request, as the CLI sends it."""
    return {"subtype": "mcp_message", "server_name": server, "message": message}


def call(rpc_id: int, tool_use_id: str, name: str = "get_weather") -> dict[str, Any]:
    meta = {"claudecode/toolUseId": tool_use_id, "progressToken": rpc_id}
    params = {"name": name, "arguments": {"city": "Paris"}, "_meta": meta}
    return mcp({"method": "tools/call", "params": params, "jsonrpc": "2.0", "id": rpc_id})


def answer(line: bytes | None) -> dict[str, Any]:
    """The control_response a stdin line carries."""
    assert line is not None
    assert line.endswith(b"\n")
    decoded = json.loads(line)
    assert decoded["type"] == "control_response"
    response: dict[str, Any] = decoded["response"]
    return response


def rpc(line: bytes | None, request_id: str) -> dict[str, Any]:
    """The JSON-RPC answer in a successful control_response to `request_id`."""
    response = answer(line)
    assert response["subtype"] == "success"
    assert response["request_id"] == request_id
    inner: dict[str, Any] = response["response"]["mcp_response"]
    return inner


def test_initialize_answers_with_the_asked_protocol_and_a_tools_capability() -> None:
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c"}}
    line = ToolBridge([WEATHER]).handle(
        "r0", mcp({"method": "initialize", "params": params, "jsonrpc": "2.0", "id": 0})
    )
    reply = rpc(line, "r0")
    assert reply["id"] == 0
    assert reply["result"]["protocolVersion"] == "2025-11-25"
    assert "tools" in reply["result"]["capabilities"]
    assert reply["result"]["serverInfo"]["name"] == "client"


def test_a_notification_is_acknowledged_without_a_json_rpc_id() -> None:
    line = ToolBridge([WEATHER]).handle(
        "r1", mcp({"method": "notifications/initialized", "jsonrpc": "2.0"})
    )
    reply = rpc(line, "r1")
    assert "id" not in reply
    assert "error" not in reply


def test_tools_list_serves_the_definitions_with_their_schemas_unchanged() -> None:
    bridge = ToolBridge([WEATHER, TIME])
    reply = rpc(bridge.handle("r2", mcp({"method": "tools/list", "jsonrpc": "2.0", "id": 1})), "r2")
    assert reply["id"] == 1
    listed = reply["result"]["tools"]
    assert [(t["name"], t["description"], t["inputSchema"]) for t in listed] == [
        ("get_weather", "The weather of a city.", SCHEMA),
        ("get_time", "The time in a city.", {"type": "object", "properties": {}}),
    ]
    # Each declares the longest result the model must get whole (the CLI's ceiling).
    assert [t["_meta"] for t in listed] == [{"anthropic/maxResultSizeChars": MAX_RESULT_CHARS}] * 2


def test_a_call_is_held_until_its_result_is_supplied() -> None:
    bridge = ToolBridge([WEATHER])
    assert bridge.handle("r3", call(2, "toolu_a")) is None
    assert bridge.held == 1
    (line,) = bridge.supply([ToolResult("toolu_a", "sunny")])
    reply = rpc(line, "r3")
    assert reply == {
        "jsonrpc": "2.0",
        "id": 2,
        "result": {"content": [{"type": "text", "text": "sunny"}], "isError": False},
    }
    assert bridge.held == 0


def test_an_error_result_is_answered_as_an_error() -> None:
    bridge = ToolBridge([WEATHER])
    bridge.handle("r3", call(2, "toolu_a"))
    (line,) = bridge.supply([ToolResult("toolu_a", "no such city", is_error=True)])
    assert rpc(line, "r3")["result"]["isError"] is True


def test_notes_after_a_result_are_text_blocks_of_their_own_after_it() -> None:
    bridge = ToolBridge([WEATHER])
    bridge.handle("r3", call(2, "toolu_a"))
    (line,) = bridge.supply([ToolResult("toolu_a", "sunny", notes=("Be brief.", "<r>"))])
    assert rpc(line, "r3")["result"]["content"] == [
        {"type": "text", "text": "sunny"},
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "<r>"},
    ]


def test_a_results_images_are_mcp_image_blocks_after_its_text_and_before_its_notes() -> None:
    bridge = ToolBridge([WEATHER])
    bridge.handle("r3", call(2, "toolu_a"))
    png, gif = Base64Image("image/png", "iVBORw0KGgo="), Base64Image("image/gif", "R0lGODlh")
    result = ToolResult("toolu_a", "two maps", notes=("Be brief.",), images=(png, gif))
    (line,) = bridge.supply([result])
    assert rpc(line, "r3")["result"]["content"] == [
        {"type": "text", "text": "two maps"},
        {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
        {"type": "image", "data": "R0lGODlh", "mimeType": "image/gif"},
        {"type": "text", "text": "Be brief."},
    ]


def test_a_result_of_images_alone_has_no_empty_text_block() -> None:
    bridge = ToolBridge([WEATHER])
    bridge.handle("r3", call(2, "toolu_a"))
    (line,) = bridge.supply([ToolResult("toolu_a", "", images=(Base64Image("image/png", "AA=="),))])
    assert rpc(line, "r3")["result"]["content"] == [
        {"type": "image", "data": "AA==", "mimeType": "image/png"}
    ]


def test_a_result_supplied_before_its_call_answers_the_call_at_once() -> None:
    # The CLI asks parallel calls one after another: the second after the first is answered.
    bridge = ToolBridge([WEATHER, TIME])
    bridge.handle("r3", call(2, "toolu_a"))
    lines = bridge.supply([ToolResult("toolu_a", "sunny"), ToolResult("toolu_b", "noon")])
    assert [rpc(line, "r3")["id"] for line in lines] == [2]
    reply = rpc(bridge.handle("r4", call(3, "toolu_b", "get_time")), "r4")
    assert reply["id"] == 3
    assert reply["result"]["content"] == [{"type": "text", "text": "noon"}]
    assert bridge.held == 0


def test_a_refused_call_is_answered_not_run_as_an_error() -> None:
    bridge = ToolBridge([WEATHER, TIME])
    assert bridge.refuse(["toolu_b"]) == []  # not asked yet: answered when it is
    reply = rpc(bridge.handle("r4", call(3, "toolu_b", "get_time")), "r4")
    assert reply["result"] == {"content": [{"type": "text", "text": NOT_RUN}], "isError": True}


def test_a_refused_call_already_held_is_answered_at_once() -> None:
    bridge = ToolBridge([WEATHER, TIME])
    bridge.handle("r4", call(3, "toolu_b", "get_time"))
    (line,) = bridge.refuse(["toolu_b"])
    assert rpc(line, "r4")["result"]["isError"] is True
    assert bridge.held == 0


def test_a_cancelled_call_is_forgotten_and_its_late_result_answers_nothing() -> None:
    bridge = ToolBridge([WEATHER])
    bridge.handle("r3", call(2, "toolu_a"))
    cancelled = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 2, "reason": "SdkError: Request timed out"},
    }
    assert "error" not in rpc(bridge.handle("r5", mcp(cancelled)), "r5")
    assert bridge.held == 0
    # The result kept for a call that may be asked again is not an answer to the old one.
    assert bridge.supply([ToolResult("toolu_a", "late")]) == []


def test_a_cancellation_of_another_call_keeps_the_held_one() -> None:
    bridge = ToolBridge([WEATHER])
    bridge.handle("r3", call(2, "toolu_a"))
    cancelled = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
    bridge.handle("r5", mcp(cancelled))
    assert bridge.held == 1


def test_a_control_cancel_forgets_the_call_of_that_request() -> None:
    bridge = ToolBridge([WEATHER])
    bridge.handle("r3", call(2, "toolu_a"))
    bridge.cancel("r3")
    assert bridge.held == 0


def test_an_unknown_method_is_a_json_rpc_method_not_found() -> None:
    reply = rpc(
        ToolBridge([WEATHER]).handle(
            "r6", mcp({"method": "resources/list", "jsonrpc": "2.0", "id": 4})
        ),
        "r6",
    )
    assert reply["id"] == 4
    assert reply["error"]["code"] == -32601


def test_a_ping_is_answered() -> None:
    reply = rpc(
        ToolBridge([WEATHER]).handle("r6", mcp({"method": "ping", "jsonrpc": "2.0", "id": 5})), "r6"
    )
    assert reply == {"jsonrpc": "2.0", "id": 5, "result": {}}


def test_another_servers_request_is_refused_and_holds_nothing() -> None:
    bridge = ToolBridge([WEATHER])
    request = call(2, "toolu_a")
    request["server_name"] = "other"
    reply = rpc(bridge.handle("r7", request), "r7")
    assert reply["error"]["code"] == -32601
    assert bridge.held == 0


def test_a_call_without_a_tool_use_id_is_an_invalid_params_error() -> None:
    message = {"method": "tools/call", "params": {"name": "get_weather"}, "jsonrpc": "2.0", "id": 2}
    bridge = ToolBridge([WEATHER])
    reply = rpc(bridge.handle("r8", mcp(message)), "r8")
    assert reply["error"]["code"] == -32602
    assert bridge.held == 0


def test_a_request_that_is_not_an_mcp_message_is_refused() -> None:
    response = answer(ToolBridge([WEATHER]).handle("r9", {"subtype": "can_use_tool"}))
    assert response["subtype"] == "error"
    assert response["request_id"] == "r9"
    assert "can_use_tool" in response["error"]


def test_an_mcp_message_without_a_message_is_refused() -> None:
    response = answer(ToolBridge([WEATHER]).handle("r9", {"subtype": "mcp_message"}))
    assert response["subtype"] == "error"


def test_names_carry_the_servers_prefix_upstream_only() -> None:
    assert upstream_name("get_weather") == "mcp__client__get_weather"
    assert client_name("mcp__client__get_weather") == "get_weather"
    assert client_name("Read") is None
    assert client_name("mcp__other__get_weather") is None


def test_the_mcp_config_names_one_sdk_server_with_its_call_timeout() -> None:
    assert json.loads(mcp_config(90_000)) == {
        "mcpServers": {"client": {"type": "sdk", "name": "client", "timeout": 90_000}}
    }


def test_the_announcement_tells_the_cli_we_serve_the_client_server() -> None:
    line = json.loads(announce_line("proxy-1"))
    assert line["type"] == "control_request"
    assert line["request_id"] == "proxy-1"
    assert line["request"]["subtype"] == "initialize"
    assert line["request"]["sdkMcpServers"] == ["client"]


def test_only_a_required_or_named_choice_has_an_instruction() -> None:
    assert instruction(ToolOffer((WEATHER, TIME))) is None
    assert instruction(ToolOffer((WEATHER, TIME), ChoiceMode.NONE)) is None
    required = instruction(ToolOffer((WEATHER, TIME), ChoiceMode.REQUIRED))
    assert required is not None
    assert "`mcp__client__get_weather`" in required
    assert "`mcp__client__get_time`" in required
    named = instruction(ToolOffer((WEATHER, TIME), ChoiceMode.FUNCTION, "get_time"))
    assert named is not None
    assert "`mcp__client__get_time`" in named
    assert "get_weather" not in named
