"""`haops vagrant plan`: the inventory's VMs, and whether this machine can run them all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from haops.cli.common import InventoryPath, JsonFlag, load_inventory
from haops.cli.output import err, out

if TYPE_CHECKING:
    from rich.table import Table

    from haops.vagrant import VmPlan

app = typer.Typer(help="Vagrant VMs for the inventory's hosts: plan them against this machine.", no_args_is_help=True)


@app.command()
def plan(
    inventory: Path = InventoryPath,
    emulated: bool | None = typer.Option(None, "--emulated/--kvm",
                                         help="Count QEMU software emulation's memory per VM (default: HAOPS_VM_DRIVER=qemu)."),
    as_json: bool = JsonFlag,
) -> None:
    """Each host's VM (vm: {cpus, memory, disks}) and the sum against this machine's memory and CPUs:
    a warning when they overcommit it, exit 1 when they cannot all run at once."""
    from haops.vagrant import Machine, emulated_by_default, vm_plan

    planned = vm_plan(load_inventory(inventory), Machine.this(), emulated_by_default() if emulated is None else emulated)
    refusal = planned.refusal()
    if as_json:
        out().print_json(json.dumps(plan_json(planned)))
    else:
        out().print(vm_table(planned))
        for warning in planned.warnings():
            err().print(f"warning: {warning}")
        if refusal:
            err().print(f"error: {refusal}")
    raise typer.Exit(1 if refusal else 0)


def vm_table(planned: VmPlan) -> Table:
    from rich.table import Table

    from haops.vagrant import mib

    machine = planned.machine
    table = Table(title=f"VMs on this machine: {machine.cpus} CPUs, {mib(machine.memory_mib)} memory "
                        f"({mib(machine.available_mib)} free), {mib(machine.swap_mib)} swap"
                        + ("; QEMU software emulation" if planned.emulated else ""))
    for column in ("host", "vCPUs", "memory", "extra disks"):
        table.add_column(column, justify="left" if column == "host" else "right")
    for name, vm in planned.vms.items():
        table.add_row(name, str(vm.cpus), mib(vm.memory_mib), ", ".join(mib(d) for d in vm.disks_mib) or "-")
    table.add_section()
    table.add_row(f"{len(planned.vms)} VMs", str(planned.cpus), mib(planned.memory_mib) + (" with emulation" if planned.emulated else ""),
                  mib(planned.disks_mib) if planned.disks_mib else "-")
    return table


def plan_json(planned: VmPlan) -> dict[str, Any]:
    from dataclasses import asdict

    return {"vms": {name: asdict(vm) for name, vm in planned.vms.items()}, "machine": asdict(planned.machine),
            "emulated": planned.emulated, "memory_mib": planned.memory_mib, "cpus": planned.cpus,
            "disks_mib": planned.disks_mib, "warnings": planned.warnings(), "refusal": planned.refusal()}
