"""`haops switchover` and `haops failback`: planned moves, measured by the drill's probe while they happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from haops.cli.common import AskBecomePass, InventoryPath, JsonFlag, load_inventory, ssh_settings
from haops.cli.output import err
from haops.errors import UserError

if TYPE_CHECKING:
    from haops.drill.cluster import DrillCluster
    from haops.drill.scenarios import Stage

RateOption = typer.Option(200.0, "--rate", help="Probe requests per second while the operation runs.")
OutOption = typer.Option(Path("drills"), "--out", "-o", help="Folder for the record (JSON) and the timeline picture.")
YesOption = typer.Option(False, "--yes", "-y", help="Real hosts: do not ask before changing them.")


def switchover(
    inventory: Path = InventoryPath,
    to: str | None = typer.Option(None, "--to", help="Move the VIP to this host (VRRP, by priority)."),
    vrrp: str | None = typer.Option(None, "--vrrp", help="The VRRP instance [default: the only one]."),
    drain: str | None = typer.Option(None, "--drain", help="Drain this backend out of --service instead."),
    service: str | None = typer.Option(None, "--service", "-s", help="The service to probe, and to drain from."),
    rate: float = RateOption,
    output: Path = OutOption,
    yes: bool = YesOption,
    ask_become_pass: bool = AskBecomePass,
    as_json: bool = JsonFlag,
) -> None:
    """Move a VIP (--to) or drain a backend (--drain) on purpose, with no failed request; measured."""
    from haops.drill import planned

    if (to is None) == (drain is None):
        raise UserError("say what to move: --to HOST (a VIP) or --drain BACKEND (out of --service)")

    def act(cluster: DrillCluster, stage: Stage) -> tuple[str, Callable[[], None]]:
        if to is not None:
            instance = planned.instance_named(cluster.inventory, vrrp)
            return "switchover", lambda: planned.move_vip(cluster, instance, to)
        assert drain is not None
        return "drain", lambda: planned.drain_backend(cluster, stage.service, drain)

    measured(inventory, service, vrrp, drain, rate, output, yes, ask_become_pass, as_json, act)


def failback(
    inventory: Path = InventoryPath,
    vrrp: str | None = typer.Option(None, "--vrrp", help="The VRRP instance to give back [default: the only one]."),
    undrain: str | None = typer.Option(None, "--undrain", help="Put this drained backend back into --service instead."),
    service: str | None = typer.Option(None, "--service", "-s", help="The service to probe, and to put the backend back into."),
    rate: float = RateOption,
    output: Path = OutOption,
    yes: bool = YesOption,
    ask_become_pass: bool = AskBecomePass,
    as_json: bool = JsonFlag,
) -> None:
    """Give back: return a VIP or a drained backend to where the inventory puts it; measured."""
    from haops.drill import planned

    def act(cluster: DrillCluster, stage: Stage) -> tuple[str, Callable[[], None]]:
        if undrain is not None:
            return "failback", lambda: planned.undrain_backend(cluster, stage.service, undrain)
        instance = planned.instance_named(cluster.inventory, vrrp)
        return "failback", lambda: planned.give_back_vip(cluster, instance)

    measured(inventory, service, vrrp, undrain, rate, output, yes, ask_become_pass, as_json, act)


def measured(inventory: Path, service: str | None, vrrp: str | None, backend: str | None, rate: float, output: Path,
             yes: bool, ask_become_pass: bool, as_json: bool,
             act: Callable[[DrillCluster, Stage], tuple[str, Callable[[], None]]]) -> None:
    from haops.cli.drill import confirm_on_real_hosts, draw, show, stopped_cleanly
    from haops.drill.cluster import DrillCluster, instance_for, service_named
    from haops.drill.findings import explain
    from haops.drill.run import DrillOptions, run_operation
    from haops.drill.scenarios import Stage
    from haops.session import running_lab

    inv = load_inventory(inventory)
    lab = running_lab(inv)
    chosen = service_named(inv, service)
    cluster = DrillCluster(inv, ssh_settings(inv, ask_become_pass=ask_become_pass), lab)
    stage = Stage(cluster, chosen, inv.vrrp.get(vrrp) if vrrp else instance_for(inv, chosen), "", 0.0)
    try:
        name, operation = act(cluster, stage)
        stage.victim = backend or current_holder(cluster, stage)
        if lab is None and not yes:
            confirm_on_real_hosts(name, inv.source)
        output.mkdir(parents=True, exist_ok=True)
        with err().status(name) as status, stopped_cleanly(name):
            done = run_operation(stage, name, operation, DrillOptions(name, chosen.name, rate=rate), lambda t: status.update(t))
    finally:
        cluster.close()
    found = explain(done)
    stem = output / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    done.save(stem.with_suffix(".json"))
    show(done, found, as_json, [stem.with_suffix(".json"), *draw(done, stem)])
    raise typer.Exit(0 if found.passed else 1)


def current_holder(cluster: DrillCluster, stage: Stage) -> str:
    if stage.instance is None:
        return ""
    holders = cluster.holders(stage.instance)
    return holders[0] if len(holders) == 1 else ""
