"""What a turn cost, from the CLI's running totals.

A `result` carries `total_cost_usd` and `modelUsage` (per model: tokens and `costUSD`),
the CLI's own price at API rates. Both are running totals, not the turn's: they grow
turn by turn in one process, and a process started with `--resume` may start from the
totals the CLI saved for that session (it restores them when the session is the last
one its project config saved), so they cannot be read as a turn's cost as they are.

`CostMeter` (one per CLI process) turns each result into the turn's cost: the growth of
the totals since the process's previous result. For a process's first result it tells
a restored start from a fresh one by the tokens: a fresh start's `modelUsage` holds the
turn's own tokens (its `usage`) and nothing else. A restored start is taken from the
runner-wide `CostBook`, the last totals seen per CLI session, or else from the reading
the conversation's record kept (`reading` / `read_reading`: it outlives a restart of the
server), when they account exactly for the difference; otherwise the cost is not known
(None), never a guess.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec

from proxy_cli_backend.protocol import json_number
from proxy_core import ModelUsage

_BOOK_SIZE = 4096


class Totals(msgspec.Struct, frozen=True):
    """The CLI's running totals as one result reported them."""

    cost_usd: float = 0.0
    models: tuple[ModelUsage, ...] = ()

    @property
    def tokens(self) -> int:
        return sum(_tokens(m) for m in self.models)


ZERO = Totals()


def read_totals(total_cost_usd: Any, model_usage: Any) -> Totals | None:
    """A result's `total_cost_usd` and `modelUsage`, decoded tolerantly (None: no cost)."""
    cost = _number(total_cost_usd)
    if cost is None:
        return None
    models: list[ModelUsage] = []
    if isinstance(model_usage, dict):
        for name, figures in model_usage.items():
            if isinstance(name, str) and isinstance(figures, dict):
                models.append(_model(name, figures))
    return Totals(cost, tuple(models))


def _model(name: str, figures: dict[str, Any]) -> ModelUsage:
    def count(key: str) -> int:
        value = _number(figures.get(key))
        return 0 if value is None else max(0, int(value))

    return ModelUsage(
        model=name,
        input_tokens=count("inputTokens"),
        output_tokens=count("outputTokens"),
        cache_read_tokens=count("cacheReadInputTokens"),
        cache_creation_tokens=count("cacheCreationInputTokens"),
        cost_usd=_number(figures.get("costUSD")) or 0.0,
    )


def _number(value: Any) -> float | None:
    """A count or an amount: a number of 0 or more, else None."""
    number = json_number(value)
    return number if number is not None and number >= 0 else None


def _tokens(m: ModelUsage) -> int:
    return m.input_tokens + m.output_tokens + m.cache_read_tokens + m.cache_creation_tokens


def growth(now: Totals, before: Totals) -> Totals:
    """What `now` adds to `before`, per model (models that did not grow are left out)."""
    earlier = {m.model: m for m in before.models}
    models: list[ModelUsage] = []
    for m in now.models:
        b = earlier.get(m.model, ModelUsage(model=m.model))
        grown = ModelUsage(
            model=m.model,
            input_tokens=max(0, m.input_tokens - b.input_tokens),
            output_tokens=max(0, m.output_tokens - b.output_tokens),
            cache_read_tokens=max(0, m.cache_read_tokens - b.cache_read_tokens),
            cache_creation_tokens=max(0, m.cache_creation_tokens - b.cache_creation_tokens),
            cost_usd=_money(max(0.0, m.cost_usd - b.cost_usd)),
        )
        if _tokens(grown) or grown.cost_usd:
            models.append(grown)
    return Totals(_money(max(0.0, now.cost_usd - before.cost_usd)), tuple(models))


def add(a: Totals, b: Totals) -> Totals:
    """Two turns' costs together (a reply made of several CLI turns)."""
    by_model = {m.model: m for m in a.models}
    for m in b.models:
        old = by_model.get(m.model, ModelUsage(model=m.model))
        by_model[m.model] = ModelUsage(
            model=m.model,
            input_tokens=old.input_tokens + m.input_tokens,
            output_tokens=old.output_tokens + m.output_tokens,
            cache_read_tokens=old.cache_read_tokens + m.cache_read_tokens,
            cache_creation_tokens=old.cache_creation_tokens + m.cache_creation_tokens,
            cost_usd=_money(old.cost_usd + m.cost_usd),
        )
    return Totals(_money(a.cost_usd + b.cost_usd), tuple(by_model.values()))


def _money(value: float) -> float:
    # Differences of running totals carry float noise (0.000308 - 0.000131): the CLI's
    # own figures have at most 6-7 significant decimals of a dollar.
    return round(value, 10)


_READING = msgspec.json.Encoder()
_READ = msgspec.json.Decoder(Totals)


def reading(totals: Totals) -> str:
    """Running totals as the opaque text a session record keeps (`Finished.meter`)."""
    return _READING.encode(totals).decode()


def read_reading(text: str | None) -> Totals | None:
    """The totals a record's reading holds (None: none, or not one of ours)."""
    if not text:
        return None
    try:
        return _READ.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class CostBook:
    """The last running totals seen per CLI session (bounded; the oldest go first)."""

    def __init__(self, size: int = _BOOK_SIZE) -> None:
        self._size = size
        self._totals: OrderedDict[str, Totals] = OrderedDict()

    def get(self, session_id: str) -> Totals | None:
        return self._totals.get(session_id)

    def put(self, session_id: str, totals: Totals) -> None:
        self._totals[session_id] = totals
        self._totals.move_to_end(session_id)
        while len(self._totals) > self._size:
            self._totals.popitem(last=False)


class CostMeter:
    """One CLI process's running totals, turned into each turn's cost (see the module)."""

    def __init__(
        self, book: CostBook | None = None, *, resumed: bool = False, saved: str | None = None
    ) -> None:
        """`resumed`: the process was started with `--resume` (a new session's process
        starts from nothing); `saved`: the reading its conversation's record kept."""
        self._book = book
        self._saved = read_reading(saved) if resumed else None
        self._last: Totals | None = None if resumed else ZERO  # the previous result's

    @property
    def reading(self) -> str | None:
        """The latest totals as a record keeps them (None: no result priced yet)."""
        return None if self._last is None or self._last is ZERO else reading(self._last)

    def turn_cost(
        self, totals: Totals | None, turn_tokens: int, session_id: str | None
    ) -> Totals | None:
        """The turn's cost from its result's running `totals` (None: not known).

        `turn_tokens` are the turn's own tokens (the result's `usage`, all four kinds).
        """
        if totals is None:
            return None
        before = self._last
        if before is None:
            before = self._start(totals, turn_tokens, session_id)
        self._last = totals
        if self._book is not None and session_id:
            self._book.put(session_id, totals)
        return None if before is None else growth(totals, before)

    def _start(self, totals: Totals, turn_tokens: int, session_id: str | None) -> Totals | None:
        """The totals a resumed process started from: none, or the session's saved ones."""
        if totals.tokens == turn_tokens:
            return ZERO
        book = None if self._book is None or not session_id else self._book.get(session_id)
        for saved in (book, self._saved):
            if saved is not None and totals.tokens == saved.tokens + turn_tokens:
                return saved
        return None
