"""CPU time and resident memory of processes, read from /proc (Linux only)."""

from __future__ import annotations

import os
from pathlib import Path

from proxy_cli_backend.procfs import children

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process itself (its children's CPU not included)."""
    fields = _fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pid: int) -> int:
    fields = _fields(pid)
    return 0 if fields is None else int(fields[21]) * _PAGE


def descendants(root: int) -> list[int]:
    """Every living process below `root`."""
    found: list[int] = []
    frontier = [root]
    while frontier:
        found += (frontier := [c for pid in frontier for c in children(pid)])
    return found


def cli_processes(root: int) -> list[int]:
    """The `claude` processes below `root` (by their command line)."""
    found: list[int] = []
    for pid in descendants(root):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"stream-json" in argv:
            found.append(pid)
    return found


def machine() -> str:
    """`N cores, M GiB memory, <cpu model>` for the report."""
    memory = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) * 1024
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"nproc {os.cpu_count()}, {memory / 2**30:.1f} GiB memory, {model}"
