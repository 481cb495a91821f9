"""Registry of technology modules, imported only when used."""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from haops.inventory.model import Service
    from haops.targets.base import ProblemAt, Target

# Also the order in which apply makes them live on a host: kernel settings first, then
# the backends' responder, balancers, and VRRP last so a host claims the address only
# once it can serve it.
TARGET_NAMES = ("sysctl", "iptables", "lvs", "drbd", "responder", "haproxy", "nginx", "apache", "bind", "keepalived")


def get_target(name: str) -> Target:
    if name not in TARGET_NAMES:
        from haops.errors import UserError

        raise UserError(f"unknown target {name!r}; targets: {', '.join(TARGET_NAMES)}")
    return importlib.import_module(f"haops.targets.{name}").TARGET


def all_targets() -> list[Target]:
    return [get_target(name) for name in TARGET_NAMES]


def review_service(service: Service) -> tuple[Service, list[ProblemAt]]:
    """Map the algorithm to the balancer's own name, then let the balancer judge the service."""
    module = importlib.import_module(f"haops.targets.{service.balancer}")
    native = module.ALGORITHMS.get(service.algorithm)
    if native is None:
        allowed = ", ".join(sorted(module.ALGORITHMS))
        return service, [(("algorithm",), f"{service.algorithm!r} is not an algorithm of {service.balancer}; allowed: {allowed}")]
    service = dataclasses.replace(service, algorithm=native)
    problems = list(module.review(service))
    if service.backends and all(b.backup for b in service.backends):
        problems.append((("backends",), "every backend is a backup: nothing would serve until one fails; mark at least one active"))
    return service, problems
