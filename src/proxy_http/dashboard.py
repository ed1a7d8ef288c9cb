"""The status page (`GET /dashboard`): one server-rendered HTML document, no script.

`render_dashboard` turns a `DashboardView` (what the route read: the live gauges,
the conversations kept, the spend report as `/v1/usage` shows it, the plan windows
and the recent errors) into the page. Everything that comes from state (labels, model
ids, window names, paths, error messages) is HTML-escaped, and the page loads nothing:
inline CSS, an inline SVG chart per key, a `<meta>` refresh. `PAGE_HEADERS` forbid the
rest (scripts, framing, sniffing, caching). docs/dashboard.md describes the page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import msgspec

from proxy_core import PlanState
from proxy_core.plan import ALLOWED, REJECTED, WARNING
from proxy_http.gauges import ServerGauges
from proxy_http.recent_errors import ErrorEntry
from proxy_http.routes.usage import DayPoint, KeyUsage, Spend, Totals

__all__ = ["DASHBOARD_PATH", "PAGE_HEADERS", "REFRESH_SECONDS", "DashboardView", "render_dashboard"]

DASHBOARD_PATH = "/dashboard"
REFRESH_SECONDS = 15
SHOWN_ERRORS = 20
"""Recent errors the page lists (each caller's own, newest first)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
"""Sent with the page: no script runs, nothing is fetched, framed, sniffed or cached."""


class DashboardView(msgspec.Struct, frozen=True, kw_only=True):
    """What the page shows, read by the route at one moment.

    `sessions` is None when the session store could not be counted, `spend` None when
    the spend store could not be read (`spend_problem` says why). `names` shows each
    key id of `errors` as its label or stand-in; `everyone` says the caller sees every
    key (admin key, or a server without keys).
    """

    now: float
    gauges: ServerGauges
    sessions: int | None
    spend: Spend | None
    spend_problem: str | None = None
    errors: list[ErrorEntry]
    names: dict[str, str]
    everyone: bool


def render_dashboard(view: DashboardView) -> str:
    """The whole page as HTML text."""
    sections = [
        _turns_section(view.gauges, view.sessions),
        _plan_section(view.gauges.plan, view.now),
        _spend_section(view),
        _errors_section(view),
    ]
    return _PAGE.format(
        refresh=REFRESH_SECONDS,
        style=_STYLE,
        now=_e(_utc(view.now)),
        scope="every key" if view.everyone else "your key only",
        sections="\n".join(sections),
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _until(seconds: float, now: float) -> str:
    left = int(seconds - now)
    if left <= 0:
        return "now"
    days, rest = divmod(left, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"in {days}d {hours}h"
    return f"in {hours}h {minutes}m" if hours else f"in {minutes}m"


def _usd(amount: float) -> str:
    # Cents from a dollar up; below, a turn's few tenths of a cent still show.
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def _mib(size: int) -> str:
    return f"{size / 1_048_576:.0f} MiB"


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{title}</h2>{body}</section>'


def _rows(rows: Iterable[tuple[str, str]]) -> str:
    """Two-column rows; both cells are HTML already (callers escape what they hold)."""
    return "".join(f"<tr><th scope=row>{name}</th><td>{value}</td></tr>" for name, value in rows)


def _turns_section(gauges: ServerGauges, sessions: int | None) -> str:
    rows = [
        ("Active turns", f"{gauges.active_turns} of {gauges.concurrency_limit}"),
        ("Queued turns", f"{gauges.queued_turns} of {gauges.queue_limit}"),
        ("Suspended tool turns", str(gauges.suspended_turns)),
        ("CLI processes", str(gauges.cli_processes)),
    ]
    live = gauges.live
    if live is not None:
        rows += [
            (
                "Live processes",
                f"{live.live_processes} of {live.live_limit} ({_mib(live.live_rss_bytes)})",
            ),
            ("Waiting for a process", str(live.waiting_for_process)),
            (
                "Warm pool",
                f"{live.pool_ready} ready of {live.pool_size} ({_mib(live.pool_rss_bytes)})",
            ),
        ]
    rows.append(("Conversations kept", "unknown" if sessions is None else str(sessions)))
    return _section("turns", "Conversations and queue", f"<table>{_rows(rows)}</table>")


def _plan_section(plan: PlanState | None, now: float) -> str:
    if plan is None:
        body = (
            "<p class=muted>No plan reported yet: the CLI reports the plan windows with "
            "each answer in subscription mode.</p>"
        )
        return _section("plan", "Plan windows", body)
    windows = "".join(
        "<tr>"
        f"<th scope=row>{_e(name)}{' (binding)' if name == plan.window else ''}</th>"
        f"<td>{_share(window.utilization)}</td>"
        f"<td>{_reset(window.resets_at, now)}</td>"
        "</tr>"
        for name, window in sorted(plan.windows.items())
    )
    overage = plan.overage_status or "not reported"
    if plan.overage_disabled_reason:
        overage += f" ({plan.overage_disabled_reason})"
    summary = _rows(
        [
            ("Status", _status(plan.status)),
            ("Binding window resets", _reset(plan.resets_at, now)),
            ("Extra usage", _e(overage) + (", in use" if plan.using_overage else "")),
            ("Reported", _e(_utc(plan.observed_at))),
        ]
    )
    return _section(
        "plan",
        "Plan windows",
        f"<table>{summary}</table>"
        "<table><thead><tr><th>Window</th><th>Used</th><th>Resets</th></tr></thead>"
        f"<tbody>{windows}</tbody></table>",
    )


def _status(status: str) -> str:
    """The plan's status, coloured when it is one we know (never a class from state)."""
    known = status if status in (ALLOWED, WARNING, REJECTED) else "other"
    return f'<span class="status-{known}">{_e(status)}</span>'


def _share(utilization: float | None) -> str:
    if utilization is None:
        return "not reported"
    return (
        f'<meter min="0" max="1" low="0.5" high="0.8" optimum="0" value="{utilization:.4f}">'
        f"</meter> {utilization:.0%}"
    )


def _reset(seconds: float | None, now: float) -> str:
    if seconds is None:
        return "not reported"
    return f"{_e(_utc(seconds))} ({_until(seconds, now)})"


def _spend_section(view: DashboardView) -> str:
    spend = view.spend
    if spend is None:
        problem = _e(view.spend_problem or "the spend store cannot be read")
        return _section("spend", "Spend", f"<p class=problem>Unavailable: {problem}</p>")
    totals = _rows(
        [
            (f"Today ({_e(spend.date)}, UTC)", _totals(spend.today)),
            ("This month", _totals(spend.month)),
        ]
    )
    keys = "".join(_key_row(name, usage) for name, usage in spend.by_key.items())
    return _section(
        "spend",
        "Spend",
        f"<table>{totals}</table>"
        "<table><thead><tr><th>Key</th><th>Today</th><th>This month</th>"
        "<th>Last 30 days</th></tr></thead>"
        f"<tbody>{keys or '<tr><td colspan=4 class=muted>No spend yet.</td></tr>'}</tbody>"
        "</table>",
    )


def _totals(totals: Totals) -> str:
    plural = "" if totals.requests == 1 else "s"
    return f"{_usd(totals.cost_usd)} <span class=muted>({totals.requests} request{plural})</span>"


def _key_row(name: str, usage: KeyUsage) -> str:
    budget = usage.budget
    today = _against(usage.today.cost_usd, budget.daily_usd if budget else None)
    month = _against(usage.month.cost_usd, budget.monthly_usd if budget else None)
    return (
        f"<tr><th scope=row>{_e(name)}</th><td>{today}</td><td>{month}</td>"
        f"<td>{_chart(usage.last_30_days)}</td></tr>"
    )


def _against(spent: float, cap: float | None) -> str:
    """Spend, and its budget with a gauge when there is one."""
    if cap is None:
        return _usd(spent)
    meter = f'<meter min="0" max="{cap:.6f}" high="{cap * 0.8:.6f}" value="{spent:.6f}"></meter>'
    return f"{_usd(spent)} of {_usd(cap)} budget {meter}"


CHART_WIDTH = 8  # pixels per day
CHART_HEIGHT = 40


def _chart(days: list[DayPoint]) -> str:
    """The days' cost as inline SVG bars, highest day full height; each bar's tooltip
    names its day, cost and requests."""
    top = max((day.cost_usd for day in days), default=0.0)
    bars = []
    for index, day in enumerate(days):
        height = max(1.0, CHART_HEIGHT * day.cost_usd / top) if top > 0 else 1.0
        plural = "" if day.requests == 1 else "s"
        tip = f"{day.date}: {_usd(day.cost_usd)}, {day.requests} request{plural}"
        bars.append(
            f'<rect x="{index * CHART_WIDTH}" y="{CHART_HEIGHT - height:.1f}" '
            f'width="{CHART_WIDTH - 2}" height="{height:.1f}" '
            f'class="{"spent" if day.cost_usd > 0 else "idle"}"><title>{_e(tip)}</title></rect>'
        )
    width = CHART_WIDTH * len(days)
    first, last = (days[0].date, days[-1].date) if days else ("", "")
    label = f"Spend per day from {first} to {last}, highest {_usd(top)}"
    return (
        f'<svg class=chart width="{width}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {width} {CHART_HEIGHT}" role="img" aria-label="{_e(label)}">'
        f"{''.join(bars)}</svg>"
    )


def _errors_section(view: DashboardView) -> str:
    if not view.errors:
        body = "<p class=muted>No error since the server started.</p>"
        return _section("errors", "Recent errors", body)
    who = "<th>Key</th>" if view.everyone else ""
    rows = "".join(_error_row(entry, view.names, view.everyone) for entry in view.errors)
    return _section(
        "errors",
        "Recent errors",
        f"<table><thead><tr><th>Time</th><th>Request</th><th>Status</th>{who}"
        f"<th>Error</th><th>Message</th></tr></thead><tbody>{rows}</tbody></table>",
    )


def _error_row(entry: ErrorEntry, names: Mapping[str, str], everyone: bool) -> str:
    who = ""
    if everyone:
        name = "no valid key" if entry.key is None else names.get(entry.key, "")
        who = f"<td>{_e(name)}</td>"
    return (
        f"<tr><td>{_e(_utc(entry.at))}</td><td><code>{_e(entry.method)} {_e(entry.path)}"
        f"</code></td><td>{entry.status}</td>{who}<td><code>{_e(entry.code)}</code></td>"
        f"<td class=message>{_e(entry.message)}</td></tr>"
    )


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 70em;
  padding: 0 1em; color: #1d2330; background: #fafbfc; }
h1 { font-size: 1.4em; margin-bottom: 0; } h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; margin: .3em 0 .8em; }
th, td { text-align: left; padding: .25em .9em .25em 0; vertical-align: middle; }
thead th { border-bottom: 1px solid #c9ced6; }
th[scope=row] { font-weight: 600; white-space: nowrap; }
.muted { color: #69707d; } .problem { color: #a3261b; }
.status-allowed { color: #1f7a33; } .status-allowed_warning { color: #a86400; }
.status-rejected { color: #a3261b; }
.message { max-width: 40em; overflow-wrap: anywhere; }
svg.chart rect.spent { fill: #3d6fc4; } svg.chart rect.idle { fill: #d5dae2; }
meter { width: 8em; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>claude-max-api-proxy status</title>
<style>{style}</style>
</head>
<body>
<h1>claude-max-api-proxy status</h1>
<p class=muted>As of {now}; spend shown for {scope}. The page refreshes every {refresh} s.</p>
{sections}
</body>
</html>
"""
