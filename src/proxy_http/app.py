"""The Litestar app: `create_app(service, config)` exposes a ChatService over HTTP.

It is the plain app; `proxy_http.layers.protect` puts the ASGI layers (request log,
browser guard, API keys, body budget) around it.

Handlers raise domain errors and the exception handlers in `errors` shape them;
the service and config come in as dependencies, never as module globals.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import structlog
from litestar import Controller, HttpMethod, Litestar, Request, Response, delete, get, post, route
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException, NotFoundException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.types import ControllerRouterHandler, Guard, Middleware

from proxy_core import (
    BackendDetails,
    ChatCompletionRequest,
    ChatService,
    LiveDetails,
    SessionRecord,
    chat_request,
    model_not_found,
    namespaced,
)
from proxy_core.openai_wire import unhonoured_fields
from proxy_http.auth import Access, access_for, caller_of, keys_checked
from proxy_http.config import HttpConfig, HttpOptions
from proxy_http.errors import EXCEPTION_HANDLERS, handle_validation
from proxy_http.logging import note
from proxy_http.readiness import Readiness, ReadinessProbe
from proxy_http.sse import ChunkRenderer, completion, new_completion_id
from proxy_http.streaming import ActiveTurns, collect_turn, open_stream, until_first
from proxy_http.wire import (
    BackendHealth,
    ChatCompletion,
    Concurrency,
    ErrorBody,
    Health,
    HealthStatus,
    Model,
    ModelList,
    Performance,
    ProcessStats,
    RequestCounts,
    SessionCount,
    SessionDeleted,
    SessionInfo,
    SessionList,
    SessionsReset,
    Stats,
    TokenCounts,
    Uptime,
)

# Model ids have no creation date of their own; a fixed one keeps responses stable.
MODEL_CREATED = 1_735_689_600
SESSION_HEADER = "X-Session-Id"
IGNORED_FIELDS_HEADER = "X-Ignored-Fields"
"""Names the request's fields that would change the reply but are ignored (comma-separated)."""
READINESS_KEY = "readiness"
# SQLite integers are 64-bit; a larger offset is refused rather than overflowing.
MAX_OFFSET = 2**62

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]


def _errors(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(data_container=ErrorBody, description="An OpenAI error body.")
        for status in statuses
    }


_log = structlog.get_logger("proxy_http.app")


# -- who is asking ---------------------------------------------------------------


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


# -- chat completions ----------------------------------------------------------

ACTIVE_TURNS_KEY = "active_turns"


def active_turns(request: Request[Any, Any, Any]) -> ActiveTurns:
    """The app's registry of turns in flight (which a shutdown ends with an error)."""
    active: ActiveTurns = request.app.state[ACTIVE_TURNS_KEY]
    return active


def refused_chat(
    request: Request[Any, Any, Any], error: ValidationException
) -> Response[ErrorBody]:
    """A chat request whose body fails decoding: answered as any validation failure,
    and counted in /stats as the service counts the requests it refuses."""
    service: ChatService = request.app.state["service"]
    service.count_refused()
    return handle_validation(request, error)


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
        **_errors(400, 403, 404, 408, 413, 415, 421, 429, 502, 503, 504),
    },
    exception_handlers={ValidationException: refused_chat},
)
async def chat_completions(
    data: JSONBody[ChatCompletionRequest],
    request: Request[Any, Any, Any],
    service: NamedDependency[ChatService],
    options: NamedDependency[HttpOptions],
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

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    if data.stream:
        include_usage = bool(data.stream_options and data.stream_options.include_usage)
        renderer = ChunkRenderer(
            completion_id,
            created,
            turn.model.response_id,
            include_usage=include_usage,
            legacy=legacy,
        )
        # Headers wait (briefly) for the turn's first content, so a turn that fails
        # before showing anything is answered with its own status, not a 200.
        body = await open_stream(
            turn,
            renderer,
            show_thinking=show_thinking,
            keepalive_interval=options.keepalive_interval,
            hold=options.stream_hold,
            disconnected=disconnected,
            active=active_turns(request),
        )
        return Stream(
            body,
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    collected = await until_first(collect_turn(turn, active_turns(request)), disconnected)
    return Response(
        completion(
            completion_id=completion_id,
            created=created,
            model=turn.model.response_id,
            text=collected.text,
            thinking=collected.thinking if show_thinking else None,
            stop_reason=collected.stop_reason,
            usage=collected.usage,
            tool_calls=collected.tool_calls,
            legacy=legacy,
        ),
        headers=headers,
    )


# -- models ----------------------------------------------------------------------


@get("/v1/models", summary="List models")
async def list_models(service: NamedDependency[ChatService]) -> ModelList:
    return ModelList(
        data=[Model(id=entry.id, created=MODEL_CREATED) for entry in service.catalog.list()]
    )


@get("/v1/models/{model_id:str}", summary="Retrieve a model", responses=_errors(404))
async def get_model(model_id: FromPath[str], service: NamedDependency[ChatService]) -> Model:
    entry = service.catalog.get(model_id)
    if entry is None:
        raise model_not_found(model_id)
    return Model(id=entry.id, created=MODEL_CREATED)


# -- health and stats ------------------------------------------------------------


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@get(
    "/health",
    summary="Liveness and backend readiness",
    description=(
        "Open to all. With API keys configured, a caller without a valid key gets only "
        "`status`; the details (paths, processes, sessions) need a key."
    ),
)
async def health(
    service: NamedDependency[ChatService], state: State, request: Request[Any, Any, Any]
) -> Health | HealthStatus:
    status = service.backend_status()
    probe: ReadinessProbe | None = state.get(READINESS_KEY)
    # Never waits: the last result of the setup checks (none yet just after start-up).
    readiness = probe.current() if probe else Readiness(checked=True)
    problems = list(status.problems) + list(readiness.problems)
    verdict: Literal["ok", "degraded"] = "ok" if status.ready and not problems else "degraded"
    if access_of(request) is None:
        return HealthStatus(status=verdict)
    return Health(
        status=verdict,
        provider="claude-code-cli",
        sessions=await service.store.count(),
        active_subprocesses=status.active_processes,
        concurrency_limit=service.limits.max_concurrent,
        queued_requests=service.queued,
        timestamp=_iso(time.time()),
        backend=BackendHealth(
            ready=status.ready,
            name=status.name,
            version=status.version,
            problems=problems,
            details=status.details,
            checks_pending=not readiness.checked,
        ),
        tracked_children=status.details.tracked_children if status.details else 0,
        orphans_killed=status.details.orphans_killed if status.details else 0,
    )


def _human(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


@get("/stats", summary="Request, token and latency statistics")
async def stats(service: NamedDependency[ChatService]) -> Stats:
    snapshot = await service.stats()
    return Stats(
        uptime=Uptime(ms=int(snapshot.uptime_s * 1000), human=_human(snapshot.uptime_s)),
        requests=RequestCounts(
            total=snapshot.total,
            completed=snapshot.completed,
            errors=snapshot.errors,
            active=snapshot.active,
            queued=snapshot.queued,
        ),
        concurrency=Concurrency(limit=snapshot.concurrency_limit, active=snapshot.active),
        sessions=SessionCount(total=snapshot.sessions),
        tokens=TokenCounts(
            total_input=snapshot.input_tokens,
            total_output=snapshot.output_tokens,
            total=snapshot.input_tokens + snapshot.output_tokens,
        ),
        performance=Performance(
            avg_response_ms=round(snapshot.avg_latency_ms, 1),
            p50_response_ms=round(snapshot.p50_latency_ms, 1),
            p95_response_ms=round(snapshot.p95_latency_ms, 1),
            sampled_requests=snapshot.sampled,
        ),
        processes=_process_stats(service.backend_status().details),
    )


def _process_stats(details: BackendDetails | None) -> ProcessStats | None:
    """The live-process figures a backend reports (None: it keeps no live processes)."""
    if not isinstance(details, LiveDetails):
        return None
    return ProcessStats(
        live=details.live_processes,
        live_rss_bytes=details.live_rss_bytes,
        pool_ready=details.pool_ready,
        suspended_turns=details.suspended_turns,
    )


# -- sessions --------------------------------------------------------------------


def _session_info(record: SessionRecord, access: Access) -> SessionInfo:
    return SessionInfo(
        external_id=access.shown(record.key),
        claude_session_id=record.cli_session_id,
        model=record.model,
        message_count=record.message_count,
        created_at=_iso(record.created_at),
        last_used_at=_iso(record.last_used_at),
    )


class SessionsController(Controller):
    """The session API."""

    path = "/v1/sessions"

    @route("/", http_method=[HttpMethod.OPTIONS], include_in_schema=False, status_code=204)
    async def allowed_methods(self) -> Response[None]:
        # Litestar's own OPTIONS answer for a path with two handlers lists only the first.
        return Response(None, status_code=204, headers={"Allow": "DELETE, GET, OPTIONS"})

    @get("/", summary="List conversations, most recently used first", responses=_errors(400, 503))
    async def list_sessions(
        self,
        service: NamedDependency[ChatService],
        access: NamedDependency[Access],
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Page size.")] = 100,
        offset: Annotated[
            int, QueryParameter(ge=0, le=MAX_OFFSET, description="Records to skip.")
        ] = 0,
    ) -> SessionList:
        records, total = await service.list_sessions(
            limit=limit, offset=offset, namespace=_visible(access)
        )
        return SessionList(sessions=[_session_info(r, access) for r in records], total=total)

    @delete("/", status_code=200, summary="Reset every conversation", responses=_errors(400, 503))
    async def reset_sessions(
        self,
        service: NamedDependency[ChatService],
        access: NamedDependency[Access],
        purge: Annotated[
            bool, QueryParameter(description="Also delete the CLI transcripts.")
        ] = False,
    ) -> SessionsReset:
        removed = await service.forget_all(purge=purge, namespace=_visible(access))
        return SessionsReset(deleted=len(removed), purged=sum(r.purged for r in removed))

    @delete(
        # `path`, not `str`: an X-Session-Id may contain `/` (sent as `%2F` or not).
        "/{session_id:path}",
        status_code=200,
        summary="Reset one conversation",
        description=(
            "`session_id` is the full key (`h:abc`, `u:alice`, `auto:...`) or a raw "
            "X-Session-Id value (`abc`, tried as `h:abc`), within the caller's own "
            "sessions; an admin key may also name any session by its listed `externalId`."
        ),
        responses=_errors(400, 404, 503),
    )
    async def reset_session(
        self,
        session_id: FromPath[str],
        service: NamedDependency[ChatService],
        access: NamedDependency[Access],
        purge: Annotated[
            bool, QueryParameter(description="Also delete the CLI transcript.")
        ] = False,
    ) -> SessionDeleted:
        session_id = session_id.removeprefix("/")
        for key in _candidate_keys(session_id, access):
            reset = await service.forget_session(key, purge=purge)
            if reset is not None:
                return SessionDeleted(
                    deleted=True, external_id=access.shown(reset.record.key), purged=reset.purged
                )
        raise NotFoundException(f"No session '{session_id}'. GET /v1/sessions lists them.")


def _visible(access: Access) -> str | None:
    """The namespace a caller's session listing and reset are limited to (None: all)."""
    return None if access.sees_all else access.namespace


def _candidate_keys(session_id: str, access: Access) -> list[str]:
    """Store keys a DELETE of `session_id` may mean, in order: the caller's own (as a
    full key, then as a raw X-Session-Id), then, for an admin, any store key."""
    own = [namespaced(access.namespace, k) for k in (session_id, "h:" + session_id)]
    anyone = [session_id, "h:" + session_id] if access.sees_all else []
    return list(dict.fromkeys([*own, *anyone]))


ROUTES: tuple[ControllerRouterHandler, ...] = (
    chat_completions,
    list_models,
    get_model,
    health,
    stats,
    SessionsController,
)


def _readiness_lifespan(probe: ReadinessProbe) -> Lifespan:
    """The setup checks' first run starts with the app; a run still going ends with it."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with probe.running():
            yield

    return lifespan


def create_app(
    service: NamedDependency[ChatService],
    config: HttpConfig | None = None,
    *,
    lifespan: Sequence[Lifespan] = (),
    guards: Sequence[Guard] = (),
    middleware: Sequence[Middleware] = (),
    debug: bool = False,
    readiness: ReadinessProbe | None = None,
) -> Litestar:
    """The plain HTTP app over `service`: routes, dependencies, error shapes.

    `lifespan` context managers wrap the app's life (the composition root closes
    the service there); `guards` and `middleware` are extension points. `readiness`
    adds the setup checks' problems (login state, ...) to /health; the app runs them
    from start-up on, in the background. The request log,
    the browser guard, API keys and the body budget are ASGI layers put around it by
    `proxy_http.layers.protect`: served without them, every caller has open access.
    """
    options = (config or HttpConfig()).http
    if readiness is not None:
        lifespan = [*lifespan, _readiness_lifespan(readiness)]
    return Litestar(
        route_handlers=list(ROUTES),
        guards=list(guards),
        dependencies={
            "service": Provide(lambda: service, use_cache=True, sync_to_thread=False),
            "options": Provide(lambda: options, use_cache=True, sync_to_thread=False),
            "access": Provide(required_access, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=list(middleware),
        lifespan=list(lifespan),
        request_max_body_size=options.max_body_bytes,
        openapi_config=OpenAPIConfig(title="claude-max-api-proxy", version="0.1.0", path="/schema"),
        state=State(
            {
                "service": service,
                "options": options,
                ACTIVE_TURNS_KEY: ActiveTurns(),
                READINESS_KEY: readiness,
            }
        ),
        signature_namespace={"ChatService": ChatService, "HttpOptions": HttpOptions},
        logging_config=None,
        debug=debug,
    )
