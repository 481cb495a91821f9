"""`haops validate`: render everything and run each daemon's own checker."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from haops.cli.common import InventoryPath, JsonFlag, load_inventory
from haops.cli.output import err, out
from haops.targets import BUILT_IN, all_targets, get_target
from haops.apply.validation import CheckerOutcome

STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow"}


def validate(
    inventory: Path = InventoryPath,
    target: list[str] = typer.Option([], "--target", "-t", help=f"Only these targets: {', '.join(BUILT_IN)}."),
    host: list[str] = typer.Option([], "--host", "-H", help="Only this host (repeatable)."),
    as_json: bool = JsonFlag,
    strict: bool = typer.Option(False, "--strict", help="Fail when a checker is not installed, instead of skipping."),
) -> None:
    """Render every file for every host and prove it with the daemon's own checker."""
    from haops.apply.validation import validate as run_validation

    inv = load_inventory(inventory)
    targets = [get_target(name) for name in target] if target else all_targets()
    results = run_validation(inv, targets, host or None)
    if as_json:
        out().print_json(json.dumps([asdict(r) for r in results]))
    else:
        _table(results)
    failed = any(r.status == "failed" or (strict and r.status == "skipped") for r in results)
    raise typer.Exit(1 if failed else 0)


def _table(results: list[CheckerOutcome]) -> None:
    from rich.table import Table

    table = Table(title="haops validate", show_lines=False)
    for column in ("host", "target", "result", "checker", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for r in results:
        table.add_row(r.host, r.target, f"[{STYLE[r.status]}]{r.status}[/]", ", ".join(r.checks), f"{r.seconds:.2f}")
    out().print(table)
    for r in results:
        if r.status != "ok" and r.output:
            err().print(f"{r.host}/{r.target} {r.status}:", style=STYLE[r.status], markup=False)
            err().print(r.output, markup=False)
    counts = {status: sum(r.status == status for r in results) for status in STYLE}
    out().print(f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped")
