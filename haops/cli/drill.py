"""`haops drill`: inject a fault under a steady probe, measure what clients saw, explain the gap."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typing import TYPE_CHECKING

import typer

from haops.cli.common import AskBecomePass, InventoryPath, JsonFlag, load_inventory, ssh_settings
from haops.cli.output import err, fail, out

if TYPE_CHECKING:
    from haops.drill.findings import Findings
    from haops.drill.record import DrillRecord

DRILL_HELP = ("backend-failure (failover), lb-failure, balancer-failure, lb-stop, link-cut (takeover), vrrp-cut (split brain), "
              "reload, switchover (switchover and giveback)")


def drill(
    name: str = typer.Argument(..., help=f"The drill: {DRILL_HELP}."),
    inventory: Path = InventoryPath,
    service: str | None = typer.Option(None, "--service", "-s", help="The service to probe [default: the first]."),
    rate: float = typer.Option(200.0, "--rate", help="Probe requests per second (open model: a fixed arrival rate)."),
    duration: float = typer.Option(20.0, "--duration", help="Seconds the probe runs."),
    fault_at: float = typer.Option(3.0, "--fault-at", help="Seconds into the probe when the fault is injected."),
    hold: float = typer.Option(5.0, "--hold", help="Seconds the fault lasts before it is undone."),
    timeout: float = typer.Option(2.0, "--timeout", help="Each request's time limit, seconds."),
    reloads: int = typer.Option(50, "--reloads", help="reload: how many back-to-back reloads."),
    restart: bool = typer.Option(False, "--restart", help="reload: stop and start instead of a graceful reload (to see the difference)."),
    victim: str | None = typer.Option(None, "--host", help="The host to break [default: the VIP holder, or the first backend]."),
    tcp: bool = typer.Option(False, "--tcp", help="Plain TCP connects instead of HTTP GETs."),
    output: Path = typer.Option(Path("drills"), "--out", "-o", help="Folder for the record (JSON) and the timeline picture (PNG, SVG)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Real hosts: do not ask before breaking them."),
    ask_become_pass: bool = AskBecomePass,
    as_json: bool = JsonFlag,
) -> None:
    """Run a drill: probe the service, inject the fault, restore it, and report what clients saw."""
    from haops.drill.cluster import DrillCluster
    from haops.drill.findings import explain
    from haops.drill.run import DrillOptions, run_drill
    from haops.drill.scenarios import scenario_named
    from haops.session import running_lab

    inv = load_inventory(inventory)
    options = DrillOptions(name, service, rate, duration, fault_at, hold, timeout, reloads, restart, victim, tcp)
    scenario_named(name)
    lab = running_lab(inv)
    if lab is None and not yes:
        confirm_on_real_hosts(name, inv.source)
    output.mkdir(parents=True, exist_ok=True)
    cluster = DrillCluster(inv, ssh_settings(inv, ask_become_pass=ask_become_pass), lab)
    try:
        with err().status(f"drill {name}") as status, stopped_cleanly(f"drill {name}"):
            drill_record = run_drill(inv, options, cluster, lambda text: status.update(text))
    finally:
        cluster.close()
    found = explain(drill_record)
    stem = output / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    drill_record.save(stem.with_suffix(".json"))
    pictures = draw(drill_record, stem)
    show(drill_record, found, as_json, [stem.with_suffix(".json"), *pictures])
    raise typer.Exit(0 if found.passed else 1)


@contextmanager
def stopped_cleanly(what: str) -> Iterator[None]:
    """A host that cannot be reached or refuses a step ends the run with one clear line, exit 1."""
    from haops.transport import HostFailure

    try:
        yield
    except HostFailure as exc:
        fail(f"{what} stopped: {exc}. If the fault was in place, it was undone where haops could reach the host; "
             "check with `haops status` before the next drill")
        raise typer.Exit(1) from None


def confirm_on_real_hosts(name: str, source: str) -> None:
    err().print(f"drill {name} will break hosts of {source} for real (no lab of this inventory is running).")
    if not typer.confirm("go on?", err=True):
        raise typer.Exit(1)


def draw(drill_record: DrillRecord, stem: Path) -> list[Path]:
    from haops.drill.plot import save_timeline

    return save_timeline(drill_record, stem)


def show(drill_record: DrillRecord, found: Findings, as_json: bool, files: list[Path]) -> None:
    from haops.drill import report
    from haops.drill.timeline import rich_timeline

    if as_json:
        out().print_json(json.dumps({**report.as_json(drill_record, found), "files": [str(f) for f in files]}))
        return
    out().print(report.table(drill_record, found))
    out().print(rich_timeline(drill_record))
    out().print("written: " + ", ".join(str(f) for f in files))
