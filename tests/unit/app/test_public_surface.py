"""Each package has a deliberate public surface, and every documented import works."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("proxy_core", "proxy_cli_backend", "proxy_http", "claude_max_api")
DOCUMENTED = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").glob("*.py")]
)
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
IMPORT = re.compile(
    r"^\s*from ((?:proxy_core|proxy_cli_backend|proxy_http|claude_max_api)[\w.]*) import "
    r"(\([^)]*\)|[^\n]+)",
    re.MULTILINE,
)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_names_its_public_surface(name: str) -> None:
    package = importlib.import_module(name)
    exported = package.__all__
    assert exported, f"{name} exports nothing"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for public in exported:
        value = getattr(package, public)  # raises if __all__ names what is not there
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.split(".")[0] == name, f"{name}.{public} is borrowed"


def documented_imports() -> list[tuple[str, str, str]]:
    """(file, module, name) for every import of our packages in the docs and examples."""
    found: list[tuple[str, str, str]] = []
    for path in DOCUMENTED:
        text = path.read_text(encoding="utf-8")
        code = text if path.suffix == ".py" else "\n".join(FENCE.findall(text))
        for module, names in IMPORT.findall(code):
            for name in names.strip("()").replace("\n", " ").split(","):
                name = name.split("#")[0].strip().split(" as ")[0].strip()
                if name:
                    found.append((path.relative_to(ROOT).as_posix(), module, name))
    return found


def test_the_docs_show_imports() -> None:
    files = {file for file, _, _ in documented_imports()}
    assert {"README.md", "examples/embed.py"} <= files
    readme = {(module, name) for file, module, name in documented_imports() if file == "README.md"}
    assert {
        ("proxy_cli_backend", "ClaudeCliRunner"),
        ("proxy_cli_backend", "CliRunnerConfig"),
    } <= readme


@pytest.mark.parametrize(("file", "module", "name"), documented_imports())
def test_every_documented_import_works(file: str, module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"{file}: from {module} import {name}"
