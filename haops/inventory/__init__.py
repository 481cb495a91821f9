"""The inventory: YAML with the line of every key -> a frozen, validated, technology-neutral model.

source    YAML loaded with the line of every node
reader    collects every problem with its file:line
values    the grammar of every value that can reach a config file
parser    one reader per top-level section -> the model
model     the frozen dataclasses
resolved  the model as plain data, defaults filled and secrets masked
"""

from __future__ import annotations

from pathlib import Path

from haops.inventory import parser
from haops.inventory.model import Inventory


def parse(text: str, filename: str = "<inventory>") -> Inventory:
    """The validated inventory: the parser's checks, then every technology's review."""
    return parser.parse(text, filename, technologies_review())


def load(path: str | Path) -> Inventory:
    return parser.load(path, technologies_review())


def technologies_review() -> parser.Review:
    """The registry's review pass; the model itself knows no technology."""
    from haops.targets import review_inventory

    return review_inventory
