"""The model catalog: the built-in table, prefixes, passthrough, fallback and strict mode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy_core import ChatError, FailureReason, ModelCatalog

CATALOG = ModelCatalog()


@given(st.sampled_from([entry.id for entry in CATALOG.list()]))
def test_every_catalog_id_resolves_to_its_cli_model(model_id: str) -> None:
    entry = CATALOG.get(model_id)
    assert entry is not None
    resolved = CATALOG.resolve(model_id)
    assert resolved.cli_model == entry.cli_model
    assert resolved.response_id == model_id
    assert not resolved.fell_back


@given(
    st.sampled_from([entry.id for entry in CATALOG.list()]),
    st.sampled_from(["claude-code-cli/", "openai/", "x/y/"]),
)
def test_provider_prefixes_are_stripped(model_id: str, prefix: str) -> None:
    assert CATALOG.resolve(prefix + model_id).cli_model == CATALOG.resolve(model_id).cli_model


@pytest.mark.parametrize(
    ("model_id", "cli_model"),
    [
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001"),
        ("claude-opus-4", "opus"),
        ("claude-sonnet-4", "sonnet"),
        ("haiku", "haiku"),
        ("gpt-4o", "sonnet"),
        ("gpt-4o-mini", "haiku"),
        ("gpt-4-turbo-preview", "opus"),
        ("gpt-3.5-turbo", "haiku"),
        ("o1", "opus"),
        ("o3-mini", "sonnet"),
        ("claude-opus-5-5", "claude-opus-5-5"),
    ],
)
def test_the_seed_table_maps_each_id(model_id: str, cli_model: str) -> None:
    assert CATALOG.resolve(model_id).cli_model == cli_model


def test_unknown_claude_ids_pass_through() -> None:
    resolved = CATALOG.resolve("claude-future-9-1")
    assert resolved.cli_model == "claude-future-9-1"
    assert not resolved.fell_back


def test_unknown_ids_fall_back_to_the_default_and_say_so_in_the_model() -> None:
    resolved = CATALOG.resolve("llama-3-70b")
    assert resolved.cli_model == "sonnet"
    assert resolved.response_id == "sonnet"
    assert resolved.fell_back


def test_unknown_ids_are_not_found_in_strict_mode() -> None:
    with pytest.raises(ChatError) as caught:
        ModelCatalog(strict=True).resolve("llama-3-70b")
    assert caught.value.reason is FailureReason.MODEL_NOT_FOUND
    assert caught.value.param == "model"


def test_settings_can_extend_and_override_the_table() -> None:
    catalog = CATALOG.with_overrides({"my-model": "haiku", "gpt-4o": "opus"})
    assert catalog.resolve("my-model").cli_model == "haiku"
    assert catalog.resolve("gpt-4o").cli_model == "opus"
    assert CATALOG.resolve("gpt-4o").cli_model == "sonnet"


def test_an_empty_model_is_invalid() -> None:
    with pytest.raises(ChatError) as caught:
        CATALOG.resolve("  ")
    assert caught.value.reason is FailureReason.INVALID_REQUEST
