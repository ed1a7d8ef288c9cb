"""Reading one turn's events from a CLI process, under the three time limits.

Shared by the process-per-turn runner and the live (persistent) processes: both
write a user line, then read stdout until that turn's `result`. Reading stops at
the result, at the end of stdout, at a time limit, which is yielded as a
`Failed(timeout)`, or where the turn suspends at client tool calls; what to do with
the process afterwards is the caller's call. The CLI's own requests on the way (the
client tools' MCP traffic) are answered by the turn's `ToolBridge`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import structlog

from proxy_cli_backend.client_tools import ToolBridge
from proxy_cli_backend.config import CliRunnerConfig
from proxy_cli_backend.process import CliProcess
from proxy_cli_backend.protocol import (
    ControlCancel,
    ControlRequest,
    EventDecoder,
    ResultEvent,
    encode_control_error,
    encode_user_message,
)
from proxy_cli_backend.translate import TurnTranslator
from proxy_core import Event, Failed, FailureReason, TextBlock

log = structlog.get_logger(__name__)

# How many times a reply that must call a tool (tool_choice) is reminded to, before its
# answer is taken as it is.
REMINDERS = 2


async def read_turn(
    process: CliProcess,
    config: CliRunnerConfig,
    translator: TurnTranslator,
    decoder: EventDecoder,
    bridge: ToolBridge | None = None,
) -> AsyncGenerator[Event, None]:
    """Yield the core events of one turn until its result, stdout's end or a time limit.

    After it ends, `translator.result` is set if the result arrived, and
    `translator.suspended` if the turn waits for client tool results; a time limit
    ends it with a yielded `Failed(timeout)`, and the translator may yield a Failed
    before the result (an upstream 429): the caller stops there, with the turn still
    running in the CLI. None of these means stdout ended (a crash).
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
        if isinstance(event, ControlRequest | ControlCancel):
            await answer_control(process, event, bridge)
            if bridge is not None and bridge.held:
                # A call waits for the client: a message printed whole may end here.
                for out in translator.call_asked():
                    yield out
                if translator.suspended:
                    return
            continue
        for out in translator.feed(event):
            yield out
        if isinstance(event, ResultEvent) or translator.suspended:
            return


async def answer_control(
    process: CliProcess, request: ControlRequest | ControlCancel, bridge: ToolBridge | None
) -> None:
    """Answer a request of the CLI (a held tool call is answered later, by `supply`)."""
    if isinstance(request, ControlCancel):
        if bridge is not None:
            bridge.cancel(request.request_id)
        return
    if bridge is None:
        line: bytes | None = encode_control_error(request.request_id, "no client tools here")
    else:
        line = bridge.handle(request.request_id, request.request)
    if line is not None:
        await process.send(line)


async def drive_turn(
    process: CliProcess,
    config: CliRunnerConfig,
    translator: TurnTranslator,
    decoder: EventDecoder,
    bridge: ToolBridge | None,
    reminder: str | None,
) -> AsyncGenerator[Event, None]:
    """`read_turn`, and for a reply that must call a client tool (`reminder`, the
    words that say so) and ended without: remind it, up to REMINDERS times, in the
    same process, so the reply the client gets is the one that calls."""
    reminders = REMINDERS if reminder else 0
    while True:
        async for event in read_turn(process, config, translator, decoder, bridge):
            yield event
            if isinstance(event, Failed):
                return
        result = translator.result
        if reminder is None or result is None or result.is_error or translator.called:
            return
        if reminders == 0:
            log.warning("required_tool_call_not_made", reminders=REMINDERS)
            for event in translator.withheld():
                yield event
            return
        reminders -= 1
        translator.next_turn()
        await process.send(encode_user_message((TextBlock(reminder),)))


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
