"""The fake Anthropic upstream in a process of its own, so its work never competes with
the harness for the GIL (nor shows up in the harness's CPU time).

    python -m bench.upstream --first-token-delay 0.3 --tokens-per-second 50

prints its base URL on the first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from types import TracebackType
from typing import Self

from tests.support.fake_upstream import FakeAnthropic


class UpstreamProcess:
    """Starts `python -m bench.upstream` with a latency profile; stops it on exit."""

    def __init__(self, first_token_delay: float, tokens_per_second: float) -> None:
        self.args = [str(first_token_delay), str(tokens_per_second)]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> Self:
        argv = [sys.executable, "-m", "bench.upstream", "--first-token-delay", self.args[0]]
        self.proc = subprocess.Popen(
            [*argv, "--tokens-per-second", self.args[1]],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"the fake upstream did not start: {self.base_url!r}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--tokens-per-second", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeAnthropic(
        first_token_delay=args.first_token_delay, tokens_per_second=args.tokens_per_second
    )
    with fake:
        print(fake.base_url, flush=True)
        while True:  # until SIGTERM (its default action ends the process)
            time.sleep(3600)


if __name__ == "__main__":
    main()
