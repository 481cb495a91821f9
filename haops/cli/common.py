"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from haops.inventory.model import Inventory

if TYPE_CHECKING:
    from haops.transport import SshSettings

InventoryPath = typer.Option(
    Path("inventory.yml"), "--inventory", "-i", envvar="HAOPS_INVENTORY", help="The inventory YAML file.", show_default=True
)
JsonFlag = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
AskBecomePass = typer.Option(False, "--ask-become-pass", "-K",
                             help="Ask once for the sudo password of the hosts with `become: sudo` (never shown or logged).")


def load_inventory(path: Path) -> Inventory:
    from haops import inventory

    return inventory.load(path)


def ssh_settings(inv: Inventory, trust_new_hosts: bool = False, ask_become_pass: bool = False) -> SshSettings:
    """The run's SSH settings (a running lab's keys, or ~/.ssh), with sudo's password when asked for."""
    import getpass
    from dataclasses import replace

    from haops.session import settings_for

    settings = settings_for(inv, trust_new_hosts)
    if not ask_become_pass:
        return settings
    if not any(host.through_sudo for host in inv.hosts.values()):
        from haops.cli.output import err

        err().print("note: --ask-become-pass: no host has `become: sudo`, so no password is needed")
        return settings
    return replace(settings, become_password=getpass.getpass("sudo password (become): "))
