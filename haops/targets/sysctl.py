"""Kernel settings the other targets rely on, persisted in /etc/sysctl.d."""

from __future__ import annotations

from pathlib import Path

from haops.model import Inventory
from haops.render import render_template
from haops.targets.base import Check, RenderContext, RenderedFile, Target

CONFIG = "/etc/sysctl.d/60-haops.conf"
NONLOCAL_BIND = ("net.ipv4.ip_nonlocal_bind", "1", "balancers bind the VRRP address even on the host that does not hold it yet")
FORWARD = ("net.ipv4.ip_forward", "1", "iptables DNAT and LVS NAT forward client connections to the backends")
BINDING_BALANCERS = ("haproxy", "nginx", "apache")
FORWARDING_BALANCERS = ("iptables", "lvs")

# Every key must exist on the checking kernel; sysctl itself has no dry run.
CHECK_SCRIPT = r"""
for key in "$@"; do
    [ -e "/proc/sys/$(printf %s "$key" | tr . /)" ] || { echo "unknown kernel setting: $key"; exit 1; }
done
"""


def settings_for(inventory: Inventory, host: str) -> list[tuple[str, str, str]]:
    kinds = {s.balancer for s in inventory.services.values() if host in s.hosts}
    in_vrrp = any(host in instance.hosts for instance in inventory.vrrp.values())
    settings = []
    if kinds & set(BINDING_BALANCERS) or in_vrrp:
        settings.append(NONLOCAL_BIND)
    if kinds & set(FORWARDING_BALANCERS):
        settings.append(FORWARD)
    return settings


class SysctlTarget(Target):
    name = "sysctl"
    service = None
    summary = "kernel settings: non-local bind for balancers, forwarding for DNAT and LVS NAT"

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        return tuple(name for name in inventory.hosts if settings_for(inventory, name))

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        text = render_template("sysctl/60-haops.conf.j2", settings=settings_for(inventory, host))
        return [RenderedFile(CONFIG, text)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        keys = [key for key, _, _ in settings_for(inventory, host)]
        return [Check("sh", ("sh", "-c", CHECK_SCRIPT, "sysctl-check", *keys), "kernel knows every key")]


TARGET = SysctlTarget()
