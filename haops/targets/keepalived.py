"""keepalived: VRRP instances (floating VIPs) and LVS virtual servers, one keepalived.conf per host.

VRRP version. VRRPv2 counts advert_int in whole seconds: keepalived 2.2.7 rounds a fractional
one with a warning, and `keepalived -t` fails on it. An instance whose advert_int is not whole
seconds therefore runs VRRPv3 (centiseconds, at most 40.95 s) with the per-instance `version 3`;
the others say `version 2`. VRRPv3 has no authentication (keepalived drops auth_pass with a
warning), so review_vrrp() refuses auth_pass there instead of silently dropping it.

nopreempt works only from initial state BACKUP (keepalived clears it on a MASTER), so with
nopreempt every host starts BACKUP and the election picks the highest priority; without it the
highest-priority host starts MASTER. track_process: one vrrp_script (`killall -0 DAEMON`, psmisc) per daemon,
tracked without weight, so the instance goes to FAULT and gives up the VIP while the daemon is not
running. Not vrrp_track_process: it needs the kernel's process connector, which exists only in the
initial network namespace, so in containers and the lab it never sees the daemon and stays FAULT.

Checker: `keepalived -t -f FILE`. In 2.2.7 every problem the parser reports (unknown keyword,
bad value, unbalanced braces, missing interface, VRRPv2 rounding) makes -t exit non-zero, so no
extra flag is needed to make it strict. It does not catch a keyword given twice (the last one
wins), peers that disagree (VRID, version, auth, VIP), two instances sharing a VRID on one
network, or real servers that cannot be reached. It also requires the interfaces to exist on
the machine running it: when one is absent there, the check runs on a scratch copy that adds
`dynamic_interfaces` and says so in its label; the check on the target host stays strict.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from haops.inventory.model import Inventory, VrrpInstance
from haops.render import render_template
from haops.targets.base import (
    ALWAYS,
    Check,
    ProblemAt,
    RenderContext,
    RenderedFile,
    Target,
    hosts_running,
    under,
)
from haops.targets.daemon import Daemon
from haops.targets.lvs import decimal_seconds, virtual_server_blocks

CONFIG = "/etc/keepalived/keepalived.conf"
SCRATCH = "/.haops-scratch/keepalived/keepalived.conf"
VRRP3_MAX_ADVERT_MS = 40_950  # 12 bits of centiseconds
NET_DEVICES = Path("/sys/class/net")


def vrrp_version(instance: VrrpInstance) -> int:
    return 2 if instance.advert_int_ms % 1000 == 0 else 3


def review_vrrp(instance: VrrpInstance) -> list[ProblemAt]:
    """Refuse instances keepalived would run differently from what the inventory says."""
    if vrrp_version(instance) == 2:
        return []
    advert = decimal_seconds(instance.advert_int_ms)
    problems: list[ProblemAt] = []
    if instance.advert_int_ms > VRRP3_MAX_ADVERT_MS:
        problems.append((("advert_int",), (f"{advert}s is not whole seconds, which needs VRRPv3, and VRRPv3 allows at most "
                                          "40.95s; use whole seconds (VRRPv2, up to 255s) or at most 40.95s")))
    if instance.auth_pass:
        problems.append((("auth_pass",), (f"advert_int {advert}s is not whole seconds, which needs VRRPv3, and VRRPv3 has no "
                                         "authentication (keepalived would drop it); remove auth_pass or use whole seconds")))
    return problems


@dataclass(frozen=True)
class InstanceOnHost:
    instance: VrrpInstance
    state: str
    interface: str
    priority: int
    version: int


def instance_on_host(inventory: Inventory, instance: VrrpInstance, host: str) -> InstanceOnHost:
    highest = instance.priorities[0][0]
    state = "MASTER" if host == highest and not instance.nopreempt else "BACKUP"
    interface = instance.interface or inventory.hosts[host].interface
    return InstanceOnHost(instance, state, interface, instance.priority(host), vrrp_version(instance))


def instances_on(inventory: Inventory, host: str) -> list[InstanceOnHost]:
    ordered = sorted((i for i in inventory.vrrp.values() if host in i.hosts), key=lambda i: i.name)
    return [instance_on_host(inventory, i, host) for i in ordered]


DAEMON = Daemon(name="keepalived", unit="keepalived", process="keepalived", pidfile="/run/keepalived.pid",
                start=f"keepalived -f {CONFIG} -p /run/keepalived.pid",
                reload='kill -HUP "$(cat /run/keepalived.pid)"')
STATE_DUMP = "/tmp/keepalived.data"


def instances_in_dump(inventory: Inventory, host: str) -> str:
    """Shell: keepalived's own state dump (SIGUSR1) lists each instance with its priority and address."""
    expected = []
    for instance in inventory.vrrp.values():
        if host in instance.hosts:
            expected += [f"VRRP Instance = {instance.name}", f"Priority = {instance.priority(host)}", str(instance.vip)]
    greps = " && ".join(f"grep -qF {shlex.quote(line)} {STATE_DUMP}" for line in expected) or ALWAYS
    dump = f"rm -f {STATE_DUMP}; kill -USR1 {DAEMON.master_pid()}; sleep 0.2; [ -s {STATE_DUMP} ]"
    return f"{dump} && {greps}"


class KeepalivedTarget(Target):
    name = "keepalived"
    daemon = DAEMON
    secret_lines = (r"^\s*auth_pass\s+(\S+)",)

    def review(self, inventory: Inventory) -> list[ProblemAt]:
        return [(("vrrp", i.name, *path), message) for i in inventory.vrrp.values() for path, message in review_vrrp(i)]

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        return f"( {self.probe()} ) && {instances_in_dump(inventory, host)}"

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        wanted = {h for i in inventory.vrrp.values() for h in i.hosts} | set(hosts_running(inventory, "lvs"))
        return tuple(name for name in inventory.hosts if name in wanted)

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        instances = instances_on(inventory, host)
        text = render_template(
            "keepalived/keepalived.conf.j2",
            host=host,
            instances=instances,
            processes=sorted({i.instance.track_process for i in instances if i.instance.track_process}),
            seconds=decimal_seconds,
            virtual_servers=virtual_server_blocks(inventory, host),
        )
        secrets = tuple(i.instance.auth_pass for i in instances if i.instance.auth_pass)
        return [RenderedFile(CONFIG, text, 0o600 if secrets else 0o644, secrets)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        interfaces = sorted({i.interface for i in instances_on(inventory, host)})
        argv = ("sh", "-c", CHECK_SCRIPT, "keepalived-check", under(root, CONFIG), under(root, SCRATCH), *interfaces)
        return [Check("keepalived", argv, "keepalived -t")]


# keepalived -t refuses interfaces the checking machine lacks. On the host itself they
# exist and the check is strict; elsewhere (validate on a laptop or CI) the config is
# checked with `dynamic_interfaces`, and the output says so.
CHECK_SCRIPT = r"""
set -eu
config=$1 scratch=$2; shift 2
absent=""
for interface in "$@"; do [ -e "/sys/class/net/$interface" ] || absent="$absent $interface"; done
[ -z "$absent" ] && exec keepalived -t -f "$config"
echo "interfaces absent here:$absent; checked with dynamic_interfaces"
mkdir -p "$(dirname "$scratch")"
sed '0,/^global_defs {$/s//global_defs {\n    dynamic_interfaces/' "$config" > "$scratch"
exec keepalived -t -f "$scratch"
"""


TARGET = KeepalivedTarget()
