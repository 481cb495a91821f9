"""`haops vagrant preflight`: what would make `haops vagrant up` fail or leak, found before it runs,
each with a fix to try."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Network, ip_network
from pathlib import Path

from haops.errors import UserError
from haops.inventory.model import Inventory
from haops.vagrant import box, libvirt
from haops.vagrant.plan import VmPlan

OK, WARN, PROBLEM = "ok", "warning", "problem"
TOOLS = {"vagrant": "vagrant", "virsh": "libvirt-clients", "libvirtd": "libvirt-daemon-system",
         "qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "dnsmasq": "dnsmasq-base"}
MANAGEMENT_ENV = "HAOPS_VM_MANAGEMENT"
BRIDGE_KNOB = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
LAB_RANGE = IPv4Network("10.213.0.0/16")
SBIN_DIRS = ("/usr/sbin", "/sbin")  # libvirtd lives there, outside a user's PATH


@dataclass(frozen=True)
class Finding:
    check: str
    level: str
    detail: str
    fix: str = ""


def preflight(inventory: Inventory, planned: VmPlan, box_name: str) -> list[Finding]:
    findings = [*tools(), uri(), driver(planned.emulated), kvm_device()]
    if box_name == box.BOX_NAME:
        findings.append(box_state())
    findings += [memory(planned), bridge_filtering(), *networks(inventory), safety_route()]
    return findings


def tools() -> list[Finding]:
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    missing = [f"{tool} ({package})" for tool, package in TOOLS.items() if shutil.which(tool, path=path) is None]
    if missing:
        return [Finding("tools", PROBLEM, "missing: " + ", ".join(missing), "run scripts/setup.sh, or apt-get install them")]
    return [Finding("tools", OK, "vagrant, libvirt, QEMU and dnsmasq are installed")]


def uri() -> Finding:
    chosen = os.environ.get("LIBVIRT_DEFAULT_URI", libvirt.SYSTEM_URI)
    if chosen != libvirt.SYSTEM_URI:
        return Finding("libvirt URI", PROBLEM, f"LIBVIRT_DEFAULT_URI is {chosen}: a session libvirt cannot make the private "
                       "networks (vagrant-libvirt #958/#626)", f"unset LIBVIRT_DEFAULT_URI, or set it to {libvirt.SYSTEM_URI}")
    if libvirt.responds():
        return Finding("libvirt URI", OK, f"{libvirt.SYSTEM_URI} answers")
    if os.geteuid() == 0:
        return Finding("libvirt URI", OK, f"{libvirt.SYSTEM_URI} is not running; `haops vagrant up` starts it")
    return Finding("libvirt URI", PROBLEM, f"{libvirt.SYSTEM_URI} is not running, and only root can start it",
                   "systemctl start libvirtd, or run haops as root")


def driver(emulated: bool) -> Finding:
    if emulated:
        return Finding("CPU", OK, "QEMU software emulation (HAOPS_VM_DRIVER=qemu): slow but works everywhere; keep VMs few and small")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Finding("CPU", PROBLEM, "no usable /dev/kvm for hardware virtualisation",
                       "set HAOPS_VM_DRIVER=qemu (software emulation), or enable nested virtualisation")
    return Finding("CPU", WARN, "/dev/kvm is there; a paravirtual KVM may still hang a stock kernel right after boot",
                   "if VMs never get an address, set HAOPS_VM_DRIVER=qemu")


def kvm_device() -> Finding:
    if libvirt.kvm_device_needs_udev_rule():
        return Finding("/dev/kvm", WARN, "group kvm cannot read and write it (no udev here): libvirt re-probes QEMU at "
                       "every call, which cost 100-180 s per VM", "`haops vagrant up` adds that, as Debian's udev rule does")
    return Finding("/dev/kvm", OK, "group kvm reads and writes it, or it is absent")


def box_state() -> Finding:
    wanted = box.recipe()
    if box.box_is_current(wanted):
        return Finding("box", OK, f"{box.BOX_NAME} is built and current (recipe {wanted.digest()})")
    if box.installed_recipe() is None:
        return Finding("box", PROBLEM, f"Vagrant has no {box.BOX_NAME} box", "haops vagrant box build")
    return Finding("box", WARN, f"{box.BOX_NAME} was built from an older recipe", "haops vagrant box build (it rebuilds it)")


def memory(planned: VmPlan) -> Finding:
    refusal = planned.refusal()
    if refusal:
        return Finding("memory", PROBLEM, refusal, "give the VMs less memory (vm: {memory: ...}), or fewer VMs")
    warnings = planned.warnings()
    if warnings:
        return Finding("memory", WARN, "; ".join(warnings), "see `haops vagrant plan`")
    return Finding("memory", OK, f"the VMs take {planned.memory_mib} MiB of {planned.machine.available_mib} MiB free")


def management_network() -> IPv4Network:
    """The network Vagrant logs in to the VMs on (HAOPS_VM_MANAGEMENT, as the Vagrantfile reads it)."""
    text = os.environ.get(MANAGEMENT_ENV, "10.213.20.0/24")
    try:
        network = IPv4Network(text)
    except ValueError as error:
        raise UserError(f"{MANAGEMENT_ENV}={text!r} is not an IPv4 network such as 10.213.20.0/24: {error}") from None
    if network.prefixlen != 24:  # the VMs' other networks are /24s: a wider one would overlap them
        raise UserError(f"{MANAGEMENT_ENV}={text!r} must be a /24, such as 10.213.20.0/24, apart from the hosts' networks")
    return network


def bridge_filtering(knob: Path = BRIDGE_KNOB) -> Finding:
    """Bridged VM-to-VM traffic (VRRP adverts, LVS, DRBD) passes iptables' FORWARD chain when
    br_netfilter is loaded; a DROP policy there (Docker sets one) silently cuts the VMs apart."""
    if not knob.exists() or knob.read_text().strip() != "1":
        return Finding("bridge filtering", OK, "bridged traffic does not pass iptables (no br_netfilter)")
    try:
        policy = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return Finding("bridge filtering", WARN, "br_netfilter sends bridged traffic through iptables, whose FORWARD "
                       "policy could not be read (no iptables here)", "apt-get install iptables, and run preflight again")
    if "-P FORWARD DROP" in policy:
        return Finding("bridge filtering", PROBLEM, "br_netfilter sends bridged traffic through iptables, and FORWARD drops it: "
                       "VMs would not reach each other (no VRRP, no DRBD)", "sysctl -w net.bridge.bridge-nf-call-iptables=0")
    return Finding("bridge filtering", OK, "bridged traffic passes iptables, whose FORWARD policy accepts it")


def needed_networks(inventory: Inventory) -> list[IPv4Network]:
    addresses = [host.address for host in inventory.hosts.values()]
    addresses += [nic for host in inventory.hosts.values() if host.vm for nic in host.vm.nics]
    found = {management_network()} | {ip_network(f"{address}/24", strict=False) for address in addresses if address.version == 4}
    return sorted(n for n in found if isinstance(n, IPv4Network))


def networks(inventory: Inventory) -> list[Finding]:
    from haops.vagrant.networks import management_nat

    existing = libvirt_networks()
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "table", "main"], capture_output=True,
                                       text=True).stdout or "[]")
    nat = management_network() if management_nat() else None
    return [network_finding(network, existing, routes, nat_allowed=network == nat) for network in needed_networks(inventory)]


def network_finding(network: IPv4Network, existing: dict[str, str], routes: list[dict[str, str]],
                    nat_allowed: bool = False) -> Finding:
    check = f"network {network}"
    if not network.subnet_of(LAB_RANGE):
        return Finding(check, PROBLEM, f"outside {LAB_RANGE}, the range nothing leaves this machine from",
                       "give the hosts addresses in 10.213.0.0/16")
    ours = next((xml for name, xml in existing.items() if f"address='{network[1]}'" in xml or
                 f'address="{network[1]}"' in xml), None)
    if ours is not None:
        if "<forward" in ours and nat_allowed:
            return Finding(check, OK, "exists in libvirt and NATs out, as HAOPS_VM_MANAGEMENT_NAT=yes asks")
        if "<forward" in ours:
            return Finding(check, PROBLEM, "exists in libvirt and forwards (NAT or routed) to the outside",
                           "virsh net-destroy it; haops makes its networks with no forwarding")
        return Finding(check, OK, "exists in libvirt, isolated (no forwarding)")
    taken = [r for r in routes if r.get("dst") == str(network)]
    if taken:
        return Finding(check, PROBLEM, f"this machine already routes it (dev {taken[0].get('dev')})",
                       "choose other host addresses, or remove that route")
    return probe_network(network, check)


def libvirt_networks() -> dict[str, str]:
    if not libvirt.responds():
        return {}
    names = libvirt.virsh("net-list", "--all", "--name").stdout.split()
    return {name: libvirt.virsh("net-dumpxml", name).stdout for name in names}


def probe_network(network: IPv4Network, check: str) -> Finding:
    """Make the isolated network for a moment, as vagrant-libvirt will, and take it down again.
    Named after this process, so concurrent preflights do not collide."""
    if not libvirt.responds():
        return Finding(check, OK, "free on this machine (libvirt is not running, so it was not tried)")
    name, bridge = f"haops-preflight-{os.getpid()}", f"haopspf{os.getpid()}"
    xml = (f"<network><name>{name}</name><bridge name='{bridge}'/>"
           f"<ip address='{network[1]}' netmask='{network.netmask}'/></network>")
    made = virsh(["net-create", "/dev/stdin"], xml)
    if made.returncode != 0:
        return Finding(check, PROBLEM, f"libvirt cannot make it: {made.stderr.strip()[-300:]}",
                       "see /var/log/libvirt/libvirtd.log")
    destroyed = virsh(["net-destroy", name])
    if destroyed.returncode != 0:
        return Finding(check, PROBLEM, f"libvirt made it but could not take it down: {destroyed.stderr.strip()[-300:]}",
                       f"virsh -c {libvirt.SYSTEM_URI} net-destroy {name}")
    return Finding(check, OK, "libvirt made it isolated (no forwarding) and took it down again")


def virsh(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["virsh", "-c", libvirt.SYSTEM_URI, *args]
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"virsh {args[0]} did not finish within 30 s")


def safety_route() -> Finding:
    routes = subprocess.run(["ip", "route", "show", "type", "unreachable", str(LAB_RANGE)], capture_output=True, text=True).stdout
    if routes.strip():
        return Finding("safety route", OK, f"unreachable {LAB_RANGE}: VM addresses never leave this machine")
    return Finding("safety route", OK, f"no unreachable {LAB_RANGE} yet; `haops vagrant up` installs it first")
