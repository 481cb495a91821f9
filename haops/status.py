"""What `haops status` and apply's VIP wait share: the cluster's live VRRP and backend state,
read through each target, and what counts as a problem in it.

A VRRP instance is settled when exactly one of its hosts is MASTER, that host alone holds the
VIP, and (with preempt) no BACKUP outside FAULT outranks it, since that one is about to take
over. Two MASTERs is a split brain: the hosts cannot hear each other's adverts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from haops.inventory.model import Inventory, VrrpInstance
from haops.targets import targets_by_host
from haops.targets.base import (
    ALL_BACKENDS,
    DOWN,
    UNKNOWN,
    BackendState,
    BalancerTarget,
    HostRun,
    VrrpNode,
    services_on,
)
from haops.transport import Connections, HostFailure

MASTER, BACKUP = "MASTER", "BACKUP"
READERS = 8
T = TypeVar("T")


@dataclass(frozen=True)
class VipView:
    """One VRRP instance on every host it names."""

    instance: VrrpInstance
    nodes: tuple[VrrpNode, ...]

    @property
    def masters(self) -> list[str]:
        return [n.host for n in self.nodes if n.state == MASTER]

    @property
    def holders(self) -> list[str]:
        return [n.host for n in self.nodes if n.holds_vip]

    @property
    def holder(self) -> str | None:
        """The one MASTER holding the VIP, when the instance is settled."""
        return self.masters[0] if self.problem is None else None

    @property
    def unreadable(self) -> list[VrrpNode]:
        return [n for n in self.nodes if n.state is None]

    @property
    def problem(self) -> str | None:
        return vip_problem(self)


def describe(node: VrrpNode) -> str:
    if node.state is None:
        return f"{node.host} unreadable ({node.error})"
    return f"{node.host} {node.state} (priority {node.effective_priority})"


def held_by(view: VipView) -> str:
    holders = view.holders
    return f"{view.instance.vip.ip} held by {', '.join(holders) if holders else 'nobody'}"


def vip_problem(view: VipView) -> str | None:
    """Why the instance is not settled, naming the hosts; None when it is."""
    name, masters = view.instance.name, view.masters
    if view.unreadable:
        return f"{name}: {'; '.join(describe(n) for n in view.unreadable)}"
    if len(masters) > 1:
        return f"{name}: split brain, {len(masters)} MASTERs: {', '.join(masters)}; {held_by(view)}"
    if not masters:
        return f"{name}: no MASTER: {', '.join(describe(n) for n in view.nodes)}; {held_by(view)}"
    if view.holders != masters:
        return f"{name}: {masters[0]} is MASTER but {held_by(view)}"
    return pending_preemption(view)


def pending_preemption(view: VipView) -> str | None:
    """With preempt, a BACKUP that outranks the MASTER takes over within an advert or so."""
    if view.instance.nopreempt:
        return None
    master = next(n for n in view.nodes if n.state == MASTER)
    higher = [n for n in view.nodes if n.state == BACKUP and (n.effective_priority or 0) > (master.effective_priority or 0)]
    if not higher:
        return None
    return (f"{view.instance.name}: {describe(master)} is MASTER while {', '.join(describe(n) for n in higher)} "
            f"outranks it; with preempt it should take over")


# --- reading ------------------------------------------------------------------------------------------


def unreadable_nodes(inventory: Inventory, host: str, why: str) -> list[VrrpNode]:
    return [VrrpNode(i.name, host, None, error=why) for i in inventory.vrrp.values() if host in i.hosts]


def vrrp_nodes_on(inventory: Inventory, host: str, run: HostRun) -> list[VrrpNode]:
    try:
        return [node for target in targets_by_host(inventory, [host]).get(host, []) for node in target.vrrp_nodes(inventory, host, run)]
    except HostFailure as exc:
        return unreadable_nodes(inventory, host, str(exc))


def backend_states_on(inventory: Inventory, host: str, run: HostRun) -> list[BackendState]:
    states: list[BackendState] = []
    for target in targets_by_host(inventory, [host]).get(host, []):
        if isinstance(target, BalancerTarget):
            try:
                states += target.backend_states(inventory, host, run)
            except HostFailure as exc:
                states += [BackendState(s.name, host, ALL_BACKENDS, UNKNOWN, str(exc)) for s in services_on(inventory, target.name, host)]
    return states


def in_parallel(hosts: Iterable[str], read: Callable[[str], list[T]]) -> list[T]:
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        return [item for items in pool.map(read, hosts) for item in items]


def vrrp_hosts(instances: Iterable[VrrpInstance]) -> list[str]:
    return list(dict.fromkeys(h for i in instances for h in i.hosts))


def read_vips(inventory: Inventory, instances: list[VrrpInstance], connections: Connections) -> list[VipView]:
    """Each instance as its hosts report it now: one command per host, hosts in parallel."""
    nodes = in_parallel(vrrp_hosts(instances), lambda host: vrrp_nodes_on(inventory, host, connections.runner(host)))
    return [VipView(i, tuple(n for n in nodes if n.instance == i.name)) for i in instances]


# --- the whole cluster --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterStatus:
    vips: list[VipView]
    backends: list[BackendState]

    @property
    def problems(self) -> list[str]:
        vips = [v.problem for v in self.vips if v.problem]
        backends = [f"{b.service} on {b.host}: {'every backend' if b.backend == ALL_BACKENDS else b.backend} {b.state}"
                    + (f" ({b.detail})" if b.detail else "") for b in self.backends if b.state in (DOWN, UNKNOWN)]
        return vips + backends


def balancer_hosts(inventory: Inventory) -> list[str]:
    return list(dict.fromkeys(h for s in inventory.services.values() for h in s.hosts))


def read_status(inventory: Inventory, connections: Connections) -> ClusterStatus:
    vips = read_vips(inventory, list(inventory.vrrp.values()), connections)
    backends = in_parallel(balancer_hosts(inventory), lambda host: backend_states_on(inventory, host, connections.runner(host)))
    order = {name: n for n, name in enumerate(inventory.services)}
    return ClusterStatus(vips, sorted(backends, key=lambda b: order.get(b.service, len(order))))


def as_json(status: ClusterStatus) -> dict[str, Any]:
    vips = [{"instance": v.instance.name, "vip": v.instance.vip.with_prefixlen, "holder": v.holder, "problem": v.problem,
             "nodes": [{k: value for k, value in asdict(n).items() if k != "instance"} for n in v.nodes]} for v in status.vips]
    return {"ok": not status.problems, "problems": status.problems, "vips": vips,
            "backends": [asdict(b) for b in status.backends]}
