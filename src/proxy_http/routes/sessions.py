"""The session API: list and reset conversations (`/v1/sessions`)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, HttpMethod, Response, delete, get, route
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.types import ControllerRouterHandler

from proxy_core import ChatService, SessionRecord, namespaced
from proxy_http.auth import Access
from proxy_http.routing import error_specs
from proxy_http.wire import SessionDeleted, SessionInfo, SessionList, SessionsReset, iso_time

# SQLite integers are 64-bit; a larger offset is refused rather than overflowing.
MAX_OFFSET = 2**62


def _session_info(record: SessionRecord, access: Access) -> SessionInfo:
    return SessionInfo(
        external_id=access.shown(record.key),
        claude_session_id=record.cli_session_id,
        model=record.model,
        message_count=record.message_count,
        created_at=iso_time(record.created_at),
        last_used_at=iso_time(record.last_used_at),
    )


class SessionsController(Controller):
    """The session API."""

    path = "/v1/sessions"

    @route("/", http_method=[HttpMethod.OPTIONS], include_in_schema=False, status_code=204)
    async def allowed_methods(self) -> Response[None]:
        # Litestar's own OPTIONS answer for a path with two handlers lists only the first.
        return Response(None, status_code=204, headers={"Allow": "DELETE, GET, OPTIONS"})

    @get(
        "/", summary="List conversations, most recently used first", responses=error_specs(400, 503)
    )
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

    @delete(
        "/", status_code=200, summary="Reset every conversation", responses=error_specs(400, 503)
    )
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
        responses=error_specs(400, 404, 503),
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


ROUTES: tuple[ControllerRouterHandler, ...] = (SessionsController,)
