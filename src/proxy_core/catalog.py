"""The model catalog: every id a client may send, and the CLI model it becomes."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from proxy_core.errors import ChatError, FailureReason

# (id, CLI model). Versioned Claude ids pass through; families and GPT names map to aliases.
_BUILTIN: tuple[tuple[str, str], ...] = (
    ("claude-opus-5-5", "claude-opus-5-5"),
    ("claude-sonnet-5-5", "claude-sonnet-5-5"),
    ("claude-haiku-5-5", "claude-haiku-5-5"),
    ("claude-sonnet-4-6", "claude-sonnet-4-6"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5"),
    ("claude-opus-4-5", "claude-opus-4-5"),
    ("claude-haiku-4-5", "claude-haiku-4-5"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001"),
    ("claude-opus-4", "opus"),
    ("claude-sonnet-4", "sonnet"),
    ("claude-haiku-4", "haiku"),
    ("opus", "opus"),
    ("sonnet", "sonnet"),
    ("haiku", "haiku"),
    ("gpt-4o", "sonnet"),
    ("gpt-4o-mini", "haiku"),
    ("gpt-4", "opus"),
    ("gpt-4-turbo", "opus"),
    ("gpt-4-turbo-preview", "opus"),
    ("gpt-3.5-turbo", "haiku"),
    ("o1", "opus"),
    ("o1-preview", "opus"),
    ("o1-mini", "sonnet"),
    ("o3-mini", "sonnet"),
)


class ModelEntry(msgspec.Struct, frozen=True):
    """One listed model id and the CLI model it runs as."""

    id: str
    cli_model: str


class ResolvedModel(msgspec.Struct, frozen=True):
    """The outcome of resolving a requested id.

    `response_id` is what responses report: the requested id, or the default's id
    when an unknown id fell back to the default.
    """

    requested: str
    cli_model: str
    response_id: str
    fell_back: bool = False


class ModelCatalog:
    """Resolves client model ids to CLI models. Immutable; build variants with `with_overrides`."""

    def __init__(
        self,
        entries: Mapping[str, str] | None = None,
        *,
        default: str = "sonnet",
        strict: bool = False,
    ) -> None:
        table = dict(_BUILTIN) if entries is None else dict(entries)
        self._table: dict[str, str] = table
        self.default = default
        self.strict = strict
        if default not in self._table:
            self._table[default] = default

    def with_overrides(
        self,
        overrides: Mapping[str, str],
        *,
        default: str | None = None,
        strict: bool | None = None,
    ) -> ModelCatalog:
        """A catalog with extra or replaced ids (id -> CLI model), e.g. from settings."""
        return ModelCatalog(
            {**self._table, **overrides},
            default=self.default if default is None else default,
            strict=self.strict if strict is None else strict,
        )

    def list(self) -> list[ModelEntry]:
        """Every listed id, in catalog order (feeds /v1/models)."""
        return [ModelEntry(id=i, cli_model=m) for i, m in self._table.items()]

    def get(self, model_id: str) -> ModelEntry | None:
        """The entry for an exact listed id, if any."""
        cli = self._table.get(model_id)
        return None if cli is None else ModelEntry(id=model_id, cli_model=cli)

    def resolve(self, requested: str) -> ResolvedModel:
        """Resolve an id: exact, then without a `provider/` prefix, then claude-* passthrough.

        Anything else falls back to the default, or raises model_not_found when strict.
        """
        if not isinstance(requested, str) or not requested.strip():
            raise ChatError(
                FailureReason.INVALID_REQUEST, "'model' must be a non-empty string.", param="model"
            )
        wanted = requested.strip()
        bare = wanted.rsplit("/", 1)[-1]
        for candidate in (wanted, bare, bare.lower()):
            cli = self._table.get(candidate)
            if cli is not None:
                return ResolvedModel(requested=requested, cli_model=cli, response_id=requested)
        if bare.lower().startswith("claude-") and _plausible_id(bare):
            return ResolvedModel(requested=requested, cli_model=bare, response_id=requested)
        if self.strict:
            raise model_not_found(requested)
        return ResolvedModel(
            requested=requested,
            cli_model=self._table[self.default],
            response_id=self.default,
            fell_back=True,
        )


def model_not_found(model_id: str) -> ChatError:
    """The error for a model id the catalog does not know (404, `param` "model")."""
    return ChatError(
        FailureReason.MODEL_NOT_FOUND,
        f"The model '{model_id}' does not exist. GET /v1/models lists the available ids.",
        param="model",
    )


def _plausible_id(model_id: str) -> bool:
    return len(model_id) <= 100 and all(c.isalnum() or c in "-._:" for c in model_id)
