"""The one reader of /proc: process rows, process trees, resident memory, CPU time,
command lines and the machine's size (the backend, the bench and setup-openclaw
all read it here).

Every pid is read with its start time, so a caller can tell a recycled pid from
the process it noted earlier. Where /proc is unavailable, every reader answers
"nothing" rather than failing.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import msgspec

PROC = Path("/proc")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_MAX_TREE_DEPTH = 8
"""How deep resident memory is summed: the CLI, the tools it started, and theirs."""


class ProcessInfo(msgspec.Struct, frozen=True):
    """One row of the process table, from /proc/<pid>/stat."""

    pid: int
    ppid: int
    pgid: int
    state: str
    started: str
    rss_pages: int = 0
    cpu_ticks: int = 0  # user + system time of the process itself, in clock ticks

    @property
    def alive(self) -> bool:
        """Running (a zombie has exited; only its parent's reaping is pending)."""
        return self.state not in ("Z", "X")


ProcessTable = dict[int, ProcessInfo]


def read_process(pid: int) -> ProcessInfo | None:
    """The process `pid` from /proc, or None if it is gone (or /proc is unavailable)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The fields after the command name (which may hold spaces and parentheses).
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcessInfo(
        pid,
        int(fields[1]),
        int(fields[2]),
        fields[0],
        fields[19],
        int(fields[21]),
        int(fields[11]) + int(fields[12]),
    )


def halted(pid: int) -> bool | None:
    """Whether `pid` is stopped (SIGSTOP, a tracer), a zombie or gone; None where there is
    no /proc to tell."""
    info = read_process(pid)
    if info is not None:
        return info.state in ("T", "t") or not info.alive
    return True if os.path.isdir("/proc/self") else None


def process_table() -> ProcessTable:
    """Every process visible in /proc (empty where there is no /proc)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    table: ProcessTable = {}
    for name in names:
        if name.isdigit() and (info := read_process(int(name))) is not None:
            table[info.pid] = info
    return table


def descendants_in(table: ProcessTable, root: int) -> list[ProcessInfo]:
    """The descendants of `root` in `table`, nearest first."""
    children: dict[int, list[ProcessInfo]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info)
    found: list[ProcessInfo] = []
    frontier = [root]
    while frontier:
        level = [child for parent in frontier for child in children.get(parent, [])]
        found += level
        frontier = [info.pid for info in level]
    return found


def descendants(root: int) -> list[ProcessInfo]:
    """The descendants of `root` now, from a fresh read of the whole table."""
    return descendants_in(process_table(), root)


def kill_unchanged(processes: list[ProcessInfo]) -> None:
    """SIGKILL each process that is still the same one (same start time)."""
    for noted in processes:
        now = read_process(noted.pid)
        if now is not None and now.started == noted.started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(noted.pid, signal.SIGKILL)


def children(pid: int) -> list[int]:
    """The direct children of a process (none if it is gone), without scanning /proc."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                found += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def tree_rss(pids: list[int]) -> dict[int, int]:
    """Resident memory in bytes of each process with its descendants.

    Processes that are gone (or zombies) are absent. Reads only these processes
    and their children, not the whole of /proc.
    """
    totals: dict[int, int] = {}
    for pid in pids:
        total = _tree_rss(pid, depth=0)
        if total is not None:
            totals[pid] = total
    return totals


def _tree_rss(pid: int, depth: int) -> int | None:
    info = read_process(pid)
    if info is None or not info.alive:
        return None
    total = info.rss_pages * PAGE_BYTES
    if depth < _MAX_TREE_DEPTH:
        for child in children(pid):
            total += _tree_rss(child, depth + 1) or 0
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of the process itself (0 if it is gone)."""
    info = read_process(pid)
    return 0 if info is None else info.rss_pages * PAGE_BYTES


def proportional_bytes(pid: int) -> int:
    """Proportional set size of the process itself (0 if gone or unreadable): its private
    pages plus its share of the pages it shares (the CLI's own binary, mapped by every
    CLI process). Costlier than `rss_bytes` (the kernel walks the page tables)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process itself, its children's not included (0 if gone)."""
    info = read_process(pid)
    return 0.0 if info is None else info.cpu_ticks / _CLOCK_TICKS


def command_line(pid: int, proc_root: Path = PROC) -> list[str] | None:
    """The arguments of a process (None if it ended or is not ours to read)."""
    try:
        raw = (proc_root / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def command_lines(proc_root: Path = PROC) -> Iterator[tuple[int, list[str]]]:
    """Every readable process with its arguments (`proc_root` lets tests stage a /proc)."""
    try:
        names = [entry.name for entry in proc_root.iterdir()]
    except OSError:
        return
    for name in names:
        if name.isdigit() and (argv := command_line(int(name), proc_root)) is not None:
            yield int(name), argv


def machine() -> str:
    """`nproc N, M GiB memory, <cpu model>`, for a benchmark report."""
    memory = 0
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in (PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"nproc {os.cpu_count()}, {memory / 2**30:.1f} GiB memory, {model}"
