"""The OpenAI Chat Completions request, typed once: what the HTTP adapter decodes a
body into and what an embedding app may build itself.

Tagged unions pick a message by its `role` and a content part or response format by
its `type`, so msgspec's own errors name the exact field (`Invalid value 'video' - at
`$.messages[1].content[0].type``); `invalid_request` turns one into the invalid-request
ChatError whose `param` is that path. Unknown fields are ignored (SDKs send extras).

These types say what a request may look like; `proxy_core.conversation`,
`structured` and `stops` turn them into the core's own values, with the limits and
normalisation a type cannot express (sizes, counts, image URLs). Pure: msgspec only.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeVar, overload

import msgspec

from proxy_core.errors import ChatError, invalid

# -- content parts -------------------------------------------------------------


class TextContent(msgspec.Struct, frozen=True, tag_field="type", tag="text"):
    """A text part."""

    text: str


class InputTextContent(msgspec.Struct, frozen=True, tag_field="type", tag="input_text"):
    """A text part as the Responses API names it (some clients send it here too)."""

    text: str


class OutputTextContent(msgspec.Struct, frozen=True, tag_field="type", tag="output_text"):
    """An assistant's text part as the Responses API names it."""

    text: str


class RefusalContent(msgspec.Struct, frozen=True, tag_field="type", tag="refusal"):
    """An assistant's refusal, kept as its text."""

    refusal: str


class ImageUrl(msgspec.Struct, frozen=True):
    """An image's `data:` URL or http(s) URL; `detail` is accepted and has no effect."""

    url: str
    detail: str | None = None


class ImageUrlContent(msgspec.Struct, frozen=True, tag_field="type", tag="image_url"):
    """An image part (only user messages may carry one). The bare URL string some
    clients send instead of the object is accepted too."""

    image_url: ImageUrl | str


class InputAudioContent(msgspec.Struct, frozen=True, tag_field="type", tag="input_audio"):
    """An audio part: decoded only so the core can refuse it by name."""

    input_audio: Any = None


class FileContent(msgspec.Struct, frozen=True, tag_field="type", tag="file"):
    """A file part: decoded only so the core can refuse it by name."""

    file: Any = None


ContentPart = (
    TextContent
    | InputTextContent
    | OutputTextContent
    | RefusalContent
    | ImageUrlContent
    | InputAudioContent
    | FileContent
)
"""One part of a message's `content` array, by its `type`."""

Content = str | list[ContentPart]
"""A message's content: a string, or an array of parts."""

# -- messages --------------------------------------------------------------------

JsonValue = str | int | float | bool | dict[str, Any] | list[Any] | None
"""Any JSON value."""


class FunctionCall(msgspec.Struct, frozen=True):
    """The function a tool call names. `arguments` is JSON text; a client that sends
    the JSON value itself is accepted (the core encodes it)."""

    name: str
    arguments: JsonValue = ""


class AssistantToolCall(msgspec.Struct, frozen=True):
    """One entry of an assistant message's `tool_calls`."""

    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class ChatSystemMessage(msgspec.Struct, frozen=True, tag_field="role", tag="system"):
    """Instructions; every system and developer message joins the system prompt."""

    content: Content
    name: str | None = None


class ChatDeveloperMessage(msgspec.Struct, frozen=True, tag_field="role", tag="developer"):
    """OpenAI's newer name for a system message."""

    content: Content
    name: str | None = None


class ChatUserMessage(msgspec.Struct, frozen=True, tag_field="role", tag="user"):
    """What the user said: text and images."""

    content: Content
    name: str | None = None


class ChatAssistantMessage(msgspec.Struct, frozen=True, tag_field="role", tag="assistant"):
    """An earlier reply. Its content may be null when it only called tools;
    `function_call` is the legacy single call (used when there are no `tool_calls`)."""

    content: Content | None = None
    name: str | None = None
    tool_calls: list[AssistantToolCall] | None = None
    function_call: FunctionCall | None = None


class ChatToolMessage(msgspec.Struct, frozen=True, tag_field="role", tag="tool"):
    """A tool's result, answering the assistant's call `tool_call_id`. `is_error` (an
    extension: OpenAI has no such field) marks a result that reports a failure."""

    content: Content
    tool_call_id: str
    name: str | None = None
    is_error: bool | None = None


class ChatFunctionMessage(msgspec.Struct, frozen=True, tag_field="role", tag="function"):
    """The legacy form of a tool message: `name` stands for the call it answers."""

    content: Content | None = None
    name: str | None = None
    tool_call_id: str | None = None


ChatMessage = (
    ChatSystemMessage
    | ChatDeveloperMessage
    | ChatUserMessage
    | ChatAssistantMessage
    | ChatToolMessage
    | ChatFunctionMessage
)
"""One entry of `messages`, by its `role`."""

# -- response_format -------------------------------------------------------------


class TextFormat(msgspec.Struct, frozen=True, tag_field="type", tag="text"):
    """Plain text (the default)."""


class JsonObjectFormat(msgspec.Struct, frozen=True, tag_field="type", tag="json_object"):
    """Any JSON object."""


class JsonSchemaSpec(msgspec.Struct, frozen=True):
    """The schema a reply follows; without `schema`, any JSON object. `name`,
    `description` and `strict` are accepted and have no effect."""

    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class JsonSchemaFormat(msgspec.Struct, frozen=True, tag_field="type", tag="json_schema"):
    """JSON that follows `json_schema.schema`."""

    json_schema: JsonSchemaSpec


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat
"""`response_format`, by its `type`."""

# -- tools -------------------------------------------------------------------------


class FunctionDefinition(msgspec.Struct, frozen=True):
    """A function the client offers: its name, what it does, its JSON Schema parameters."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(msgspec.Struct, frozen=True, tag_field="type", tag="function"):
    """One entry of `tools`."""

    function: FunctionDefinition


class ToolChoiceFunction(msgspec.Struct, frozen=True):
    """The function a named tool choice forces."""

    name: str


class NamedToolChoice(msgspec.Struct, frozen=True, tag_field="type", tag="function"):
    """`tool_choice` forcing one function."""

    function: ToolChoiceFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice
"""`tool_choice`: a mode, or one function by name."""

# -- the request ---------------------------------------------------------------------

Stop = str | list[str] | None
"""`stop`: one sequence, or several."""


class StreamOptions(msgspec.Struct, frozen=True):
    """`stream_options`: only `include_usage` has an effect."""

    include_usage: bool | None = None


class ChatCompletionRequest(msgspec.Struct, frozen=True):
    """`POST /v1/chat/completions`. Fields other than model, messages, stream,
    stream_options, user, n, logprobs, reasoning_effort, response_format, stop and the
    tool fields (tools, tool_choice, parallel_tool_calls, functions, function_call)
    are accepted and ignored; those a client would miss are reported by
    `unhonoured_fields`."""

    model: Annotated[str, msgspec.Meta(min_length=1, description="A model id (GET /v1/models).")]
    messages: Annotated[
        list[ChatMessage],
        msgspec.Meta(
            min_length=1,
            description="OpenAI messages (system/developer/user/assistant/tool; text and "
            "image_url parts).",
        ),
    ]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: Stop = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    # Decoded only to be reported as ignored (`unhonoured_fields`): any value passes.
    logit_bias: Any = None
    logprobs: bool | None = None
    response_format: Annotated[
        ResponseFormat | None,
        msgspec.Meta(
            description="text, json_object, or json_schema with a `schema` the reply's "
            "content then follows (as JSON)."
        ),
    ] = None
    tools: Annotated[
        list[FunctionTool] | None,
        msgspec.Meta(description="Functions the model may call (see docs/tools.md)."),
    ] = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # The legacy forms of `tools` and `tool_choice`, checked by `parse_tool_offer`.
    functions: Any = None
    function_call: Any = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    reasoning_effort: Annotated[
        str | None,
        msgspec.Meta(
            description="none, minimal, low, medium, high, xhigh (or Claude's max): the "
            "effort Claude reasons with; also shows its thinking as reasoning_content."
        ),
    ] = None


UNHONOURED_FIELDS: tuple[str, ...] = (
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "logit_bias",
)
"""Accepted but without effect, though honoured they would change the reply: a request
that sets one is told which (`unhonoured_fields`; the HTTP server's `X-Ignored-Fields`
header). The one list of them: a field leaves it when it starts to take effect."""

IGNORED_REQUEST_FIELDS: tuple[str, ...] = (*UNHONOURED_FIELDS, "metadata", "store")
"""Accepted for compatibility but without effect (documented in docs/api.md)."""

# Values that ask for nothing, so ignoring them changes nothing either.
_ASKS_NOTHING: tuple[object, ...] = (None, [], {}, "none")


def unhonoured_fields(request: ChatCompletionRequest) -> tuple[str, ...]:
    """The UNHONOURED_FIELDS `request` sets to something (null, an empty list or object,
    and `"none"` ask for nothing), in the list's order."""
    return tuple(name for name in UNHONOURED_FIELDS if getattr(request, name) not in _ASKS_NOTHING)


# -- decoding errors -------------------------------------------------------------------

# msgspec's error text is "<what> - at `$.a[0].b`" ("<what>" alone at the root), and
# a missing field is named in <what> rather than in the path.
_AT: Final = " - at `$"
_MISSING: Final = "Object missing required field `"

T = TypeVar("T")


def error_location(error: msgspec.ValidationError) -> tuple[str, str]:
    """What msgspec says is wrong, and the field it names in OpenAI's `a.b[0].c` style
    ("" for the decoded value itself; a missing field is named as part of the path)."""
    text = str(error)
    what, at, path = text.rpartition(_AT)
    if not at or not path.endswith("`"):
        what, path = text, "`"
    path = path[:-1]
    if what.startswith(_MISSING) and what.endswith("`"):
        path = f"{path}.{what[len(_MISSING) : -1]}"
    return what, path.removeprefix(".")


def invalid_request(error: msgspec.ValidationError, root: str = "") -> ChatError:
    """msgspec's error as an invalid-request ChatError whose `param` names the field,
    under `root` (the field the decoded value came from; "" for a whole request)."""
    what, path = error_location(error)
    return invalid_field(what, join_path(root, path))


def invalid_field(what: str, param: str) -> ChatError:
    """An invalid request saying `what` is wrong with field `param` ("" for none)."""
    where = f" (at '{param}')" if param else ""
    return invalid(f"{what}{where}.", param or None)


def join_path(root: str, path: str) -> str:
    """`root` and a path below it: `messages` + `[0].role`, `a` + `b` -> `a.b`."""
    if not root or not path or path.startswith("["):
        return root + path
    return f"{root}.{path}"


@overload
def convert(value: object, kind: type[T], root: str) -> T: ...
@overload
def convert(value: object, kind: Any, root: str) -> Any: ...  # a union or a generic alias


def convert(value: object, kind: Any, root: str) -> Any:
    """`value` (typed already, or its plain JSON data) as `kind`; raises the
    invalid-request ChatError naming the field under `root`."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as error:
        raise invalid_request(error, root) from None
