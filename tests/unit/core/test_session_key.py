"""Session keys: header, then user, then a hash of the opening; origin-prefixed and bounded."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxy_core import ChatError, Conversation, KeyOrigin, derive_session_key, parse_conversation

from .strategies import conversations, identifiers, texts


def opening(system: str | None, first: str) -> Conversation:
    raw: list[dict[str, object]] = [{"role": "system", "content": system}] if system else []
    return parse_conversation([*raw, {"role": "user", "content": first}])


@given(
    conversations(),
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9._:@+=/-]{1,128}", fullmatch=True)),
)
def test_key_derivation_is_deterministic_and_origin_prefixed(
    conversation: Conversation, header: str | None
) -> None:
    first = derive_session_key(conversation, header=header)
    assert first == derive_session_key(conversation, header=header)
    expected_prefix = {KeyOrigin.HEADER: "h:", KeyOrigin.AUTO: "auto:"}[first.origin]
    assert first.value.startswith(expected_prefix)
    assert first.origin is (KeyOrigin.HEADER if header else KeyOrigin.AUTO)


@given(st.one_of(st.none(), texts), texts, st.one_of(st.none(), texts), texts)
def test_different_openings_give_different_automatic_keys(
    system_a: str | None, first_a: str, system_b: str | None, first_b: str
) -> None:
    assume((system_a or "", first_a) != (system_b or "", first_b))
    a = derive_session_key(opening(system_a, first_a))
    b = derive_session_key(opening(system_b, first_b))
    assert a.value != b.value


def test_the_header_wins_over_user_and_the_opening() -> None:
    key = derive_session_key(opening(None, "hi"), header="chat-42", user="alice")
    assert key.value == "h:chat-42"


def test_the_user_field_wins_over_the_opening() -> None:
    assert derive_session_key(opening(None, "hi"), user="alice").value == "u:alice"


def test_later_messages_do_not_change_the_automatic_key() -> None:
    short = parse_conversation([{"role": "user", "content": "hi"}])
    longer = parse_conversation(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "b"},
        ]
    )
    assert derive_session_key(short) == derive_session_key(longer)


@pytest.mark.parametrize("header", ["x" * 10_000, "bad\x00key", "line\nbreak", "spa ce", ""])
def test_an_oversized_or_control_character_header_is_refused(header: str) -> None:
    with pytest.raises(ChatError) as caught:
        derive_session_key(opening(None, "hi"), header=header)
    assert caught.value.param == "X-Session-Id"


@pytest.mark.parametrize("user", ["u" * 10_000, "evil\x1b[31m", "tab\there"])
def test_an_oversized_or_control_character_user_is_hashed_not_used(user: str) -> None:
    key = derive_session_key(opening(None, "hi"), user=user)
    assert key.origin is KeyOrigin.USER
    assert len(key.value) <= 64
    assert key.value.isprintable()
    assert key == derive_session_key(opening(None, "hi"), user=user)


@given(conversations(), st.one_of(st.none(), identifiers))
def test_an_opening_that_differs_only_in_the_speakers_name_gets_another_automatic_key(
    conversation: Conversation, name: str | None
) -> None:
    first = conversation.messages[0]
    assume(name != first.name)
    renamed = msgspec.structs.replace(first, name=name)
    other = msgspec.structs.replace(conversation, messages=(renamed, *conversation.messages[1:]))
    assert derive_session_key(other).value != derive_session_key(conversation).value


def test_a_namespaced_key_carries_its_namespace_and_shows_the_key_within_it() -> None:
    key = derive_session_key(opening(None, "hi"), header="chat", namespace="k1")
    assert (key.value, key.external, key.namespace) == ("ns:k1:h:chat", "h:chat", "k1")
    auto = derive_session_key(opening(None, "hi"), namespace="k1")
    assert auto.value == "ns:k1:" + derive_session_key(opening(None, "hi")).value
    assert derive_session_key(opening(None, "hi"), user="bob").external == "u:bob"


@pytest.mark.parametrize("namespace", ["a:b", "with space", "x" * 65, "ns/1"])
def test_a_namespace_outside_its_alphabet_is_a_programming_error(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        derive_session_key(opening(None, "hi"), namespace=namespace)


def test_an_exact_key_is_taken_as_it_is_within_the_namespace_and_yields_to_the_header() -> None:
    earlier = derive_session_key(opening("be brief", "hi"), user="alice", namespace="k1")
    # Another opening, but the exact key of the earlier request: the same conversation.
    again = derive_session_key(opening(None, "later"), exact=earlier.external, namespace="k1")
    assert again == earlier
    assert again.origin is KeyOrigin.USER
    auto = derive_session_key(opening(None, "hi"))
    assert derive_session_key(opening(None, "x"), exact=auto.external, user="bob") == auto
    header = derive_session_key(opening(None, "x"), header="pinned", exact=auto.external)
    assert header.value == "h:pinned"


@pytest.mark.parametrize("exact", ["", "h:", "plain", "ns:k1:h:abc"])
def test_an_exact_key_that_no_derivation_gives_is_a_programming_error(exact: str) -> None:
    with pytest.raises(ValueError, match="session key"):
        derive_session_key(opening(None, "hi"), exact=exact)
