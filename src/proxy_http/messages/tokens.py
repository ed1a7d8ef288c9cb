"""`count_tokens`: an estimate of a request's input tokens, without the CLI.

The proxy has no tokenizer of Claude's and asks nothing upstream (a count must cost
nothing), so it estimates: one token per CHARS_PER_TOKEN characters of the text the
model is given (the system prompt, each message's text, tool calls' arguments and the
tool definitions as JSON), rounded up, plus IMAGE_TOKENS per image (what Anthropic
charges a full-size image). English prose comes out close; code and other scripts
may differ by a good fraction either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import msgspec

from proxy_core import Conversation, FunctionTool

CHARS_PER_TOKEN: Final = 4
IMAGE_TOKENS: Final = 1_600


def estimate_tokens(conversation: Conversation, tools: Sequence[FunctionTool] = ()) -> int:
    """The estimated input tokens of `conversation` offered `tools` (module doc)."""
    chars = len(conversation.system or "")
    images = 0
    for message in conversation.messages:
        chars += len(message.text)
        chars += sum(len(call.name) + len(call.arguments) for call in message.tool_calls)
        images += len(message.images)
    chars += sum(len(msgspec.json.encode(tool.function)) for tool in tools)
    return math.ceil(chars / CHARS_PER_TOKEN) + images * IMAGE_TOKENS
