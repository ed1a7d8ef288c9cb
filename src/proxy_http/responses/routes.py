"""The OpenAI Responses surface: `POST /v1/responses`, and `GET` / `DELETE
/v1/responses/{id}` for the stored ones (see docs/responses.md)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import structlog
from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.types import ControllerRouterHandler

from proxy_core import (
    ChatError,
    ChatRequest,
    ResponseStore,
    ToolCall,
    is_header_value,
)
from proxy_http.auth import Access
from proxy_http.config import HttpOptions
from proxy_http.errors import NOT_FOUND, error_response
from proxy_http.logging import note
from proxy_http.responses.render import Envelope, ResponsesRenderer, new_id, output_items
from proxy_http.responses.stored import (
    PARAM,
    Chain,
    NotFound,
    StoredRecord,
    keep,
    load,
    load_chain,
    reply_message,
)
from proxy_http.responses.translate import ChatDict, Translated, refused, translate
from proxy_http.responses.wire import (
    UNHONOURED_FIELDS,
    ResponseDeleted,
    ResponseObject,
    ResponsesRequest,
)
from proxy_http.routing import (
    ENDPOINT_KEY,
    IGNORED_FIELDS_HEADER,
    IGNORED_TOOLS_HEADER,
    SESSION_HEADER,
    TURN_ERROR_STATUSES,
    collected,
    error_specs,
    options_of,
    refused_request,
    responses_of,
    service_of,
    streamed,
)
from proxy_http.wire import ErrorBody

ENDPOINT = "responses"
"""The surface's name in request log lines and /stats."""

_log = structlog.get_logger("proxy_http.responses")


def _not_found(message: str, param: str | None) -> Response[ErrorBody]:
    return error_response(NOT_FOUND.status, NOT_FOUND.body(message, param=param))


class _Conversation:
    """What a request continues: its instructions and the history before its input
    (a previous response's chain, or none), and the session key that history ran under."""

    def __init__(self, request: ResponsesRequest, previous: Chain | None) -> None:
        # Without instructions a continuation keeps its chain's, so the CLI session
        # (pinned to its system prompt) goes on instead of starting over.
        instructions = request.instructions
        if instructions is None and previous is not None:
            instructions = previous.last.response.instructions
        self.instructions = instructions or None
        self.history: list[ChatDict] = previous.history if previous else []
        self.session_key = previous.last.session_key if previous else None

    def messages(self, translated: Translated) -> list[ChatDict]:
        system = [{"role": "system", "content": self.instructions}] if self.instructions else []
        return [*system, *self.history, *translated.messages]

    @property
    def leading(self) -> list[str]:
        """The request fields the messages before the input come from (error paths)."""
        system = ["instructions"] if self.instructions else []
        return [*system, *[PARAM] * len(self.history)]


def _chat_request(
    data: ResponsesRequest,
    translated: Translated,
    conversation: _Conversation,
    *,
    session_id: str | None,
    namespace: str,
) -> ChatRequest:
    """The core's request. The session: the X-Session-Id header, else `prompt_cache_key`
    (Codex sends one per conversation), else the previous response's, else `user`."""
    cache_key = data.prompt_cache_key
    header = session_id
    user = data.user
    if header is None and cache_key is not None:
        # It keys the session as the header does when the header could hold it; any
        # other is hashed, as `user` is.
        if is_header_value(cache_key):
            header = cache_key
        elif conversation.session_key is None:
            user = cache_key
    return ChatRequest(
        model=data.model,
        messages=conversation.messages(translated),
        user=user,
        session_id=header,
        reasoning_effort=data.reasoning.effort if data.reasoning else None,
        response_format=translated.response_format,
        namespace=namespace,
        tools=translated.tools,
        tool_choice=translated.tool_choice,
        parallel_tool_calls=data.parallel_tool_calls,
        endpoint=ENDPOINT,
        session_key=conversation.session_key,
    )


def _envelope(
    data: ResponsesRequest, translated: Translated, conversation: _Conversation, model: str
) -> Envelope:
    """The Response's id and the request fields it echoes (function tools only: the
    others were not offered)."""
    tools = [tool for tool in data.tools or () if tool.get("type") == "function"]
    keep_choice = data.tool_choice is not None and not translated.ignored_choice
    return Envelope(
        id=new_id("resp"),
        created_at=int(time.time()),
        model=model,
        tools=tools,
        tool_choice=data.tool_choice if keep_choice else "auto",
        parallel_tool_calls=data.parallel_tool_calls is not False,
        instructions=conversation.instructions,
        metadata=data.metadata or {},
        previous_response_id=data.previous_response_id,
        reasoning=data.reasoning,
        text={"format": (data.text.format if data.text else None) or {"type": "text"}},
        max_output_tokens=data.max_output_tokens,
        temperature=data.temperature,
        top_p=data.top_p,
        truncation=data.truncation or "disabled",
        store=data.store is not False,
        user=data.user,
        prompt_cache_key=data.prompt_cache_key,
    )


def _shows_thinking(data: ResponsesRequest, options: HttpOptions) -> bool:
    """Thinking is shown when asked for: by the setting, a reasoning effort that wants
    reasoning at all (`none` shows none), or a reasoning summary."""
    reasoning = data.reasoning
    if reasoning is None:
        return options.reasoning
    effort = (reasoning.effort or "").strip().lower()
    summary = reasoning.summary or reasoning.generate_summary
    return options.reasoning or effort not in ("", "none") or summary not in (None, "none")


def _headers(key: str, data: ResponsesRequest, translated: Translated) -> dict[str, str]:
    headers = {SESSION_HEADER: key}
    ignored = [name for name in UNHONOURED_FIELDS if getattr(data, name) is not None]
    if translated.ignored_choice:
        ignored.append("tool_choice")
    if ignored:
        _log.debug("request_fields_ignored", fields=ignored)
        headers[IGNORED_FIELDS_HEADER] = ",".join(ignored)
    if translated.ignored_tools:
        _log.debug("request_tools_ignored", types=list(translated.ignored_tools))
        headers[IGNORED_TOOLS_HEADER] = ",".join(translated.ignored_tools)
    return headers


@post(
    "/v1/responses",
    status_code=200,
    summary="Create a response",
    description=(
        "OpenAI Responses. With `stream: true` the answer is `text/event-stream` of "
        "`response.*` events (each `event:` + `data:`), ending with `response.completed` "
        "or `response.failed`. See docs/responses.md."
    ),
    responses={
        200: ResponseSpec(
            data_container=ResponseObject,
            description="A response (or an SSE stream of response events when stream is true).",
        ),
        **error_specs(*TURN_ERROR_STATUSES),
    },
    exception_handlers={ValidationException: refused_request},
    opt={ENDPOINT_KEY: ENDPOINT},
)
async def create_response(
    data: JSONBody[ResponsesRequest],
    request: Request[Any, Any, Any],
    access: NamedDependency[Access],
    session_id: Annotated[
        str | None,
        HeaderParameter(
            name=SESSION_HEADER,
            required=False,
            description="Pins the conversation (takes precedence over prompt_cache_key).",
        ),
    ] = None,
) -> Response[Any]:
    """Answer one response, streamed or whole; store it unless `store` is false."""
    note(endpoint=ENDPOINT, stream=bool(data.stream))
    service, options, responses = service_of(request), options_of(request), responses_of(request)
    try:
        translated = translate(data)
        previous = None
        if data.previous_response_id is not None:
            previous = await load_chain(responses, data.previous_response_id, access.namespace)
    except NotFound as missing:
        service.count_refused(ENDPOINT)
        return _not_found(missing.message, PARAM)
    except ChatError:
        service.count_refused(ENDPOINT)
        raise
    conversation = _Conversation(data, previous)
    asked = _chat_request(
        data, translated, conversation, session_id=session_id, namespace=access.namespace
    )
    try:
        turn = service.open_turn(asked, whole=not data.stream)
    except ChatError as error:
        raise refused(error, translated, conversation.leading) from None
    note(session_key=turn.key.value, model=turn.model.response_id)
    headers = _headers(turn.key.external, data, translated)
    show_thinking = _shows_thinking(data, options)
    envelope = _envelope(data, translated, conversation, turn.model.response_id)

    async def finish(response: ResponseObject, text: str, calls: tuple[ToolCall, ...]) -> None:
        if not envelope.store:
            return
        added = [*translated.messages, reply_message(text, calls)]
        record = StoredRecord(response, turn.key.external, added)
        await keep(responses, record, data.previous_response_id, access.namespace)

    if data.stream:
        renderer = ResponsesRenderer(envelope, finish)
        return await streamed(
            request, turn, renderer, show_thinking=show_thinking, options=options, headers=headers
        )

    reply = await collected(request, turn)
    output = output_items(reply.thinking if show_thinking else None, reply.text, reply.tool_calls)
    response = envelope.response(
        "completed", output, usage=reply.usage, stop_reason=reply.stop_reason
    )
    await finish(response, reply.text, reply.tool_calls)
    return Response(response, headers=headers)


@get(
    "/v1/responses/{response_id:str}",
    summary="Retrieve a stored response",
    responses=error_specs(404, 503),
    opt={ENDPOINT_KEY: ENDPOINT},
)
async def retrieve_response(
    response_id: FromPath[str],
    responses: NamedDependency[ResponseStore],
    access: NamedDependency[Access],
) -> Response[Any]:
    """A stored response of the caller's API key (404: unknown, expired or another's)."""
    record = await load(responses, response_id, access.namespace)
    if record is None:
        return _not_found(f"Response with id '{response_id[:100]}' not found.", None)
    return Response(record.response)


@delete(
    "/v1/responses/{response_id:str}",
    status_code=200,
    summary="Delete a stored response",
    responses={
        200: ResponseSpec(data_container=ResponseDeleted, description="It was deleted."),
        **error_specs(404, 503),
    },
    opt={ENDPOINT_KEY: ENDPOINT},
)
async def delete_response(
    response_id: FromPath[str],
    responses: NamedDependency[ResponseStore],
    access: NamedDependency[Access],
) -> Response[Any]:
    """Forget a stored response (later continuations from it, and from the responses
    that continued it, are 404s: a conversation is never rebuilt with a gap)."""
    if not await responses.delete(response_id, access.namespace):
        return _not_found(f"Response with id '{response_id[:100]}' not found.", None)
    return Response(ResponseDeleted(response_id))


ROUTES: tuple[ControllerRouterHandler, ...] = (
    create_response,
    retrieve_response,
    delete_response,
)
