"""Reading one turn's events from a CLI process, under the three time limits.

Shared by the process-per-turn runner and the live (persistent) processes: both
write a user line, then read stdout until that turn's `result`. Reading stops at
the result, at the end of stdout, or at a time limit, which is yielded as a
`Failed(timeout)`; what to do with the process afterwards is the caller's call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.process import CliProcess
from proxy_cli_backend.protocol import EventDecoder, ResultEvent
from proxy_cli_backend.translate import TurnTranslator
from proxy_core import Event, Failed, FailureReason


async def read_turn(
    process: CliProcess,
    config: CliRunnerConfig,
    translator: TurnTranslator,
    decoder: EventDecoder,
) -> AsyncGenerator[Event, None]:
    """Yield the core events of one turn until its result, stdout's end or a time limit.

    After it ends, `translator.result` is set if the result arrived; a time limit
    ends it with a yielded `Failed(timeout)`, and the translator may yield a Failed
    before the result (an upstream 429): the caller stops there, with the turn still
    running in the CLI. Neither means stdout ended (a crash).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + config.total_timeout
    # The first-event limit runs from the start of the turn, not from the last line:
    # the CLI's notices (upstream retries with back-off, status) are not the model's
    # output, and a chain of them must not hold a client for minutes.
    first_deadline = started + config.first_event_timeout
    while True:
        now = loop.time()
        limit, which = (
            (config.idle_timeout, "idle")
            if translator.progressed
            else (max(first_deadline - now, 0.0), "first-event")
        )
        remaining = deadline - now
        if remaining < limit:
            limit, which = max(remaining, 0.0), "total"
        try:
            # A timeout scope, not wait_for: no task per line (a turn has dozens of lines).
            async with asyncio.timeout(limit):
                line = await process.readline()
        except TimeoutError:
            yield timed_out(which, config)
            return
        if line is None:
            return
        event = decoder.decode(line)
        if event is None:
            continue
        for out in translator.feed(event):
            yield out
        if isinstance(event, ResultEvent):
            return


def timed_out(which: str, config: CliRunnerConfig) -> Failed:
    """The failure for an exceeded limit: `first-event`, `idle` or `total`."""
    names = {
        "first-event": ("first_event_timeout", "the model's first output"),
        "idle": ("idle_timeout", "more output"),
        "total": ("total_timeout", "the end of the turn"),
    }
    setting, what = names[which]
    seconds = {"first-event": config.first_event_timeout, "idle": config.idle_timeout}.get(
        which, config.total_timeout
    )
    return Failed(
        FailureReason.TIMEOUT,
        f"Timed out after {seconds:g}s waiting for {what} ({setting}); the CLI was stopped.",
    )
