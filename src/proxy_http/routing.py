"""What every route handler shares: the caller's access, the turns in flight, the
headers of a conversation, and the OpenAPI description of error answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import NotAuthorizedException, ValidationException
from litestar.openapi import ResponseSpec

from proxy_core import ChatService, ResponseStore, Turn
from proxy_http.auth import Access, access_for, caller_of, keys_checked
from proxy_http.config import HttpOptions
from proxy_http.errors import handle_validation
from proxy_http.streaming import (
    ActiveTurns,
    Collected,
    StreamRenderer,
    collect_turn,
    open_stream,
)
from proxy_http.turn_stream import TurnStream
from proxy_http.wire import ErrorBody

SESSION_HEADER = "X-Session-Id"
IGNORED_FIELDS_HEADER = "X-Ignored-Fields"
"""Names the request's fields that would change the reply but are ignored (comma-separated)."""
IGNORED_TOOLS_HEADER = "X-Ignored-Tools"
"""Names the tool types of a request that were not offered to the model (comma-separated)."""
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Sent with every SSE stream: no cache, and no buffering by a reverse proxy."""
ACTIVE_TURNS_KEY = "active_turns"
RESPONSES_KEY = "responses"
"""Where the app's state keeps the Responses API's store (see `responses_of`)."""


# The error statuses chat completions and /v1/responses declare in OpenAPI, in the
# OpenAI error shape (/v1/messages declares its own, in Anthropic's).
TURN_ERROR_STATUSES = (400, 403, 404, 408, 413, 415, 421, 429, 502, 503, 504)


def error_specs(
    *statuses: int, body: type[Any] = ErrorBody, description: str = "An OpenAI error body."
) -> dict[int, ResponseSpec]:
    """The OpenAPI description of a handler's error answers."""
    return {
        status: ResponseSpec(data_container=body, description=description) for status in statuses
    }


def access_of(request: Request[Any, Any, Any]) -> Access | None:
    """The request's access; None when keys are configured and it presented no valid one
    (only open paths such as /health are reached without one)."""
    return access_for(caller_of(request.scope), keys_required=keys_checked(request.scope))


def required_access(request: Request[Any, Any, Any]) -> Access:
    """The request's access (a dependency); the key middleware lets nothing else through."""
    access = access_of(request)
    if access is None:
        raise NotAuthorizedException("An API key is required.")
    return access


# The endpoints that open turns take the service, options and response store from the
# app's state through these, not as dependencies: Litestar resolves a handler's
# dependencies in a task group of their own whenever there are two or more (three
# tasks a request), where `access` alone is awaited in place.


def service_of(request: Request[Any, Any, Any]) -> ChatService:
    """The app's chat service."""
    service: ChatService = request.app.state["service"]
    return service


def options_of(request: Request[Any, Any, Any]) -> HttpOptions:
    """The app's HTTP options."""
    options: HttpOptions = request.app.state["options"]
    return options


def responses_of(request: Request[Any, Any, Any]) -> ResponseStore:
    """The app's store of the Responses API's replies."""
    responses: ResponseStore = request.app.state[RESPONSES_KEY]
    return responses


def active_turns(request: Request[Any, Any, Any]) -> ActiveTurns:
    """The app's registry of turns in flight (which a shutdown ends with an error)."""
    active: ActiveTurns = request.app.state[ACTIVE_TURNS_KEY]
    return active


def disconnect_watcher(request: Request[Any, Any, Any]) -> Callable[[], Awaitable[None]]:
    """What returns once the client of `request` has gone (for `collect_turn` and `stream_turn`)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return disconnected


ENDPOINT_KEY = "endpoint"
"""Where a route handler's opt dict names its API surface (see `endpoint_of`)."""


def endpoint_of(request: Request[Any, Any, Any]) -> str:
    """The API surface of `request`'s handler (its `opt`), for logs and /stats."""
    return str(request.route_handler.opt.get(ENDPOINT_KEY, "other"))


def refused_request(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[ErrorBody]:
    """A request whose body fails decoding: answered as any validation failure, and
    counted in /stats as the service counts the requests it refuses (the
    `ValidationException` handler of every endpoint that opens turns)."""
    service_of(request).count_refused(endpoint_of(request))
    return handle_validation(request, error)


async def streamed(
    request: Request[Any, Any, Any],
    turn: Turn,
    renderer: StreamRenderer,
    *,
    show_thinking: bool,
    options: HttpOptions,
    headers: dict[str, str],
) -> TurnStream:
    """The turn as an SSE response written by `renderer`. Its headers wait (briefly)
    for the turn's first content, so a turn that fails before showing anything is
    answered with its own status, not a 200 (see `open_stream`)."""
    body = await open_stream(
        turn,
        renderer,
        show_thinking=show_thinking,
        keepalive_interval=options.keepalive_interval,
        hold=options.stream_hold,
        disconnected=disconnect_watcher(request),
        active=active_turns(request),
    )
    return TurnStream(body, media_type="text/event-stream", headers={**headers, **STREAM_HEADERS})


async def collected(request: Request[Any, Any, Any], turn: Turn) -> Collected:
    """The turn's whole reply, unless its client goes first (which cancels it)."""
    return await collect_turn(turn, active_turns(request), disconnect_watcher(request))
