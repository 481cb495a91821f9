"""DRBD 9 or 8.4: one /etc/drbd.d/<resource>.res per resource, the same text on every node.

Option placement follows drbd-utils 9.22 (`drbdadm dump`, or `drbdadm-84 dump` for 8.4,
refuses anything else): protocol, after-sb-*, allow-two-primaries and the peer authentication
live in `net`; fencing in `net` for DRBD 9 and in `disk` for 8.4 (user/v84/config_flags.c,
CHANGEABLE_DISK_OPTIONS); quorum, node-id and connection-mesh exist in DRBD 9 only.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from haops.inventory.model import DrbdResource, Inventory
from haops.render import render_template
from haops.targets.drbd import v84
from haops.targets.base import (
    NOTICE,
    Check,
    ProblemAt,
    RemoteHost,
    RenderContext,
    RenderedFile,
    StateCheck,
    Target,
    Verdict,
    under,
)
from haops.verify.result import SKIP, verdict

CONFIG_DIR = "/etc/drbd.d"
TEMPLATES = {"9": "drbd/resource.res.j2", v84.VERSION: "drbd/resource-84.res.j2"}
HMAC_ALGORITHM = "sha256"
VERIFY_ALGORITHM = "sha256"


def config_path(resource: DrbdResource) -> str:
    return f"{CONFIG_DIR}/{resource.name}.res"


def review_resource(resource: DrbdResource) -> list[ProblemAt]:
    """Refuse option combinations that lose data or allow split brain, saying what to do instead."""
    return [
        *_after_split_brain_problems(resource),
        *_split_brain_guard_problems(resource),
        *_two_primaries_problems(resource),
        *(_drbd84_problems(resource) if v84.is_84(resource) else _quorum_problems(resource)),
    ]


def _drbd84_problems(resource: DrbdResource) -> list[ProblemAt]:
    problems: list[ProblemAt] = []
    if len(resource.nodes) != 2:
        problems.append((("nodes",), f"DRBD 8.4 replicates between exactly two nodes, not {len(resource.nodes)}; "
                         "use two nodes, or version 9 (the DRBD 9 module from LINBIT) for more"))
    if resource.quorum != "off":
        problems.append((("quorum",), f"quorum {resource.quorum}: quorum exists in DRBD 9 only; with version 8.4 "
                         "leave quorum off and guard the pair with fencing resource-only"))
    return problems


def mixed_version_problems(inventory: Inventory) -> list[ProblemAt]:
    """A host runs one DRBD kernel module, so all its resources must be of that module's version."""
    problems: list[ProblemAt] = []
    for host in inventory.hosts:
        on_host = resources_on(inventory, host)
        if len({r.version for r in on_host}) > 1:
            named = ", ".join(f"{r.name} ({r.version})" for r in on_host)
            problems.extend((("drbd", r.name, "version"), f"{host} has resources of both DRBD versions ({named}), "
                             "but a kernel runs one DRBD module: give them all the same version")
                            for r in on_host if r.version != on_host[0].version)
    return problems


def _after_split_brain_problems(resource: DrbdResource) -> list[ProblemAt]:
    problems: list[ProblemAt] = []
    for key, value in (("after_sb_1pri", resource.after_sb_1pri), ("after_sb_2pri", resource.after_sb_2pri)):
        if value == "violently-as0p":
            problems.append(((key,), f"{key} violently-as0p applies the after_sb_0pri decision even to a primary: it "
                             "silently throws away data the primary has already written and may crash it; use "
                             "disconnect and resolve the split brain by hand"
                             + (" (or discard-secondary)" if key == "after_sb_1pri" else "")))
        if value == "call-pri-lost-after-sb":
            problems.append(((key,), f"{key} call-pri-lost-after-sb runs the pri-lost-after-sb handler (meant to reboot "
                             "the node), and haops configures no DRBD handlers, so nothing would happen; use disconnect"))
    return problems


def _split_brain_guard_problems(resource: DrbdResource) -> list[ProblemAt]:
    if resource.fencing == "dont-care" and resource.quorum == "off":
        instead = "use fencing resource-only" + ("" if v84.is_84(resource) else
                                                  " (two nodes) or quorum majority (three or more nodes)")
        return [(("fencing",), "fencing dont-care with quorum off: nothing stops both sides of a broken link from "
                 f"writing, which is split brain and lost data; {instead}")]
    return []


def _two_primaries_problems(resource: DrbdResource) -> list[ProblemAt]:
    if not resource.allow_two_primaries:
        return []
    problems: list[ProblemAt] = []
    if resource.fencing != "resource-and-stonith":
        problems.append((("fencing",), f"allow_two_primaries with fencing {resource.fencing}: when the link breaks both "
                         "primaries keep writing and the data diverges; use fencing resource-and-stonith so IO freezes "
                         "until the peer is fenced"))
    if resource.protocol != "C":
        problems.append((("protocol",), f"protocol {resource.protocol} with allow_two_primaries: DRBD accepts two "
                         "primaries only with synchronous replication; use protocol C"))
    return problems


def _quorum_problems(resource: DrbdResource) -> list[ProblemAt]:
    if resource.quorum == "majority" and len(resource.nodes) == 2:
        return [(("quorum",), "quorum majority with only two nodes: when one fails the survivor is 1 of 2, not a "
                 "majority, so it stops writing and the failover gains nothing; add a third node (a diskless "
                 "tiebreaker is enough), or use quorum off with fencing resource-only")]
    return []


def resources_on(inventory: Inventory, host: str) -> list[DrbdResource]:
    return [r for r in inventory.drbd.values() if host in (node.host for node in r.nodes)]


def adjust(files: list[RenderedFile]) -> str:
    """`drbdadm adjust` applies a changed .res in place to a resource that is up; a resource that
    is not up yet (no metadata before `haops drbd init`) is written and left to the lifecycle
    commands. Where the kernel has no DRBD, the files are written and that is said."""
    names = [shlex.quote(f.path.rsplit("/", 1)[-1].removesuffix(".res")) for f in files]
    each = "; ".join(f'if drbdsetup status {name} >/dev/null 2>&1; then drbdadm adjust {name} || exit 1; '
                     f'else echo "{NOTICE} {name} is not up: written; haops drbd init (a new resource) or haops drbd up brings it up"; fi'
                     for name in names)
    return (f'if [ -e /proc/drbd ]; then {each}; '
            f'else echo "{NOTICE} no DRBD kernel module: resource files written, not activated"; fi')


def connected_and_up_to_date(remote: RemoteHost) -> Verdict:
    from haops.targets.drbd.status import CONNECTED, parse_drbdadm_status

    if not remote.file("/proc/drbd").exists:
        return "resources connected and up to date", "no DRBD kernel module on this host", SKIP
    status = remote.run("drbdadm status all")
    states = parse_drbdadm_status(status.stdout) if status.rc == 0 else []
    bad = [f"{s.name}: disk {'/'.join(s.disks) or '?'}" for s in states if not s.up_to_date]
    bad += [f"{s.name}: {c.peer} {c.state}" for s in states for c in s.connections if c.state != CONNECTED]
    ok = bool(states) and not bad
    return "resources connected and up to date", "; ".join(bad) or status.stdout.strip().replace("\n", " ")[:200], verdict(ok)


class DrbdTarget(Target):
    name = "drbd"
    secret_lines = (r'^\s*shared-secret\s+"([^"]*)"',)

    def review(self, inventory: Inventory) -> list[ProblemAt]:
        return [*((("drbd", r.name, *path), message) for r in inventory.drbd.values() for path, message in review_resource(r)),
                *mixed_version_problems(inventory)]

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        return adjust(files)

    def state_checks(self, inventory: Inventory, host: str) -> list[StateCheck]:
        return [StateCheck("DRBD state", host, connected_and_up_to_date)]

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        wanted = {node.host for resource in inventory.drbd.values() for node in resource.nodes}
        return tuple(name for name in inventory.hosts if name in wanted)

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        return [self._render_resource(inventory, resource) for resource in resources_on(inventory, host)]

    @staticmethod
    def _render_resource(inventory: Inventory, resource: DrbdResource) -> RenderedFile:
        text = render_template(
            TEMPLATES[resource.version],
            r=resource,
            hmac_algorithm=HMAC_ALGORITHM,
            verify_algorithm=VERIFY_ALGORITHM,
        )
        if resource.secret:
            return RenderedFile(config_path(resource), text, 0o600, (resource.secret,))
        return RenderedFile(config_path(resource), text, 0o644)

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        """`drbdadm dump` as the node itself (`__DRBD_NODE__`): drbdadm-84 for an 8.4 resource. Both
        only parse the file; neither needs the kernel module."""
        return [
            Check(v84.drbdadm(r), (v84.drbdadm(r), "-c", under(root, config_path(r)), "dump", r.name),
                  f"{v84.drbdadm(r).rsplit('/', 1)[-1]} dump {r.name} (as {host})", env=(("__DRBD_NODE__", host),))
            for r in resources_on(inventory, host)
        ]


TARGET = DrbdTarget()
