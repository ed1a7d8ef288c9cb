"""Rendering a turn's events as OpenAI chunks (SSE) or as one completion."""

from __future__ import annotations

import secrets
from typing import Final

import msgspec

from proxy_core import FailureReason, Finished, ToolCall, Usage
from proxy_http.errors import answered, chat_error_body
from proxy_http.wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    CompletionUsage,
    Delta,
    FinishReason,
    FunctionCallOut,
    FunctionDelta,
    PromptTokensDetails,
    ToolCallDelta,
    ToolCallOut,
)

KEEPALIVE: Final = b": keep-alive\n\n"
DONE: Final = b"data: [DONE]\n\n"

_encoder = msgspec.json.Encoder()

# Characters JSON may leave raw that line splitters built on `str.splitlines` (httpx's
# `iter_lines`, many hand-written SSE readers) take for line ends: NEL, LINE SEPARATOR,
# PARAGRAPH SEPARATOR. In an encoded JSON document they only occur inside strings, where
# the `\uXXXX` escape means the same character.
_LINE_BREAKERS: Final = (
    ("\u0085".encode(), b"\\u0085"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def new_completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def finish_reason(
    stop_reason: str | None, *, calls: bool = False, legacy: bool = False
) -> FinishReason:
    """OpenAI's finish_reason for the upstream's stop_reason: a reply that ends with
    client tool `calls` ends as `tool_calls` (`function_call` when `legacy`: the request
    used `functions`). The CLI's own tools (its StructuredOutput among them) are not
    the client's calls."""
    if calls:
        return "function_call" if legacy else "tool_calls"
    return "length" if stop_reason == "max_tokens" else "stop"


def completion_usage(usage: Usage) -> CompletionUsage:
    """OpenAI usage: prompt tokens count cached ones too; cache reads are `cached_tokens`."""
    prompt = usage.prompt_tokens
    return CompletionUsage(
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens,
        total_tokens=prompt + usage.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cache_read_tokens),
        cost=cost_of(usage),
    )


def cost_of(usage: Usage) -> float | msgspec.UnsetType:
    """The turn's cost in USD for a `cost` field: left out (UNSET) when not known."""
    return msgspec.UNSET if usage.cost_usd is None else usage.cost_usd


def json_line(value: object) -> bytes:
    """`value` as JSON on one line: JSON escapes newlines, and this the other breaks."""
    data = _encoder.encode(value)
    for raw, escaped in _LINE_BREAKERS:
        if raw in data:  # a scan of a short chunk; the copy only when one is there
            data = data.replace(raw, escaped)
    return data


def sse_event(payload: msgspec.Struct) -> bytes:
    """One `data:` event on one line (see `json_line`)."""
    return b"data: " + json_line(payload) + b"\n\n"


class ChunkRenderer:
    """Builds the chunks of one streamed completion: same id, created and model in each
    (a `StreamRenderer` for chat completions).

    The stream opens with the role chunk and ends with `data: [DONE]`. With
    `include_usage` (the request's `stream_options.include_usage`), every chunk carries
    `"usage": null` and the extra, final usage chunk comes before `[DONE]`. With
    `legacy` (the request used `functions`), a call streams as `function_call`. With
    `keepalive_chunks`, a keepalive is a chunk whose content is empty (which adds nothing
    to the reply) instead of a `: keep-alive` comment, which some clients' idle timers
    do not count; it only ever follows the role chunk.
    """

    def __init__(
        self,
        completion_id: str,
        created: int,
        model: str,
        *,
        include_usage: bool = False,
        legacy: bool = False,
        keepalive_chunks: bool = False,
    ) -> None:
        self.completion_id = completion_id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.legacy = legacy
        self.keepalive_chunks = keepalive_chunks
        self._no_usage: msgspec.UnsetType | None = None if include_usage else msgspec.UNSET

    def _chunk(
        self,
        delta: Delta,
        finish: FinishReason | None = None,
    ) -> bytes:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish)
        return sse_event(
            ChatCompletionChunk(
                self.completion_id,
                "chat.completion.chunk",
                self.created,
                self.model,
                [choice],
                usage=self._no_usage,
            )
        )

    def opening(self) -> bytes:
        return self._chunk(Delta(role="assistant", content=""))

    def text(self, text: str) -> bytes:
        return self._chunk(Delta(content=text))

    def thinking(self, text: str) -> bytes:
        return self._chunk(Delta(reasoning_content=text))

    def tool_call(self, index: int, call_id: str, name: str) -> bytes:
        """The first chunk of call `index`: its id, type and function name."""
        function = FunctionDelta(name=name, arguments="")
        if self.legacy:
            return self._chunk(Delta(function_call=function))
        return self._chunk(
            Delta(tool_calls=[ToolCallDelta(index, function, id=call_id, type="function")])
        )

    def tool_arguments(self, index: int, text: str) -> bytes:
        """A fragment of call `index`'s arguments."""
        function = FunctionDelta(arguments=text)
        if self.legacy:
            return self._chunk(Delta(function_call=function))
        return self._chunk(Delta(tool_calls=[ToolCallDelta(index, function)]))

    async def finished(self, finished: Finished, usage: Usage) -> bytes:
        """The final chunk, the usage chunk when asked for, and `[DONE]`."""
        end = self.finish(finished.stop_reason, calls=bool(finished.tool_calls))
        if self.include_usage:
            end += self.usage(usage)
        return end + DONE

    def failed(self, reason: FailureReason, message: str) -> bytes:
        """An OpenAI error event, then `[DONE]`."""
        return self.error(reason, message) + DONE

    def keepalive(self) -> bytes:
        return self._chunk(Delta(content="")) if self.keepalive_chunks else KEEPALIVE

    def finish(self, stop_reason: str | None, *, calls: bool = False) -> bytes:
        reason = finish_reason(stop_reason, calls=calls, legacy=self.legacy)
        return self._chunk(Delta(), reason)

    def usage(self, usage: Usage) -> bytes:
        chunk = ChatCompletionChunk(
            self.completion_id,
            "chat.completion.chunk",
            self.created,
            self.model,
            [],
            usage=completion_usage(usage),
        )
        return sse_event(chunk)

    @staticmethod
    def error(reason: FailureReason, message: str) -> bytes:
        _, body = chat_error_body(reason, message)
        return sse_event(answered(body))


def completion(
    *,
    completion_id: str,
    created: int,
    model: str,
    text: str,
    thinking: str | None,
    stop_reason: str | None,
    usage: Usage,
    tool_calls: tuple[ToolCall, ...] = (),
    legacy: bool = False,
) -> ChatCompletion:
    """A non-streamed completion; `thinking` is None when it must not be shown. A reply
    with `tool_calls` lists them (as `function_call` when `legacy`), and its content is
    null when it wrote no text."""
    calls = [ToolCallOut(c.id, FunctionCallOut(c.name, c.arguments)) for c in tool_calls]
    message = AssistantMessage(
        role="assistant",
        content=text or (None if calls else ""),
        reasoning_content=thinking or None,
        tool_calls=calls if calls and not legacy else None,
        function_call=calls[0].function if calls and legacy else None,
    )
    reason = finish_reason(stop_reason, calls=bool(calls), legacy=legacy)
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[Choice(index=0, message=message, finish_reason=reason)],
        usage=completion_usage(usage),
    )
