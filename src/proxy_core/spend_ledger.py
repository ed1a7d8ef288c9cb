"""The service's spend ledger: records what each turn cost, checks budgets before a
turn runs, and reports the aggregates (for `GET /v1/usage` and embedding apps).

Callers are namespaces (the API key's id; "" when no keys are configured: one bucket
for everyone). A recorded turn is never undone: a spend store that refuses the write
(disk full, read-only) costs the record, never the reply already served; it is logged
and counted. A budget check that cannot read the store fails closed: the capped
caller is refused with `STORE_UNAVAILABLE` (503), since a cap exists to bound money
and an unreadable store cannot say it is not reached. Callers without a cap never
read the store before a turn, and a capped caller's is read once a month: its month
of spend is loaded at its first check (so it is right across a restart), then kept
in memory, each recorded turn added to it as it is recorded. What another process
adds to the same store meanwhile is seen only at the next load (the next month, or a
restart): one service per store, or per capped caller.

Concurrent turns of one caller are each checked when they start, so turns admitted
under the cap together may end above it by what they cost (at most `max_concurrent`
turns at once; the CLI's `--max-budget-usd` bounds each turn's cost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from proxy_core.budget import Budget, budget_refusal
from proxy_core.errors import ChatError, FailureReason
from proxy_core.events import Failed, Usage
from proxy_core.ports import SpendStore
from proxy_core.spend import (
    SpendEntry,
    SpendReport,
    days_before,
    month_start,
    report,
    report_start,
    turn_entries,
    utc_day,
)

RETENTION_DAYS = 400
"""Days of spend kept; older rows are pruned once a day (a month back and more stays)."""
ANONYMOUS = "anonymous"
"""The name of the one bucket of a server without API keys (the namespace "")."""

_log = logging.getLogger("proxy_core.spend")


class _MonthSpend:
    """A capped caller's spend per UTC day of one month, as the store has it plus what
    was recorded since it was read."""

    __slots__ = ("by_day", "month")

    def __init__(self, month: str, entries: Iterable[SpendEntry]) -> None:
        self.month = month
        self.by_day: dict[str, float] = {}
        self.add(entries)

    def add(self, entries: Iterable[SpendEntry]) -> None:
        for entry in entries:
            if entry.day >= self.month:
                self.by_day[entry.day] = self.by_day.get(entry.day, 0.0) + entry.cost_usd

    def since(self, first_day: str) -> float:
        return sum(cost for day, cost in self.by_day.items() if day >= first_day)


def stand_in(key: str) -> str:
    """The name of a caller without a label: `key-` and the first 8 digits of its key's
    id (which is not secret), or `anonymous` for the shared namespace."""
    return f"key-{key[:8]}" if key else ANONYMOUS


class SpendLedger:
    """Spend per caller over a `SpendStore`, with the callers' budgets (by namespace).

    `wall_clock` gives Unix time (UTC days and months are computed from it);
    `retention_days` bounds the store's growth. `unrecorded` counts the turns whose
    spend the store refused.
    """

    def __init__(
        self,
        store: SpendStore,
        budgets: Mapping[str, Budget] | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        retention_days: int = RETENTION_DAYS,
    ) -> None:
        self.store = store
        self.budgets: Mapping[str, Budget] = dict(budgets or {})
        self._wall_clock = wall_clock
        self._retention = retention_days
        self._pruned: str | None = None
        self.unrecorded = 0
        # The month of spend of each capped caller checked so far; the lock orders
        # loading one against recording a turn (see `_load`).
        self._months: dict[str, _MonthSpend] = {}
        self._lock = asyncio.Lock()
        self.loads = 0  # how many times a caller's month was read from the store

    def name_of(self, key: str) -> str:
        """What a caller is shown as: its label, else a stand-in (never its key)."""
        budget = self.budgets.get(key)
        return budget.label if budget is not None and budget.label else stand_in(key)

    async def refusal(self, key: str) -> Failed | None:
        """Why `key` may not start a turn now (over a budget, or its budget cannot be
        checked), or None when it may."""
        budget = self.budgets.get(key)
        if budget is None or not budget.capped:
            return None
        now = self._wall_clock()
        today = utc_day(now)
        month = self._months.get(key)
        if month is None or month.month != month_start(today):
            try:
                month = await self._load(key, month_start(today))
            except Exception as error:
                message = error.message if isinstance(error, ChatError) else repr(error)
                return Failed(
                    FailureReason.STORE_UNAVAILABLE,
                    f"The budget of {self.name_of(key)} cannot be checked, so the request "
                    f"is refused: {message}",
                )
        return budget_refusal(
            budget,
            self.name_of(key),
            today_usd=month.since(today),
            month_usd=month.since(month.month),
            now=now,
        )

    async def _load(self, key: str, first_day: str) -> _MonthSpend:
        """`key`'s month of spend from the store, kept for the next checks. Under the
        lock that records take too, so a turn recorded meanwhile is either in what the
        store answers or added after it, never both nor neither."""
        async with self._lock:
            month = self._months.get(key)
            if month is not None and month.month == first_day:
                return month  # another check loaded it while this one waited
            self.loads += 1
            entries = await self.store.entries(since=first_day, key=key)
            month = _MonthSpend(first_day, (e for e in entries if e.key == key))
            self._months[key] = month
            return month

    async def record(self, key: str, usage: Usage, model: str) -> str | None:
        """Add a turn's spend to `key` (nothing when its cost is unknown); returns why
        it could not be recorded (logged too), or None."""
        day = utc_day(self._wall_clock())
        entries = turn_entries(key, day, usage, model)
        if not entries:
            return None
        async with self._lock:
            try:
                await self.store.add(entries)
            except Exception as caught:
                error: Exception | None = caught
            else:
                error = None
            # Spent either way: a cap bounds money, whether the store kept it or not.
            if (month := self._months.get(key)) is not None:
                month.add(entries)
        if error is not None:
            self.unrecorded += 1
            message = error.message if isinstance(error, ChatError) else repr(error)
            _log.warning(
                "spend_not_recorded: %s (caller %s, $%.6f)",
                message,
                self.name_of(key),
                usage.cost_usd or 0.0,
            )
            return message
        await self._prune(day)
        return None

    async def report(self, key: str | None = None) -> SpendReport:
        """The spend report as of today (UTC): every caller's (each one with a budget
        included, spent or not), or `key`'s alone (included, spent or not)."""
        today = utc_day(self._wall_clock())
        entries = await self.store.entries(since=report_start(today), key=key)
        return report(entries, today, self.budgets if key is None else (key,))

    async def _prune(self, day: str) -> None:
        """Once a day, drop what is older than the retention."""
        if self._pruned == day:
            return
        try:
            await self.store.prune(before=days_before(day, self._retention))
        except Exception as error:  # the next day's first turn tries again
            _log.warning("spend_prune_failed: %r", error)
        else:
            self._pruned = day

    async def close(self) -> None:
        await self.store.close()
