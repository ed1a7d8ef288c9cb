"""The ASGI layers around the app: request log, browser guard, API keys, body budget.

`create_app` builds a plain Litestar app; `protect` puts these layers around it, so
the composition root, an embedding application and the tests all serve the same
protected stack. From the outside in:

- the instance header (when the config names one), so every response says which
  server answered, whoever wrote it (`proxy_http.instance`);
- the request log, so every request gets an id and one line, refused ones included
  (it tells the metrics and the status page's recent errors of each);
- Anthropic's error shape for the Messages paths, around every layer that can refuse
  a request (`proxy_http.messages.errors.AnthropicErrors`);
- the browser guard, so a refused browser request never reaches the key check;
- the key check (only with keys), so a client without a key holds no body budget
  (`/metrics` passes it when the settings open it to a scraper; `/dashboard` takes the
  key as HTTP Basic credentials too, for a browser);
- the body budget, innermost, around Litestar's own routing.

They wrap Litestar's routing rather than being Litestar middleware, which is per
route and would miss the 404s and 405s of paths and methods no handler matches:
no path answers without a key.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from proxy_http.auth import ApiKeyMiddleware, ApiKeys
from proxy_http.bodies import BodyBudget, BodyGuard, budget_limit
from proxy_http.browser_guard import BrowserGuardMiddleware
from proxy_http.browser_policy import BrowserPolicy
from proxy_http.config import HttpConfig
from proxy_http.dashboard import DASHBOARD_PATH
from proxy_http.instance import InstanceHeader
from proxy_http.logging import RequestLogMiddleware, RequestObserver
from proxy_http.messages.errors import AnthropicErrors
from proxy_http.metrics import METRICS_KEY, METRICS_PATH, ProxyMetrics
from proxy_http.recent_errors import RECENT_ERRORS_KEY, RecentErrors


def protect(app: Litestar, config: HttpConfig, *, keys: ApiKeys, retry_after: float) -> Litestar:
    """`app` behind the layers `config` describes, requiring `keys` (none: open access);
    a body refused for the budget asks to retry after `retry_after` seconds (the
    service's busy answer).

    `keys` come loaded (`auth.api_keys_of(config.security)`), so the keys a caller
    judged (the exposure check of `serve`) are the keys the app enforces. Returns `app`
    itself, so it is still served, tested and configured as a Litestar app.
    """
    options, security = config.http, config.security
    handler: ASGIApp = BodyGuard(
        app.asgi_handler,
        budget=BodyBudget(budget_limit(options)),
        max_body_bytes=options.max_body_bytes,
        timeout=options.body_timeout,
        retry_after=retry_after,
    )
    metrics: ProxyMetrics | None = app.state.get(METRICS_KEY)
    recent: RecentErrors | None = app.state.get(RECENT_ERRORS_KEY)
    if keys:
        # The status page is opened by a browser: it may send the key as Basic credentials.
        guarded = ApiKeyMiddleware(handler, keys, [DASHBOARD_PATH] if recent is not None else [])
        open_metrics = metrics is not None and security.metrics_public
        handler = OpenPath(METRICS_PATH, handler, guarded) if open_metrics else guarded
    browser = BrowserPolicy.from_settings(
        options.host, security.allowed_hosts, security.allowed_origins
    )
    observers: list[RequestObserver] = []
    if metrics is not None:
        observers.append(metrics.observe)
    if recent is not None:
        observers.append(recent.observe)
    handler = RequestLogMiddleware(
        AnthropicErrors(BrowserGuardMiddleware(handler, browser)), observers=observers
    )
    app.asgi_handler = InstanceHeader(handler, config.instance) if config.instance else handler
    return app


class OpenPath:
    """ASGI: requests for `path` go to `unguarded`, every other one to `guarded`."""

    def __init__(self, path: str, unguarded: ASGIApp, guarded: ASGIApp) -> None:
        self.path = path
        self.unguarded = unguarded
        self.guarded = guarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.unguarded if scope.get("path") == self.path else self.guarded
        await target(scope, receive, send)
