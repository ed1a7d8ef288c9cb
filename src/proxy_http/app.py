"""The Litestar app: `create_app(service, config)` exposes a ChatService over HTTP.

It is the plain app; `proxy_http.layers.protect` puts the ASGI layers (request log,
browser guard, API keys, body budget) around it. Each API surface has its own
routes module (`proxy_http.routes`).

Handlers raise domain errors and the exception handlers in `errors` shape them;
the service and config come in as dependencies, never as module globals.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.types import Guard, Middleware

from proxy_core import ChatService, InMemoryResponseStore, ResponseStore
from proxy_http.config import HttpConfig, HttpOptions
from proxy_http.dashboard import DASHBOARD_PATH
from proxy_http.errors import EXCEPTION_HANDLERS
from proxy_http.metrics import METRICS_KEY, ProxyMetrics, endpoint_table
from proxy_http.readiness import ReadinessProbe
from proxy_http.recent_errors import RECENT_ERRORS_KEY, RecentErrors
from proxy_http.routes import ROUTES, dashboard, metrics
from proxy_http.routes.status import READINESS_KEY
from proxy_http.routing import ACTIVE_TURNS_KEY, RESPONSES_KEY, required_access
from proxy_http.streaming import ActiveTurns

__all__ = ["ACTIVE_TURNS_KEY", "Lifespan", "create_app"]

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]


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
    responses: ResponseStore | None = None,
) -> Litestar:
    """The plain HTTP app over `service`: routes, dependencies, error shapes.

    `lifespan` context managers wrap the app's life (the composition root closes
    the service there); `guards` and `middleware` are extension points. `readiness`
    adds the setup checks' problems (login state, ...) to /health; the app runs them
    from start-up on, in the background. The request log,
    the browser guard, API keys and the body budget are ASGI layers put around it by
    `proxy_http.layers.protect`: served without them, every caller has open access.
    `responses` keeps the Responses API's stored replies; without one they are kept in
    memory (the newest 1000) until the app stops. Whoever passes one closes it.
    Unless `config` turns them off, the app serves its own Prometheus metrics at
    /metrics (`proxy_http.metrics`), whose request counts the request log of
    `protect` feeds, and its status page at /dashboard (`proxy_http.dashboard`), whose
    recent errors it feeds too.
    """
    options = (config or HttpConfig()).http
    stored: ResponseStore = responses if responses is not None else InMemoryResponseStore()
    if readiness is not None:
        lifespan = [*lifespan, _readiness_lifespan(readiness)]
    app = Litestar(
        route_handlers=[
            *ROUTES,
            *(metrics.ROUTES if options.metrics else ()),
            *(dashboard.ROUTES if options.dashboard else ()),
        ],
        guards=list(guards),
        dependencies={
            "service": Provide(lambda: service, use_cache=True, sync_to_thread=False),
            "options": Provide(lambda: options, use_cache=True, sync_to_thread=False),
            "responses": Provide(lambda: stored, use_cache=True, sync_to_thread=False),
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
                RESPONSES_KEY: stored,
                ACTIVE_TURNS_KEY: ActiveTurns(),
                READINESS_KEY: readiness,
            }
        ),
        signature_namespace={
            "ChatService": ChatService,
            "HttpOptions": HttpOptions,
            "ResponseStore": ResponseStore,
        },
        logging_config=None,
        debug=debug,
    )
    if options.metrics:
        # Built over the app's routes: a request refused before its handler still
        # counts under its API surface. The request log feeds it (`layers.protect`).
        app.state[METRICS_KEY] = ProxyMetrics(service, endpoint_table(app))
    if options.dashboard:
        # The status page's recent errors, fed by the request log too.
        app.state[RECENT_ERRORS_KEY] = RecentErrors(challenge_paths=[DASHBOARD_PATH])
    return app
