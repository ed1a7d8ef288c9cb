"""From a whole OpenAI Chat Completions request to the ChatService's request."""

from __future__ import annotations

from proxy_core.errors import invalid
from proxy_core.openai_wire import ChatCompletionRequest
from proxy_core.request import ChatRequest


def chat_request(
    request: ChatCompletionRequest, *, session_id: str | None = None, namespace: str = ""
) -> ChatRequest:
    """The ChatRequest that `request` states, for `ChatService.open_turn` (or
    `complete`, `stream`); `session_id` and `namespace` are the caller's (the HTTP
    server's `X-Session-Id` header and API key). How the reply is delivered (`stream`,
    `stream_options`) stays the caller's business.

    Raises an invalid-request ChatError for what the service cannot honour: more than
    one choice (`n`) and `logprobs`.
    """
    if request.n is not None and request.n != 1:
        raise invalid(f"n={request.n}: only n=1 is supported.", "n")
    if request.logprobs:
        raise invalid("logprobs are not supported.", "logprobs")
    return ChatRequest(
        model=request.model,
        messages=request.messages,
        user=request.user,
        session_id=session_id,
        reasoning_effort=request.reasoning_effort,
        response_format=request.response_format,
        stop=request.stop,
        namespace=namespace,
        tools=request.tools,
        tool_choice=request.tool_choice,
        parallel_tool_calls=request.parallel_tool_calls,
        functions=request.functions,
        function_call=request.function_call,
    )
