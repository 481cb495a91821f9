"""`haops drbd status`: every node's view of a resource, what counts as a problem, a Rich table and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from haops.inventory.model import DrbdResource
from haops.targets.drbd.facts import NodeFacts
from haops.targets.drbd.lifecycle import hosts_of, readiness_problems
from haops.targets.drbd.status import CONNECTED, PRIMARY, UP_TO_DATE, Connection, split_brain

if TYPE_CHECKING:
    from rich.table import Table


@dataclass(frozen=True)
class ResourceView:
    resource: DrbdResource
    facts: dict[str, NodeFacts]
    unreachable: dict[str, str]

    def not_ready(self, host: str) -> list[str]:
        if host in self.unreachable:
            return [self.unreachable[host]]
        return readiness_problems(self.facts[host], self.resource)

    @property
    def problems(self) -> list[str]:
        name, found = self.resource.name, []
        for host in hosts_of(self.resource):
            missing = self.not_ready(host)
            if missing:
                found += [f"{name} on {host}: {m}" for m in missing]
                continue
            state = self.facts[host].state
            if state is None:
                found.append(f"{name} on {host}: not up")
                continue
            found += [f"{name} on {host}: {connection_problem(c)}" for c in state.connections if connection_problem(c)]
        primaries = [h for h in hosts_of(self.resource) if (s := self.facts.get(h)) and s.state and s.state.role == PRIMARY]
        if len(primaries) > 1 and not self.resource.allow_two_primaries:
            found.append(f"{name}: {len(primaries)} primaries ({', '.join(primaries)}) without allow_two_primaries")
        readable = [self.facts[h].state for h in hosts_of(self.resource) if h in self.facts and self.facts[h].state]
        if readable and not any(s.up_to_date for s in readable if s):
            found.append(f"{name}: no node has UpToDate data")
        return found


def connection_problem(connection: Connection) -> str | None:
    if split_brain(connection):
        return (f"split brain with {connection.peer}: DRBD dropped the connection (StandAlone); choose the node "
                f"whose changes are lost: `haops drbd resolve-split-brain RES --victim HOST`")
    if connection.state != CONNECTED:
        return f"connection to {connection.peer} {connection.state}"
    return None


def sync_text(connection: Connection) -> str:
    parts = []
    for volume in connection.volumes:
        if volume.done is not None:
            rate = f" at {volume.rate_mib_s:.1f} MiB/s" if volume.rate_mib_s is not None else ""
            eta = f", {volume.eta_s} s left" if volume.eta_s is not None else ""
            parts.append(f"{volume.done:.1f}%{rate}{eta}")
    return "; ".join(parts)


def table(view: ResourceView) -> Table:
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=f"DRBD {view.resource.name}")
    for column in ("node", "role", "disk", "peer", "connection", "peer role", "replication", "peer disk", "sync",
                   "out of sync"):
        grid.add_column(column)
    for host in hosts_of(view.resource):
        missing = view.not_ready(host)
        state = view.facts[host].state if host in view.facts else None
        if missing or state is None:
            grid.add_row(host, "-", "-", "", Text("; ".join(missing) or "not up", "bold red"))
            continue
        disk = Text("/".join(state.disks) or "Diskless", "green" if state.up_to_date else "yellow")
        rows = state.connections or (None,)
        for n, c in enumerate(rows):
            own = (host, state.role, disk) if n == 0 else ("", "", Text(""))
            if c is None:
                grid.add_row(*own)
                continue
            style = "bold red" if split_brain(c) else ("green" if c.state == CONNECTED else "yellow")
            grid.add_row(*own, c.peer, Text("split brain" if split_brain(c) else c.state, style), c.role,
                         "/".join(v.replication for v in c.volumes), "/".join(v.peer_disk for v in c.volumes),
                         sync_text(c), f"{c.out_of_sync_kib} KiB" if any(v.out_of_sync_kib is not None for v in c.volumes) else "")
    return grid


def as_json(views: list[ResourceView]) -> dict[str, Any]:
    resources = []
    for view in views:
        nodes = []
        for host in hosts_of(view.resource):
            state = view.facts[host].state if host in view.facts else None
            nodes.append({"host": host, "not_ready": view.not_ready(host),
                          "state": None if state is None else {**asdict(state), "split_brain": [
                              c.peer for c in state.connections if split_brain(c)]}})
        resources.append({"resource": view.resource.name, "problems": view.problems, "nodes": nodes})
    problems = [p for v in views for p in v.problems]
    return {"ok": not problems, "problems": problems, "resources": resources}


def up_to_date_everywhere(view: ResourceView) -> bool:
    states = [view.facts[h].state for h in hosts_of(view.resource) if h in view.facts]
    return all(s is not None and all(d == UP_TO_DATE for d in s.disks) for s in states)
