"""The OpenAI Responses API on the wire: the request as decoded, the input items the
translation reads, and the Response object (with its output items) as sent.

The request is decoded tolerantly: `input` items and `tools` stay plain JSON here and
are read one by one (`translate`), so an item or tool type we cannot use is dropped
rather than refused, while a malformed item of a type we use is refused with its
path (`input[2].call_id`). Unknown fields are ignored (SDKs and Codex send extras).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

# -- the request -------------------------------------------------------------------


class ReasoningConfig(msgspec.Struct, frozen=True):
    """`reasoning`: `effort` maps to the reasoning effort; `summary` (any value) asks for
    the thinking to be shown as a reasoning item's summary."""

    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class TextConfig(msgspec.Struct, frozen=True):
    """`text`: `format` is `text`, `json_object` or `json_schema` (read by `translate`);
    `verbosity` is accepted and has no effect."""

    format: dict[str, Any] | None = None
    verbosity: str | None = None


class ResponsesRequest(msgspec.Struct, frozen=True):
    """`POST /v1/responses`. See docs/responses.md for what each field does."""

    model: Annotated[str, msgspec.Meta(min_length=1, description="A model id (GET /v1/models).")]
    input: Annotated[
        str | list[dict[str, Any]] | None,
        msgspec.Meta(
            description="A string (one user message) or input items: messages, "
            "function_call, function_call_output (other item types are dropped)."
        ),
    ] = None
    instructions: str | None = None
    stream: bool | None = None
    tools: Annotated[
        list[dict[str, Any]] | None,
        msgspec.Meta(
            description="Function tools are offered to the model; other types are ignored "
            "and named in the X-Ignored-Tools header."
        ),
    ] = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    include: list[str] | None = None
    client_metadata: dict[str, Any] | None = None
    truncation: str | None = None
    service_tier: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    background: bool | None = None
    safety_identifier: str | None = None


UNHONOURED_FIELDS: tuple[str, ...] = ("max_output_tokens", "temperature", "top_p")
"""Accepted but without effect, though honoured they would change the reply: named in
the `X-Ignored-Fields` header when set (the CLI has no output cap nor sampling knobs)."""

# -- input items (each read on its own, see `translate`) -------------------------------


class InputText(msgspec.Struct, frozen=True, tag_field="type", tag="input_text"):
    text: str


class OutputText(msgspec.Struct, frozen=True, tag_field="type", tag="output_text"):
    """Our own earlier text (replayed), or an assistant message's text."""

    text: str
    annotations: list[Any] = msgspec.field(default_factory=list)
    logprobs: list[Any] | None = None


class Refusal(msgspec.Struct, frozen=True, tag_field="type", tag="refusal"):
    refusal: str


class InputImage(msgspec.Struct, frozen=True, tag_field="type", tag="input_image"):
    """An image by URL (`data:` or http(s)); `file_id` images cannot be read."""

    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class InputFile(msgspec.Struct, frozen=True, tag_field="type", tag="input_file"):
    """Decoded only to be refused by name."""


class InputAudio(msgspec.Struct, frozen=True, tag_field="type", tag="input_audio"):
    """Decoded only to be refused by name."""


InputPart = InputText | OutputText | Refusal | InputImage | InputFile | InputAudio
"""One part of a message item's content."""


class MessageItem(msgspec.Struct, frozen=True):
    """A message item (`type` `message`, or absent: the SDK's easy input message)."""

    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[InputPart]
    type: Literal["message"] = "message"
    id: str | None = None
    status: str | None = None


class FunctionCallItem(msgspec.Struct, frozen=True):
    """A call an earlier reply made (replayed); `call_id` is the tool call's id."""

    call_id: Annotated[str, msgspec.Meta(min_length=1)]
    name: Annotated[str, msgspec.Meta(min_length=1)]
    arguments: str
    type: Literal["function_call"] = "function_call"
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(msgspec.Struct, frozen=True):
    """A call's result: text, or input_text and input_image parts (a tool may answer
    with an image, as Codex's view_image does)."""

    call_id: Annotated[str, msgspec.Meta(min_length=1)]
    output: str | list[InputPart]
    type: Literal["function_call_output"] = "function_call_output"
    id: str | None = None
    status: str | None = None


class FlatFunctionTool(msgspec.Struct, frozen=True):
    """A Responses function tool: the chat shape's `function` fields, flat."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    type: Literal["function"] = "function"


# -- the Response object -------------------------------------------------------------


class OutputTextPart(msgspec.Struct, frozen=True, tag_field="type", tag="output_text"):
    """The text of a message item."""

    text: str
    annotations: list[Any] = msgspec.field(default_factory=list)
    logprobs: list[Any] = msgspec.field(default_factory=list)


class SummaryText(msgspec.Struct, frozen=True, tag_field="type", tag="summary_text"):
    """The shown thinking of a reasoning item."""

    text: str


class OutputMessage(msgspec.Struct, frozen=True, tag_field="type", tag="message"):
    """The reply's text."""

    id: str
    content: list[OutputTextPart]
    status: str = "completed"
    role: str = "assistant"


class OutputFunctionCall(msgspec.Struct, frozen=True, tag_field="type", tag="function_call"):
    """A client tool call the reply ends with: answer it with a function_call_output
    item whose `call_id` is this one's."""

    id: str
    call_id: str
    name: str
    arguments: str
    status: str = "completed"


class OutputReasoning(msgspec.Struct, frozen=True, tag_field="type", tag="reasoning"):
    """The model's thinking, when shown, as summary text."""

    id: str
    summary: list[SummaryText]
    status: str = "completed"


OutputItem = OutputReasoning | OutputMessage | OutputFunctionCall
"""One entry of a Response's `output`."""


class InputTokensDetails(msgspec.Struct, frozen=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct, frozen=True):
    reasoning_tokens: int = 0


class ResponseUsage(msgspec.Struct, frozen=True):
    """Token counts: `input_tokens` includes the cached ones; `cost` is the turn's cost
    in USD (left out when not known)."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)
    cost: float | msgspec.UnsetType = msgspec.UNSET


class ResponseError(msgspec.Struct, frozen=True):
    """Why a response failed: `code` is one of OpenAI's (`server_error`,
    `rate_limit_exceeded`, `invalid_prompt`); the message says ours."""

    code: str
    message: str


class IncompleteDetails(msgspec.Struct, frozen=True):
    reason: str


class ResponseEcho(msgspec.Struct, frozen=True, kw_only=True):
    """What a Response object holds whatever its outcome: its id and the request
    fields it echoes, as OpenAI echoes them."""

    id: str
    created_at: int
    model: str
    tools: list[dict[str, Any]]
    tool_choice: Any
    parallel_tool_calls: bool
    instructions: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    previous_response_id: str | None = None
    reasoning: ReasoningConfig | None = None
    text: dict[str, Any] = msgspec.field(default_factory=dict)
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    truncation: str = "disabled"
    store: bool = True
    user: str | None = None
    prompt_cache_key: str | None = None


class ResponseObject(ResponseEcho, frozen=True, kw_only=True):
    """The Response object (`object: "response"`), whole or as stream events carry it:
    the echo and an outcome."""

    status: str
    output: list[OutputItem]
    object: str = "response"
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    background: bool = False
    usage: ResponseUsage | None = None
    completed_at: int | None = None


class ResponseDeleted(msgspec.Struct, frozen=True):
    """What `DELETE /v1/responses/{id}` answers."""

    id: str
    object: str = "response"
    deleted: bool = True
