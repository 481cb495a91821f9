"""The VMs' libvirt networks, made by haops before Vagrant runs, so that they are what the
isolation promises:

- no `<forward>`: the VMs reach each other and this machine, nothing else;
- libvirt's DNS server off (`<dns enable='no'/>`): its dnsmasq otherwise forwards every name
  it cannot answer to this machine's resolvers, past the isolation. DHCP still works where it
  is on (the management network: Vagrant finds each VM's address in its leases).

vagrant-libvirt uses a network that exists as it is and makes only missing ones, so the VMs get
these. A network that exists already is checked instead: one that forwards is refused (unless
it is the management network and HAOPS_VM_MANAGEMENT_NAT=yes asked for that). What haops made
is recorded in the project's state directory, and `down` removes those once no VM uses them.
With HAOPS_VM_MANAGEMENT_NAT=yes the management network is left to vagrant-libvirt (it needs
NAT and DNS for apt)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from haops.errors import UserError
from haops.inventory.model import Inventory
from haops.vagrant import libvirt
from haops.vagrant.box import Say

MANAGEMENT_NAME = "haops-management"
RECORD = "networks-made.json"


@dataclass(frozen=True)
class Network:
    name: str
    subnet: IPv4Network
    dhcp: bool = False

    def xml(self) -> str:
        """Isolated, no DNS server; DHCP on the upper half of the /24 where asked for."""
        gateway, netmask = self.subnet[1], self.subnet.netmask
        hosts = list(self.subnet.hosts())
        dhcp = (f"<dhcp><range start='{hosts[len(hosts) // 2]}' end='{hosts[-1]}'/></dhcp>" if self.dhcp else "")
        return (f"<network><name>{self.name}</name><dns enable='no'/>"
                f"<ip address='{gateway}' netmask='{netmask}'>{dhcp}</ip></network>")


def private_name(subnet: IPv4Network) -> str:
    """The name the Vagrantfile gives a /24 (scripts/vagrant_vms.rb, network_of)."""
    return "haops-" + "-".join(str(subnet.network_address).split(".")[:3])


def wanted(subnets: list[IPv4Network], management: IPv4Network, management_nat: bool) -> list[Network]:
    made = [Network(private_name(s), s) for s in subnets if s != management]
    return made if management_nat else [Network(MANAGEMENT_NAME, management, dhcp=True), *made]


def management_nat() -> bool:
    return os.environ.get("HAOPS_VM_MANAGEMENT_NAT", "no") == "yes"


def for_inventory(inventory: Inventory) -> list[Network]:
    """The networks the inventory's VMs need; refused when one is outside the lab range."""
    from haops.vagrant.preflight import LAB_RANGE, management_network, needed_networks

    subnets = needed_networks(inventory)
    outside = [str(s) for s in subnets if not s.subnet_of(LAB_RANGE)]
    if outside:
        raise UserError(f"VM networks outside {LAB_RANGE}, the range nothing leaves this machine from: "
                        f"{', '.join(outside)}; give the hosts (and HAOPS_VM_MANAGEMENT) addresses in {LAB_RANGE}")
    management = management_network()
    on_it = [name for name, host in inventory.hosts.items() if host.address in management]
    if on_it:
        raise UserError(f"{', '.join(on_it)}: address inside the VMs' management network {management} (Vagrant's, "
                        f"handed out by DHCP); give the hosts addresses on another /24, or set HAOPS_VM_MANAGEMENT")
    return wanted(subnets, management, management_nat())


def described(name: str) -> str | None:
    """The network's XML as libvirt holds it, or None when there is no such network."""
    ran = libvirt.virsh("net-dumpxml", name)
    return ran.stdout if ran.returncode == 0 else None


def forwards(xml: str) -> bool:
    return re.search(r"<forward\b", xml) is not None


def serves_dns(xml: str) -> bool:
    return re.search(r"<dns\s+enable=['\"]no['\"]", xml) is None


def refusal(network: Network, xml: str, management_nat: bool) -> str | None:
    """Why an existing network cannot be used, or None."""
    allowed_nat = management_nat and network.name == MANAGEMENT_NAME
    if forwards(xml) and not allowed_nat:
        return (f"libvirt network {network.name} exists and forwards to the outside (NAT or routed); haops' VM "
                f"networks are isolated. Remove it if nothing uses it: virsh net-destroy {network.name}; "
                f"virsh net-undefine {network.name}")
    if f"'{network.subnet[1]}'" not in xml and f'"{network.subnet[1]}"' not in xml:
        return (f"libvirt network {network.name} exists with another address than {network.subnet[1]}; "
                f"remove it (virsh net-destroy/net-undefine {network.name}) or choose other host addresses")
    if serves_dns(xml) and not allowed_nat:
        return (f"libvirt network {network.name} exists with libvirt's DNS server on, which forwards names to this "
                f"machine's resolvers, past the isolation. Remove it if nothing uses it: virsh net-destroy "
                f"{network.name}; virsh net-undefine {network.name}; `haops vagrant up` then makes it without one")
    return None


def foreign_domains(name: str, prefix: str) -> list[str]:
    """Domains of other projects attached to the network: their VMs would share its addresses."""
    return [domain for domain in attached_domains(name) if not domain.startswith(prefix)]


def ensure(networks: list[Network], state_dir: Path, prefix: str, say: Say) -> None:
    """Each network made isolated and started, or checked where it exists: refused when it
    forwards, serves DNS, or carries another project's VMs (the same addresses twice on one wire)."""
    nat = management_nat()
    made = recorded(state_dir)
    for network in networks:
        xml = described(network.name)
        if xml is None:
            define(network, state_dir, made)
            say(f"network {network.name} ({network.subnet}): made isolated, without a DNS server")
            continue
        why = refusal(network, xml, nat)
        if why:
            raise UserError(why)
        others = [] if network.name == MANAGEMENT_NAME else foreign_domains(network.name, prefix)
        if others:
            raise UserError(f"network {network.name} ({network.subnet}) carries VMs of another inventory "
                            f"({', '.join(others)}), on the same addresses; bring those down first")
        start(network.name)


def define(network: Network, state_dir: Path, made: set[str]) -> None:
    """Define and start the network; recorded as soon as it is defined, so `down` removes it even
    when it could not start."""
    ran = libvirt.virsh("net-define", "/dev/stdin", stdin=network.xml())
    if ran.returncode == 0:
        made.add(network.name)
        record(state_dir, made)
        ran = libvirt.virsh("net-start", network.name)
    if ran.returncode != 0:
        raise UserError(f"libvirt could not make network {network.name} ({network.subnet}): "
                        f"{ran.stderr.strip()[-300:]}; see /var/log/libvirt/libvirtd.log")


def start(name: str) -> None:
    if re.search(r"Active:\s+yes", libvirt.virsh("net-info", name).stdout):
        return
    ran = libvirt.virsh("net-start", name)
    if ran.returncode != 0:
        raise UserError(f"libvirt could not start network {name}: {ran.stderr.strip()[-300:]}")


def remove_unused(state_dir: Path, say: Say) -> None:
    """The networks haops made for this project, removed where no VM is attached any more."""
    made = recorded(state_dir)
    for name in sorted(made):
        if described(name) is None:
            made.discard(name)
        elif attached(name):
            say(f"network {name} kept: a VM is still attached to it")
            continue
        else:
            libvirt.virsh("net-destroy", name)
            ran = libvirt.virsh("net-undefine", name)
            if ran.returncode != 0:
                say(f"network {name} could not be removed: {ran.stderr.strip()[-200:]}")
                continue
            made.discard(name)
            say(f"network {name} removed")
    record(state_dir, made)


def attached(name: str) -> bool:
    """Some domain, running or not, has an interface on the network."""
    return bool(attached_domains(name))


def attached_domains(name: str) -> list[str]:
    return [domain for domain in libvirt.domains()
            if f"network='{name}'" in (xml := libvirt.virsh("dumpxml", domain).stdout) or f'network="{name}"' in xml]


def recorded(state_dir: Path) -> set[str]:
    path = state_dir / RECORD
    return set(json.loads(path.read_text())) if path.is_file() else set()


def record(state_dir: Path, names: set[str]) -> None:
    if names:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / RECORD).write_text(json.dumps(sorted(names)))
    else:
        (state_dir / RECORD).unlink(missing_ok=True)
