"""Load an inventory file into the validated model, or fail with every problem listed.

Each top-level section has its reader (services, zones, drbd, vrrp, postgresql); this module reads the
lab, hosts and groups, checks across sections, and runs the technologies' review pass."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv6Network
from pathlib import Path as FilePath
from typing import Any

from haops.errors import UserError
from haops.inventory import values
from haops.inventory.drbd import DrbdReader
from haops.inventory.model import Host, Inventory, IPAddress, LabSettings
from haops.inventory.postgresql import PostgresReader
from haops.inventory.reader import Reader
from haops.inventory.services import ServiceReader
from haops.inventory.source import LocatedDocument, Path, load_located
from haops.inventory.vrrp import VrrpReader
from haops.inventory.zones import ZoneReader

TOP_KEYS = ("lab", "vars", "groups", "hosts", "services", "zones", "drbd", "vrrp", "postgresql", "responders")
HOST_VARS = ("interface", "ssh_user", "ssh_port", "ssh_host", "ssh_key", "ssh_known_hosts", "init", "weight", "become", "vm")
HOST_VAR_CHECKS = {
    "interface": values.interface,
    "ssh_user": values.user,
    "ssh_port": values.port,
    "ssh_host": values.ssh_host,
    "ssh_key": values.local_path,
    "ssh_known_hosts": values.local_path,
    "init": values.one_of("auto", "systemd", "none"),
    "weight": values.weight,
    "become": values.one_of("sudo", "none"),
    "vm": values.vm_spec,
}
KeyPath = tuple[str | int, ...]
Review = Callable[[Inventory], tuple[Inventory, list[tuple[KeyPath, str]]]]


def load(path: str | FilePath, review: Review | None = None) -> Inventory:
    """Read and validate the inventory at `path`."""
    file = FilePath(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"inventory not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read inventory {file}: {exc}") from None
    return parse(text, str(file), review)


def parse(text: str, filename: str = "<inventory>", review: Review | None = None) -> Inventory:
    """Validate inventory YAML text; raise InventoryError listing every problem.

    `review` is the technologies' pass over the neutral model: their problems, located in the
    file like the parser's own, and the model with their resolved names filled in."""
    document = load_located(text, filename)
    return InventoryParser(document).parse(review)


class InventoryParser(ServiceReader, ZoneReader, DrbdReader, VrrpReader, PostgresReader):
    def __init__(self, document: LocatedDocument) -> None:
        self.document = document
        self.r = Reader(document)
        self.hosts: dict[str, Host] = {}
        self.written = {}

    def parse(self, review: Review | None = None) -> Inventory:
        top = self.r.mapping(self.document.data, (), TOP_KEYS, required=("hosts",))
        lab = self._lab(top.get("lab"))
        self.hosts = self._hosts(top)
        self.r.raise_if_any()
        inventory = Inventory(
            source=self.document.filename,
            hosts=self.hosts,
            services=self._each(top, "services", self._service),
            zones=self._zones(top.get("zones")),
            drbd=self._each(top, "drbd", self._drbd),
            vrrp=self._each(top, "vrrp", self._vrrp),
            postgresql=self._postgresql(top.get("postgresql")),
            lab=lab,
            responders=self.r.field(top, (), "responders", values.boolean, False),
        )
        self._cross_checks(inventory)
        if review is not None:
            inventory, problems = review(inventory)
            for path, message in problems:
                self.r.problem(self.as_written(path), message)
        self.r.raise_if_any()
        return inventory

    # --- lab, groups and hosts -------------------------------------------------

    def _lab(self, raw: Any) -> LabSettings | None:
        if raw is None:
            return None
        data = self.r.mapping(raw, ("lab",), ("name", "network", "network6", "private_network", "bastion"))
        name = self.r.field(data, ("lab",), "name", values.lab_name, "haops")
        network = self.r.field(data, ("lab",), "network", _lab_network, None) or _lab_network("10.213.0.0/24")
        network6 = self.r.field(data, ("lab",), "network6", _lab_network6, None)
        private = self.r.field(data, ("lab",), "private_network", _lab_network, None)
        bastion = self.r.field(data, ("lab",), "bastion", values.ipv4, None)
        if (private is None) != (bastion is None):
            self.r.problem(("lab",), "private_network and bastion go together: the bastion (an address on the lab "
                                     "network) is the only way to the private network's hosts")
        elif private is not None and private.overlaps(network):
            self.r.problem(("lab", "private_network"), f"{private} overlaps the lab network {network}")
        elif bastion is not None and bastion not in network:
            self.r.problem(("lab", "bastion"), f"{bastion} is not on the lab network {network}")
        return LabSettings(name, network, network6, private, bastion)

    def _hosts(self, top: dict[str, Any]) -> dict[str, Host]:
        common = self._vars(top.get("vars"), ("vars",))
        group_vars, group_members = self._groups(top.get("groups"))
        raw_hosts = top.get("hosts")
        if not isinstance(raw_hosts, dict) or not raw_hosts:
            self.r.problem(("hosts",), "must map host names to their settings, e.g. 'lb1: {address: 10.213.0.11}'")
            return {}
        hosts = {}
        for name, body in raw_hosts.items():
            path = ("hosts", name)
            if self.r.check(name, path, values.hostname) is None:
                continue
            host = self._host(name, body, path, common, group_vars, group_members)
            if host is not None:
                hosts[name] = host
        for group, members in group_members.items():
            for index, member in enumerate(members):
                if member not in raw_hosts:
                    self.r.problem(("groups", group, "hosts", index), f"unknown host {member!r}; hosts: {', '.join(raw_hosts)}")
        self._unique_addresses(hosts)
        return hosts

    def _host(self, name: str, body: Any, path: Path, common: dict[str, Any],
              group_vars: dict[str, dict[str, Any]], group_members: dict[str, list[str]]) -> Host | None:
        if isinstance(body, str):
            body = {"address": body}
        data = self.r.mapping(body, path, ("address", "address6", "groups", "vars"), required=("address",))
        address = self.r.field(data, path, "address", values.ip_address, None)
        address6 = self.r.field(data, path, "address6", values.ipv6, None)
        if address is not None and address.version == 6 and address6 is not None:
            self.r.problem(path + ("address6",), f"address {address} is IPv6 already; address6 is the IPv6 address of a host whose address is IPv4")
        groups = [self.r.check(g, path + ("groups", i), values.name) for i, g in enumerate(self.r.sequence(data.get("groups"), path + ("groups",)))]
        groups += [group for group, members in group_members.items() if name in members]
        merged = dict(common)
        for group in sorted(set(filter(None, groups))):
            merged.update(group_vars.get(group, {}))
        merged.update(self._vars(data.get("vars"), path + ("vars",)))
        if address is None:
            return None
        return Host(name=name, address=address, address6=address6, groups=tuple(dict.fromkeys(filter(None, groups))), **merged)

    def _vars(self, raw: Any, path: Path) -> dict[str, Any]:
        data = self.r.mapping(raw, path, HOST_VARS)
        checked = {key: self.r.check(value, path + (key,), HOST_VAR_CHECKS[key]) for key, value in data.items()}
        return {key: value for key, value in checked.items() if value is not None}

    def _groups(self, raw: Any) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
        section = self.r.mapping(raw, ("groups",), raw.keys() if isinstance(raw, dict) else ())
        group_vars: dict[str, dict[str, Any]] = {}
        members: dict[str, list[str]] = {}
        for group, body in section.items():
            path = ("groups", group)
            if self.r.check(group, path, values.name) is None:
                continue
            data = self.r.mapping(body, path, ("hosts", "vars"))
            group_vars[group] = self._vars(data.get("vars"), path + ("vars",))
            members[group] = [str(h) for h in self.r.sequence(data.get("hosts"), path + ("hosts",))]
        return group_vars, members

    def _unique_addresses(self, hosts: dict[str, Host]) -> None:
        seen: dict[IPAddress, str] = {}
        for host in hosts.values():
            for key, address in (("address", host.address), ("address6", host.address6)):
                if address is None:
                    continue
                if address in seen:
                    self.r.problem(("hosts", host.name, key), f"{address} is already the address of {seen[address]}")
                seen[address] = host.name

    # --- across sections -------------------------------------------------------------

    def _cross_checks(self, inventory: Inventory) -> None:
        # IPv4 and IPv6 VRRP are separate protocols: a router id is unique per address family.
        router_ids: dict[tuple[int, int], str] = {}
        for name, instance in inventory.vrrp.items():
            family = (instance.vip.version, instance.router_id)
            if family in router_ids:
                self.r.problem(("vrrp", name, "router_id"), f"{instance.router_id} is already used by vrrp.{router_ids[family]}; each instance of one address family on a network needs its own")
            router_ids[family] = name
        listeners: dict[tuple[str, IPAddress, int], str] = {}
        for name, service in inventory.services.items():
            for host in service.hosts:
                key = (host, service.vip, service.port)
                if key in listeners:
                    self.r.problem(("services", name, "port"), f"{service.vip}:{service.port} on {host} is already served by services.{listeners[key]}")
                listeners[key] = name


def _lab_network(value: Any) -> Any:
    network = values.ipv4_network(value)
    if not network.subnet_of(values.ipv4_network("10.213.0.0/16")) or not 17 <= network.prefixlen <= 29:
        raise ValueError(f"must be a network inside 10.213.0.0/16 (the lab's own range), /17 to /29, got {value!r}")
    return network


LAB_SAFETY_NET6 = IPv6Network("fd00:213::/48")


def _lab_network6(value: Any) -> Any:
    network = values.ipv6_network(value)
    if not network.subnet_of(LAB_SAFETY_NET6) or not 64 <= network.prefixlen <= 120:
        raise ValueError(f"must be a network inside {LAB_SAFETY_NET6} (the lab's own IPv6 range), /64 to /120, got {value!r}")
    return network


