"""docs/configuration.md is generated from the settings' declaration and kept current."""

from __future__ import annotations

from pathlib import Path

from claude_max_api.settings import SETTINGS, markdown

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_the_configuration_doc_is_the_generated_one() -> None:
    # Stale? Regenerate: make docs
    assert DOC.read_text(encoding="utf-8") == markdown()


def test_every_setting_has_a_row_with_its_flag_and_env_var() -> None:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    for setting in SETTINGS:
        assert any(
            f"`{setting.flag}`" in row
            and f"`{setting.env}`" in row
            and setting.description[:20] in row.replace("\\|", "|")
            for row in rows
        ), setting.name
