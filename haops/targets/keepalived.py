"""keepalived: VRRP instances (floating VIPs) and LVS virtual servers, one keepalived.conf per host.

VRRP version. VRRPv2 counts advert_int in whole seconds: keepalived 2.2.7 rounds a fractional
one with a warning, and `keepalived -t` fails on it. An instance whose advert_int is not whole
seconds therefore runs VRRPv3 (centiseconds, at most 40.95 s) with the per-instance `version 3`;
the others say `version 2`. VRRPv3 has no authentication (keepalived drops auth_pass with a
warning), so review_vrrp() refuses auth_pass there instead of silently dropping it.

nopreempt works only from initial state BACKUP (keepalived clears it on a MASTER), so with
nopreempt every host starts BACKUP and the election picks the highest priority; without it the
highest-priority host is configured `state MASTER`. Either way keepalived 2.2.7 enters BACKUP
first and becomes MASTER only when the master-down timer (3 x advert_int + skew) runs out
unheard, unless its priority is 255 (vrrp_init_state in vrrp_scheduler.c). track_process: one vrrp_script (`killall -0 DAEMON`, psmisc) per daemon,
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

from haops.inventory.model import Inventory, VrrpInstance, endpoint
from haops.render import render_template
from haops.targets.base import (
    Check,
    HostRun,
    ProblemAt,
    RenderContext,
    RenderedFile,
    Target,
    VrrpNode,
    hosts_running,
    under,
)
from haops.targets.daemon import Daemon
from haops.targets.lvs import decimal_seconds, keepalived_directs, virtual_server_blocks, virtual_services
from haops.targets.lvs.ipvs import IPVS_PROC, cannot_load_ipvs

CONFIG = "/etc/keepalived/keepalived.conf"
SCRATCH = "/.haops-scratch/keepalived/keepalived.conf"
VRRP3_MAX_ADVERT_MS = 40_950
TRACK_INTERVAL_S, TRACK_FALL = 1, 2  # the track scripts' check: every second, two failures to FAULT  # 12 bits of centiseconds
NET_DEVICES = Path("/sys/class/net")


def vrrp_version(instance: VrrpInstance) -> int:
    """VRRPv2 is IPv4 only: an IPv6 VIP always runs VRRPv3 (RFC 5798)."""
    return 2 if instance.advert_int_ms % 1000 == 0 and instance.vip.version == 4 else 3


def review_vrrp(instance: VrrpInstance) -> list[ProblemAt]:
    """Refuse instances keepalived would run differently from what the inventory says."""
    if vrrp_version(instance) == 2:
        return []
    advert = decimal_seconds(instance.advert_int_ms)
    problems: list[ProblemAt] = []
    if instance.vip.version == 6:
        if instance.advert_int_ms > VRRP3_MAX_ADVERT_MS:
            problems.append((("advert_int",), f"{advert}s: an IPv6 VIP runs VRRPv3, which allows at most 40.95s"))
        if instance.auth_pass:
            problems.append((("auth_pass",), ("an IPv6 VIP runs VRRPv3, which has no authentication (keepalived "
                                             "would drop it); remove auth_pass from this instance")))
        return problems
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

# --- keepalived's state dump ---------------------------------------------------------------------
# On SIGUSR1 keepalived 2.2.7's VRRP process rewrites STATE_DUMP (vrrp_print_data in
# keepalived/vrrp/vrrp_print.c, dump_data_vrrp and dump_vrrp in vrrp_data.c): sections headed
# "------< NAME >------", the global definitions first and "Interfaces" last. In the VRRP Topology
# section each instance opens with " VRRP Instance = NAME"; its fields follow as "   Key = value",
# the entries of a list field ("   Virtual IP (1):") as "     10.213.0.100/24 dev eth0 scope global".
# "State" is INIT, BACKUP, MASTER or FAULT; "Priority" the configured one, "Effective priority" the
# one after tracking weights. The file is written through stdio buffers, so it may be read half
# written: only a dump whose last section has begun is complete. It also holds the VRRP password
# ("   Password = ..."), which is never read off the host.
STATE_DUMP = "/tmp/keepalived.data"
SECTION = "------< "
TOPOLOGY = "------< VRRP Topology >------"
LAST_SECTION = "------< Interfaces >------"
INSTANCE = " VRRP Instance = "
FIELD = "   "
LISTED = "     "
PASSWORD = "   Password = "
DUMP_WAIT_TRIES = 40  # of 0.05 s
ADDRESSES = "--- addresses"


def dump_now() -> str:
    """Shell: a fresh, complete state dump in STATE_DUMP; fails if none comes within 2 s."""
    dump = shlex.quote(STATE_DUMP)
    return (f"( rm -f {dump}; kill -USR1 {DAEMON.master_pid()} || exit 1; i=0; "
            f"until grep -qxF -e {shlex.quote(LAST_SECTION)} {dump} 2>/dev/null; do "
            f"i=$((i + 1)); [ $i -le {DUMP_WAIT_TRIES} ] || exit 1; sleep 0.05; done )")


def topology_section(dump: str) -> str:
    """Shell: the dump's VRRP Topology section through the next header, without the password."""
    program = (f'$0 == "{TOPOLOGY}" {{ inside = 1 }} inside && /^{SECTION}/ && $0 != "{TOPOLOGY}" {{ print; exit }} '
               f'inside && index($0, "{PASSWORD}") != 1')
    return f"awk {shlex.quote(program)} {shlex.quote(dump)}"


def instance_block(name: str, dump: str) -> str:
    """Shell: the lines of one instance in the dump's VRRP Topology section."""
    program = (f'$0 == "{TOPOLOGY}" {{ topology = 1; next }} topology && /^{SECTION}/ {{ exit }} '
               f'topology && index($0, "{INSTANCE}") == 1 {{ inside = (substr($0, {len(INSTANCE) + 1}) == name); next }} '
               'inside')
    return f"awk -v name={shlex.quote(name)} {shlex.quote(program)} {shlex.quote(dump)}"


def instance_listed(instance: InstanceOnHost, dump: str) -> str:
    """Shell: the dump lists this instance with this host's priority and address, in a running state."""
    vip = f"{LISTED}{instance.instance.vip.with_prefixlen} dev "
    lines = "printf '%s\\n' \"$block\""
    return (f"block=$({instance_block(instance.instance.name, dump)}) && "
            f"{lines} | grep -qxF {shlex.quote(f'{FIELD}Priority = {instance.priority}')} && "
            f"{lines} | grep -qE '^{FIELD}State = (MASTER|BACKUP|FAULT)$' && "
            f"{lines} | grep -qF {shlex.quote(vip)}")


def dump_lists(instances: list[InstanceOnHost], dump: str) -> str:
    """Shell: the dump lists exactly these instances, each as instance_listed says."""
    count = f'[ "$(grep -c {shlex.quote("^" + INSTANCE)} {shlex.quote(dump)})" = {len(instances)} ]'
    return " && ".join([count, *(instance_listed(i, dump) for i in instances)])


def instances_proof(inventory: Inventory, host: str) -> str:
    """Shell: a fresh dump lists exactly this host's instances, each with its priority and address.
    Any of MASTER, BACKUP or FAULT will do here: which host is MASTER is decided across hosts,
    once apply has applied them all (haops/apply/vips.py)."""
    return f"{dump_now()} && {dump_lists(instances_on(inventory, host), STATE_DUMP)}"


def virtual_servers_proof(inventory: Inventory, host: str, proc: str = IPVS_PROC) -> str:
    """Shell: IPVS lists each virtual service keepalived directs here, or this kernel can hold no
    IPVS table at all (a namespace lab: the lvs target says so at activation). A director without
    VRRP instances runs only keepalived's checker process, which writes no VRRP state dump, so
    this is its proof. Real servers are not compared: health checks add and remove them."""
    if not keepalived_directs(inventory, host):
        return "true"
    heads = [f"-A -t {endpoint(service.address, service.port)} " for service in virtual_services(inventory, host)]
    listed = " && ".join(f"ipvsadm -S -n | grep -qF -- {shlex.quote(head)}" for head in heads) or "true"
    return f"if [ -e {proc} ]; then {listed}; else {cannot_load_ipvs(proc)}; fi"


@dataclass(frozen=True)
class DumpedInstance:
    name: str
    state: str
    priority: int
    effective_priority: int
    vips: tuple[str, ...]  # as keepalived lists them: 10.213.0.100/24


class IncompleteDump(ValueError):
    """The dump ends inside its VRRP Topology section: it was read while keepalived wrote it."""


def parse_dump(text: str) -> dict[str, DumpedInstance]:
    """The instances of a state dump, or of its VRRP Topology section alone, by name."""
    lines = text.splitlines()
    if TOPOLOGY not in lines:
        return {}
    body = lines[lines.index(TOPOLOGY) + 1:]
    end = next((n for n, line in enumerate(body) if line.startswith(SECTION)), None)
    if end is None:
        raise IncompleteDump("keepalived's state dump ends inside its VRRP Topology section")
    return {i.name: i for i in map(dumped_instance, instance_blocks(body[:end]))}


def instance_blocks(lines: list[str]) -> list[list[str]]:
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith(INSTANCE):
            blocks.append([line])
        elif blocks and not line.startswith(PASSWORD):
            blocks[-1].append(line)
    return blocks


def dumped_instance(block: list[str]) -> DumpedInstance:
    fields: dict[str, str] = {}
    vips: list[str] = []
    listing = ""
    for line in block[1:]:
        if line.startswith(LISTED):
            if listing.startswith("Virtual IP ("):
                vips.append(line.split()[0])
        elif line.startswith(FIELD):
            key, _, value = line.strip().partition(" = ")
            listing = key if not value else ""
            fields.setdefault(key, value)
    name = block[0][len(INSTANCE):]
    try:
        return DumpedInstance(name, fields["State"], int(fields["Priority"]),
                              int(fields.get("Effective priority", fields["Priority"])), tuple(vips))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"keepalived's dump of instance {name!r} lacks a readable {exc}") from None


def read_script() -> str:
    """Shell: this host's VRRP instances from a fresh dump, then the addresses it holds (IPv4 and IPv6)."""
    running = f"{DAEMON.running()} || {{ echo 'keepalived is not running'; exit 3; }}"
    dumped = f"{dump_now()} || {{ echo 'keepalived wrote no state dump within 2s'; exit 4; }}"
    return "\n".join([running, dumped, topology_section(STATE_DUMP), f"echo {shlex.quote(ADDRESSES)}", "ip -br addr"])


def held_addresses(ip_brief: str) -> set[str]:
    """The addresses (without prefix) in `ip -br addr` output."""
    return {word.split("/")[0] for line in ip_brief.splitlines() for word in line.split()[2:]}


def nodes_from(inventory: Inventory, host: str, output: str) -> list[VrrpNode]:
    """This host's instances from read_script's output, each with whether the host holds its VIP."""
    dump, _, addresses = output.partition(ADDRESSES + "\n")
    dumped, held = parse_dump(dump), held_addresses(addresses)
    nodes = []
    for expected in instances_on(inventory, host):
        name = expected.instance.name
        holds = str(expected.instance.vip.ip) in held
        found = dumped.get(name)
        if found is None:
            nodes.append(VrrpNode(name, host, None, holds_vip=holds, error="keepalived runs no such instance"))
        else:
            nodes.append(VrrpNode(name, host, found.state, found.priority, found.effective_priority, holds))
    return nodes


class KeepalivedTarget(Target):
    name = "keepalived"
    daemon = DAEMON
    secret_lines = (r"^\s*auth_pass\s+(\S+)",)

    def review(self, inventory: Inventory) -> list[ProblemAt]:
        return [(("vrrp", i.name, *path), message) for i in inventory.vrrp.values() for path, message in review_vrrp(i)]

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        instances = instances_proof(inventory, host) if instances_on(inventory, host) else "true"
        return f"( {self.probe()} ) && {instances} && {virtual_servers_proof(inventory, host)}"

    def vrrp_nodes(self, inventory: Inventory, host: str, run: HostRun) -> list[VrrpNode]:
        if not instances_on(inventory, host):
            return []
        ran = run(read_script())
        try:
            if ran.code == 0:
                return nodes_from(inventory, host, ran.stdout)
            why = (ran.stdout + ran.stderr).strip() or f"reading the VRRP state exited {ran.code}"
        except ValueError as exc:
            why = str(exc)
        return [VrrpNode(i.instance.name, host, None, error=why) for i in instances_on(inventory, host)]

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        directors = {h for h in hosts_running(inventory, "lvs") if keepalived_directs(inventory, h)}
        wanted = {h for i in inventory.vrrp.values() for h in i.hosts} | directors
        return tuple(name for name in inventory.hosts if name in wanted)

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        instances = instances_on(inventory, host)
        text = render_template(
            "keepalived/keepalived.conf.j2",
            host=host,
            instances=instances,
            processes=sorted({i.instance.track_process for i in instances if i.instance.track_process}),
            seconds=decimal_seconds,
            track_interval=TRACK_INTERVAL_S,
            track_fall=TRACK_FALL,
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
