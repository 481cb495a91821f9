"""`haops inventory`: check an inventory, or show it resolved."""

from __future__ import annotations

from pathlib import Path

import typer

from haops.cli.common import InventoryPath, JsonFlag, load_inventory
from haops.cli.output import out

app = typer.Typer(help="Check an inventory, or show it resolved with every default filled in.", no_args_is_help=True)


@app.command()
def check(inventory: Path = InventoryPath) -> None:
    """Validate the inventory; print a one-line summary, or every problem with file:line."""
    inv = load_inventory(inventory)
    parts = [f"{len(inv.hosts)} hosts", f"{len(inv.services)} services", f"{len(inv.zones)} zones",
             f"{len(inv.drbd)} DRBD resources", f"{len(inv.vrrp)} VRRP instances"]
    out().print(f"[green]ok[/] {inventory}: {', '.join(parts)}")


@app.command()
def show(inventory: Path = InventoryPath, as_json: bool = JsonFlag) -> None:
    """Print the resolved inventory: groups expanded, defaults filled in, secrets masked."""
    import json

    import yaml

    from haops.inventory.resolved import resolved

    data = resolved(load_inventory(inventory))
    if as_json:
        out().print_json(json.dumps(data))
    else:
        out().print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="", markup=False)


@app.command("from-vagrant")
def from_vagrant(
    ssh_config: Path = typer.Argument(..., help="Output of `vagrant ssh-config` saved to a file, or - for stdin."),
    inventory: Path = InventoryPath,
) -> None:
    """Print the inventory with each host's SSH address, port, user and key from Vagrant."""
    import sys

    from haops import inventory as inventory_loader
    from haops.errors import UserError
    from haops.vagrant.ssh_config import merge_into_inventory, parse_ssh_config

    try:
        text = sys.stdin.read() if str(ssh_config) == "-" else ssh_config.read_text()
        base = inventory.read_text()
    except OSError as exc:
        raise UserError(f"cannot read {exc.filename}: {exc.strerror}") from None
    inventory_loader.parse(base, str(inventory))
    merged = merge_into_inventory(base, parse_ssh_config(text))
    inventory_loader.parse(merged, "<from-vagrant>")
    out().print(merged, end="", markup=False)


@app.command("from-ansible")
def from_ansible(
    path: Path = typer.Argument(..., help="An Ansible inventory: INI or YAML file, or anything ansible-inventory reads."),
    group_map: list[str] = typer.Option([], "--group-map", "-g", help="ANSIBLE_GROUP=HAOPS_GROUP, e.g. webservers=web; repeatable."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the skeleton here instead of stdout."),
    use_ansible: bool | None = typer.Option(None, "--ansible-inventory/--static",
                                            help="Read with ansible-inventory --list, or with haops' own static reader [default: ansible-inventory when installed]."),
) -> None:
    """Print a haops inventory skeleton from an Ansible inventory, each decision as a YAML comment."""
    from haops.errors import UserError
    from haops.inventory.ansible import parse_group_map, read, skeleton

    mapping = parse_group_map(group_map)
    data, reader = read(path, use_ansible)
    text = skeleton(data, str(path), reader, mapping)
    if output is None:
        out().print(text, end="", markup=False, highlight=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None
    out().print(f"wrote {output}; add services, then: haops inventory check -i {output}")
