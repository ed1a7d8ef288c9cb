"""What the Responses surface keeps of a reply (in a `ResponseStore`), and how a
continuation (`previous_response_id`) reads it back.

Each stored reply carries the whole conversation it ended (its chain's input and
outputs as chat messages, its own reply last), its instructions and its session
key: continuing from it is one read, and stays possible when older replies of the
chain have expired or were evicted.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from proxy_core import ResponseStore, StoredResponse, ToolCall
from proxy_http.responses.wire import ResponseObject

ChatDict = dict[str, Any]


class StoredRecord(msgspec.Struct, frozen=True):
    """One stored reply: the Response as sent, the session key it ran under (within
    its namespace), the system prompt, and the conversation up to its reply."""

    response: ResponseObject
    session_key: str
    instructions: str | None
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


async def load(store: ResponseStore, response_id: str, namespace: str) -> StoredRecord | None:
    """The stored reply `response_id` of `namespace` (None: unknown, expired, another
    key's, or unreadable by this version)."""
    stored = await store.get(response_id, namespace)
    if stored is None:
        return None
    try:
        return _DECODER.decode(stored.data)
    except msgspec.DecodeError:
        return None


async def keep(store: ResponseStore, record: StoredRecord, namespace: str) -> None:
    """Store `record` under its response's id (raises ChatError when the store fails)."""
    response = record.response
    await store.put(
        StoredResponse(
            id=response.id,
            namespace=namespace,
            created_at=time.time(),
            data=msgspec.json.encode(record),
        )
    )
