"""Planned operations: switchover (move a VIP, drain a backend) and failback (back to the inventory).

A switchover is a derived inventory applied with apply's whole safety net (checkers here and
on the host, atomic install, graceful reload, proof, rollback): the VIP's new holder gets the
highest priority, or the drained backend leaves the service. A balancer with a runtime API
(HAProxy) drains through it instead, without touching its configuration: drain (no new
connections), wait for the connections in flight, then maint. Failback applies the inventory
as written, which puts everything back where it says.
"""

from __future__ import annotations

import dataclasses
import time

from haops.drill.cluster import DrillCluster
from haops.errors import UserError
from haops.inventory.model import Inventory, Service, VrrpInstance
from haops.targets import get_target
from haops.targets.base import BalancerTarget
from haops.targets.daemon import DETECT_INIT, PLAIN

VRRP_PRIORITY_MAX = 254  # 255 is reserved for the address owner
MOVE_WAIT_S = 15


def instance_named(inventory: Inventory, name: str | None) -> VrrpInstance:
    if name is None and len(inventory.vrrp) == 1:
        return next(iter(inventory.vrrp.values()))
    if name not in inventory.vrrp:
        raise UserError(f"name the VRRP instance with --vrrp; instances: {', '.join(inventory.vrrp) or 'none'}")
    return inventory.vrrp[name]


def raised_priority(instance: VrrpInstance, new_master: str) -> VrrpInstance:
    """The new master one above the current highest priority (at most 254)."""
    top = max(priority for _, priority in instance.priorities)
    if top >= VRRP_PRIORITY_MAX and dict(instance.priorities)[new_master] < top:
        raise UserError(f"VRRP instance {instance.name}: the highest priority is already {top}; "
                        f"lower it in the inventory to leave room for a switchover")
    priorities = tuple((host, min(VRRP_PRIORITY_MAX, top + 1) if host == new_master else priority)
                       for host, priority in instance.priorities)
    return dataclasses.replace(instance, priorities=priorities)


def with_instance(inventory: Inventory, instance: VrrpInstance) -> Inventory:
    return dataclasses.replace(inventory, vrrp={**inventory.vrrp, instance.name: instance})


def move_vip(cluster: DrillCluster, instance: VrrpInstance, new_master: str) -> None:
    """Switchover by priority, then wait (bounded) until the new master alone holds the VIP."""
    if new_master not in instance.hosts:
        raise UserError(f"{new_master} is not a host of VRRP instance {instance.name} ({', '.join(instance.hosts)})")
    if instance.nopreempt:
        raise UserError(f"VRRP instance {instance.name} is nopreempt: a higher priority does not take the VIP, so a "
                        "lasting switchover means stopping keepalived on the holder (priority 0) and starting it again; "
                        "`haops drill switchover` measures exactly that, then gives the VIP back")
    cluster.apply_to(list(instance.hosts), with_instance(cluster.inventory, raised_priority(instance, new_master)))
    wait_for_holder(cluster, instance, new_master)


def wait_for_holder(cluster: DrillCluster, instance: VrrpInstance, host: str) -> None:
    deadline = time.monotonic() + MOVE_WAIT_S
    holders = cluster.holders(instance)
    while holders != [host] and time.monotonic() < deadline:
        time.sleep(0.2)
        holders = cluster.holders(instance)
    if holders != [host]:
        raise UserError(f"VRRP instance {instance.name}: after {MOVE_WAIT_S}s the VIP is held by "
                        f"{', '.join(holders) or 'no host'}, not {host}")


def without_backend(inventory: Inventory, service: Service, backend: str) -> Inventory:
    left = tuple(b for b in service.backends if b.host != backend)
    if len(left) == len(service.backends):
        raise UserError(f"{backend} is not a backend of {service.name} ({', '.join(b.host for b in service.backends)})")
    if not left:
        raise UserError(f"{backend} is {service.name}'s only backend; draining it would leave nothing to serve")
    return dataclasses.replace(inventory, services={**inventory.services, service.name: dataclasses.replace(service, backends=left)})


def drain_backend(cluster: DrillCluster, service: Service, backend: str) -> None:
    """No new connections to the backend, the ones in flight finish, then it is out (on every balancer)."""
    without_backend(cluster.inventory, service, backend)  # the same refusals for every balancer kind
    target = get_target(service.balancer)
    script = target.drain_script(service, backend) if isinstance(target, BalancerTarget) else None
    if script is None:
        cluster.apply_to(list(service.hosts), without_backend(cluster.inventory, service, backend))
        return
    for host in service.hosts:
        cluster.sh(host, script, timeout_s=60)


def give_back(cluster: DrillCluster, hosts: list[str]) -> None:
    """Failback: the inventory as written, applied to the hosts a switchover changed."""
    cluster.apply_to(hosts)


def home_of(instance: VrrpInstance) -> str:
    return max(instance.priorities, key=lambda pair: pair[1])[0]


def give_back_vip(cluster: DrillCluster, instance: VrrpInstance) -> None:
    """The inventory's priorities back on every node, then the VIP on its highest-priority node.
    With nopreempt nothing pulls it there, so the node holding it steps down cleanly (priority 0)."""
    give_back(cluster, list(instance.hosts))
    holders = cluster.wait_for_single_holder(instance, MOVE_WAIT_S)
    if instance.nopreempt and holders and holders[0] != home_of(instance):
        keepalived = get_target("keepalived").daemon
        assert keepalived is not None
        init = cluster.sh(holders[0], DETECT_INIT).strip() or PLAIN
        cluster.sh(holders[0], f"{keepalived.stop_command(init)}; ( {keepalived.until_stopped()} ) && {keepalived.start_command(init)}")
    wait_for_holder(cluster, instance, home_of(instance))


def undrain_backend(cluster: DrillCluster, service: Service, backend: str) -> None:
    target = get_target(service.balancer)
    script = target.ready_script(service, backend) if isinstance(target, BalancerTarget) else None
    for host in service.hosts:
        if script is not None:
            cluster.sh(host, script)
    give_back(cluster, list(service.hosts))
