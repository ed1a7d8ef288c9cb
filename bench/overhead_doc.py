"""The section of docs/benchmarks.md that `python -m bench.overhead` owns, between two
markers, so that `make bench` (which rewrites the rest) keeps it."""

from __future__ import annotations

from pathlib import Path

START = "<!-- OVERHEAD:START (python -m bench.overhead writes this section) -->"
END = "<!-- OVERHEAD:END -->"


def overhead_section(document: str) -> str:
    """The marked section of `document`, markers included ("" when it has none)."""
    if START not in document or END not in document:
        return ""
    _, _, rest = document.partition(START)
    inside, _, _ = rest.partition(END)
    return START + inside + END


def write_section(path: Path, section: str) -> None:
    """Replace the marked section of `path` with `section`, or append it."""
    document = path.read_text() if path.exists() else ""
    if overhead_section(document):
        head, _, rest = document.partition(START)
        _, _, tail = rest.partition(END)
        document = head + section + tail
    else:
        document = document.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(document)
