"""`haops lab`: real SSH hosts on this machine, and faults to break them with."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from haops.errors import UserError

if TYPE_CHECKING:
    from haops.lab import Lab
    from haops.lab.state import Private
    from haops.lab.topology import InventoryLab

BASTION = "bastion"

app = typer.Typer(help="Build a lab of real SSH hosts on this machine (network namespaces + sshd), "
                       "break them on purpose, tear them down.", no_args_is_help=True)

NameOption = Annotated[str | None, typer.Option(
    "--name", "-n", help="Lab name [default: the inventory's lab.name, else 'haops'].")]
StateRootOption = Annotated[Path | None, typer.Option(
    "--state-root", envvar="HAOPS_LAB_ROOT", help="Where labs keep their disks [default: /opt/haops-lab].")]
HostArgument = Annotated[str, typer.Argument(help="Lab host name, e.g. lb1.")]
InventoryOption = Annotated[Path | None, typer.Option(
    "--inventory", "-i", help="Take the lab name from this inventory's lab section.")]


@contextmanager
def user_errors() -> Iterator[None]:
    """A user mistake or a refused lab operation: one clean screen on stderr, exit 2."""
    try:
        yield
    except UserError as error:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False, markup=True)
        raise typer.Exit(error.exit_code) from None


def _lab_name(name: str | None, inventory: Path | None) -> str:
    """--name, else the inventory's lab.name, else the default lab."""
    from haops.lab import DEFAULT_LAB_NAME

    if name is None and inventory is not None:
        from haops.inventory import load

        lab = load(inventory).lab
        name = lab.name if lab else None
    return name or DEFAULT_LAB_NAME


def _existing(name: str | None, state_root: Path | None, inventory: Path | None = None) -> Lab:
    from haops.lab import Lab

    return Lab.existing(_lab_name(name, inventory), state_root)


@app.command()
def up(inventory: Annotated[Path | None, typer.Option("--inventory", "-i", help="Inventory to build hosts from [default: the built-in 7-host topology].")] = None,
       name: NameOption = None, state_root: StateRootOption = None) -> None:
    """Create (or complete) the lab; running hosts are left as they are."""
    from haops.lab import DEFAULT_LAB_NAME, DEFAULT_NETWORK, Lab, hosts_from_inventory

    with user_errors():
        source = hosts_from_inventory(inventory) if inventory else None
        network = (source.network if source else None) or DEFAULT_NETWORK
        lab = Lab(name or (source.name if source else None) or DEFAULT_LAB_NAME, IPv4Network(network), state_root,
                  source.network6 if source else None, private_of(source) if source else None)
        lab.up(source.hosts if source else None, source.text if source else None)
        typer.echo(f"lab {lab.name!r} is up: {len(lab.hosts)} hosts on {lab.network}; "
                   f"ssh -F {lab.ssh_config} HOST; inventory: {lab.inventory_path}")


def private_of(source: InventoryLab) -> Private | None:
    """The inventory's private network and its bastion (a lab host named 'bastion')."""
    from haops.lab import LabHost
    from haops.lab.state import Private

    if source.private_network is None or source.bastion is None:
        return None
    return Private(source.private_network, LabHost(BASTION, source.bastion, ("bastion",)))


@app.command()
def down(name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Remove every namespace, interface, mount, process and file of the lab."""
    from haops.lab import Lab
    from haops.lab.state import (
        LabPaths,
        LabRecord,
        check_state_root,
        default_state_root,
    )

    with user_errors():
        lab_name = _lab_name(name, inventory)
        paths = LabPaths(check_state_root(state_root or default_state_root()), lab_name)
        network = LabRecord.load(paths.record).network if paths.record.exists() else IPv4Network("10.213.0.0/24")
        Lab(lab_name, network, state_root).down()
        typer.echo(f"lab {lab_name!r} is down")


@app.command()
def status(name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Each host: address, running?, reachable over SSH?"""
    from rich.console import Console
    from rich.table import Table

    with user_errors():
        lab = _existing(name, state_root, inventory)
        table = Table(title=f"lab {lab.name} ({lab.network})")
        for column in ("host", "address", "up", "ssh"):
            table.add_column(column)
        for host in lab.status():
            table.add_row(host.name, str(host.address), _mark(host.up), _mark(host.ssh))
        Console().print(table)


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


@app.command()
def inventory(name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Print the running lab's inventory YAML."""
    with user_errors():
        sys.stdout.write(_existing(name, state_root, inventory).inventory_path.read_text())


@app.command()
def ssh(host: HostArgument, name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Open a shell on a lab host (strict host-key checking)."""
    from haops.lab.ssh import ssh_argv

    with user_errors():
        lab = _existing(name, state_root, inventory)
        argv = ssh_argv(lab.ssh_config, lab.host(host).name)
        argv.insert(1, "-t")
        os.execvp(argv[0], argv)


@app.command(name="exec", context_settings={"ignore_unknown_options": True})
def exec_(host: HostArgument,
          command: Annotated[list[str], typer.Argument(help="Command and arguments, after --.")],
          name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Run a command on a lab host over SSH, with our stdin forwarded as ssh does; its exit code becomes ours."""
    with user_errors():
        lab = _existing(name, state_root, inventory)
        result = lab.exec(host, command, timeout=24 * 3600, capture=False, forward_stdin=True)
    raise typer.Exit(result.returncode)


@app.command()
def crash(host: HostArgument, name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Power the host off: kill every process in it, pull its cable; its disk stays."""
    with user_errors():
        _existing(name, state_root, inventory).crash(host)
    typer.echo(f"{host} crashed")


@app.command()
def boot(host: HostArgument, name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Power a crashed host on: only sshd runs; /etc, /var, /srv kept; /run, /tmp fresh."""
    with user_errors():
        _existing(name, state_root, inventory).boot(host)
    typer.echo(f"{host} booted")


@app.command()
def cut(host: HostArgument, name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Set the host's link down (its switch port)."""
    with user_errors():
        _existing(name, state_root, inventory).cut(host)
    typer.echo(f"{host} link cut")


@app.command()
def heal(host: HostArgument, name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Set the host's link up again."""
    with user_errors():
        _existing(name, state_root, inventory).heal(host)
    typer.echo(f"{host} link healed")


@app.command()
def delay(host: HostArgument, ms: Annotated[int, typer.Argument(help="Added delay in ms; 0 clears it.")],
          name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Delay every packet the host sends by MS milliseconds."""
    with user_errors():
        _existing(name, state_root, inventory).delay(host, ms)
    typer.echo(f"{host} delay {ms} ms")


@app.command()
def loss(host: HostArgument, pct: Annotated[float, typer.Argument(help="Percent of packets to drop; 0 clears it.")],
         name: NameOption = None, state_root: StateRootOption = None, inventory: InventoryOption = None) -> None:
    """Drop PCT percent of the packets the host sends, at random."""
    with user_errors():
        _existing(name, state_root, inventory).loss(host, pct)
    typer.echo(f"{host} loss {pct:g}%")


if __name__ == "__main__":
    app()
