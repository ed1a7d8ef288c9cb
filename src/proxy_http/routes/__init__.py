"""The app's routes, one module per API surface (and one for the server's own state)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from proxy_http.messages import routes as messages
from proxy_http.responses import routes as responses
from proxy_http.routes import chat, models, sessions, status, usage

ROUTES: tuple[ControllerRouterHandler, ...] = (
    *chat.ROUTES,
    *responses.ROUTES,
    *messages.ROUTES,
    *models.ROUTES,
    *status.ROUTES,
    *sessions.ROUTES,
    *usage.ROUTES,
)
