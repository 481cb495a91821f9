"""The registry of technologies. Built-in targets are imported only when used; a test or a
plugin can add its own with `register`, touching no haops module.

The order is also the order in which apply makes targets live on a host: kernel settings
first (a DR real server ignores ARP for the VIP before lo holds it), then the backends'
responder, balancers, and VRRP last, so a host claims the address only once it can serve it."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from haops.inventory.model import Inventory
    from haops.targets.base import BalancerTarget, ProblemAt, Target

BUILT_IN = ("sysctl", "lvs-dr", "iptables", "lvs", "drbd", "postgresql", "responder", "haproxy", "nginx", "apache", "bind", "keepalived")
MODULES = {"lvs-dr": "lvs.dr"}  # a built-in target that lives inside another one's package
_added: list[Target] = []
T = TypeVar("T", bound="Target")


def target_names() -> tuple[str, ...]:
    return BUILT_IN + tuple(t.name for t in _added)


def get_target(name: str) -> Target:
    if name in BUILT_IN:
        target: Target = importlib.import_module(f"haops.targets.{MODULES.get(name, name)}").TARGET
        return target
    for target in _added:
        if target.name == name:
            return target
    from haops.errors import UserError

    raise UserError(f"unknown target {name!r}; targets: {', '.join(target_names())}")


def all_targets() -> list[Target]:
    return [get_target(name) for name in target_names()]


@contextmanager
def registered(target: T) -> Iterator[T]:
    """`target` is known to every stage while the block runs, activated after the built-in ones."""
    if target.name in target_names():
        raise ValueError(f"a target named {target.name!r} exists already")
    _added.append(target)
    try:
        yield target
    finally:
        _added.remove(target)


def balancers() -> dict[str, BalancerTarget]:
    from haops.targets.base import BalancerTarget

    return {t.name: t for t in all_targets() if isinstance(t, BalancerTarget)}


def targets_by_host(inventory: Inventory, hosts: Iterable[str] | None = None,
                    targets: Iterable[Target] | None = None) -> dict[str, list[Target]]:
    """Each host (in inventory order, limited to `hosts`) with the targets it runs (of `targets`,
    default all), in activation order."""
    wanted = set(inventory.hosts if hosts is None else hosts)
    by_host: dict[str, list[Target]] = {name: [] for name in inventory.hosts if name in wanted}
    for target in all_targets() if targets is None else targets:
        for host in target.hosts(inventory):
            if host in by_host:
                by_host[host].append(target)
    return {host: targets for host, targets in by_host.items() if targets}


def review_inventory(inventory: Inventory) -> tuple[Inventory, list[ProblemAt]]:
    """Every technology's problems with the inventory; when there are none, the inventory with
    every technology's resolved names filled in."""
    known = balancers()
    problems: list[ProblemAt] = [
        (("services", name, "balancer"), f"{service.balancer!r} is not a balancer; balancers: {', '.join(known)}")
        for name, service in inventory.services.items() if service.balancer not in known
    ]
    targets = all_targets()
    for target in targets:
        problems += target.review(inventory)
    if problems:
        return inventory, problems
    for target in targets:
        inventory = target.resolve(inventory)
    return inventory, []
