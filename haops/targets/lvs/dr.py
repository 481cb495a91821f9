"""Real servers of LVS direct-routing (DR) services: the VIP on lo, so they accept the packets
the director forwards unchanged (only the MAC address is rewritten), and answer from it.

Each such host gets /etc/haops/lvs-dr.vips, one `address/32` (IPv6 `/128`) a line. Activation
adds the missing ones to lo and removes those haops added before that the file no longer lists;
what it added is kept in ADDED, so an address someone else put on lo is never removed (nor
recorded, when it was there before haops wanted it). The ARP side, that a real server must not
answer ARP for the VIP (the director holds it), is the sysctl target's: arp_ignore and
arp_announce. IPv6 needs no setting: the kernel answers neighbour solicitations only for
addresses on the interface they arrive on, never for lo's.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from haops.inventory.model import Inventory, IPAddress, Service
from haops.render import render_template
from haops.targets.base import Check, RemoteHost, RenderContext, RenderedFile, StateCheck, Target, Verdict
from haops.verify.result import verdict

VIPS = "/etc/haops/lvs-dr.vips"
ADDED = "/var/lib/haops/lvs-dr.added"  # what haops itself put on lo, one address/prefix a line
DEVICE = "lo"


def dr_services(inventory: Inventory, host: str) -> list[Service]:
    """The LVS DR services `host` is a real server of."""
    return [s for s in inventory.services.values()
            if s.balancer == "lvs" and s.options["lvs"]["mode"] == "dr" and any(b.host == host for b in s.backends)]


def dr_vips(inventory: Inventory, host: str) -> list[IPAddress]:
    """The VIPs of the DR services `host` is a real server of, sorted, each once."""
    return sorted({s.vip for s in dr_services(inventory, host)}, key=lambda vip: (vip.version, int(vip)))


def with_host_prefix(address: IPAddress) -> str:
    return f"{address}/{32 if isinstance(address, IPv4Address) else 128}"


def on_lo() -> str:
    """Shell: the address/prefix in $a is on lo."""
    return f"ip -o addr show dev {DEVICE} | awk '{{print $4}}' | grep -qxF \"$a\""


def wanted_lines() -> str:
    return f"grep -v '^#' {VIPS} 2>/dev/null"


def holds_exactly() -> str:
    """Shell: every wanted address is on lo, and haops added none that is no longer wanted."""
    return (f"wanted=$({wanted_lines()}); "
            f"for a in $wanted; do {on_lo()} || exit 1; done; "
            f"for a in $(cat {ADDED} 2>/dev/null); do printf '%s\\n' \"$wanted\" | grep -qxF \"$a\" || exit 1; done")


def converge_script() -> str:
    """Shell: haops' addresses that are no longer wanted removed, the wanted ones added, and
    ADDED rewritten: what haops added before and still wants, and what it added now."""
    return "\n".join([
        f"wanted=$({wanted_lines()}); kept=''",
        f"for a in $(cat {ADDED} 2>/dev/null); do",
        "  if printf '%s\\n' \"$wanted\" | grep -qxF \"$a\"; then kept=\"$kept $a\"",
        f"  elif {on_lo()}; then ip addr del \"$a\" dev {DEVICE} || exit 1; fi",
        "done",
        "for a in $wanted; do",
        f"  {on_lo()} && continue",
        f"  ip addr add \"$a\" dev {DEVICE} || exit 1; kept=\"$kept $a\"",
        "done",
        f"mkdir -p {shlex.quote(str(Path(ADDED).parent))} && printf '%s\\n' $kept | grep -v '^$' | sort -u > {ADDED}.new; mv -f {ADDED}.new {ADDED}",
    ])


def retire_script() -> str:
    """Shell: every address haops added taken off lo, and the record gone."""
    return (f"for a in $(cat {ADDED} 2>/dev/null); do if {on_lo()}; then ip addr del \"$a\" dev {DEVICE} || exit 1; fi; done; "
            f"rm -f {ADDED}")


def vips_on_lo(expected: list[str]) -> Callable[[RemoteHost], Verdict]:
    def check(remote: RemoteHost) -> Verdict:
        shown = remote.run(f"ip -o addr show dev {DEVICE}").stdout.split("\n")
        held = {line.split()[3] for line in shown if len(line.split()) > 3}
        missing = [a for a in expected if a not in held]
        return ", ".join(expected), f"missing: {', '.join(missing)}" if missing else "all on lo", verdict(not missing)
    return check


class LvsRealServerTarget(Target):
    name = "lvs-dr"
    retire_with_apply = True  # a VIP left on lo takes the VIP's traffic sent to this host

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        return tuple(name for name in inventory.hosts if dr_vips(inventory, name))

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        text = render_template("lvs/lvs-dr.vips.j2", vips=[with_host_prefix(v) for v in dr_vips(inventory, host)])
        return [RenderedFile(VIPS, text)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        return []

    def probe(self) -> str:
        return holds_exactly()

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        return converge_script()

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        return f"( {holds_exactly()} )"

    def retire(self, init: str) -> str:
        return retire_script()

    def state_checks(self, inventory: Inventory, host: str) -> list[StateCheck]:
        expected = [with_host_prefix(v) for v in dr_vips(inventory, host)]
        return [StateCheck("DR VIPs on lo", host, vips_on_lo(expected))]


TARGET = LvsRealServerTarget()
