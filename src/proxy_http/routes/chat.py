"""The OpenAI Chat Completions surface: `POST /v1/chat/completions`."""

from __future__ import annotations

import time
from typing import Annotated, Any

import structlog
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter, JSONBody
from litestar.types import ControllerRouterHandler

from proxy_core import ChatCompletionRequest, chat_request
from proxy_core.openai_wire import unhonoured_fields
from proxy_http.auth import Access
from proxy_http.logging import note
from proxy_http.routing import (
    ENDPOINT_KEY,
    IGNORED_FIELDS_HEADER,
    SESSION_HEADER,
    TURN_ERROR_STATUSES,
    collected,
    error_specs,
    options_of,
    refused_request,
    service_of,
    streamed,
)
from proxy_http.sse import ChunkRenderer, completion, new_completion_id
from proxy_http.wire import ChatCompletion

ENDPOINT = "chat.completions"
"""The surface's name in request log lines and /stats."""

_log = structlog.get_logger("proxy_http.chat")


@post(
    "/v1/chat/completions",
    status_code=200,
    summary="Create a chat completion",
    description=(
        "OpenAI Chat Completions. With `stream: true` the answer is `text/event-stream` "
        "of `chat.completion.chunk` events ending in `data: [DONE]`."
    ),
    responses={
        200: ResponseSpec(
            data_container=ChatCompletion,
            description="A chat.completion (or an SSE stream of chunks when stream is true).",
        ),
        **error_specs(*TURN_ERROR_STATUSES),
    },
    exception_handlers={ValidationException: refused_request},
    opt={ENDPOINT_KEY: ENDPOINT},
)
async def chat_completions(
    data: JSONBody[ChatCompletionRequest],
    request: Request[Any, Any, Any],
    access: NamedDependency[Access],
    session_id: Annotated[
        str | None,
        HeaderParameter(
            name=SESSION_HEADER,
            required=False,
            description="Pins the conversation (takes precedence over `user`).",
        ),
    ] = None,
) -> Response[Any]:
    """Answer one chat completion, streamed or whole."""
    note(endpoint=ENDPOINT)
    service, options = service_of(request), options_of(request)
    asked = chat_request(data, session_id=session_id, namespace=access.namespace)
    note(stream=bool(data.stream))
    turn = service.open_turn(asked, whole=not data.stream)
    note(session_key=turn.key.value, model=turn.model.response_id)
    # The client sees its key within its own namespace, never the namespace.
    headers = {SESSION_HEADER: turn.key.external}
    ignored = unhonoured_fields(data)
    if ignored:
        _log.debug("request_fields_ignored", fields=list(ignored))
        headers[IGNORED_FIELDS_HEADER] = ",".join(ignored)
    # Thinking is shown when asked for: by the setting, or by a reasoning_effort that
    # wants reasoning at all (`none` runs at the lowest effort and shows none).
    effort = (data.reasoning_effort or "").strip().lower()
    show_thinking = options.reasoning or effort not in ("", "none")
    completion_id = new_completion_id()
    created = int(time.time())
    legacy = turn.tools is not None and turn.tools.legacy

    if data.stream:
        include_usage = bool(data.stream_options and data.stream_options.include_usage)
        renderer = ChunkRenderer(
            completion_id,
            created,
            turn.model.response_id,
            include_usage=include_usage,
            legacy=legacy,
            keepalive_chunks=options.keepalive_style == "chunk",
        )
        return await streamed(
            request, turn, renderer, show_thinking=show_thinking, options=options, headers=headers
        )

    reply = await collected(request, turn)
    return Response(
        completion(
            completion_id=completion_id,
            created=created,
            model=turn.model.response_id,
            text=reply.text,
            thinking=reply.thinking if show_thinking else None,
            stop_reason=reply.stop_reason,
            usage=reply.usage,
            tool_calls=reply.tool_calls,
            legacy=legacy,
        ),
        headers=headers,
    )


ROUTES: tuple[ControllerRouterHandler, ...] = (chat_completions,)
