"""The inventory as plain data with every default filled in, secrets masked."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Any

from haops.inventory.model import Inventory
from haops.secrets import MASK, SECRET_FIELDS



def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _field(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network)):
        return str(value)
    return value


def _field(name: str, value: Any) -> Any:
    if name in SECRET_FIELDS and value:
        return MASK
    return plain(value)


def resolved(inventory: Inventory) -> dict[str, Any]:
    data = plain(inventory)
    data["groups"] = {name: list(members) for name, members in inventory.groups().items()}
    return data
