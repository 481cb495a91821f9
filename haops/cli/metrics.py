"""`haops metrics`: availability, MTTF, MTTR, MTBF and SLA budgets from drill records or an incident log."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from haops.cli.common import JsonFlag
from haops.cli.output import err, out
from haops.errors import UserError


def metrics(
    files: list[Path] = typer.Argument(..., help="Drill records (JSON from a drill), or incident logs: CSV or JSON rows "
                                                 "of start, end and an optional service."),
    window_from: str | None = typer.Option(None, "--from", help="Start of an incident log's window: ISO 8601 with an "
                                                                "offset, or epoch seconds. Required for incident logs; "
                                                                "a drill record's window is its probe run."),
    window_to: str | None = typer.Option(None, "--to", help="End of an incident log's window. Required for incident logs."),
    sla: float = typer.Option(99.9, "--sla", help="Target availability in percent, for the downtime budgets."),
    confidence: float = typer.Option(0.9, "--confidence", help="Confidence level of the MTTF and MTBF intervals."),
    service: list[str] = typer.Option([], "--service", "-s", help="Only this service (repeatable)."),
    fail_below_sla: bool = typer.Option(False, "--fail-below-sla", help="Exit 1 when an availability is below --sla."),
    as_json: bool = JsonFlag,
) -> None:
    """Compute TTF, TTR, TBF, MTTF, MTTR, MTBF, availability, the nines and SLA budgets. See docs/metrics.md."""
    from haops.metrics import report
    from haops.metrics.analysis import analyse
    from haops.metrics.incidents import load_segments

    check_levels(sla, confidence)
    segments, notes = load_segments(files, window_from, window_to)
    results = [m for m in analyse(segments, sla, confidence) if not service or m.service in service]
    if not results:
        known = ", ".join(sorted({s.service or "(none)" for s in segments}))
        raise UserError(f"--service {', '.join(service)} matches no service in the input; services: {known}")
    if as_json:
        out().print_json(json.dumps(report.as_json(results, confidence, notes)))
    else:
        if any(m.incidents for m in results):
            out().print(report.incidents_table(results))
        out().print(report.metrics_table(results, confidence))
        for line in report.conventions(results, confidence):
            out().print(line, markup=False, style="dim")
        for note in notes:
            err().print(f"note: {note}", markup=False)
    raise typer.Exit(1 if fail_below_sla and not all(m.meets_sla() for m in results) else 0)


def check_levels(sla: float, confidence: float) -> None:
    if not 0 < sla < 100:
        raise UserError(f"--sla {sla:g} is not a percentage between 0 and 100 (exclusive); 100% allows no downtime to budget")
    if not 0 < confidence < 1:
        raise UserError(f"--confidence {confidence:g} is not between 0 and 1 (exclusive); 0.9 means 90%")
