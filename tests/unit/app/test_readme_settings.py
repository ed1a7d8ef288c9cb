"""The README's configuration table lists every setting with its flag and env var."""

from __future__ import annotations

from pathlib import Path

import msgspec

from claude_max_api.settings import Settings, env_name, flag_name

README = Path(__file__).resolve().parents[3] / "README.md"


def configuration_table() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Configuration") : text.index("## API reference")]


def test_every_setting_has_a_row_with_its_flag_and_env_var() -> None:
    table = configuration_table()
    rows = [line for line in table.splitlines() if line.startswith("| `--")]
    for field in msgspec.structs.fields(Settings):
        flag, env = flag_name(field.name), env_name(field.name)
        assert any(f"`{flag}`" in row and f"`{env}`" in row for row in rows), field.name
