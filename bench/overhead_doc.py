"""The sections of docs/benchmarks.md that `make bench` keeps: each sits between two
markers, and `make bench` (which rewrites the rest) writes them back as they were.

- OVERHEAD: written by `python -m bench.overhead`;
- CANDIDATES: written by hand, the before/after of each performance change (issue 17),
  so a row can be added by anyone who measures one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KeptSection:
    """A section of the document between `start` and `end` (markers included)."""

    start: str
    end: str

    def of(self, document: str) -> str:
        """The section in `document`, markers included ("" when it has none)."""
        if self.start not in document or self.end not in document:
            return ""
        _, _, rest = document.partition(self.start)
        inside, _, _ = rest.partition(self.end)
        return self.start + inside + self.end

    def write(self, path: Path, section: str) -> None:
        """Replace this section of `path` with `section`, or append it."""
        document = path.read_text() if path.exists() else ""
        if self.of(document):
            head, _, rest = document.partition(self.start)
            _, _, tail = rest.partition(self.end)
            document = head + section + tail
        else:
            document = document.rstrip("\n") + "\n\n" + section + "\n"
        path.write_text(document)


OVERHEAD = KeptSection(
    "<!-- OVERHEAD:START (python -m bench.overhead writes this section) -->",
    "<!-- OVERHEAD:END -->",
)
CANDIDATES = KeptSection(
    "<!-- CANDIDATES:START (written by hand; make bench keeps this section) -->",
    "<!-- CANDIDATES:END -->",
)
KEPT = (CANDIDATES, OVERHEAD)
"""Every kept section, in the order they follow the generated part."""

# The overhead section's names, as `python -m bench.overhead` uses them.
START, END = OVERHEAD.start, OVERHEAD.end


def overhead_section(document: str) -> str:
    """The overhead section of `document`, markers included ("" when it has none)."""
    return OVERHEAD.of(document)


def write_section(path: Path, section: str) -> None:
    """Replace the overhead section of `path` with `section`, or append it."""
    OVERHEAD.write(path, section)


def kept_sections(document: str) -> str:
    """Every kept section `document` has, in KEPT order, one blank line apart."""
    return "\n\n".join(found for section in KEPT if (found := section.of(document)))
