"""Run every verification for an inventory: state on each host, then traffic, one check at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from haops.inventory.model import Inventory, Service
from haops.session import running_lab
from haops.transport import HostFailure, SshSettings
from haops.targets.base import TrafficPromise
from haops.verify import behaviour
from haops.verify.context import NO_SOURCE, VerifyContext, check_source
from haops.verify.result import FAIL, SKIP, CheckResult
from haops.verify.state import state_checks

Progress = Callable[[str], None]


def traffic_checks(ctx: VerifyContext) -> list[Callable[[], CheckResult | list[CheckResult]]]:
    """Undisturbed measurements first (splits, then cookies), failures last, so no fault skews a split."""
    promised = [(s, behaviour.promised(s)) for s in ctx.inventory.services.values()]
    measurable = [(s, p) for s, p in promised if can_measure(ctx, s, p)]
    checks: list[Callable[[], CheckResult | list[CheckResult]]] = [
        partial(unsupported, s, p) for s, p in promised if (s, p) not in measurable]
    checks += [partial(behaviour.distribution, ctx, s, p) for s, p in measurable]
    checks += [partial(behaviour.stickiness, ctx, s) for s, _ in measurable if s.sticky == "cookie"]
    checks += [partial(behaviour.health, ctx, s) for s, p in measurable if p.dead_backend]
    for zone in ctx.inventory.zones.values():
        for server in zone.servers:
            checks.append(partial(behaviour.dns_rotation, ctx, zone, server))
        checks.append(partial(behaviour.dns_serials, ctx, zone))
    return checks


def can_measure(ctx: VerifyContext, service: Service, promise: TrafficPromise) -> bool:
    """The balancer promises traffic it can show: unconditionally, or where its hosts pass its test."""
    if promise.requires is None:
        return promise.unsupported is None
    test = f"if {promise.requires}; then echo yes; else echo no; fi"
    try:
        return all(ctx.sh(host, test).strip() == "yes" for host in service.hosts)
    except HostFailure:
        return False


def unsupported(service: Service, promise: TrafficPromise) -> CheckResult:
    return CheckResult("traffic", service.name, f"{service.balancer} balances", str(promise.unsupported), SKIP)


def guarded(check: Callable[[], CheckResult | list[CheckResult]]) -> list[CheckResult]:
    started = time.monotonic()
    try:
        outcome = check()
    except HostFailure as exc:
        return [CheckResult("traffic", "probe", "the probe runs", str(exc), FAIL, time.monotonic() - started)]
    return outcome if isinstance(outcome, list) else [outcome]


def no_source_note(inventory: Inventory, source: str | None) -> str | None:
    """Said once, at the top, when there is nowhere to send traffic from (and it is not sent)."""
    if source is not None or inventory.group("client") or not (inventory.services or inventory.zones):
        return None
    return NO_SOURCE


def verify(inventory: Inventory, settings: SshSettings, faults: bool | None = None,
           progress: Progress = lambda _: None, source: str | None = None) -> list[CheckResult]:
    """`faults`: allow stopping backends and slowing links; default: only inside a running lab.
    `source`: where traffic goes from (a host, or "local"); default: the first host in group 'client'."""
    lab = running_lab(inventory)
    ctx = VerifyContext(inventory, settings, lab, lab is not None if faults is None else faults,
                        source=check_source(inventory, source))
    progress("state checks")
    results = state_checks(inventory, settings, list(inventory.hosts))
    if no_source_note(inventory, source) is not None:
        return results + [CheckResult("traffic", "all services", "measured traffic", "not sent: no traffic source "
                                      "(see the note above)", SKIP)]
    try:
        for check in traffic_checks(ctx):
            progress("traffic checks")
            results += guarded(check)
    finally:
        ctx.close()
    return results
