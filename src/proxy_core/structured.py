"""Structured output: OpenAI's `response_format` as the JSON schema a reply must follow."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from proxy_core.errors import invalid
from proxy_core.openai_wire import JsonObjectFormat, JsonSchemaFormat, ResponseFormat, convert

# A schema travels on the CLI's command line (`--json-schema`), where one argument
# may not exceed 128 KiB; real schemas are far smaller.
MAX_SCHEMA_BYTES = 64 * 1024
ANY_OBJECT = '{"type":"object"}'
_SCHEMA = "response_format.json_schema.schema"


def parse_response_format(value: ResponseFormat | Mapping[str, object] | None) -> str | None:
    """The JSON schema (as JSON text) a `response_format` asks for, or None for plain text.

    `value` is typed (`proxy_core.openai_wire`) or its plain JSON data. `json_object`
    asks for any object; `json_schema` for its `schema` (any object when it has none).
    Raises ChatError naming the field for anything else.
    """
    if value is None:
        return None
    kind: ResponseFormat = convert(value, ResponseFormat, "response_format")
    if isinstance(kind, JsonObjectFormat):
        return ANY_OBJECT
    if not isinstance(kind, JsonSchemaFormat):
        return None
    if kind.json_schema.schema is None:
        return ANY_OBJECT
    try:
        text = msgspec.json.encode(kind.json_schema.schema).decode()
    except (TypeError, ValueError) as error:  # an embedder's non-JSON value
        raise invalid(f"response_format.json_schema.schema is not JSON: {error}", _SCHEMA) from None
    if len(text.encode()) > MAX_SCHEMA_BYTES:
        raise invalid(
            f"response_format.json_schema.schema is over {MAX_SCHEMA_BYTES // 1024} KiB.", _SCHEMA
        )
    return text
