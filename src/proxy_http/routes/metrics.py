"""`GET /metrics`: the app's Prometheus metrics (see `proxy_http.metrics`)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.types import ControllerRouterHandler

from proxy_http.metrics import METRICS_KEY, METRICS_PATH, ProxyMetrics

# What the schema says: the exact type (a format version) follows the Accept header.
_TEXT = "text/plain"


@get(
    METRICS_PATH,
    summary="Prometheus metrics",
    description=(
        "Requests, latencies, tokens and cost since start, and the turns, CLI processes "
        "and plan windows now, in Prometheus' text format (OpenMetrics when the Accept "
        "header asks for it). Needs an API key like the API unless --metrics-public. "
        "See docs/metrics.md."
    ),
    responses={
        200: ResponseSpec(data_container=str, media_type=_TEXT, description="The metrics, as text.")
    },
    media_type=_TEXT,
)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    exported: ProxyMetrics = request.app.state[METRICS_KEY]
    body, content_type = exported.exposition(request.headers.get("accept"))
    # As the encoder names it: Litestar would add a second charset to a text/ type.
    return Response(body, media_type=content_type, headers={"content-type": content_type})


ROUTES: tuple[ControllerRouterHandler, ...] = (metrics,)
