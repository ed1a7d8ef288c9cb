"""The /proc reader against real processes (Linux only, as the server is)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from proxy_cli_backend.procfs import (
    ProcessInfo,
    children,
    command_line,
    command_lines,
    cpu_seconds,
    descendants,
    kill_unchanged,
    machine,
    proportional_bytes,
    read_process,
    rss_bytes,
    tree_rss,
)

# A child that holds ~64 MiB resident, says so, then sleeps.
_HOLDER = "b = bytearray(64 << 20); print('ready', flush=True); import time; time.sleep(60)"


def _start(code: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    return process


def test_a_row_names_the_parent_group_and_start_time() -> None:
    me = read_process(os.getpid())
    assert me is not None
    assert me.ppid == os.getppid()
    assert me.pgid == os.getpgid(0)
    assert me.alive
    assert me.started.isdigit()
    assert me.rss_pages > 0


def test_a_tree_s_memory_includes_its_children() -> None:
    holder = _start(_HOLDER)
    try:
        assert holder.pid in children(os.getpid())
        assert holder.pid in [info.pid for info in descendants(os.getpid())]
        own = tree_rss([holder.pid])[holder.pid]
        assert own >= 64 << 20
        # Mine alone is tens of MiB; with the holder it must exceed the holder's.
        assert tree_rss([os.getpid()])[os.getpid()] > own
    finally:
        holder.kill()
        holder.wait(5)
    assert tree_rss([holder.pid]) == {}


def test_only_the_same_process_is_killed() -> None:
    sleeper = _start("print('ready', flush=True); import time; time.sleep(60)")
    try:
        noted = read_process(sleeper.pid)
        assert noted is not None
        # The same pid with another start time stands for a recycled pid: spared.
        kill_unchanged([ProcessInfo(noted.pid, noted.ppid, noted.pgid, "S", "1")])
        time.sleep(0.1)
        assert sleeper.poll() is None
        kill_unchanged([noted])
        assert sleeper.wait(5) == -9
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait(5)


def test_a_process_s_own_memory_cpu_and_arguments() -> None:
    # Spins until it has used 0.2 s of CPU (its own clock, not the wall's), then holds.
    spinner = "import time\nwhile time.process_time() < 0.2: pass\n" + _HOLDER
    process = _start(spinner)
    try:
        assert rss_bytes(process.pid) >= 64 << 20
        assert cpu_seconds(process.pid) >= 0.2
        assert command_line(process.pid) == [sys.executable, "-c", spinner]
        assert (process.pid, [sys.executable, "-c", spinner]) in list(command_lines())
    finally:
        process.kill()
        process.wait(5)
    assert (rss_bytes(process.pid), cpu_seconds(process.pid)) == (0, 0.0)
    assert command_line(process.pid) is None


def test_proportional_memory_counts_private_pages_whole_and_shared_ones_in_part() -> None:
    process = _start(_HOLDER)
    try:
        # The 64 MiB buffer is private: all of it counts; the interpreter's pages shared
        # with other processes count in part, so the whole is at most the resident size.
        assert 64 << 20 <= proportional_bytes(process.pid) <= rss_bytes(process.pid)
    finally:
        process.kill()
        process.wait(5)
    assert proportional_bytes(process.pid) == 0


def test_the_machine_summary_names_the_cores() -> None:
    assert machine().startswith(f"nproc {os.cpu_count()}, ")
