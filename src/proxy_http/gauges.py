"""The server's state right now: turns, queue, CLI processes and the plan windows.

One reader (`read_gauges`) that every view of the live state shares: the Prometheus
collector (`proxy_http.metrics`) turns it into gauges at each scrape, and a status
page can show the same numbers. It reads the service when asked and keeps no copy.
"""

from __future__ import annotations

import msgspec

from proxy_core import ChatService, LiveDetails, PlanState


class ServerGauges(msgspec.Struct, frozen=True, kw_only=True):
    """The live state of one server, as read at one moment.

    `cli_processes` counts every CLI process the backend holds (live, pooled, ending;
    a process-per-turn backend: its running turns); `live` has the live processes and
    the warm pool (None: a backend without them); `plan` the account's plan windows as
    last reported (None: none seen, e.g. an API key rather than a subscription).
    """

    active_turns: int
    queued_turns: int
    concurrency_limit: int
    queue_limit: int
    cli_processes: int
    live: LiveDetails | None = None
    plan: PlanState | None = None

    @property
    def suspended_turns(self) -> int:
        """Turns waiting on their client's tool results (kept by live processes only)."""
        return self.live.suspended_turns if self.live is not None else 0


def read_gauges(service: ChatService) -> ServerGauges:
    """What `service` and its backend hold now (cheap: no request, no CLI call)."""
    status = service.backend_status()
    details = status.details
    return ServerGauges(
        active_turns=service.active,
        queued_turns=service.queued,
        concurrency_limit=service.limits.max_concurrent,
        queue_limit=service.limits.max_queued,
        cli_processes=status.active_processes,
        live=details if isinstance(details, LiveDetails) else None,
        plan=service.subscription,
    )
