"""The drill report: a Rich table of the findings, and the JSON of record plus findings."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.table import Table

from haops.drill.findings import Findings, Latency
from haops.drill.record import DrillRecord


def seconds(value: float | None, since: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value - since:.2f}s" if since is not None else f"t={value:.2f}s"


def latency_text(value: Latency | None) -> str:
    if value is None:
        return "-"
    return f"p50 {value.p50_ms:.1f} ms, p99 {value.p99_ms:.1f} ms, max {value.max_ms:.0f} ms ({value.count} requests)"


PLANNED = ("switchover", "drain", "failback")


def rows(drill: DrillRecord, found: Findings) -> list[tuple[str, str]]:
    gap = found.longest_gap
    fault = found.fault
    started, ended = ("operation started", "operation done") if drill.drill in PLANNED else ("fault", "restore")
    table = [
        ("requests", f"{found.sent} sent at {drill.rate:g}/s to {drill.target}, {found.failed} failed"),
        ("longest gap", "none" if gap is None else f"{gap[1] - gap[0]:.2f}s, from t={gap[0]:.2f}s"),
        (started, f"{seconds(fault)} on {drill.settings.get('victim') or '-'}"),
        ("time to detect", seconds(found.detect, fault)),
        ("time to take over (VIP moved)", seconds(found.takeover, fault)),
        ("time to recover (first good answer after the last failure)", seconds(found.recovered, fault)),
        (ended, seconds(found.restore)),
        ("failback (VIP back on the restored node)", seconds(found.failback, found.restore)),
        ("latency during the fault", latency_text(found.during)),
        ("latency outside it", latency_text(found.outside)),
    ]
    if found.bound_s is not None:
        table.append(("expected bound", f"{found.bound_s:.2f}s: {found.bound_why}"))
    table += [("step: " + name, f"{took:.2f}s") for name, took in found.steps]
    table += [("no VIP holder", f"{w.length:.2f}s from t={w.start:.2f}s") for w in found.no_holder]
    table += [("two VIP holders", f"{', '.join(w.holders)} for {w.length:.2f}s from t={w.start:.2f}s") for w in found.two_holders]
    return table


def table(drill: DrillRecord, found: Findings) -> Table:
    kind = "" if drill.drill in PLANNED else "drill "
    shown = Table(title=f"{kind}{drill.drill} on {drill.service}", show_header=False, title_justify="left")
    shown.add_column("what", style="bold")
    shown.add_column("measured")
    for what, measured in rows(drill, found):
        shown.add_row(what, measured)
    for ok, verdict in found.verdicts:
        shown.add_row("[green]ok[/]" if ok else "[red]FAILED[/]", verdict)
    return shown


def as_json(drill: DrillRecord, found: Findings) -> dict[str, Any]:
    return {"record": drill.to_json(), "findings": asdict(found), "passed": found.passed}
