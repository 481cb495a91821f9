"""Which hosts a lab has: from an inventory, or the default HA web cluster."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from haops.lab.state import Private

# name, offset in the lab network, group
DEFAULT_TOPOLOGY = (
    ("lb1", 11, "lb"), ("lb2", 12, "lb"),
    ("web1", 21, "web"), ("web2", 22, "web"), ("web3", 23, "web"),
    ("dns1", 31, "dns"),
    ("client1", 41, "client"),
)


@dataclass(frozen=True)
class LabHost:
    name: str
    address: IPv4Address
    groups: tuple[str, ...] = ()
    address6: IPv6Address | None = None


@dataclass(frozen=True)
class InventoryLab:
    """The parts of an inventory the lab needs."""

    name: str | None
    network: IPv4Network | None
    hosts: tuple[LabHost, ...]
    text: str
    network6: IPv6Network | None = None
    private_network: IPv4Network | None = None
    bastion: IPv4Address | None = None


def default_hosts(network: IPv4Network) -> tuple[LabHost, ...]:
    return tuple(LabHost(name, network[offset], (group,)) for name, offset, group in DEFAULT_TOPOLOGY)


def hosts_from_inventory(path: Path) -> InventoryLab:
    """The one place the lab reads an inventory (through haops.inventory)."""
    from haops.inventory import load

    from haops.lab.commands import LabError

    inventory = load(path)
    hosts = []
    for h in inventory.hosts.values():
        if not isinstance(h.address, IPv4Address):
            raise LabError(f"host {h.name}: a lab host needs an IPv4 address (the lab's SSH runs over IPv4); "
                           f"write {h.address} as its address6")
        hosts.append(LabHost(h.name, h.address, tuple(h.groups), h.address6))
    lab = inventory.lab
    return InventoryLab(lab.name if lab else None, lab.network if lab else None, tuple(hosts),
                        path.read_text(encoding="utf-8"), lab.network6 if lab else None,
                        lab.private_network if lab else None, lab.bastion if lab else None)


def inventory_yaml(name: str, network: IPv4Network, hosts: tuple[LabHost, ...], base_text: str | None = None,
                   network6: IPv6Network | None = None, private: Private | None = None) -> str:
    """The running lab's inventory: the given one with its `lab:` section set, or a fresh one."""
    lab_section = {"name": name, "network": str(network), **({"network6": str(network6)} if network6 else {})}
    if private is not None:
        lab_section |= {"private_network": str(private.network), "bastion": str(private.bastion.address)}
        hosts = tuple(h for h in hosts if h != private.bastion)
    if base_text is not None:
        data = yaml.safe_load(base_text)
        if data.get("lab") == lab_section:
            return base_text
        data["lab"] = lab_section
        return yaml.safe_dump(data, sort_keys=False)
    lines = ["# haops lab inventory, written by `haops lab up`", "lab:",
             *(f"  {key}: '{value}'" if ":" in value else f"  {key}: {value}" for key, value in lab_section.items()),
             "hosts:"]
    lines += [f"  {h.name}: {{address: {h.address}, {_address6(h)}groups: [{', '.join(h.groups)}]}}" for h in hosts]
    return "\n".join(lines) + "\n"


def _address6(host: LabHost) -> str:
    return f"address6: '{host.address6}', " if host.address6 else ""
