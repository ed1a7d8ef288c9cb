"""The ASGI layers around the app: request log, browser guard, API keys, body budget.

`create_app` builds a plain Litestar app; `protect` puts these layers around it, so
the composition root, an embedding application and the tests all serve the same
protected stack. From the outside in:

- the request log, so every request gets an id and one line, refused ones included;
- Anthropic's error shape for the Messages paths, around every layer that can refuse
  a request (`proxy_http.messages.errors.AnthropicErrors`);
- the browser guard, so a refused browser request never reaches the key check;
- the key check (only with keys), so a client without a key holds no body budget;
- the body budget, innermost, around Litestar's own routing.

They wrap Litestar's routing rather than being Litestar middleware, which is per
route and would miss the 404s and 405s of paths and methods no handler matches:
no path answers without a key.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.types import ASGIApp

from proxy_http.auth import ApiKeyMiddleware, ApiKeys
from proxy_http.bodies import BodyBudget, BodyGuard, budget_limit
from proxy_http.browser_guard import BrowserGuardMiddleware
from proxy_http.browser_policy import BrowserPolicy
from proxy_http.config import HttpConfig
from proxy_http.logging import RequestLogMiddleware
from proxy_http.messages.errors import AnthropicErrors


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
    if keys:
        handler = ApiKeyMiddleware(handler, keys)
    browser = BrowserPolicy.from_settings(
        options.host, security.allowed_hosts, security.allowed_origins
    )
    app.asgi_handler = RequestLogMiddleware(
        AnthropicErrors(BrowserGuardMiddleware(handler, browser))
    )
    return app
