"""What every balancer does with the services it balances: their algorithm in its own words,
its option blocks checked, then its own rules."""

from __future__ import annotations

import dataclasses
from typing import Any

from haops.inventory.model import Inventory, Service
from haops.inventory.reader import unknown_key_message
from haops.inventory.services import SERVICE_KEYS
from haops.targets.base import BalancerTarget, ProblemAt


def review_services(balancer: BalancerTarget, inventory: Inventory) -> list[ProblemAt]:
    problems: list[ProblemAt] = []
    for name, service in inventory.services.items():
        if service.balancer == balancer.name:
            resolved, found = resolve_service(balancer, service)
            if not found:
                found = balancer.review_service(resolved)
            problems += [(("services", name, *path), message) for path, message in found]
    return problems


def resolve_services(balancer: BalancerTarget, inventory: Inventory) -> Inventory:
    services = {name: resolve_service(balancer, s)[0] if s.balancer == balancer.name else s
                for name, s in inventory.services.items()}
    return dataclasses.replace(inventory, services=services)


def resolve_service(balancer: BalancerTarget, service: Service) -> tuple[Service, list[ProblemAt]]:
    """The service with the balancer's method and checked options; or what is wrong with them."""
    method = balancer.algorithms.get(service.algorithm)
    problems: list[ProblemAt] = []
    if method is None:
        allowed = ", ".join(sorted(balancer.algorithms))
        problems.append((("algorithm",), f"{service.algorithm!r} is not an algorithm of {balancer.name}; allowed: {allowed}"))
    options, option_problems = checked_options(balancer, service)
    resolved = dataclasses.replace(service, method=method or "", options=options)
    return resolved, problems + option_problems


def checked_options(balancer: BalancerTarget, service: Service) -> tuple[dict[str, dict[str, Any]], list[ProblemAt]]:
    problems: list[ProblemAt] = []
    for block in service.options:
        if block not in balancer.option_blocks:
            problems.append(((block,), foreign_block_message(balancer, block)))
    options: dict[str, dict[str, Any]] = {}
    for block, fields in balancer.option_blocks.items():
        written = service.options.get(block, {})
        problems += [((block, key), unknown_key_message(key, list(fields))) for key in written if key not in fields]
        options[block] = {}
        for key, option in fields.items():
            try:
                options[block][key] = option.check(written[key]) if key in written else option.default
            except (ValueError, TypeError) as exc:
                problems.append(((block, key), str(exc)))
    return options, problems


def foreign_block_message(balancer: BalancerTarget, block: str) -> str:
    from haops.targets import balancers

    owners = [name for name, other in balancers().items() if block in other.option_blocks]
    if owners:
        return f"{block} options are read by balancer {' or '.join(owners)}; this service's balancer is {balancer.name}"
    return unknown_key_message(block, [*SERVICE_KEYS, *balancer.option_blocks])
