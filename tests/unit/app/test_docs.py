"""The README stays short, the documentation's links resolve inside the repository, and
no text addressed to users (docs, `--help`, the code's messages) speaks of a seed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import msgspec
import pytest

from claude_max_api.cli import main
from claude_max_api.openclaw import build_parser as openclaw_parser
from proxy_core import ChatCompletionRequest

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
DOCS = sorted([README, *(ROOT / "docs").glob("*.md")])
README_LIMIT = 12288

# [text](target) and [text](target "title"), not images' inline data; code is removed first.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`+[^`\n]*`+")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# Where the project came from is no reader's concern: "seed" outside code spans. The
# OpenAI request field `seed` is that field's name, not the jargon: it is allowed in a
# code span, or as a string that is exactly a request field's name.
SEED = re.compile(r"\bseed(?:'s|s)?\b", re.IGNORECASE)
REQUEST_FIELDS = frozenset(f.name for f in msgspec.structs.fields(ChatCompletionRequest))
SOURCES = sorted((ROOT / "src").rglob("*.py"))


def prose(markdown: str) -> str:
    """Markdown without fenced blocks and inline code."""
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor a markdown text offers, duplicates numbered as GitHub does."""
    text = FENCE.sub("", markdown)
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def links(markdown: str) -> list[str]:
    return LINK.findall(prose(markdown))


def is_web(target: str) -> bool:
    return re.match(r"^(https?://|mailto:)", target) is not None


def leaves_repository(path: Path, target: str) -> bool:
    """A link to another scheme, an absolute path, or a file outside the repository."""
    if is_web(target):
        return False
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("/"):
        return True
    file_part = target.partition("#")[0]
    return bool(file_part) and not (path.parent / file_part).resolve().is_relative_to(ROOT)


def broken_links(path: Path, markdown: str) -> list[str]:
    """Relative links in `markdown` (written in `path`) whose file, or whose anchor in a
    markdown file, does not exist."""
    broken: list[str] = []
    for target in links(markdown):
        if is_web(target) or leaves_repository(path, target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md":
            text = markdown if dest == path else read(dest)
            if anchor not in anchors(text):
                broken.append(target)
    return broken


def test_the_readme_is_at_most_12_kib() -> None:
    assert len(README.read_bytes()) <= README_LIMIT


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_anchor_in_the_repository(path: Path) -> None:
    assert broken_links(path, read(path)) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_link_leaves_the_repository_except_to_the_web(path: Path) -> None:
    assert [target for target in links(read(path)) if leaves_repository(path, target)] == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_docs_do_not_speak_of_where_the_project_came_from(path: Path) -> None:
    assert SEED.findall(prose(read(path))) == []


def strings_in(source: str) -> list[str]:
    """Every string literal of a Python module (docstrings and f-strings' text included)."""
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def seeds_in_code(source: str) -> list[str]:
    """The strings of a module that speak of a seed (a request field's name aside)."""
    return [
        text
        for text in strings_in(source)
        if text not in REQUEST_FIELDS and SEED.search(prose(text))
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_message_or_description_in_the_code_speaks_of_a_seed(path: Path) -> None:
    assert seeds_in_code(read(path)) == []


@pytest.mark.parametrize("command", [[], ["serve"], ["doctor"]])
def test_the_help_does_not_speak_of_a_seed(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    shown = capsys.readouterr().out
    assert shown.startswith("usage: claude-max-api")  # the help was really printed
    assert SEED.findall(shown) == []


def test_the_setup_openclaw_help_does_not_speak_of_a_seed() -> None:
    assert SEED.findall(openclaw_parser().format_help()) == []


def test_the_checks_catch_a_missing_file_a_missing_anchor_and_a_link_out() -> None:
    # The checks above must be able to fail: run them on text with each fault.
    page = ROOT / "docs" / "api.md"
    faults = "# Here\n\n[a](missing.md) [b](#nowhere) [c](sessions.md#nowhere) [d](#here)"
    assert broken_links(page, faults) == ["missing.md", "#nowhere", "sessions.md#nowhere"]
    assert broken_links(page, "[ok](../README.md#use-as-a-library)") == []
    assert leaves_repository(page, "../../shared/docs/design.md")
    assert leaves_repository(page, "/work/shared/docs/design.md")
    assert leaves_repository(page, "file:///etc/passwd")
    assert not leaves_repository(page, "https://platform.openai.com/docs")
    assert not leaves_repository(page, "../examples/embed.py")
    assert SEED.findall(prose("The seed's PORT variable")) == ["seed's"]
    assert SEED.findall(prose("`seed` is an OpenAI field")) == []
    assert seeds_in_code('FIELDS = ("seed", "top_p")\nHELP = "set by the seed"') == [
        "set by the seed"
    ]
    assert seeds_in_code('def f():\n    """The seeds\' port."""') == ["The seeds' port."]


def test_slugs_follow_githubs_rules() -> None:
    assert slug("Sessions: `GET /v1/sessions`, `DELETE /v1/sessions/{id}`") == (
        "sessions-get-v1sessions-delete-v1sessionsid"
    )
    assert slug("CLI processes never see the server's settings or secrets") == (
        "cli-processes-never-see-the-servers-settings-or-secrets"
    )
