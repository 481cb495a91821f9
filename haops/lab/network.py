"""The lab's wiring in the machine's own network namespace: safety route, bridge, veths, netem."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network, ip_network
from pathlib import Path

from haops.lab.commands import LabError, ip_batch, run

SAFETY_NET = IPv4Network("10.213.0.0/16")
# A unique-local /48 for every haops lab; each lab takes a /64 of it (fd00:213:0:N::/64).
SAFETY_NET6 = IPv6Network("fd00:213::/48")
DEFAULT_NETWORK = IPv4Network("10.213.0.0/24")
NETNS_DIR = Path("/run/netns")
HOST_INTERFACE = "eth0"
SECOND_INTERFACE = "eth1"


def check_lab_network(network: IPv4Network) -> IPv4Network:
    if not network.subnet_of(SAFETY_NET) or not 17 <= network.prefixlen <= 29:
        raise LabError(f"lab network must be a /17../29 inside {SAFETY_NET} (the lab's own range); got {network}")
    return network


def check_lab_network6(network: IPv6Network) -> IPv6Network:
    if not network.subnet_of(SAFETY_NET6) or not 64 <= network.prefixlen <= 120:
        raise LabError(f"lab IPv6 network must be a /64../120 inside {SAFETY_NET6} (the labs' own range); got {network}")
    return network


def machine_has_ipv6() -> bool:
    """IPv6 is built into this kernel and not disabled (sysctl net.ipv6.conf.all.disable_ipv6)."""
    disabled = Path("/proc/sys/net/ipv6/conf/all/disable_ipv6")
    return disabled.exists() and disabled.read_text().strip() == "0"
def check_private_network(private: IPv4Network, network: IPv4Network) -> IPv4Network:
    check_lab_network(private)
    if private.overlaps(network):
        raise LabError(f"the private network {private} overlaps the lab network {network}; give it a /24 of its own")
    return private


def gateway_interface(network: IPv4Network) -> IPv4Interface:
    """The machine's side of the lab: the network's first address."""
    return IPv4Interface(f"{network[1]}/{network.prefixlen}")


def gateway_interface6(network: IPv6Network) -> IPv6Interface:
    return IPv6Interface(f"{network[1]}/{network.prefixlen}")


def check_host_address6(name: str, address: IPv6Address, network: IPv6Network | None) -> None:
    if network is None:
        raise LabError(f"host {name}: address6 {address} needs the lab's IPv6 network (lab.network6 in the inventory)")
    if address not in network or address in (network.network_address, network[1]):
        raise LabError(f"host {name}: address6 {address} is not a usable address of the lab network "
                       f"{network} (the first address, {network[1]}, is the machine's)")


def check_host_address(name: str, address: IPv4Address, network: IPv4Network) -> None:
    usable = address in network and address not in (network.network_address, network.broadcast_address, network[1])
    if not usable:
        raise LabError(f"host {name}: address {address} is not a usable address of the lab network "
                       f"{network} (the first address, {network[1]}, is the machine's)")


def install_safety_route() -> None:
    """Lab addresses must never route out of the machine, even when no lab is up (IPv6 too, where
    the machine has it: its own IPv6 default route would otherwise carry them away)."""
    run(["ip", "route", "replace", "unreachable", str(SAFETY_NET)])
    if machine_has_ipv6():
        run(["ip", "-6", "route", "replace", "unreachable", str(SAFETY_NET6)])


def check_network_is_free(network: IPv4Network | IPv6Network, bridge: str) -> None:
    """Refuse a lab network the machine already uses for something other than this lab."""
    family = f"-{network.version}"
    routes = json.loads(run(["ip", "-j", family, "route", "show", "table", "main"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("type") == "unreachable" or route.get("dev") == bridge:
            continue
        if ip_network(dst, strict=False).overlaps(network):
            raise LabError(f"lab network {network} overlaps the machine's route {dst} via "
                           f"{route.get('dev', '?')}; choose another /24 inside {SAFETY_NET}")


def interface_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ensure_bridge(bridge: str, mac: str, gateway: IPv4Interface | None, gateway6: IPv6Interface | None = None) -> None:
    """The lab's switch; `gateway` None: a switch the machine has no address on (nothing routes to it)."""
    if interface_exists(bridge):
        return
    if gateway6 is None:
        ip_batch([f"link add {bridge} address {mac} type bridge",
                  *([f"addr add {gateway} dev {bridge}"] if gateway is not None else []),
                  f"link set {bridge} up"])
        return
    # No MLD snooping: without a querier it would come to drop VRRPv3 and neighbour discovery multicast.
    ip_batch([f"link add {bridge} address {mac} type bridge mcast_snooping 0",
              *([f"addr add {gateway} dev {bridge}"] if gateway is not None else []),
              f"addr add {gateway6} dev {bridge} nodad",
              f"link set {bridge} up"])


def delete_bridge(bridge: str) -> None:
    if interface_exists(bridge):
        run(["ip", "link", "del", bridge])


def plug(netns: str, veth: str, mac: str, bridge: str, address: IPv4Interface,
         address6: IPv6Interface | None = None) -> None:
    """A fresh network namespace cabled to the bridge, as after power-on."""
    ip_batch([f"netns add {netns}",
              f"link add {veth} type veth peer name {HOST_INTERFACE} address {mac} netns {netns}",
              f"link set {veth} master {bridge} up"])
    if address6 is not None:
        # No duplicate address detection in the host: its addresses (the link-local one VRRPv3
        # sends from, the VIPs keepalived adds) are usable at once instead of tentative for ~1 s.
        run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
             "net.ipv6.conf.default.accept_dad=0", f"net.ipv6.conf.{HOST_INTERFACE}.accept_dad=0"])
    ip_batch(["link set lo up",
              f"addr add {address} dev {HOST_INTERFACE}",
              *([f"addr add {address6} dev {HOST_INTERFACE} nodad"] if address6 else []),
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
