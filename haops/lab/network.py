"""The lab's wiring in the machine's own network namespace: safety route, bridge, veths, netem."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from haops.lab.commands import LabError, ip_batch, run

SAFETY_NET = IPv4Network("10.213.0.0/16")
DEFAULT_NETWORK = IPv4Network("10.213.0.0/24")
NETNS_DIR = Path("/run/netns")
HOST_INTERFACE = "eth0"
SECOND_INTERFACE = "eth1"


def check_lab_network(network: IPv4Network) -> IPv4Network:
    if not network.subnet_of(SAFETY_NET) or not 17 <= network.prefixlen <= 29:
        raise LabError(f"lab network must be a /17../29 inside {SAFETY_NET} (the lab's own range); got {network}")
    return network


def check_private_network(private: IPv4Network, network: IPv4Network) -> IPv4Network:
    check_lab_network(private)
    if private.overlaps(network):
        raise LabError(f"the private network {private} overlaps the lab network {network}; give it a /24 of its own")
    return private


def gateway_interface(network: IPv4Network) -> IPv4Interface:
    """The machine's side of the lab: the network's first address."""
    return IPv4Interface(f"{network[1]}/{network.prefixlen}")


def check_host_address(name: str, address: IPv4Address, network: IPv4Network) -> None:
    usable = address in network and address not in (network.network_address, network.broadcast_address, network[1])
    if not usable:
        raise LabError(f"host {name}: address {address} is not a usable address of the lab network "
                       f"{network} (the first address, {network[1]}, is the machine's)")


def install_safety_route() -> None:
    """Lab addresses must never route out of the machine, even when no lab is up."""
    run(["ip", "route", "replace", "unreachable", str(SAFETY_NET)])


def check_network_is_free(network: IPv4Network, bridge: str) -> None:
    """Refuse a lab network the machine already uses for something other than this lab."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "main"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("type") == "unreachable" or route.get("dev") == bridge:
            continue
        if IPv4Network(dst, strict=False).overlaps(network):
            raise LabError(f"lab network {network} overlaps the machine's route {dst} via "
                           f"{route.get('dev', '?')}; choose another /24 inside {SAFETY_NET}")


def interface_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ensure_bridge(bridge: str, mac: str, gateway: IPv4Interface | None) -> None:
    """The lab's switch; `gateway` None: a switch the machine has no address on (nothing routes to it)."""
    if interface_exists(bridge):
        return
    ip_batch([f"link add {bridge} address {mac} type bridge",
              *([f"addr add {gateway} dev {bridge}"] if gateway is not None else []),
              f"link set {bridge} up"])


def delete_bridge(bridge: str) -> None:
    if interface_exists(bridge):
        run(["ip", "link", "del", bridge])


def plug(netns: str, veth: str, mac: str, bridge: str, address: IPv4Interface) -> None:
    """A fresh network namespace cabled to the bridge, as after power-on."""
    ip_batch([f"netns add {netns}",
              f"link add {veth} type veth peer name {HOST_INTERFACE} address {mac} netns {netns}",
              f"link set {veth} master {bridge} up"])
    ip_batch(["link set lo up",
              f"addr add {address} dev {HOST_INTERFACE}",
              f"link set {HOST_INTERFACE} up"], netns=netns)


def plug_second(netns: str, veth: str, mac: str, bridge: str, address: IPv4Interface) -> None:
    """A second cable into an existing namespace (the bastion's leg on the private network)."""
    ip_batch([f"link add {veth} type veth peer name {SECOND_INTERFACE} address {mac} netns {netns}",
              f"link set {veth} master {bridge} up"])
    ip_batch([f"addr add {address} dev {SECOND_INTERFACE}", f"link set {SECOND_INTERFACE} up"], netns=netns)


def unplug(netns: str, veth: str) -> None:
    """Delete the veth pair first (synchronous), then the namespace."""
    lines = [f"link del {veth}"] if interface_exists(veth) else []
    if netns_exists(netns):
        lines.append(f"netns del {netns}")
    ip_batch(lines)


def delete_link(name: str) -> None:
    if interface_exists(name):
        run(["ip", "link", "del", name])


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_names(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def netns_dir_is_mounted() -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        return any(line.split()[4] == str(NETNS_DIR) for line in mountinfo)


def release_netns_dir(marker: Path) -> None:
    """Undo the /run/netns mount `ip netns add` made for us, once no namespace is left in it."""
    if marker.exists() and not os.listdir(NETNS_DIR) and netns_dir_is_mounted():
        run(["umount", str(NETNS_DIR)], check=False)
        marker.unlink(missing_ok=True)
