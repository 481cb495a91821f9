"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer

from haops.inventory.model import Inventory

InventoryPath = typer.Option(
    Path("inventory.yml"), "--inventory", "-i", envvar="HAOPS_INVENTORY", help="The inventory YAML file.", show_default=True
)
JsonFlag = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def load_inventory(path: Path) -> Inventory:
    from haops import inventory

    return inventory.load(path)
