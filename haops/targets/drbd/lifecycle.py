"""The DRBD lifecycle as data: facts in, guarded steps out (pyinfra style).

Each command is a pure function of the resource and every node's facts. It either refuses
(`Refused`, exit 2: what was found and what to do instead) or returns the plan, the drbdadm
steps in order, each on one host. Nothing here touches a host; the CLI gathers the facts and
runs the plan, and `--check` prints the plan and stops.

Before any plan, every node must be able to run DRBD at all (`NotReady`, exit 1): the kernel
module of the resource's version (9, or 8.4) loaded or loadable, drbd-utils installed, the
resource file written by apply.

The commands follow the DRBD 9 user's guide (LINBIT/linbit-documentation UG9):
  init                create-md on every node (never over data or metadata without --force), up
                      everywhere, then `primary --force` on the node the user names: the initial
                      full sync copies that node's disk to the others
  up, promote, demote drbdadm up / primary / secondary, with their preconditions checked first
  resolve-split-brain on the victim: disconnect, secondary, connect --discard-my-data; on each
                      survivor whose connection to the victim is StandAlone: disconnect, connect
                      (per connection, so a third node's replication is never interrupted)
  verify              drbdadm verify on one node, against every peer

An 8.4 resource runs the same drbdadm commands through /lib/drbd/drbdadm-84 (v84.py), with
one difference in resolve-split-brain: 8.4 has no per-peer connections (`disconnect RES:PEER` is
refused: "'r0:db2' not defined in your config"), and drbdsetup-84 refuses to disconnect a
StandAlone connection ("unknown connection"), so a StandAlone node is only connected again:
the victim with --discard-my-data after `secondary`, the survivor plainly (the 8.4 guide's recovery).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from haops.errors import UserError
from haops.inventory.model import DrbdResource
from haops.targets.drbd import v84
from haops.targets.drbd.facts import NodeFacts
from haops.targets.drbd.status import CONNECTED, HISTORY_DISKS, PRIMARY, STANDALONE, UP_TO_DATE, Connection, ResourceState, split_brain

SUPPORTED_MAJOR = 9


class NotReady(UserError):
    """A host cannot run DRBD at all: no kernel module, no drbd-utils, no resource file. The
    request was fine; the hosts are not, so this is a failure (exit 1), not a usage error."""

    exit_code = 1


class StepFailed(UserError):
    """A drbdadm step failed on a host; the steps after it did not run (exit 1)."""

    exit_code = 1


class Refused(UserError):
    """A guard said no: going on would lose data or do something the user did not ask for."""


@dataclass(frozen=True)
class Step:
    host: str
    argv: tuple[str, ...]
    why: str

    @property
    def script(self) -> str:
        return shlex.join(self.argv)


Facts = Mapping[str, NodeFacts]


def drbdadm(resource: DrbdResource, host: str, why: str, *args: str) -> Step:
    """A drbdadm step, by the drbdadm of the resource's DRBD version."""
    return Step(host, (v84.drbdadm(resource), *args), why)


def hosts_of(resource: DrbdResource) -> list[str]:
    return [node.host for node in resource.nodes]


def peers_of(resource: DrbdResource, host: str) -> list[str]:
    return [h for h in hosts_of(resource) if h != host]


def node_named(resource: DrbdResource, host: str, option: str) -> str:
    if host not in hosts_of(resource):
        raise Refused(f"{option} {host}: not a node of DRBD resource {resource.name} "
                      f"(nodes: {', '.join(hosts_of(resource))})")
    return host


# --- readiness -------------------------------------------------------------------------------------

def module_problem(facts: NodeFacts, resource: DrbdResource) -> str | None:
    module = facts.module
    if module.state == "missing":
        return f"no DRBD kernel module: {module.detail}"
    if module.version is None:
        return None
    found_84 = module.version.startswith(v84.VERSION + ".")
    major = module.version.split(".")[0]
    if v84.is_84(resource) and not found_84:
        return (f"the kernel's DRBD module is {module.version} ({module.state}), and {resource.name} is an 8.4 "
                f"resource (version: \"8.4\" in the inventory): set its version to {major} and apply again")
    if not v84.is_84(resource) and major.isdigit() and int(major) < SUPPORTED_MAJOR:
        hint = ('set version: "8.4" for the resource in the inventory and apply again, or ' if found_84 else ""
                ) + "install the DRBD 9 module (drbd-dkms from LINBIT)"
        return (f"the kernel's DRBD module is {module.version} ({module.state}); {resource.name} is a DRBD 9 "
                f"resource (node-id, connection-mesh): {hint}")
    return None


def readiness_problems(facts: NodeFacts, resource: DrbdResource) -> list[str]:
    problems = [p for p in [module_problem(facts, resource)] if p]
    if not facts.utils:
        problems.append("drbd-utils is not installed (no drbdadm)")
    elif not facts.configured:
        problems.append(f"drbdadm knows no resource {resource.name} for this host: run `haops apply` first "
                        f"(it writes /etc/drbd.d/{resource.name}.res)")
    return problems


def require_ready(resource: DrbdResource, facts: Facts, unreachable: Mapping[str, str] | None = None) -> None:
    """Refuse to start unless every node can run DRBD; one screen naming each host and what it lacks."""
    lines = [f"  {host}: {why}" for host, why in (unreachable or {}).items()]
    for host in hosts_of(resource):
        if host in facts:
            lines += [f"  {host}: {problem}" for problem in readiness_problems(facts[host], resource)]
    if lines:
        raise NotReady("\n".join([f"DRBD resource {resource.name} cannot be managed on these hosts:", *lines,
                                  "Nothing was changed. DRBD needs its kernel module on every node; lab hosts share "
                                  "this machine's kernel, so use VMs (inventories/vagrant.yml) or real servers."]))


# --- init ------------------------------------------------------------------------------------------

def found_on_disk(facts: NodeFacts, disk: str) -> list[str]:
    """What the backing disk holds, in words; empty when it holds nothing haops can see."""
    found = []
    meta = facts.metadata
    if meta is not None and meta.valid:
        detail = f"current UUID {meta.current_uuid:016X}" if meta.current_uuid is not None else meta.message
        kind = "replicated data (it has synced before)" if meta.has_history else "fresh, never synced"
        found.append(f"valid DRBD metadata on {disk} ({detail}; {kind})")
    signature = facts.signature
    if signature.get("TYPE") and signature.get("TYPE") != "drbd":
        label = f" labelled {signature['LABEL']!r}" if signature.get("LABEL") else ""
        found.append(f"a {signature['TYPE']} {signature.get('USAGE', 'signature')}{label} on {disk}")
    if signature.get("PTTYPE"):
        found.append(f"a {signature['PTTYPE']} partition table on {disk}")
    return found


def history(resource: DrbdResource, facts: Facts) -> list[str]:
    """Why the resource has synced before, per node: disk states only a synced node reaches, or
    generation identifiers beyond those of fresh metadata."""
    reasons = []
    for host in hosts_of(resource):
        node = facts[host]
        if node.state is not None and any(d in HISTORY_DISKS for d in node.state.disks):
            reasons.append(f"{host} is up with disk {'/'.join(node.state.disks)}")
        elif node.state is not None and any(v.peer_disk == UP_TO_DATE for c in node.state.connections for v in c.volumes):
            reasons.append(f"{host} sees an UpToDate peer")
        elif node.metadata is not None and node.metadata.has_history:
            reasons.append(f"{host}'s metadata has generation identifiers (current UUID {node.metadata.current_uuid or 0:016X})")
    return reasons


def init_plan(resource: DrbdResource, facts: Facts, initial_primary: str | None, force: bool) -> list[Step]:
    require_ready(resource, facts)
    if initial_primary is not None:
        node_named(resource, initial_primary, "--initial-primary")
        synced = history(resource, facts)
        if synced:
            raise Refused("\n".join([
                f"refusing a second forced initial sync of {resource.name}: it has synced before", *[f"  {r}" for r in synced],
                f"`primary --force` on {initial_primary} would overwrite the other nodes with its data. "
                f"To make {initial_primary} primary use `haops drbd promote {resource.name} {initial_primary}`; to start "
                f"over for real, wipe the metadata on every node (`drbdadm wipe-md {resource.name}`) and init again."]))
    steps: list[Step] = []
    problems: list[str] = []
    for node in resource.nodes:
        host, facts_here = node.host, facts[node.host]
        if facts_here.state is not None:
            problems.append(f"  {host}: {resource.name} is already up there (disk {'/'.join(facts_here.state.disks) or '?'})"
                            f"; init is for a new resource (to start over: `drbdadm down {resource.name}` first)")
            continue
        if not facts_here.block_device:
            problems.append(f"  {host}: {node.disk} is not a block device")
            continue
        found = found_on_disk(facts_here, node.disk)
        if found and not force:
            problems += [f"  {host}: {what}" for what in found]
            continue
        if found:
            steps.append(drbdadm(resource, host, f"overwrite ({'; '.join(found)}) as --force asks", "create-md", "--force", resource.name))
        else:
            steps.append(drbdadm(resource, host, f"{node.disk} holds no data or metadata", "create-md", resource.name))
    if problems:
        hint = "" if force else ("\nNothing was changed. If that data is not wanted, run again with --force "
                                 "(create-md overwrites it).")
        raise Refused("\n".join([f"init of {resource.name} refused:", *problems]) + hint)
    steps += [drbdadm(resource, host, "attach the disk and connect to the peers", "up", resource.name) for host in hosts_of(resource)]
    if initial_primary is not None:
        steps.append(drbdadm(resource, initial_primary, "the initial full sync copies this node's disk to every peer (your choice)",
                             "primary", "--force", resource.name))
    return steps


# --- up, promote, demote ---------------------------------------------------------------------------

def up_plan(resource: DrbdResource, facts: Facts) -> list[Step]:
    require_ready(resource, facts)
    steps = []
    for host in hosts_of(resource):
        node = facts[host]
        if node.state is not None:
            continue
        steps.append(drbdadm(resource, host, "attach the disk and connect to the peers", "up", resource.name))
    return steps


def primaries(resource: DrbdResource, facts: Facts) -> list[str]:
    return [h for h in hosts_of(resource) if (state := facts[h].state) is not None and state.role == PRIMARY]


def promote_plan(resource: DrbdResource, facts: Facts, host: str) -> list[Step]:
    require_ready(resource, facts)
    node_named(resource, host, "promote")
    state = facts[host].state
    if state is None:
        raise Refused(f"{resource.name} is not up on {host}: `haops drbd up {resource.name}` first")
    if state.role == PRIMARY:
        return []
    if not state.up_to_date:
        raise Refused(f"{host}'s disk is {'/'.join(state.disks) or 'absent'}, not UpToDate: promoting it would serve "
                      f"stale or partial data. Wait for the sync (`haops drbd status`), or promote an UpToDate node.")
    others = [h for h in primaries(resource, facts) if h != host]
    if others and not resource.allow_two_primaries:
        raise Refused(f"{', '.join(others)} is Primary for {resource.name}; two primaries are not allowed: "
                      f"`haops drbd demote {resource.name} {others[0]}` first")
    return [drbdadm(resource, host, "make this node the one that writes", "primary", resource.name)]


def demote_plan(resource: DrbdResource, facts: Facts, host: str | None) -> list[Step]:
    require_ready(resource, facts)
    targets = [node_named(resource, host, "demote")] if host else primaries(resource, facts)
    steps = []
    for target in targets:
        state = facts[target].state
        if state is None or state.role != PRIMARY:
            continue
        if state.open:
            raise Refused(f"{target}: {resource.name}'s device is open (mounted or in use); DRBD cannot demote it. "
                          "Stop what uses it (umount) first.")
        steps.append(drbdadm(resource, target, "stop writing here", "secondary", resource.name))
    return steps


# --- split brain -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitBrainView:
    """How much each side changed while apart, before anything is discarded."""

    victim: str
    survivors: tuple[str, ...]
    victim_changes_kib: int      # the victim's writes, thrown away
    survivor_changes_kib: int    # the survivors' writes, copied to the victim
    evidence: tuple[str, ...]


def had_history(facts: NodeFacts) -> bool:
    """Every disk of the node is one that has been in sync (none Inconsistent, mid-resync)."""
    state = facts.state
    return state is not None and bool(state.disks) and all(disk in HISTORY_DISKS for disk in state.disks)


def connection_to(facts: NodeFacts, peer: str) -> Connection | None:
    return facts.state.connection(peer) if facts.state is not None else None


def split_brain_view(resource: DrbdResource, facts: Facts, victim: str) -> SplitBrainView:
    node_named(resource, victim, "--victim")
    if facts[victim].state is None:
        raise Refused(f"{resource.name} is not up on {victim}; nothing to resolve there")
    survivors, evidence, victim_kib, survivor_kib = [], [], 0, 0
    for peer in peers_of(resource, victim):
        theirs, ours = connection_to(facts[peer], victim), connection_to(facts[victim], peer)
        said = [f"{side}: connection to {other} {c.state}, DRBD reported split brain"
                for side, other, c in ((victim, peer, ours), (peer, victim, theirs)) if c is not None and split_brain(c)]
        ours_kib, theirs_kib = (ours.out_of_sync_kib if ours else 0), (theirs.out_of_sync_kib if theirs else 0)
        apart = all(c is not None and c.state != CONNECTED for c in (ours, theirs))
        # an interrupted resync also leaves blocks out of sync both ways, but its target is Inconsistent
        whole = all(had_history(facts[node]) for node in (victim, peer))
        if apart and whole and ours_kib > 0 and theirs_kib > 0:
            said.append(f"{victim} and {peer} both wrote while apart ({ours_kib} KiB and {theirs_kib} KiB out of sync)")
        if said:
            survivors.append(peer)
            evidence += said
            victim_kib += ours_kib
            survivor_kib += theirs_kib
    if not survivors:
        states = ", ".join(f"{p} {c.state}" for p in peers_of(resource, victim) if (c := connection_to(facts[victim], p)))
        raise Refused(f"no split brain between {victim} and its peers ({states or 'no connections'}); "
                      "nothing to resolve, and --discard-my-data would only risk data. See `haops drbd status`.")
    return SplitBrainView(victim, tuple(survivors), victim_kib, survivor_kib, tuple(evidence))


def resolve_plan(resource: DrbdResource, facts: Facts, victim: str) -> tuple[SplitBrainView, list[Step]]:
    require_ready(resource, facts)
    view = split_brain_view(resource, facts, victim)
    state = facts[victim].state
    if state is not None and state.role == PRIMARY and state.open:
        raise Refused(f"{victim} is Primary and its device is open (mounted or in use): it cannot become Secondary "
                      "to discard its data. Stop what uses it there first.")
    steps = [] if standalone_84(resource, state) else [
        drbdadm(resource, victim, "drop every connection of the victim", "disconnect", resource.name)]
    steps += [drbdadm(resource, victim, "the victim must not be primary", "secondary", resource.name),
              drbdadm(resource, victim, "reconnect, discarding the victim's changes since the split", "connect",
                      "--discard-my-data", resource.name)]
    for survivor in view.survivors:
        theirs = connection_to(facts[survivor], victim)
        if theirs is not None and theirs.state == STANDALONE:
            steps += survivor_reconnect(resource, survivor, victim)
    return view, steps


def standalone_84(resource: DrbdResource, state: ResourceState | None) -> bool:
    """An 8.4 node whose one connection is StandAlone: there is nothing to disconnect, and
    drbdsetup-84 refuses to ("unknown connection", exit 10; seen on the VMs)."""
    return v84.is_84(resource) and state is not None and any(c.state == STANDALONE for c in state.connections)


def survivor_reconnect(resource: DrbdResource, survivor: str, victim: str) -> list[Step]:
    """A StandAlone survivor connects again; DRBD 9 resets just its connection to the victim
    first, an 8.4 node has only the one connection and nothing to disconnect."""
    if v84.is_84(resource):
        return [drbdadm(resource, survivor, f"reconnect to {victim}; its data is resynced from here", "connect", resource.name)]
    target = f"{resource.name}:{victim}"
    return [drbdadm(resource, survivor, f"reset only the connection to {victim}", "disconnect", target),
            drbdadm(resource, survivor, f"reconnect to {victim}; its data is resynced from here", "connect", target)]


# --- verify ----------------------------------------------------------------------------------------

def verify_plan(resource: DrbdResource, facts: Facts, host: str | None) -> list[Step]:
    require_ready(resource, facts)
    source = node_named(resource, host, "--host") if host else hosts_of(resource)[0]
    state = facts[source].state
    if state is None:
        raise Refused(f"{resource.name} is not up on {source}: `haops drbd up {resource.name}` first")
    busy = [f"{c.peer} {c.state}" + (" (syncing)" if c.syncing else "") for c in state.connections
            if c.state != CONNECTED or c.syncing or c.verifying]
    if busy:
        raise Refused(f"online verify needs every connection of {source} Connected and in sync; now: {', '.join(busy)}")
    return [drbdadm(resource, source, "compare every block with each peer by digest (verify-alg)", "verify", resource.name)]


def describe(steps: Iterable[Step]) -> list[str]:
    return [f"{s.host}: {s.script}   # {s.why}" for s in steps]
