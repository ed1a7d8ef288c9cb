"""A struct's repr with its credentials masked, for configs that hold secrets.

A config ends up in log lines and tracebacks; its secret fields show `<hidden>` there
(an empty one shows as it is, so a dump still says whether it was set).
"""

from __future__ import annotations

from collections.abc import Container

import msgspec


def masked_repr(struct: msgspec.Struct, secret: Container[str]) -> str:
    """`Name(field=value, ...)` as msgspec writes it, with each set `secret` field masked."""
    shown = [
        f"{name}={'<hidden>' if name in secret and value else repr(value)}"
        for name in struct.__struct_fields__
        for value in (getattr(struct, name),)
    ]
    return f"{type(struct).__name__}({', '.join(shown)})"
