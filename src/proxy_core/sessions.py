"""The conversations a service remembers: listing them, forgetting them, and deleting
what the backend stored of sessions no record points to any more."""

from __future__ import annotations

import msgspec

from proxy_core.admission import Admission
from proxy_core.ledger import SessionRecord
from proxy_core.ports import Runner, SessionStore
from proxy_core.session_key import namespace_prefix


class SessionReset(msgspec.Struct, frozen=True):
    """A forgotten conversation: its record, and whether its backend transcript was
    purged (deleted and checked gone, not merely asked for)."""

    record: SessionRecord
    purged: bool = False


class Sessions:
    """The ledger's records, forgotten only between the turns of their conversation."""

    def __init__(self, store: SessionStore, runner: Runner, admission: Admission) -> None:
        self._store = store
        self._runner = runner
        self._admission = admission

    async def forget(self, key: str, *, purge: bool = False) -> SessionReset | None:
        """Forget one conversation, after any turn of it in flight has ended.

        The next request of it starts a fresh CLI session with the full history;
        `purge` also deletes what the backend stored of it, and the answer says
        whether that really happened.
        """
        async with self._admission.session(key):
            record = await self._store.delete(key)
            if record is None:
                return None
            purged = await self._runner.forget(record.cli_session_id, purge=purge)
        return SessionReset(record, purged=bool(purged))

    async def forget_all(
        self, *, purge: bool = False, namespace: str | None = None
    ) -> list[SessionReset]:
        """Forget every conversation (of `namespace`, when given); each is deleted once
        its running turn ends."""
        prefix = "" if namespace is None else namespace_prefix(namespace)
        records, _ = await self._store.list(limit=1_000_000, prefix=prefix)
        removed: list[SessionReset] = []
        for record in records:
            gone = await self.forget(record.key, purge=purge)
            if gone is not None:
                removed.append(gone)
        for record in await self._store.clear(prefix=prefix):
            purged = await self._runner.forget(record.cli_session_id, purge=purge)
            removed.append(SessionReset(record, purged=bool(purged)))
        return removed

    async def sweep_orphans(self, *, grace: float) -> int:
        """Delete what the backend stored of sessions no record points to, untouched for
        `grace` seconds (never a running process's); returns how many were deleted."""
        referenced = await self._store.cli_session_ids()
        return await self._runner.sweep_orphans(referenced, grace=grace)

    async def list(
        self, limit: int = 100, offset: int = 0, *, namespace: str | None = None
    ) -> tuple[list[SessionRecord], int]:
        """A page of conversations (of `namespace`, when given), most recent first, and
        their total count."""
        prefix = "" if namespace is None else namespace_prefix(namespace)
        return await self._store.list(limit=limit, offset=offset, prefix=prefix)
