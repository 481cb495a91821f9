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
    unmeasured = {s.name: result for s, p in promised if (result := cannot_measure(ctx, s, p)) is not None}
    measurable = [(s, p) for s, p in promised if s.name not in unmeasured]
    checks: list[Callable[[], CheckResult | list[CheckResult]]] = [partial(_as_is, r) for r in unmeasured.values()]
    checks += [partial(behaviour.distribution, ctx, s, p) for s, p in measurable]
    checks += [partial(behaviour.stickiness, ctx, s) for s, _ in measurable if s.sticky == "cookie"]
    checks += [partial(behaviour.health, ctx, s) for s, p in measurable if p.dead_backend]
    for zone in ctx.inventory.zones.values():
        for server in zone.servers:
            checks.append(partial(behaviour.dns_rotation, ctx, zone, server))
        checks.append(partial(behaviour.dns_serials, ctx, zone))
    return checks


def cannot_measure(ctx: VerifyContext, service: Service, promise: TrafficPromise) -> CheckResult | None:
    """None when the balancer's traffic can be measured; else why not: a SKIP where it cannot show
    it (no ip_vs in the kernel, say), a FAIL where a balancer host could not even be asked."""
    if promise.requires is None:
        return None if promise.unsupported is None else unsupported(service, promise)
    test = f"if {promise.requires}; then echo yes; else echo no; fi"
    try:
        answers = [ctx.sh(host, test).strip() for host in service.hosts]
    except HostFailure as exc:
        return CheckResult("traffic", service.name, f"{service.balancer} balances", f"its hosts could not be asked: {exc}", FAIL)
    return None if all(answer == "yes" for answer in answers) else unsupported(service, promise)


def _as_is(result: CheckResult) -> CheckResult:
    return result


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
