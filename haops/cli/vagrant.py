"""`haops vagrant plan|preflight|up|status|down` and `haops vagrant box build`: the inventory's
hosts as Vagrant VMs on this machine (vagrant-libvirt), from a local box."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from haops.cli.common import InventoryPath, JsonFlag, load_inventory
from haops.cli.output import err, out

if TYPE_CHECKING:
    from rich.table import Table

    from haops.vagrant.machines import Project
    from haops.vagrant.plan import VmPlan
    from haops.vagrant.preflight import Finding

app = typer.Typer(help="Vagrant VMs for the inventory's hosts: plan, check, build the box, bring up, tear down.",
                  no_args_is_help=True)
box_app = typer.Typer(help="The local Debian box the VMs boot (for machines without Vagrant Cloud).", no_args_is_help=True)
app.add_typer(box_app, name="box")
EmulatedOption = typer.Option(None, "--emulated/--kvm",
                              help="QEMU software emulation, or KVM (default: HAOPS_VM_DRIVER=qemu|kvm, else kvm).")
BoxOption = typer.Option(None, "--box", envvar="HAOPS_BOX",
                         help="The Vagrant box: haops/bookworm (`haops vagrant box build`) or e.g. debian/bookworm64.")


@app.command()
def plan(
    inventory: Path = InventoryPath,
    emulated: bool | None = EmulatedOption,
    as_json: bool = JsonFlag,
) -> None:
    """Each host's VM (vm: {cpus, memory, disks}) and the sum against this machine's memory and CPUs:
    a warning when they overcommit it, exit 1 when they cannot all run at once."""
    from haops.vagrant.plan import Machine, vm_plan

    planned = vm_plan(load_inventory(inventory), Machine.this(), driver_emulated(emulated))
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

    from haops.vagrant.plan import mib

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

    return {"vms": {name: {**asdict(vm), "nics": [str(n) for n in vm.nics], "gateway": vm.gateway and str(vm.gateway)}
                    for name, vm in planned.vms.items()}, "machine": asdict(planned.machine),
            "emulated": planned.emulated, "memory_mib": planned.memory_mib, "cpus": planned.cpus,
            "disks_mib": planned.disks_mib, "warnings": planned.warnings(), "refusal": planned.refusal()}


@box_app.command("build")
def box_build(
    force: bool = typer.Option(False, "--force", help="Build again even when the box Vagrant holds is current."),
    mirror: str | None = typer.Option(None, "--mirror", help="The Debian mirror (default: the one this machine's apt uses)."),
    work: Path = typer.Option(Path("/var/cache/haops/box"), "--work-dir", help="Where the image is built and the box file kept."),
) -> None:
    """Build the haops/bookworm box: debootstrap, every package haops drives, first-boot host keys,
    a direct-boot kernel; then `vagrant box add` it. Skipped when the box Vagrant holds is current."""
    import time

    from haops.vagrant import box

    wanted = box.recipe(mirror)
    if box.box_is_current(wanted) and not force:
        out().print(f"{box.BOX_NAME} is current (recipe {wanted.digest()}): nothing to build")
        return
    started = time.monotonic()
    say = timed_say(started)
    box_file = box.build_box(wanted, work, say)
    say(f"vagrant box add {box.BOX_NAME} ({box_file.stat().st_size / 2**20:.0f} MiB)")
    box.add_box(box_file)
    box_file.unlink()
    out().print(f"{box.BOX_NAME} built in {time.monotonic() - started:.0f} s (recipe {wanted.digest()})")


@app.command()
def preflight(inventory: Path = InventoryPath, emulated: bool | None = EmulatedOption, vm_box: str | None = BoxOption) -> None:
    """Check, before `up`: tools, the libvirt system URI, KVM or emulation, the box, memory, bridge
    filtering, and that each private network can be made isolated. Exit 1 on any problem."""
    from haops.vagrant.plan import Machine, vm_plan
    from haops.vagrant.preflight import PROBLEM
    from haops.vagrant.preflight import preflight as run_preflight

    inv = load_inventory(inventory)
    planned = vm_plan(inv, Machine.this(), driver_emulated(emulated))
    findings = run_preflight(inv, planned, chosen_box(vm_box))
    out().print(findings_table(findings))
    raise typer.Exit(1 if any(f.level == PROBLEM for f in findings) else 0)


@app.command()
def up(inventory: Path = InventoryPath, emulated: bool | None = EmulatedOption, vm_box: str | None = BoxOption) -> None:
    """Bring up one VM per inventory host (libvirt started if need be), record each VM's SSH host
    keys from its console, and write INVENTORY.vagrant.yml beside the inventory to apply with."""
    import time

    from haops.lab.network import install_safety_route
    from haops.vagrant import libvirt, machines, networks
    from haops.vagrant.plan import Machine, vm_plan

    inv = load_inventory(inventory)
    project = vagrant_project(inventory, emulated, vm_box)
    wanted_networks = networks.for_inventory(inv)  # refuses ranges outside the lab's before anything changes
    refusal = vm_plan(inv, Machine.this(), project.emulated).refusal()
    if refusal:
        err().print(f"error: {refusal}")
        raise typer.Exit(1)
    require_box(project)
    started = time.monotonic()
    say = timed_say(started)
    install_safety_route()
    if libvirt.apply_kvm_udev_rule():
        say("/dev/kvm given to group kvm read/write, as Debian's udev rule does (else libvirt probes QEMU again "
            "at every call)")
    for daemon in libvirt.ensure_running():
        say(f"started {daemon.name} (pid {daemon.pid}); `haops vagrant down` stops it")
    networks.ensure(wanted_networks, project.state_dir, project.prefix, say)
    machines.bring_up(project, list(inv.hosts), say)
    vms = machines.import_vms(project, say)
    out().print(f"{len(vms)} VMs up in {time.monotonic() - started:.0f} s; apply with: haops apply -i {project.vm_inventory}")


@app.command()
def status(inventory: Path = InventoryPath, as_json: bool = JsonFlag) -> None:
    """Each VM's state, management address and recorded host key."""
    from rich.table import Table

    from haops.vagrant.machines import recorded_keys, states

    project = vagrant_project(inventory, None, None)
    found = states(project)
    keys = recorded_keys(project.known_hosts)
    rows = [(host, found.get(host, "not_created"), keys[host][0].fingerprint if host in keys else "-")
            for host in (list(found) or [h for h in load_inventory(inventory).hosts])]
    if as_json:
        out().print_json(json.dumps([{"host": h, "state": s, "host_key": k} for h, s, k in rows]))
        return
    table = Table(title=f"VMs of {inventory}")
    for column in ("host", "state", "host key (recorded at first boot)"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    out().print(table)


@app.command()
def down(inventory: Path = InventoryPath) -> None:
    """Destroy the inventory's VMs, forget their host keys and the written inventory, and stop
    libvirt if `up` started it and no VM is left."""
    import time

    from haops.vagrant import libvirt, machines, networks

    project = vagrant_project(inventory, None, None)
    say = timed_say(time.monotonic())
    machines.tear_down(project, say)
    if libvirt.responds():
        networks.remove_unused(project.state_dir, say)
    if not libvirt.domains():
        for daemon in libvirt.stop_what_haops_started():
            say(f"stopped {daemon.name} (pid {daemon.pid}), which `haops vagrant up` had started")
    out().print(f"VMs of {inventory} destroyed")


def timed_say(started: float) -> Callable[[str], None]:
    import time

    def say(text: str) -> None:
        err().print(f"[{time.monotonic() - started:6.1f}s] {text}", markup=False)

    return say


def driver_emulated(emulated: bool | None) -> bool:
    from haops.vagrant.plan import emulated_by_default

    return emulated_by_default() if emulated is None else emulated


def chosen_box(vm_box: str | None) -> str:
    from haops.vagrant.box import BOX_NAME

    return vm_box or BOX_NAME


def vagrant_project(inventory: Path, emulated: bool | None, vm_box: str | None) -> Project:
    from haops.vagrant.machines import Project

    if not inventory.is_file():
        from haops.errors import UserError

        raise UserError(f"inventory {inventory} not found")
    return Project(inventory, chosen_box(vm_box), driver_emulated(emulated))


def require_box(project: Project) -> None:
    from haops.vagrant import box

    if project.box == box.BOX_NAME and box.installed_recipe() is None:
        err().print(f"error: Vagrant has no {box.BOX_NAME} box: run `haops vagrant box build` first (about 3 minutes)")
        raise typer.Exit(1)


def findings_table(findings: list[Finding]) -> Table:
    from rich.table import Table

    table = Table(title="Before `haops vagrant up`")
    for column in ("check", "result", "detail", "fix to try"):
        table.add_column(column)
    for finding in findings:
        table.add_row(finding.check, finding.level, finding.detail, finding.fix or "-")
    return table
