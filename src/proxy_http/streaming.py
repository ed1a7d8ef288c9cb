"""Driving one admitted Turn for HTTP: as an SSE byte stream, or collected whole.

A turn's events are pulled by one pump task for its whole life, so whatever the
runner holds across events (timeouts, process handles) stays in one task; the
response side waits on a queue, which it can time out (keep-alive comments) or
abandon (client disconnect) without disturbing the runner. Abandoning cancels the
pump, which closes the turn's generator, so the runner kills its CLI process.

A stream's headers wait, for a bounded time, for the turn's first event a client
sees: a turn that fails before it is then answered with its own status and headers,
as a whole reply is (see `open_stream`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AsyncExitStack, aclosing, suppress
from typing import Protocol

import anyio
import msgspec
import structlog

from proxy_core import (
    NO_RESULT,
    ChatError,
    Event,
    Failed,
    FailureReason,
    Finished,
    ReplyCollector,
    TextDelta,
    ThinkingDelta,
    ToolArguments,
    ToolCall,
    ToolCallStarted,
    Turn,
    Usage,
    no_result,
)
from proxy_http.logging import note, note_first_content
from proxy_http.wire import iso_time

_log = structlog.get_logger("proxy_http.streaming")


class StreamRenderer(Protocol):
    """How one API surface writes a turn's events on the wire (chat completion chunks,
    Responses events, Anthropic Messages events). `stream_turn` drives it: `opening`
    once, then one call per event a client sees, then `finished` or `failed` (each ends
    the body: whatever terminator the API has goes there); `keepalive` while waiting.
    A renderer may keep state between calls (open items, running text, sequence
    numbers); one renderer serves one stream."""

    def opening(self) -> bytes:
        """What the stream starts with, before any content."""
        ...

    def text(self, text: str) -> bytes:
        """A fragment of the reply's text (never empty)."""
        ...

    def thinking(self, text: str) -> bytes:
        """A fragment of shown thinking (only called when thinking is shown)."""
        ...

    def tool_call(self, index: int, call_id: str, name: str) -> bytes:
        """Client tool call `index` starts (its arguments follow)."""
        ...

    def tool_arguments(self, index: int, text: str) -> bytes:
        """A fragment of call `index`'s JSON arguments (never empty)."""
        ...

    async def finished(self, finished: Finished, usage: Usage) -> bytes:
        """The end of a turn that went well, with its usage (may store the result)."""
        ...

    def failed(self, reason: FailureReason, message: str) -> bytes:
        """The end of a turn that failed after the stream started."""
        ...

    def keepalive(self) -> bytes:
        """What keeps an idle stream's connection and its client's timers alive."""
        ...


class ActiveTurns:
    """The turns an app is serving, so a shutdown can end them with a proper error."""

    def __init__(self) -> None:
        self._pumps: set[TurnPump] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._pumps)

    def add(self, pump: TurnPump) -> None:
        self._pumps.add(pump)
        self._idle.clear()

    def discard(self, pump: TurnPump) -> None:
        self._pumps.discard(pump)
        if not self._pumps:
            self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """Whether every turn ended within `within` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    def abort_all(self, message: str) -> int:
        """End every turn now: its client gets a 503 `cancelled` error; returns how many."""
        pumps = list(self._pumps)
        for pump in pumps:
            pump.abort(message)
        return len(pumps)


class TurnPump:
    """Runs `turn.events()` in its own task and hands the events over through a queue.

    Made by `start`, which enters the turn (its admission); `aclose` leaves it.
    """

    @classmethod
    async def start(cls, turn: Turn, active: ActiveTurns | None = None) -> TurnPump:
        """Enter `turn` (raises ChatError when the queue is full) and start pumping it."""
        entered = AsyncExitStack()
        await entered.enter_async_context(turn)
        try:
            return cls(turn, entered, active)
        except BaseException:
            await entered.aclose()
            raise

    def __init__(
        self, turn: Turn, entered: AsyncExitStack, active: ActiveTurns | None = None
    ) -> None:
        self.turn = turn
        self._entered = entered  # leaving it closes the turn and frees its admission
        # None marks the end of the turn's events.
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._delivered_end = False
        self._aborted: str | None = None
        self._active = active
        self._task = asyncio.create_task(self._pump())
        # A callback, not a `finally`: it runs even for a task cancelled before it started.
        self._task.add_done_callback(self._ended)
        if active is not None:
            active.add(self)

    async def _pump(self) -> None:
        async with aclosing(self.turn.events()) as events:
            async for event in events:
                self._queue.put_nowait(event)

    def _ended(self, _: asyncio.Task[None]) -> None:
        if self._aborted is not None:
            # Closing the events killed the CLI; the client still gets an answer.
            self._queue.put_nowait(Failed(FailureReason.CANCELLED, self._aborted))
        self._queue.put_nowait(None)

    def abort(self, message: str) -> None:
        """Cancel the turn; its reader then gets Failed(CANCELLED, message) as its end."""
        if not self._task.done() and not self._delivered_end:
            self._aborted = message
            self._task.cancel()

    @property
    def has_ready(self) -> bool:
        """Whether an event (or the end) is waiting, so `next` returns without waiting."""
        return not self._queue.empty()

    async def next(self, patience: float | None) -> Event | None:
        """The next event, or None once `patience` seconds pass without one.

        Raises StopAsyncIteration after the last event.
        """
        if not self._queue.empty() or patience is None:
            # No timer when the event is already there: a stream's events mostly are.
            item = await self._queue.get()
        else:
            try:
                # `timeout`, not `wait_for`: on 3.11 `wait_for` wraps the get in a task.
                async with asyncio.timeout(patience):
                    item = await self._queue.get()
            except TimeoutError:
                return None
        if item is None:
            self._delivered_end = True
            raise StopAsyncIteration
        if isinstance(item, Finished | Failed):
            self._delivered_end = True
        return item

    async def aclose(self) -> None:
        """Wait until the turn has let go of everything, cancelling it if it has not ended.

        A turn whose end was delivered is not cancelled: its runner may still be
        winding down well (the CLI saving its transcript for the next turn).
        """
        # Shielded: under a cancelled request scope every await would be cancelled again.
        with anyio.CancelScope(shield=True):
            try:
                if not self._task.done() and not self._delivered_end:
                    self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            finally:
                await self._entered.aclose()
        if self._active is not None:
            self._active.discard(self)
        if not self._task.cancelled() and (error := self._task.exception()) is not None:
            # The core turns runner failures into events, so this is a bug worth a trace.
            _log.error("turn_pump_crashed", error=repr(error), exc_info=error)


def note_turn(turn: Turn) -> None:
    """Note what the turn learned for the request's log line (see `logging.note`)."""
    if turn.plan is not None:
        note(plan=turn.plan.kind.value)
    if turn.usage is not None:
        note(
            prompt_tokens=turn.usage.prompt_tokens,
            completion_tokens=turn.usage.output_tokens,
            cached_tokens=turn.usage.cache_read_tokens,
        )
        if turn.usage.cost_usd is not None:
            note(cost_usd=turn.usage.cost_usd)
    if turn.failure is not None:
        note(outcome=turn.failure.reason.value)
    warning = turn.window_warning
    if warning is not None:
        window = warning.windows.get(warning.window or "")
        _log.warning(
            "plan_window_warning",
            window=warning.window,
            utilization=None if window is None else window.utilization,
            resets_at=None if warning.resets_at is None else iso_time(warning.resets_at),
        )


def shows(event: Event, *, show_thinking: bool) -> bool:
    """Whether a client sees something of this event (the end of a reply counts)."""
    if isinstance(event, TextDelta):
        return bool(event.text)
    if isinstance(event, ThinkingDelta):
        return show_thinking and bool(event.text)
    return isinstance(event, Finished | ToolCallStarted)


async def hold_first(pump: TurnPump, hold: float, *, show_thinking: bool) -> list[Event]:
    """The turn's events up to its first one a client sees, waiting at most `hold` seconds.

    A turn that fails first raises its failure as ChatError (with its retry-after),
    so it can still be answered with its own status.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold
    opening: list[Event] = []
    while (left := deadline - loop.time()) > 0:
        try:
            event = await pump.next(left)
        except StopAsyncIteration:
            raise no_result() from None
        if event is None:
            break
        if isinstance(event, Failed):
            raise ChatError(event.reason, event.message, retry_after=event.retry_after)
        opening.append(event)
        if shows(event, show_thinking=show_thinking):
            break
    return opening


async def open_stream(
    turn: Turn,
    renderer: StreamRenderer,
    *,
    show_thinking: bool,
    keepalive_interval: float,
    hold: float,
    disconnected: Callable[[], Awaitable[None]],
    active: ActiveTurns | None = None,
) -> AsyncGenerator[bytes, None]:
    """Start a turn and hold its stream until it shows something, for at most `hold` s.

    Returns the SSE body (see `stream_turn`) once the turn has shown something or the
    hold has passed. A turn that fails first raises ChatError here, before any header
    is sent, so a streamed request fails with the same status and headers as a whole
    one; so does a client that disconnects during the hold (the turn is cancelled).
    """
    body = stream_turn(
        turn,
        renderer,
        show_thinking=show_thinking,
        keepalive_interval=keepalive_interval,
        hold=hold,
        active=active,
        disconnected=disconnected,
    )
    try:
        await anext(body)
    except BaseException:
        # Ends the turn (its CLI process group included) if it is still running.
        await body.aclose()
        raise
    return body


async def stream_turn(
    turn: Turn,
    renderer: StreamRenderer,
    *,
    show_thinking: bool,
    keepalive_interval: float,
    hold: float,
    active: ActiveTurns | None = None,
    disconnected: Callable[[], Awaitable[None]] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The SSE body, as `renderer` writes it: its opening, the events a client sees,
    then its `finished` or `failed` end.

    The first item is an empty marker, yielded once the turn has shown something or
    `hold` seconds have passed; a failure before that is raised as ChatError (see
    `open_stream`). After it a failure ends the body through `renderer.failed`.
    The request's outcome is noted when the body ends (`cancelled` if it never did).
    A client that goes (`disconnected` returns) cancels the turn: before the marker it
    fails as ChatError(CANCELLED), after it the body ends with that failure (which
    nobody reads), so the body is all a response needs to watch its client.
    """
    pump = await TurnPump.start(turn, active)
    watcher = _abort_on(pump, disconnected) if disconnected is not None else None
    outcome: str | None = None
    try:
        pending: deque[Event] = deque()
        try:
            pending.extend(await hold_first(pump, hold, show_thinking=show_thinking))
        except ChatError as error:
            outcome = error.reason.value
            raise
        yield b""
        # What is ready goes out together, in one write (one pass through the ASGI
        # layers, one chunk on the socket): the opening with the events the hold gathered
        # (the first content among them), then whatever the runner delivered at once.
        # Nothing waits to be gathered: before any wait for an event, it is sent.
        ready = renderer.opening()
        usage = Usage()
        while True:
            if pending:
                event: Event | None = pending.popleft()
            else:
                if ready and not pump.has_ready:
                    yield ready
                    ready = b""
                try:
                    event = await pump.next(keepalive_interval)
                except StopAsyncIteration:
                    yield ready + renderer.failed(FailureReason.CLI_CRASHED, NO_RESULT)
                    break
            if event is not None and shows(event, show_thinking=show_thinking):
                note_first_content()  # the stream's time to first token
            if event is None:
                ready += renderer.keepalive()
            elif isinstance(event, TextDelta):
                if event.text:
                    ready += renderer.text(event.text)
            elif isinstance(event, ThinkingDelta):
                if show_thinking and event.text:
                    ready += renderer.thinking(event.text)
            elif isinstance(event, ToolCallStarted):
                ready += renderer.tool_call(event.index, event.id, event.name)
            elif isinstance(event, ToolArguments):
                if event.text:
                    ready += renderer.tool_arguments(event.index, event.text)
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Finished):
                yield ready + await renderer.finished(event, usage)
                outcome = "ok"
                break
            elif isinstance(event, Failed):
                outcome = event.reason.value
                yield ready + renderer.failed(event.reason, event.message)
                break
    finally:
        if watcher is not None:
            watcher.cancel()
        await pump.aclose()
        note(outcome=outcome or FailureReason.CANCELLED.value)
        # The turn's own failure, when it has one, is the outcome.
        note_turn(turn)


class Collected(msgspec.Struct, frozen=True):
    """A turn's whole reply (`stop_sequence`: the one it was cut at, if any)."""

    text: str
    thinking: str
    stop_reason: str | None
    usage: Usage
    tool_calls: tuple[ToolCall, ...] = ()
    stop_sequence: str | None = None


async def collect_turn(
    turn: Turn,
    active: ActiveTurns | None = None,
    disconnected: Callable[[], Awaitable[None]] | None = None,
) -> Collected:
    """Run a turn to its end; a Failed event is raised as ChatError.

    Once `disconnected` returns (the client has gone), the turn is cancelled and ends
    as a ChatError(CANCELLED). It is watched from a task of its own, while the reply is
    collected in the caller's.
    """
    pump = await TurnPump.start(turn, active)
    watcher = _abort_on(pump, disconnected) if disconnected is not None else None
    reply = ReplyCollector()
    try:
        while True:
            event = await pump.next(None)
            if isinstance(event, Failed):
                note(outcome=event.reason.value)
            finished = reply.add(event) if event is not None else None
            if finished is not None:
                note(outcome="ok")
                return Collected(
                    reply.text,
                    reply.thinking,
                    finished.stop_reason,
                    reply.usage,
                    finished.tool_calls,
                    finished.stop_sequence,
                )
    except StopAsyncIteration:
        raise no_result() from None
    finally:
        if watcher is not None:
            watcher.cancel()
        await pump.aclose()
        note_turn(turn)


CLIENT_GONE = "The client disconnected."


def _abort_on(pump: TurnPump, disconnected: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    """A task that aborts `pump` once `disconnected` returns (or fails: the client
    can no longer be answered either way)."""

    async def watch() -> None:
        with suppress(Exception):
            await disconnected()
        pump.abort(CLIENT_GONE)

    return asyncio.ensure_future(watch())
