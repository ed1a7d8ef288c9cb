"""Structured output: OpenAI's `response_format` as the JSON schema a reply must follow."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from proxy_core.errors import invalid

# A schema travels on the CLI's command line (`--json-schema`), where one argument
# may not exceed 128 KiB; real schemas are far smaller.
MAX_SCHEMA_BYTES = 64 * 1024
ANY_OBJECT = '{"type":"object"}'


def parse_response_format(value: Mapping[str, object] | None) -> str | None:
    """The JSON schema (as JSON text) a `response_format` asks for, or None for plain text.

    `json_object` asks for any object; `json_schema` for its `schema` (any object when
    it has none). Raises ChatError naming the field for anything else.
    """
    if value is None:
        return None
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ANY_OBJECT
    if kind != "json_schema":
        raise invalid(
            f"Unknown response_format type {str(kind)[:40]!r}: use text, json_object or "
            "json_schema.",
            "response_format.type",
        )
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping):
        raise invalid(
            "response_format.json_schema must be an object holding the `schema`.",
            "response_format.json_schema",
        )
    schema = spec.get("schema")
    if schema is None:
        return ANY_OBJECT
    if not isinstance(schema, Mapping):
        raise invalid(
            "response_format.json_schema.schema must be a JSON Schema object.",
            "response_format.json_schema.schema",
        )
    try:
        text = msgspec.json.encode(schema).decode()
    except (TypeError, ValueError) as error:  # an embedder's non-JSON value
        raise invalid(
            f"response_format.json_schema.schema is not JSON: {error}",
            "response_format.json_schema.schema",
        ) from None
    if len(text.encode()) > MAX_SCHEMA_BYTES:
        raise invalid(
            f"response_format.json_schema.schema is over {MAX_SCHEMA_BYTES // 1024} KiB.",
            "response_format.json_schema.schema",
        )
    return text
