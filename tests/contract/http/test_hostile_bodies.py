"""Hostile request bodies: each gets a 4xx in OpenAI's shape naming the problem,
and the server stays healthy."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_max_api.settings import Settings
from proxy_core import REASONING_EFFORT_VALUES, ParseLimits, ServiceLimits
from tests.support.server import LiveServer, live_fake_server

MAX_CHARS = 20_000
MAX_IMAGE_BYTES = 2_000
LIMITS = ServiceLimits(
    parse=ParseLimits(max_message_chars=MAX_CHARS, max_images=2, max_image_bytes=MAX_IMAGE_BYTES)
)
FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with live_fake_server(settings=Settings(), limits=LIMITS) as (live, _):
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        yield http


def post(client: httpx.Client, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **headers},
    )


def assert_names(response: httpx.Response, *words: str, status: int = 400) -> None:
    """A 4xx OpenAI error whose message or param names the problem."""
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    told = f"{error['message']} {error.get('param') or ''}"
    assert any(word in told for word in words), (words, error)


def chat(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "sonnet", "messages": [{"role": "user", "content": content}], **extra}


def image(url: str) -> dict[str, Any]:
    return chat([{"type": "image_url", "image_url": {"url": url}}])


def assert_healthy(client: httpx.Client) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert post(client, chat("still there?")).status_code == 200


WRONG_VALUES = st.one_of(
    st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=3),
)


@given(
    field=st.sampled_from(
        [
            *("model", "messages", "stream", "n", "temperature", "content"),
            *("reasoning_effort", "response_format", "stop"),
        ]
    ),
    value=WRONG_VALUES,
)
@FUZZ
def test_wrong_types_are_rejected_naming_the_field(
    client: httpx.Client, field: str, value: Any
) -> None:
    body = chat(value) if field == "content" else {**chat("hi"), field: value}
    assert_names(post(client, body), field)


@given(
    effort=st.text(max_size=30).filter(lambda t: t.strip().lower() not in REASONING_EFFORT_VALUES),
    kind=st.text(max_size=12).filter(lambda t: t not in ("text", "json_object", "json_schema")),
    schema=st.one_of(st.text(max_size=10), st.integers(), st.lists(st.integers(), max_size=3)),
    stops=st.lists(st.text(min_size=1, max_size=8), min_size=5, max_size=8, unique=True),
)
@FUZZ
def test_bad_reasoning_structured_output_and_stop_options_are_rejected_naming_them(
    client: httpx.Client, effort: str, kind: str, schema: Any, stops: list[str]
) -> None:
    assert_names(post(client, chat("hi", reasoning_effort=effort)), "reasoning_effort")
    assert_names(post(client, chat("hi", response_format={"type": kind})), "response_format.type")
    shaped = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert_names(post(client, chat("hi", response_format=shaped)), "json_schema.schema")
    assert_names(post(client, chat("hi", stop=stops)), "stop")


@given(extra=st.integers(min_value=1, max_value=200_000), char=st.sampled_from("aé😀\n"))
@FUZZ
def test_huge_strings_are_rejected_naming_the_limit(
    client: httpx.Client, extra: int, char: str
) -> None:
    assert_names(post(client, chat(char * (MAX_CHARS + extra))), "max_message_chars")


@given(
    depth=st.integers(min_value=3_000, max_value=100_000),
    where=st.sampled_from(["content", "metadata"]),
)
@FUZZ
def test_deep_nesting_is_rejected(client: httpx.Client, depth: int, where: str) -> None:
    nested = "[" * depth + "]" * depth
    if where == "content":
        raw = '{"model":"sonnet","messages":[{"role":"user","content":' + nested + "}]}"
    else:
        raw = (
            '{"model":"sonnet","metadata":'
            + nested
            + ',"messages":[{"role":"user","content":"x"}]}'
        )
    assert_names(post(client, raw.encode()), "nested", "metadata", "content")


@given(
    before=st.text(alphabet="abc xyz", max_size=20),
    bad=st.sampled_from(
        [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xe2\x28\xa1", b"\xf8\x88\x80\x80\x80", b"\x80"]
    ),
)
@FUZZ
def test_invalid_utf8_is_rejected(client: httpx.Client, before: str, bad: bytes) -> None:
    raw = (
        b'{"model":"sonnet","messages":[{"role":"user","content":"'
        + before.encode()
        + bad
        + b'"}]}'
    )
    assert_names(post(client, raw), "UTF-8")


@given(
    data=st.binary(min_size=1, max_size=60),
    junk=st.sampled_from(["!", "*", "%", "\u00e9", "=a=", " ~"]),
    at=st.integers(min_value=0, max_value=80),
)
@FUZZ
def test_invalid_base64_is_rejected(client: httpx.Client, data: bytes, junk: str, at: int) -> None:
    encoded = base64.b64encode(data).decode()
    at = min(at, len(encoded))
    response = post(client, image(f"data:image/png;base64,{encoded[:at]}{junk}{encoded[at:]}"))
    assert_names(response, "base64")


@given(
    url=st.one_of(
        st.sampled_from(
            [
                "data:",
                "data:image/png",
                "data:image/png;base64",
                "data:;base64,aGk=",
                "data:image/png;charset=utf-8,abc",
                "data:text/html;base64,PGI+",
                "data:image/bmp;base64,aGk=",
            ]
        ),
        st.text(alphabet="abcdefgh/;=,", max_size=30).map(lambda tail: "data:" + tail),
    )
)
@FUZZ
def test_bad_data_urls_are_rejected_naming_the_url(client: httpx.Client, url: str) -> None:
    assert_names(post(client, image(url)), "image_url")


def test_an_image_over_the_decoded_size_limit_is_rejected(client: httpx.Client) -> None:
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_IMAGE_BYTES * 2)).decode()
    assert_names(post(client, image(f"data:image/png;base64,{big}")), "max_image_bytes")


def test_too_many_images_are_rejected(client: httpx.Client) -> None:
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert_names(post(client, chat([part] * 3)), "max_images")


def test_ten_thousand_and_one_messages_are_rejected(client: httpx.Client) -> None:
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "x"}] * 10_001}
    assert_names(post(client, body), "max_messages")


def test_a_ten_kilobyte_session_header_is_rejected(client: httpx.Client) -> None:
    assert_names(post(client, chat("hi"), **{"X-Session-Id": "k" * 10_240}), "X-Session-Id")


@pytest.mark.parametrize("raw", [b"", b"null", b"[]", b'"text"', b"{", b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object_are_rejected(client: httpx.Client, raw: bytes) -> None:
    assert_names(post(client, raw), "body", "object", "JSON", "Expected")


def test_the_server_is_healthy_after_the_hostile_bodies(client: httpx.Client) -> None:
    assert_healthy(client)
