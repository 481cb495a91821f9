"""Kernel settings the other targets rely on, persisted in /etc/sysctl.d."""

from __future__ import annotations

import shlex
from pathlib import Path

from haops.inventory.model import Inventory
from haops.targets.lvs.dr import dr_vips
from haops.render import render_template
from haops.targets.base import ALWAYS, Check, RenderContext, RenderedFile, Target

CONFIG = "/etc/sysctl.d/60-haops.conf"
NONLOCAL_BIND = ("net.ipv4.ip_nonlocal_bind", "1", "balancers bind the VRRP address even on the host that does not hold it yet")
FORWARD = ("net.ipv4.ip_forward", "1", "iptables DNAT and LVS NAT forward client connections to the backends")
NONLOCAL_BIND6 = ("net.ipv6.ip_nonlocal_bind", "1", "balancers bind the IPv6 VRRP address even on the host that does not hold it yet")
FORWARD6 = ("net.ipv6.conf.all.forwarding", "1", "ip6tables DNAT and LVS NAT forward IPv6 client connections to the backends")
# A DR real server holds the VIP on lo but must not answer ARP for it (the director does):
# reply only for addresses on the asking interface, and announce only a source address of the
# interface the ARP goes out on. The kernel takes the higher of conf/all and conf/<interface>
# for both (IN_DEV_MAXCONF), so `all` covers every interface, present and future.
ARP_IGNORE = ("net.ipv4.conf.all.arp_ignore", "1", "LVS DR real servers must not answer ARP for the VIP they hold on lo")
ARP_ANNOUNCE = ("net.ipv4.conf.all.arp_announce", "2", "LVS DR real servers must never announce the VIP on lo as an ARP source")
BINDING_BALANCERS = ("haproxy", "nginx", "apache")
FORWARDING_BALANCERS = ("iptables", "lvs")

# Every key must exist on the checking kernel; sysctl itself has no dry run.
CHECK_SCRIPT = r"""
for key in "$@"; do
    [ -e "/proc/sys/$(printf %s "$key" | tr . /)" ] || { echo "unknown kernel setting: $key"; exit 1; }
done
"""


def settings_for(inventory: Inventory, host: str) -> list[tuple[str, str, str]]:
    settings = []
    for version, (bind, forward) in ((4, (NONLOCAL_BIND, FORWARD)), (6, (NONLOCAL_BIND6, FORWARD6))):
        kinds = {s.balancer for s in inventory.services.values() if host in s.hosts and s.vip.version == version}
        in_vrrp = any(host in i.hosts and i.vip.version == version for i in inventory.vrrp.values())
        if kinds & set(BINDING_BALANCERS) or in_vrrp:
            settings.append(bind)
        if kinds & set(FORWARDING_BALANCERS):
            settings.append(forward)
    if any(vip.version == 4 for vip in dr_vips(inventory, host)):
        settings += [ARP_IGNORE, ARP_ANNOUNCE]
    return settings


def holds_every_value() -> str:
    """Shell: the kernel holds every value of the file, so a hand-changed setting is put back."""
    return (f"[ -f {CONFIG} ] && grep -v '^#' {CONFIG} | while IFS='= ' read -r key value; do "
            '[ -z "$key" ] || [ "$(sysctl -n "$key")" = "$value" ] || exit 1; done')


class SysctlTarget(Target):
    name = "sysctl"

    def probe(self) -> str:
        return holds_every_value()

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        return " && ".join(f"sysctl -q -p {shlex.quote(f.path)}" for f in files) or ALWAYS

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        return " && ".join(f'[ "$(sysctl -n {key})" = {value} ]' for key, value, _ in settings_for(inventory, host)) or ALWAYS

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        return tuple(name for name in inventory.hosts if settings_for(inventory, name))

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        text = render_template("sysctl/60-haops.conf.j2", settings=settings_for(inventory, host))
        return [RenderedFile(CONFIG, text)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        keys = [key for key, _, _ in settings_for(inventory, host)]
        return [Check("sh", ("sh", "-c", CHECK_SCRIPT, "sysctl-check", *keys), "kernel knows every key")]


TARGET = SysctlTarget()
