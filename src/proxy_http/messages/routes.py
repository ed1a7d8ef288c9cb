"""The Anthropic Messages surface: `POST /v1/messages` and `/v1/messages/count_tokens`.

A request is translated into the core's ChatRequest (`translate`) and served by the
same ChatService turn as a chat completion; the reply is rendered as a Message or
its event stream (`render`). Errors take Anthropic's shape on their way out
(`errors.AnthropicErrors`, one ASGI layer for every source).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import structlog
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter, JSONBody
from litestar.types import ControllerRouterHandler

from proxy_core import (
    ChatError,
    ChatService,
    Finished,
    FunctionTool,
    parse_conversation,
    parse_tool_offer,
)
from proxy_http.auth import Access
from proxy_http.errors import handle_chat_error, validation_error
from proxy_http.logging import note
from proxy_http.messages.render import MessagesRenderer, new_message_id, whole_message
from proxy_http.messages.tokens import estimate_tokens
from proxy_http.messages.translate import ENDPOINT, Translated, invalid_at, translate
from proxy_http.messages.wire import ErrorBody, Message, MessagesInput, MessagesRequest, TokenCount
from proxy_http.routing import (
    ENDPOINT_KEY,
    IGNORED_FIELDS_HEADER,
    IGNORED_TOOLS_HEADER,
    SESSION_HEADER,
    collected,
    endpoint_of,
    error_specs,
    options_of,
    service_of,
    streamed,
)
from proxy_http.wire import ErrorBody as OpenAIErrorBody

COUNT_ENDPOINT: Final = "messages.count_tokens"
"""count_tokens' name in request log lines."""

_ERRORS_DESCRIPTION: Final = 'An Anthropic error body: {"type": "error", "error": {...}}.'

_log = structlog.get_logger("proxy_http.messages")


def anthropic_validation(error: ValidationException) -> ChatError:
    """A body that fails decoding, worded as Anthropic words it (`max_tokens: Field
    required`)."""
    failure = validation_error(error)
    if failure.param is None:
        return failure
    what = failure.message.removesuffix(f" (at '{failure.param}').")
    if what.startswith("Object missing required field"):
        what = "Field required"
    return invalid_at(failure.param, what)


def refused_message(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[OpenAIErrorBody]:
    """A Messages body that fails decoding, counted in /stats as a refused request."""
    note(endpoint=endpoint_of(request))
    service_of(request).count_refused(endpoint_of(request))
    return handle_chat_error(request, anthropic_validation(error))


def refused_count(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[OpenAIErrorBody]:
    """A count_tokens body that fails decoding (not a turn: /stats does not count it)."""
    note(endpoint=endpoint_of(request))
    return handle_chat_error(request, anthropic_validation(error))


_SESSION = HeaderParameter(
    name=SESSION_HEADER,
    required=False,
    description="Pins the conversation (takes precedence over `metadata.user_id`).",
)
_VERSION = HeaderParameter(
    name="anthropic-version",
    required=False,
    description="Accepted (any version): the proxy speaks one version of the API.",
)


@post(
    "/v1/messages",
    status_code=200,
    summary="Create a message",
    description=(
        "The Anthropic Messages API over the same sessions as chat completions. With "
        "`stream: true` the answer is `text/event-stream` of Anthropic's events "
        "(message_start, content_block_*, message_delta, message_stop; ping while "
        "waiting). Errors have Anthropic's shape. See docs/messages.md."
    ),
    responses={
        200: ResponseSpec(
            data_container=Message,
            description="A message (or an SSE stream of its events when stream is true).",
        ),
        **error_specs(
            400,
            401,
            403,
            404,
            408,
            413,
            415,
            421,
            429,
            502,
            503,
            504,
            529,
            body=ErrorBody,
            description=_ERRORS_DESCRIPTION,
        ),
    },
    exception_handlers={ValidationException: refused_message},
    opt={ENDPOINT_KEY: ENDPOINT},
)
async def create_message(
    data: JSONBody[MessagesRequest],
    request: Request[Any, Any, Any],
    access: NamedDependency[Access],
    session_id: Annotated[str | None, _SESSION] = None,
    anthropic_version: Annotated[str | None, _VERSION] = None,
) -> Response[Any]:
    """Answer one Messages request, streamed or whole."""
    note(endpoint=ENDPOINT, stream=bool(data.stream))
    service, options = service_of(request), options_of(request)
    try:
        translated = translate(
            data,
            session_id=session_id,
            namespace=access.namespace,
            show_by_default=options.reasoning,
        )
    except ChatError:
        service.count_refused(ENDPOINT)
        raise
    try:
        turn = service.open_turn(translated.request, whole=not data.stream)
    except ChatError as error:
        raise translated.origins.rehome(error) from None
    note(session_key=turn.key.value, model=turn.model.response_id)
    headers = _headers(translated, turn.key.external)
    message_id = new_message_id()
    model = turn.model.response_id

    if data.stream:
        renderer = MessagesRenderer(message_id, model)
        show = translated.show_thinking
        return await streamed(
            request, turn, renderer, show_thinking=show, options=options, headers=headers
        )

    reply = await collected(request, turn)
    finished = Finished(
        reply.stop_reason, tool_calls=reply.tool_calls, stop_sequence=reply.stop_sequence
    )
    message = whole_message(
        message_id=message_id,
        model=model,
        text=reply.text,
        thinking=reply.thinking if translated.show_thinking else None,
        finished=finished,
        usage=reply.usage,
    )
    return Response(message, headers=headers)


def _headers(translated: Translated, session: str) -> dict[str, str]:
    """The conversation's key, and what of the request was ignored."""
    # The client sees its key within its own namespace, never the namespace.
    headers = {SESSION_HEADER: session}
    if translated.ignored_fields:
        _log.debug("request_fields_ignored", fields=list(translated.ignored_fields))
        headers[IGNORED_FIELDS_HEADER] = ",".join(translated.ignored_fields)
    if translated.ignored_tools:
        _log.debug("server_tools_ignored", tools=list(translated.ignored_tools))
        headers[IGNORED_TOOLS_HEADER] = ",".join(translated.ignored_tools)
    return headers


@post(
    "/v1/messages/count_tokens",
    status_code=200,
    summary="Count a message's input tokens (an estimate)",
    description=(
        "An estimate, computed here without calling Claude (nothing is spent): one "
        "token per 4 characters of the system prompt, the messages' text, tool calls' "
        "arguments and the tool definitions, plus 1,600 per image. The request is "
        "validated as for POST /v1/messages (max_tokens is not required)."
    ),
    responses={
        200: ResponseSpec(data_container=TokenCount, description="The estimated input tokens."),
        **error_specs(
            400,
            401,
            403,
            404,
            408,
            413,
            415,
            421,
            503,
            body=ErrorBody,
            description=_ERRORS_DESCRIPTION,
        ),
    },
    exception_handlers={ValidationException: refused_count},
    opt={ENDPOINT_KEY: COUNT_ENDPOINT},
)
async def count_tokens(
    data: JSONBody[MessagesInput],
    service: NamedDependency[ChatService],
    access: NamedDependency[Access],
    anthropic_version: Annotated[str | None, _VERSION] = None,
) -> TokenCount:
    """Estimate the input tokens of a Messages request (see `tokens`)."""
    note(endpoint=COUNT_ENDPOINT)
    translated = translate(
        data,
        session_id=None,
        namespace=access.namespace,
        show_by_default=False,
        endpoint=COUNT_ENDPOINT,
    )
    asked = translated.request
    try:
        # What opening a turn would check, without one: the conversation, model, tools.
        conversation = parse_conversation(asked.messages, service.limits.parse)
        service.catalog.resolve(asked.model)
        parse_tool_offer(asked.tools, asked.tool_choice, asked.parallel_tool_calls)
    except ChatError as error:
        raise translated.origins.rehome(error) from None
    tools = [tool for tool in asked.tools or () if isinstance(tool, FunctionTool)]
    return TokenCount(estimate_tokens(conversation, tools))


ROUTES: tuple[ControllerRouterHandler, ...] = (create_message, count_tokens)
