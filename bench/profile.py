"""A flame graph of the proxy server while the benchmark drives it (`py-spy record`).

`python -m bench.run --profile DIR` attaches py-spy to the live server of the instant
profile once it answers, and writes DIR/flamegraph-live.svg when the server's turn of
the run ends. py-spy samples the server's Python stacks (idle ones left out), and only
the thread that holds the GIL (`--gil`): py-spy takes a thread blocked in a C call for
a busy one, and the server has one such thread per CLI process (asyncio's child
watcher in waitpid) plus idle thread-pool workers, which otherwise fill nine tenths of
the graph. What remains is where the server's Python CPU goes. The CLI is node and is
not followed.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

FLAMEGRAPH = "flamegraph-live.svg"
DEFAULT_RATE = 250
"""Samples a second. py-spy pauses the server for each (its default, consistent stacks),
so a profiled run's timings are not comparable to an unprofiled one's."""


def py_spy() -> str:
    """The py-spy executable: beside this Python (the venv's, from `.[dev]`), else PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        sys.exit("bench: --profile needs py-spy (pip install -e '.[dev]')")
    return found


class FlameGraph:
    """`py-spy record` attached to `pid` for the `with` block; writes `output` at its end."""

    def __init__(self, pid: int, output: Path, rate: int = DEFAULT_RATE) -> None:
        self.pid = pid
        self.output = output
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        argv = [py_spy(), "record", "--pid", str(self.pid), "--output", str(self.output)]
        self.proc = subprocess.Popen(
            [*argv, "--format", "flamegraph", "--rate", str(self.rate), "--gil"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        time.sleep(0.5)  # attached before the first request it should see
        if self.proc.poll() is not None:
            said = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
            raise RuntimeError(f"py-spy could not attach to the server: {said.strip()}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc = self.proc
        if proc is None:
            return
        # SIGINT is py-spy's Ctrl-C: it stops sampling and writes the graph.
        proc.send_signal(signal.SIGINT)
        try:
            said, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            said, _ = proc.communicate()
        summary = [line for line in said.decode(errors="replace").splitlines() if "Wrote" in line]
        print(summary[-1] if summary else f"py-spy wrote nothing ({proc.returncode})", flush=True)
