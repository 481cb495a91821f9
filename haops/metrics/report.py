"""Metrics as Rich tables and as JSON, with the conventions they rest on said in both."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from haops.metrics import formulas
from haops.metrics.analysis import ServiceMetrics, TimedIncident
from haops.metrics.formulas import BudgetUse, Interval
from haops.metrics.incidents import iso
from haops.metrics.model import EPOCH

if TYPE_CHECKING:
    from rich.table import Table

NO_SERVICE = "(no service)"
Cell = Callable[[ServiceMetrics], str]


def conventions(metrics: Sequence[ServiceMetrics], confidence: float) -> list[str]:
    lines = [
        "MTTF = total uptime / r (the uptime after the last incident counts too); MTTR = total downtime / r; "
        "MTBF = MTTF + MTTR, which is the window / r.",
        f"{confidence:.0%} interval: chi-square for exponential up times, time-terminated, T = total uptime "
        f"({formulas.CI_SOURCE}); MTBF's is MTTF's + MTTR; with r = 0 only a one-sided lower bound exists.",
        "Budgets: (1 - SLA) x period; year = 365.2425 days, month = year / 12, week = 7 days; "
        "in the window: pro rata over its length.",
    ]
    clocks = {s.clock for m in metrics for s in m.segments}
    if EPOCH in clocks:
        lines.append("Window: --from to --to, as given; incidents cut at its edges count only inside it.")
    else:
        resolution = max((m.resolution for m in metrics if m.resolution is not None), default=None)
        edge = f", so each edge is known within 1/rate = {resolution * 1000:.1f} ms" if resolution else ""
        lines.append("Window: each drill's probe run, from t = 0 to its duration. An outage runs from the first failed "
                     f"request after a success (or at the start) to the first successful request after it{edge}; "
                     "a gap between two requests can hide a shorter one.")
    return lines


# Tables --------------------------------------------------------------------------------------------------------


def incidents_table(metrics: Sequence[ServiceMetrics]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="incidents")
    for column in ("service", "#", "start", "end", "TTF", "TTR", "TBF", "from", "note"):
        table.add_column(column, justify="right" if column in ("#", "TTF", "TTR", "TBF") else "left", overflow="fold")
    for m in metrics:
        for number, timed in enumerate(m.incidents, 1):
            # File names and services are the user's text, which Rich would read as markup.
            table.add_row(*(Text(cell) for cell in incident_cells(m, number, timed)))
    return table


def incident_cells(m: ServiceMetrics, number: int, timed: TimedIncident) -> list[str]:
    incident, times = timed.incident, timed.times
    clock = m.segments[0].clock
    note = ("" if not incident.clipped else
            "cut at the window's edge" if clock == EPOCH else "still failing when the probe stopped")
    return [m.service or NO_SERVICE, str(number), moment(incident.start, clock), moment(incident.end, clock),
            duration(times.ttf), duration(times.ttr), "-" if times.tbf is None else duration(times.tbf), incident.where, note]


def metrics_table(metrics: Sequence[ServiceMetrics], confidence: float) -> Table:
    from rich.table import Table
    from rich.text import Text

    sla = metrics[0].sla
    table = Table(title=f"haops metrics (SLA {sla:g}%)")
    table.add_column("metric")
    for m in metrics:
        table.add_column(Text(m.service or NO_SERVICE), overflow="fold")
    level = f"{confidence:.0%}"
    rows: list[tuple[str, Cell]] = [
        ("window", window_text),
        ("incidents r", lambda m: str(m.means.failures)),
        ("uptime / downtime", lambda m: f"{duration(m.means.uptime)} / {duration(m.means.downtime)}"),
        ("MTTF = uptime / r", lambda m: optional(m.means.mttf)),
        ("MTTR = downtime / r", lambda m: optional(m.means.mttr)),
        ("MTBF = MTTF + MTTR", lambda m: optional(m.means.mtbf)),
        (f"MTTF {level} interval (chi-square)", lambda m: interval_text(m.mttf_interval)),
        (f"MTBF {level} interval (+ MTTR)", lambda m: interval_text(m.mtbf_interval)),
        ("availability, time: uptime / window", lambda m: availability_text(m.availability)),
        ("availability, requests: ok / sent", request_text),
        *((f"budget per {period} at {sla:g}%", budget_cell(period)) for period in formulas.PERIODS),
        ("budget in the window (pro rata)", lambda m: window_budget_text(m.window_budget)),
    ]
    for label, cell in rows:
        table.add_row(label, *(Text(cell(m)) for m in metrics))
    table.add_row(f"SLA {sla:g}%", *(Text("met", "green") if m.meets_sla() else Text("missed", "bold red") for m in metrics))
    return table


def budget_cell(period: str) -> Cell:
    return lambda m: f"{duration(m.budgets[period].allowed)}; this downtime is {share(m.budgets[period])} of it"


def window_text(m: ServiceMetrics) -> str:
    if m.segments[0].clock == EPOCH:
        segment = m.segments[0]
        return f"{iso(segment.start)} to {iso(segment.end)} ({duration(segment.length)})"
    runs = len(m.segments)
    return f"{runs} probe run{'s' if runs != 1 else ''}, {duration(m.observed)}"


def request_text(m: ServiceMetrics) -> str:
    if m.request_availability is None:
        return "- (no probe records)"
    return f"{availability_text(m.request_availability)}, {m.requests_ok} of {m.requests_sent}"


def availability_text(fraction: float) -> str:
    count = formulas.nines(fraction)
    nines = "no downtime" if math.isinf(count) else f"{count:.2f} nines"
    return f"{fraction * 100:.4f}% ({nines})"


def interval_text(interval: Interval) -> str:
    if interval.upper is None:
        return f">= {duration(interval.lower)} (one-sided: no failures)"
    return f"{duration(interval.lower)} to {duration(interval.upper)}"


def window_budget_text(use: BudgetUse) -> str:
    return f"{duration(use.allowed)} allowed, {duration(use.used)} used = {share(use)}"


def share(use: BudgetUse) -> str:
    return "-" if use.fraction is None else percent(use.fraction * 100)


def percent(value: float) -> str:
    """Enough digits to tell a small share from none: 0.0038%, 0.05%, 34.72%, 20,000%."""
    if value == 0 or value >= 100:
        return f"{value:,.0f}%"
    if value >= 0.1:
        return f"{value:.2f}%"
    return f"{value:.2g}%"


def optional(seconds: float | None) -> str:
    return "- (no failures)" if seconds is None else duration(seconds)


def moment(seconds: float, clock: str) -> str:
    return iso(seconds) if clock == EPOCH else f"t={seconds:.3f}s"


def duration(seconds: float) -> str:
    """Seconds to a short human text: 0.235s, 10m 04.8s, 8h 45m 57s, 3d 04h 05m."""
    if round(seconds, 3) < 60:
        return f"{seconds:.3f}s"
    if round(seconds, 1) < 3600:
        minutes, rest = divmod(round(seconds, 1), 60)
        return f"{int(minutes)}m {rest:04.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    return f"{hours}h {minutes:02d}m {secs:02d}s"


# JSON ----------------------------------------------------------------------------------------------------------


def as_json(metrics: Sequence[ServiceMetrics], confidence: float, notes: Sequence[str]) -> dict[str, Any]:
    return {
        "sla": metrics[0].sla,
        "confidence": confidence,
        "conventions": conventions(metrics, confidence),
        "notes": list(notes),
        "services": [service_json(m) for m in metrics],
    }


def service_json(m: ServiceMetrics) -> dict[str, Any]:
    return {
        "service": m.service,
        "clock": m.segments[0].clock,
        "windows": [{"source": s.source, "start": s.start, "end": s.end, "seconds": s.length} for s in m.segments],
        "observed": m.observed,
        "incidents": [incident_json(t) for t in m.incidents],
        "failures": m.means.failures,
        "uptime": m.means.uptime,
        "downtime": m.means.downtime,
        "mttf": m.means.mttf,
        "mttr": m.means.mttr,
        "mtbf": m.means.mtbf,
        "mttf_interval": interval_json(m.mttf_interval),
        "mtbf_interval": interval_json(m.mtbf_interval),
        "availability": {
            "time": m.availability,
            "time_nines": finite(formulas.nines(m.availability)),
            "requests": m.request_availability,
            "requests_nines": None if m.request_availability is None else finite(formulas.nines(m.request_availability)),
            "requests_sent": m.requests_sent,
            "requests_ok": m.requests_ok,
        },
        "budget": {
            **{period: budget_json(use) for period, use in m.budgets.items()},
            "window": budget_json(m.window_budget),
        },
        "meets_sla": m.meets_sla(),
        "resolution": m.resolution,
    }


def incident_json(timed: TimedIncident) -> dict[str, Any]:
    i, t = timed.incident, timed.times
    return {"start": i.start, "end": i.end, "ttf": t.ttf, "ttr": t.ttr, "tbf": t.tbf, "where": i.where, "clipped": i.clipped}


def interval_json(interval: Interval) -> dict[str, Any]:
    return {"lower": interval.lower, "upper": interval.upper, "confidence": interval.confidence,
            "two_sided": interval.two_sided}


def budget_json(use: BudgetUse) -> dict[str, Any]:
    return {"allowed": use.allowed, "used": use.used, "fraction": use.fraction}


def finite(value: float) -> float | None:
    """JSON has no infinity: the nines of a service with no downtime are null."""
    return None if math.isinf(value) else value
