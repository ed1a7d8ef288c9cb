"""What the Responses surface keeps of a reply (in a `ResponseStore`), and how a
continuation (`previous_response_id`) reads its conversation back.

Each stored reply keeps only what it added to its conversation: its input as chat
messages and its reply, the Response as sent (whose `instructions` are the ones it ran
with), and its session key; the store links it to the reply it continued. Continuing
from it reads its chain (one store call) and joins the chain's messages in order, so
a conversation of N replies takes N records' worth of space, not N².
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from proxy_core import ResponseStore, StoredResponse, ToolCall
from proxy_core.errors import invalid
from proxy_http.responses.wire import ResponseObject

ChatDict = dict[str, Any]

MAX_CHAIN = 1000
"""The most responses a `previous_response_id` conversation may have: its history is
rebuilt from that many records on every turn. A longer one is refused (400); its
client can send the history itself (without `previous_response_id`)."""

PARAM = "previous_response_id"


class StoredRecord(msgspec.Struct, frozen=True):
    """One stored reply: the Response as sent, the session key it ran under (within
    its namespace), and the chat messages it added (its input, then its reply)."""

    response: ResponseObject
    session_key: str
    messages: list[ChatDict]


class Chain(msgspec.Struct, frozen=True):
    """The conversation a continuation goes on from: its newest reply's record (its
    instructions and session key are the conversation's now) and the messages of the
    whole chain, oldest first."""

    last: StoredRecord
    history: list[ChatDict]


_DECODER = msgspec.json.Decoder(StoredRecord)


def reply_message(text: str, calls: tuple[ToolCall, ...]) -> ChatDict:
    """Our reply as the chat assistant message the ledger recorded: its text and the
    calls it ended with (the core's call ids)."""
    message: ChatDict = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in calls
        ]
    elif not text:
        message["content"] = ""
    return message


def _decoded(stored: StoredResponse) -> StoredRecord | None:
    try:
        return _DECODER.decode(stored.data)
    except msgspec.DecodeError:
        return None


async def load(store: ResponseStore, response_id: str, namespace: str) -> StoredRecord | None:
    """The stored reply `response_id` of `namespace` (None: unknown, expired, another
    key's, or unreadable by this version)."""
    stored = await store.get(response_id, namespace)
    return None if stored is None else _decoded(stored)


class NotFound(Exception):
    """A continuation's conversation cannot be rebuilt: the message says which of its
    responses is missing (answered as a 404 naming previous_response_id)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def load_chain(store: ResponseStore, response_id: str, namespace: str) -> Chain:
    """The conversation up to the stored reply `response_id` of `namespace`.

    Raises NotFound when the reply is unknown (expired, deleted, another key's) or an
    earlier response of its conversation is gone, and an invalid-request ChatError when
    the conversation is longer than MAX_CHAIN: a history is never rebuilt with a gap.
    """
    links = await store.chain(response_id, namespace, limit=MAX_CHAIN + 1)
    shown = response_id[:100]
    if not links:
        raise NotFound(f"Previous response with id '{shown}' not found.")
    if len(links) > MAX_CHAIN:
        raise invalid(
            f"The conversation of previous response '{shown}' is longer than {MAX_CHAIN} "
            "responses, the most this server rebuilds: send its history as input instead "
            "(without previous_response_id), or start a new conversation.",
            PARAM,
        )
    missing = links[0].previous_id
    records: list[StoredRecord] = []
    for link in links:
        record = _decoded(link)
        if record is None:
            missing = missing or link.id
            break
        records.append(record)
    if missing is not None:
        raise NotFound(
            f"Previous response '{shown}' cannot be continued: an earlier response of its "
            f"conversation ('{missing[:100]}') is gone (deleted, or expired unused). Send "
            "the conversation as input instead (without previous_response_id)."
        )
    history = [message for record in records for message in record.messages]
    return Chain(records[-1], history)


async def keep(
    store: ResponseStore, record: StoredRecord, previous_id: str | None, namespace: str
) -> None:
    """Store `record` under its response's id, continuing `previous_id` (raises
    ChatError when the store fails)."""
    await store.put(
        StoredResponse(
            id=record.response.id,
            namespace=namespace,
            created_at=time.time(),
            data=msgspec.json.encode(record),
            previous_id=previous_id,
        )
    )
