"""proxy_http: the OpenAI-compatible HTTP surface over any `proxy_core.ChatService`.

`create_app` builds the routes, the SSE rendering and the error mapping as a plain
Litestar (ASGI) app; `protect` wraps it in the request log, browser guard, API-key
and body-guard layers, given an `HttpConfig` and the keys `api_keys_of` reads.
`read_gauges` reads a service's live state (turns, CLI processes, plan windows), as
the app's /metrics shows it.
`claude_max_api.bootstrap.http_app` is the reference for wiring the two.
"""

from proxy_http.app import Lifespan, create_app
from proxy_http.auth import ApiKeyError, ApiKeys, api_keys_of, load_api_keys
from proxy_http.config import HttpConfig, HttpOptions, SecurityOptions
from proxy_http.gauges import ServerGauges, read_gauges
from proxy_http.layers import protect
from proxy_http.logging import configure_logging
from proxy_http.readiness import ReadinessProbe

__all__ = [
    "ApiKeyError",
    "ApiKeys",
    "HttpConfig",
    "HttpOptions",
    "Lifespan",
    "ReadinessProbe",
    "SecurityOptions",
    "ServerGauges",
    "api_keys_of",
    "configure_logging",
    "create_app",
    "load_api_keys",
    "protect",
    "read_gauges",
]
