"""The Anthropic Messages API on the wire: the request, the Message, the stream events.

Decoding is typed where a field's shape is fixed (model, max_tokens, thinking,
tool_choice, ...). Content blocks and tool definitions are decoded as plain objects
and typed one by one in `translate`, so that a block or tool of a kind the proxy
does not carry gets its own clear answer (a 400 naming the block; a server tool is
ignored and named) rather than msgspec's "Invalid value". Unknown fields are
ignored, as Anthropic's SDKs send extras (`cache_control`, `citations`, ...).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

# -- the request ------------------------------------------------------------------


class SystemText(msgspec.Struct, frozen=True):
    """One block of `system` (only text; `cache_control` is accepted and ignored)."""

    text: str
    type: Literal["text"] = "text"


class InputMessage(msgspec.Struct, frozen=True):
    """One turn of `messages`: a string, or content blocks (typed by `translate`).
    A `system` turn (the Claude Code CLI sends one) joins the system prompt."""

    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]]


class ToolChoiceAuto(msgspec.Struct, frozen=True, tag_field="type", tag="auto"):
    """The model decides whether to call a tool."""

    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(msgspec.Struct, frozen=True, tag_field="type", tag="any"):
    """The model must call one of the tools."""

    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(msgspec.Struct, frozen=True, tag_field="type", tag="tool"):
    """The model must call the tool `name`."""

    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(msgspec.Struct, frozen=True, tag_field="type", tag="none"):
    """The model must not call a tool."""


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone
"""`tool_choice`, by its `type`."""


class ThinkingConfig(msgspec.Struct, frozen=True):
    """`thinking`: `enabled` (with `budget_tokens`), `adaptive`, `between_tools` or
    `disabled`; `display: "omitted"` hides the thinking text."""

    type: Literal["enabled", "adaptive", "between_tools", "disabled"]
    budget_tokens: int | None = None
    display: str | None = None


class Metadata(msgspec.Struct, frozen=True):
    """`metadata`: `user_id` keys the conversation (as OpenAI's `user`)."""

    user_id: str | None = None


class JsonOutputFormat(msgspec.Struct, frozen=True):
    """`output_config.format`: the JSON Schema the reply follows."""

    schema: dict[str, Any]
    type: Literal["json_schema"] = "json_schema"


class OutputConfig(msgspec.Struct, frozen=True):
    """`output_config`: the effort (low ... max) and a structured output format."""

    effort: str | None = None
    format: JsonOutputFormat | None = None


_MODEL = msgspec.Meta(min_length=1, description="A model id (GET /v1/models).")
_MESSAGES = msgspec.Meta(
    min_length=1,
    description="user/assistant turns: a string or blocks (text, image, tool_use, "
    "tool_result; thinking blocks are accepted and dropped).",
)


class MessagesInput(msgspec.Struct, frozen=True, kw_only=True):
    """What a Messages request and a token count share: the conversation and its tools."""

    model: Annotated[str, _MODEL]
    messages: Annotated[list[InputMessage], _MESSAGES]
    system: str | list[SystemText] | None = None
    tools: Annotated[
        list[dict[str, Any]] | None,
        msgspec.Meta(
            description="Client tools (name, description, input_schema). Server tools "
            "(web_search, bash, text_editor, computer, ...) are ignored and named in "
            "the X-Ignored-Tools header."
        ),
    ] = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
    metadata: Metadata | None = None


class MessagesRequest(MessagesInput, frozen=True, kw_only=True):
    """`POST /v1/messages`. `max_tokens` is required, as Anthropic requires it, but the
    CLI cannot cap a reply's length: it has no effect. `temperature`, `top_p` and
    `top_k` are accepted without effect (named in X-Ignored-Fields)."""

    max_tokens: Annotated[
        int,
        msgspec.Meta(ge=1, description="Required, as by Anthropic; not applied (see docs)."),
    ]
    stream: bool | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None


# -- content blocks of a request (typed by `translate`) ---------------------------


class TextBlock(msgspec.Struct, frozen=True, tag_field="type", tag="text"):
    text: str


class Base64Source(msgspec.Struct, frozen=True, tag_field="type", tag="base64"):
    media_type: str
    data: str


class UrlSource(msgspec.Struct, frozen=True, tag_field="type", tag="url"):
    url: str


class ImageBlock(msgspec.Struct, frozen=True, tag_field="type", tag="image"):
    source: Base64Source | UrlSource


class ToolUseBlock(msgspec.Struct, frozen=True, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(msgspec.Struct, frozen=True, tag_field="type", tag="tool_result"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None


class ThinkingBlock(msgspec.Struct, frozen=True, tag_field="type", tag="thinking"):
    thinking: str = ""
    signature: str | None = None


class RedactedThinkingBlock(msgspec.Struct, frozen=True, tag_field="type", tag="redacted_thinking"):
    data: str = ""


InputBlock = (
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock
)
"""A content block the proxy carries (or, thinking, accepts and drops)."""

INPUT_BLOCK_TYPES = frozenset(
    {"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)


class CustomTool(msgspec.Struct, frozen=True):
    """A client tool: its name, what it does, the JSON Schema of its input."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None


# -- the reply ------------------------------------------------------------------------


class TextOut(msgspec.Struct, frozen=True, tag_field="type", tag="text"):
    text: str


class ThinkingOut(msgspec.Struct, frozen=True, tag_field="type", tag="thinking"):
    """Shown thinking. The CLI gives no signature to pass on: it is empty."""

    thinking: str
    signature: str = ""


class ToolUseOut(msgspec.Struct, frozen=True, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


ContentOut = TextOut | ThinkingOut | ToolUseOut

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class MessageUsage(msgspec.Struct, frozen=True):
    """Anthropic's usage: `input_tokens` are the uncached ones; `cost` (ours) is the
    turn's cost in USD, left out when not known."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost: float | msgspec.UnsetType = msgspec.UNSET


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """A whole reply (`"type": "message"`), its fields in Anthropic's order."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentOut]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: MessageUsage


class TokenCount(msgspec.Struct, frozen=True):
    """`POST /v1/messages/count_tokens`: an estimate (see docs/messages.md)."""

    input_tokens: int


# -- stream events ---------------------------------------------------------------------


class TextDeltaOut(msgspec.Struct, frozen=True, tag_field="type", tag="text_delta"):
    text: str


class ThinkingDeltaOut(msgspec.Struct, frozen=True, tag_field="type", tag="thinking_delta"):
    thinking: str


class SignatureDeltaOut(msgspec.Struct, frozen=True, tag_field="type", tag="signature_delta"):
    signature: str


class InputJsonDeltaOut(msgspec.Struct, frozen=True, tag_field="type", tag="input_json_delta"):
    partial_json: str


BlockDelta = TextDeltaOut | ThinkingDeltaOut | SignatureDeltaOut | InputJsonDeltaOut


class MessageStart(msgspec.Struct, frozen=True, tag_field="type", tag="message_start"):
    message: Message


class ContentBlockStart(msgspec.Struct, frozen=True, tag_field="type", tag="content_block_start"):
    index: int
    content_block: ContentOut


class ContentBlockDelta(msgspec.Struct, frozen=True, tag_field="type", tag="content_block_delta"):
    index: int
    delta: BlockDelta


class ContentBlockStop(msgspec.Struct, frozen=True, tag_field="type", tag="content_block_stop"):
    index: int


class StopInfo(msgspec.Struct, frozen=True):
    stop_reason: StopReason | None
    stop_sequence: str | None


class MessageDelta(msgspec.Struct, frozen=True, tag_field="type", tag="message_delta"):
    delta: StopInfo
    usage: MessageUsage


class MessageStop(msgspec.Struct, frozen=True, tag_field="type", tag="message_stop"):
    pass


class Ping(msgspec.Struct, frozen=True, tag_field="type", tag="ping"):
    pass


# -- errors ----------------------------------------------------------------------------


class ErrorDetail(msgspec.Struct, frozen=True):
    type: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True, tag_field="type", tag="error", omit_defaults=True):
    """`{"type": "error", "error": {"type", "message"}, "request_id"}`."""

    error: ErrorDetail
    request_id: str | None = None
