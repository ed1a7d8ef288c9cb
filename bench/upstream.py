"""The fake Anthropic upstream in a process of its own, so its work never competes with
the harness for the GIL (nor shows up in the harness's CPU time).

    python -m bench.upstream --first-token-delay 0.3 --tokens-per-second 50

prints its base URL on the first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import time

from tests.support.fake_upstream import FakeAnthropic

from bench.server import ChildServer


class UpstreamProcess(ChildServer):
    """Starts `python -m bench.upstream` with a latency profile; stops it on exit."""

    def __init__(self, first_token_delay: float, tokens_per_second: float) -> None:
        delay, rate = str(first_token_delay), str(tokens_per_second)
        super().__init__(
            "bench.upstream", ["--first-token-delay", delay, "--tokens-per-second", rate]
        )


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
