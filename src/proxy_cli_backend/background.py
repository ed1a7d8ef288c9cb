"""Background tasks that outlive the request that happened to start them.

A task copies the context it is created in, so a task started while a request is
served would log with that request's id (bound through structlog contextvars) for
as long as it runs: a live process's stderr, the warm pool's refill and the reaper
outlive the request and would tag later lines with the wrong id. They start in an
empty context instead.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def detached_task(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """`coro` as a task with a fresh, empty context (no request's bound log fields)."""
    return asyncio.create_task(coro, name=name, context=contextvars.Context())
