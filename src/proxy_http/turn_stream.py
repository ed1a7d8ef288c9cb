"""A turn's SSE response: Litestar's streaming response, written in the request's task.

Litestar writes a `Stream`'s body from a task of its own while the request's task waits
for the client to disconnect, which cancels the writer: a task group and a task for
every streamed response. The body of a turn watches its client itself (`stream_turn`
aborts the turn when the client goes, and the body then ends), so `TurnStream` writes
it in place and closes it however the writing ends.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Iterable
from typing import TYPE_CHECKING

from litestar.enums import MediaType
from litestar.response import Stream
from litestar.response.streaming import ASGIStreamingResponse
from litestar.utils.helpers import get_enum_string_value

if TYPE_CHECKING:
    from litestar import Litestar, Request
    from litestar.background_tasks import BackgroundTask, BackgroundTasks
    from litestar.datastructures import Cookie
    from litestar.response.base import ASGIResponse
    from litestar.types import Receive, Send, TypeEncodersMap


class _InPlaceStreamingResponse(ASGIStreamingResponse):
    async def send_body(self, send: Send, receive: Receive) -> None:
        try:
            await self._stream(send)
        finally:
            if isinstance(self.iterator, AsyncGenerator):
                # Ends the turn (its CLI process group included) if it still runs.
                await self.iterator.aclose()


class TurnStream(Stream):
    """A `Stream` of a body that watches its own client (see the module)."""

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request,  # type: ignore[type-arg]
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        # As `Stream.to_asgi_response` builds its response (the layers' headers and
        # cookies merged under the response's own), but not one that writes from a task.
        headers = {**headers, **self.headers} if headers is not None else self.headers
        cookies = self.cookies if cookies is None else itertools.chain(self.cookies, cookies)
        iterator = self.iterator
        if not isinstance(iterator, AsyncGenerator):
            raise TypeError("a TurnStream's body is an async generator")
        return _InPlaceStreamingResponse(
            background=self.background or background,
            content_length=0,
            cookies=cookies,
            encoded_headers=encoded_headers,
            encoding=self.encoding,
            headers=headers,
            is_head_response=is_head_response,
            iterator=iterator,
            media_type=get_enum_string_value(media_type or self.media_type or MediaType.JSON),
            status_code=self.status_code or status_code,
        )
