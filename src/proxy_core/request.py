"""What a caller hands the ChatService (ChatRequest) and gets back whole (Completion)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from proxy_core.conversation import ToolCall
from proxy_core.events import Usage
from proxy_core.openai_wire import ChatMessage, FunctionTool, ResponseFormat, ToolChoice


class ChatRequest(msgspec.Struct, frozen=True):
    """One chat completion request, as any caller states it.

    `messages` are OpenAI messages, typed (`proxy_core.openai_wire.ChatMessage`) or as
    plain JSON data; `session_id` pins the conversation like the `X-Session-Id`
    header; `reasoning_effort` is OpenAI's (`low`, `medium`, `high`, ...: see
    `parse_effort`), None for the default; `response_format` and `stop` are OpenAI's
    too, typed or plain (see `parse_response_format`, `parse_stop`). `namespace` says
    whose conversations these are (the HTTP server uses one per API key): the same
    session id, user or opening under two namespaces is two conversations; "" is the
    namespace every caller shares. `tools`, `tool_choice`, `parallel_tool_calls`
    and the legacy `functions` / `function_call` are OpenAI's, typed or plain (see
    `parse_tool_offer`). `endpoint` names the API surface the request came through
    (`chat.completions`, `responses`, `messages`), for the statistics. `session_key`
    continues a conversation under the exact key an earlier request got (as
    `SessionKey.external` shows it, within `namespace`; `session_id` takes precedence:
    see `derive_session_key`). `chat_request`
    builds one from a whole `ChatCompletionRequest`.
    """

    model: str
    messages: Sequence[ChatMessage] | Sequence[Mapping[str, object]]
    user: str | None = None
    session_id: str | None = None
    reasoning_effort: str | None = None
    response_format: ResponseFormat | Mapping[str, object] | None = None
    stop: str | Sequence[str] | None = None
    namespace: str = ""
    tools: Sequence[FunctionTool] | Sequence[Mapping[str, object]] | None = None
    tool_choice: ToolChoice | Mapping[str, object] | None = None
    parallel_tool_calls: bool | None = None
    functions: Sequence[object] | None = None
    function_call: str | Mapping[str, object] | None = None
    endpoint: str = "chat.completions"
    session_key: str | None = None


class Completion(msgspec.Struct, frozen=True):
    """The collected outcome of a finished turn. `tool_calls` are the client tool calls
    it ended with (stop_reason `tool_use`); send their results in the next request."""

    text: str
    thinking: str
    stop_reason: str | None
    usage: Usage
    model: str
    session_key: str
    tool_calls: tuple[ToolCall, ...] = ()
