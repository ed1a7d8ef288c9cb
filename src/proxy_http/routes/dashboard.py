"""`GET /dashboard`: the status page (see `proxy_http.dashboard` and docs/dashboard.md).

Authenticated like the API, with HTTP Basic credentials accepted too (any user name,
the key as password), since a browser cannot add a Bearer header. It is scoped like
`/v1/usage`: an admin key, or anyone on a server without keys, sees every key's
spend and every error; another key sees its own spend and its own errors. The live
state (turns, processes, conversations kept) and the plan windows are the server's
and the account's, shown to every caller, as `/health` and `/v1/usage` show them.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.types import ControllerRouterHandler

from proxy_core import ChatError, ChatService
from proxy_http.auth import Access
from proxy_http.dashboard import (
    DASHBOARD_PATH,
    PAGE_HEADERS,
    SHOWN_ERRORS,
    DashboardView,
    render_dashboard,
)
from proxy_http.gauges import read_gauges
from proxy_http.recent_errors import RECENT_ERRORS_KEY, RecentErrors
from proxy_http.routes.usage import Spend, visible_spend


@get(
    DASHBOARD_PATH,
    summary="Status page",
    description=(
        "An HTML page: turns, queue and CLI processes now, spend today and this month per "
        "key with the last 30 days, the plan windows, and recent errors. Needs an API key "
        "like the API; HTTP Basic credentials (the key as password) are accepted too, so a "
        "browser can open it. Scoped like /v1/usage. See docs/dashboard.md."
    ),
    media_type=MediaType.HTML,
)
async def dashboard(
    service: NamedDependency[ChatService],
    access: NamedDependency[Access],
    request: Request[Any, Any, Any],
) -> Response[str]:
    recent: RecentErrors = request.app.state[RECENT_ERRORS_KEY]
    everyone = access.sees_all
    errors = recent.visible_to(access, SHOWN_ERRORS)
    spend, problem = await _spend(service, access)
    view = DashboardView(
        now=time.time(),
        gauges=read_gauges(service),
        sessions=await _sessions(service),
        spend=spend,
        spend_problem=problem,
        errors=errors,
        names={e.key: service.spend_ledger.name_of(e.key) for e in errors if e.key is not None},
        everyone=everyone,
    )
    return Response(render_dashboard(view), media_type=MediaType.HTML, headers=PAGE_HEADERS)


async def _spend(service: ChatService, access: Access) -> tuple[Spend | None, str | None]:
    """The spend `access` may see, as /v1/usage shows it; or why it cannot be read (the
    page still shows the rest)."""
    try:
        return await visible_spend(service, access), None
    except ChatError as error:
        return None, error.message


async def _sessions(service: ChatService) -> int | None:
    """The conversations kept, or None when the store cannot say (the page still shows)."""
    try:
        return await service.store.count()
    except ChatError:
        return None


ROUTES: tuple[ControllerRouterHandler, ...] = (dashboard,)
