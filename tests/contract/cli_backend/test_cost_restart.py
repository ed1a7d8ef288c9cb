"""A turn's cost across a restart of the server: the real CLI's running totals.

The CLI reports `total_cost_usd` as the session's running total, and a process started
with `--resume` restores the totals it saved for that session. After a restart the
runner has no reading of its own: the one the conversation's record kept (the SQLite
session database) tells what this turn added, so the turn's cost is known and is not
the whole session's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy_cli_backend.session_store import SqliteSessionStore
from proxy_core import ChatRequest, ChatService, PlanKind


async def test_the_first_turn_after_a_restart_costs_what_it_added(
    make_live: Callable[..., Any], tmp_path: Path
) -> None:
    database = tmp_path / "sessions.sqlite3"
    long_reply = "word " * 400
    first = [{"role": "user", "content": f"[[reply:{long_reply}]]"}]

    before = ChatService(await make_live(), SqliteSessionStore(database))
    one = await before.complete(ChatRequest(model="sonnet", messages=first, session_id="c"))
    record = await before.store.get(one.session_key)
    assert record is not None
    assert record.meter is not None  # the session's running totals, kept with it
    await before.aclose()  # the server stops: its processes and readings are gone

    after = ChatService(await make_live(), SqliteSessionStore(database))
    messages = [
        *first,
        {"role": "assistant", "content": one.text},
        {"role": "user", "content": "ok"},
    ]
    async with after.open_turn(
        ChatRequest(model="sonnet", messages=messages, session_id="c"), whole=True
    ) as turn:
        async for _ in turn.events():
            pass
    await after.aclose()

    assert turn.plan is not None
    assert turn.plan.kind is PlanKind.CONTINUE  # resumed, not started afresh
    assert one.usage.cost_usd is not None
    assert turn.usage is not None
    assert turn.usage.cost_usd is not None  # known, though this runner saw no earlier turn
    # Its own input replays the long reply, but its output is two words: far below the
    # first turn's cost, and so never the session's running total.
    assert 0 < turn.usage.cost_usd < one.usage.cost_usd / 2
