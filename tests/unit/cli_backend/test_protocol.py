"""Decoding the CLI's stdout and encoding its stdin."""

from __future__ import annotations

import json
import logging

import pytest

from proxy_cli_backend.protocol import (
    AssistantEvent,
    EventDecoder,
    ResultEvent,
    StreamEvent,
    SystemEvent,
    encode_control_request,
    encode_user_message,
)
from proxy_core import ImageBlock, TextBlock, UrlImage
from proxy_core.conversation import Base64Image
from tests.unit.cli_backend import canned


def test_known_events_decode_to_their_structs() -> None:
    decoder = EventDecoder()
    assert isinstance(decoder.decode(canned.init()), SystemEvent)
    assert isinstance(decoder.decode(canned.text_delta("hi")), StreamEvent)
    assert isinstance(decoder.decode(canned.assistant(canned.text("hi"))), AssistantEvent)
    assert isinstance(decoder.decode(canned.result()), ResultEvent)


def test_unknown_fields_are_ignored() -> None:
    event = EventDecoder().decode(canned.result("ok"))
    assert isinstance(event, ResultEvent)
    assert (event.result, event.usage.cache_read_input_tokens) == ("ok", 100)


def test_an_unknown_event_type_is_skipped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert EventDecoder().decode(b'{"type":"a_future_event","info":{}}') is None
    assert caplog.records == []


def test_an_unknown_delta_type_decodes_without_text() -> None:
    delta = {"type": "signature_delta", "signature": "abc"}
    raw = {"type": "stream_event", "event": {"type": "content_block_delta", "delta": delta}}
    event = EventDecoder().decode(json.dumps(raw).encode())
    assert isinstance(event, StreamEvent)
    assert event.event.delta is not None
    assert event.event.delta.text == ""


@pytest.mark.parametrize("raw", [b"not json", b'{"type":"result","is_error":"yes"}', b"[1,2]"])
def test_a_malformed_line_is_logged_and_skipped(
    raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert EventDecoder().decode(raw) is None
    assert "malformed" in caplog.text


def test_a_user_message_carries_text_and_image_blocks_as_one_line() -> None:
    blocks = (
        TextBlock("look"),
        ImageBlock(Base64Image(media_type="image/png", data="AAAA")),
        ImageBlock(UrlImage(url="https://example.com/a.png")),
    )
    data = encode_user_message(blocks)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert json.loads(data) == {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ],
        },
    }


def test_text_with_newlines_stays_on_one_line() -> None:
    data = encode_user_message((TextBlock("a\nb\r\nc"),))
    assert data.count(b"\n") == 1


def test_control_requests_are_encoded_with_their_subtype() -> None:
    data = encode_control_request("r2", "set_model", model="haiku")
    assert json.loads(data) == {
        "type": "control_request",
        "request_id": "r2",
        "request": {"subtype": "set_model", "model": "haiku"},
    }
