"""Behaviour checks: real traffic through each balancer, measured against the algorithm's promise."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network

from haops.inventory.model import Service, Zone, endpoint
from haops.targets.base import AFFINITY, LEAST, SPLIT, TrafficPromise
from haops.verify import expect
from haops.verify.context import LOCAL, VerifyContext
from haops.verify.probes import (
    Response,
    by_backend,
    dig_loop,
    http_loop,
    parse_answers,
    parse_responses,
    parse_serial,
    soa_serial,
)
from haops.verify.result import FAIL, PASS, SKIP, CheckResult, timed, verdict

MIN_REQUESTS = 12
MAX_HEALTH_REQUESTS = 300  # 30 s of requests at most, whatever the inventory's detection time
FAULT_DELAY_MS = 150


def url(service: Service, path: str = "/") -> str:
    return f"http://{endpoint(service.vip, service.port)}{path}"


def weights(service: Service) -> dict[str, int]:
    return {b.host: b.weight for b in service.backends if not b.backup}


# --- distribution -------------------------------------------------------------------------------


def promised(service: Service) -> TrafficPromise:
    """What the service's balancer promises its algorithm shows in traffic."""
    from haops.targets import balancers

    return balancers()[service.balancer].traffic(service)


def distribution(ctx: VerifyContext, service: Service, promise: TrafficPromise | None = None) -> CheckResult:
    promise = promise or promised(service)
    if promise.distribution == SPLIT:
        return timed("split", service.name, lambda: exact_split(ctx, service, promise.tolerance))
    if promise.distribution == AFFINITY:
        return timed("affinity", service.name, lambda: affinity(ctx, service, promise))
    if promise.distribution == LEAST:
        return timed("least connections", service.name, lambda: least_connections(ctx, service))
    return timed("spread", service.name, lambda: spread(ctx, service))


def settle(ctx: VerifyContext, service: Service, attempts: int = 10) -> bool:
    """Wait (bounded) until every backend answers through the balancer: a health check that
    failed under load a moment ago must not be measured as a skewed split."""
    wanted = set(weights(service))
    for _ in range(attempts):
        seen = by_backend(parse_responses(ctx.sh(ctx.clients[0], http_loop(url(service), 2 * len(wanted)))))
        if set(seen) == wanted:
            return True
        time.sleep(0.5)
    return False


def exact_split(ctx: VerifyContext, service: Service, tolerance: int) -> tuple[str, str, str]:
    shares = weights(service)
    settled = settle(ctx, service)
    requests = expect.cycle(shares) * math.ceil(MIN_REQUESTS / expect.cycle(shares))
    responses = parse_responses(ctx.sh(ctx.clients[0], http_loop(url(service), requests)))
    observed = by_backend(responses)
    failed = sum(not r.ok for r in responses)
    expected = expect.describe(expect.exact_split(shares, requests)) + (" (each within 1)" if tolerance else " exactly")
    text = expect.describe(observed) + (f", {failed} failed" if failed else "")
    text += "" if settled else " (a backend was out of rotation before measuring)"
    passed = expect.split_matches(shares, observed, requests, tolerance) and not failed
    return f"{expected}, {requests} new connections", text, verdict(passed)


def affinity(ctx: VerifyContext, service: Service, promise: TrafficPromise) -> tuple[str, str, str]:
    per_client: dict[str, Counter[str]] = {}
    with extra_sources(ctx, promise.hashed_key) as sources:
        for variant, (host, script) in affinity_probes(ctx, service, promise.hashed_key, sources).items():
            per_client[variant] = by_backend(parse_responses(ctx.sh(host, script)))
    stays = expect.affinity_holds(per_client)
    distinct = expect.spread(per_client)
    observed = "; ".join(f"{variant}: {expect.describe(c)}" for variant, c in per_client.items())
    if promise.key_prefix is not None:
        networks = {ip_network(f"{v}/{promise.key_prefix}", strict=False) for v in per_client}
        return (f"each /{promise.key_prefix} of clients on one backend (the balancer keys on the /{promise.key_prefix})",
                observed, verdict(stays and distinct <= len(networks)))
    wants_spread = min(len(per_client), len(weights(service))) >= 2
    passed = stays and (distinct >= 2 or not wants_spread)
    return "each key on one backend, keys spread over 2 or more", observed, verdict(passed)


def affinity_probes(ctx: VerifyContext, service: Service, key: str, sources: list[str]) -> dict[str, tuple[str, str]]:
    """Variants of the hashed key, each sent 4 times: source addresses for source hashing, else paths/headers/cookies."""
    client = ctx.clients[0]
    if key == "source":
        probes = {source_address(ctx, h): (h, http_loop(url(service), 4)) for h in ctx.traffic_sources(service, 4)}
        probes |= {address: (client, http_loop(url(service), 4, curl_args=("--interface", address))) for address in sources}
        return probes
    if key == "uri":
        return {f"/k{n}": (client, http_loop(url(service, f"/k{n}"), 4)) for n in range(6)}
    kind, name = key.split(":", 1)
    probes = {}
    for n in range(6):
        value = f"k{n}"
        args = {"header": ("-H", f"{name}: {value}"), "cookie": ("-b", f"{name}={value}"), "arg": ()}[kind]
        target = url(service, f"/?{name}={value}") if kind == "arg" else url(service)
        probes[f"{name}={value}"] = (client, http_loop(target, 4, curl_args=args))
    return probes


def source_address(ctx: VerifyContext, host: str) -> str:
    """How a traffic source is named in results: its address, or `local` for this machine."""
    return LOCAL if host == LOCAL else str(ctx.inventory.hosts[host].address)


@contextmanager
def extra_sources(ctx: VerifyContext, hashed_key: str, wanted: int = 6) -> Iterator[list[str]]:
    """In the lab, spare lab addresses on the client, so source hashing sees several clients."""
    if ctx.lab is None or not ctx.faults or hashed_key != "source" or ctx.source == LOCAL:
        yield []
        return
    network = ctx.lab.network_of(ctx.inventory.hosts[ctx.clients[0]].address)
    taken = ({h.address for h in ctx.inventory.hosts.values()} | {s.vip for s in ctx.inventory.services.values()}
             | {v.vip.ip for v in ctx.inventory.vrrp.values()} | {network[1]})
    spare = [str(a) for a in reversed(list(network.hosts())) if a not in taken][:wanted]
    client = ctx.clients[0]
    device = ctx.inventory.hosts[client].interface
    added: list[str] = []
    try:
        for address in spare:
            ctx.sh(client, f"ip addr add {address}/{network.prefixlen} dev {device}")
            added.append(address)
        yield added
    finally:
        if added:
            ctx.sh(client, "; ".join(f"ip addr del {a}/{network.prefixlen} dev {device}" for a in added) + "; true")


def least_connections(ctx: VerifyContext, service: Service) -> tuple[str, str, str]:
    if ctx.lab is None or not ctx.faults:
        return "new connections avoid a slow backend", "needs the lab (and faults) to slow one backend", SKIP
    backends = list(weights(service))
    slow = backends[-1]
    ctx.lab.delay(slow, FAULT_DELAY_MS)
    try:
        observed = by_backend(parse_responses(ctx.sh(ctx.clients[0], http_loop(url(service), 6, parallel=6))))
    finally:
        ctx.lab.delay(slow, 0)
    passed = expect.slow_backend_avoided(observed, slow, backends)
    return f"{slow} (delayed {FAULT_DELAY_MS} ms) below its fair share", expect.describe(observed), verdict(passed)


def spread(ctx: VerifyContext, service: Service) -> tuple[str, str, str]:
    observed = by_backend(parse_responses(ctx.sh(ctx.clients[0], http_loop(url(service), 30))))
    return "every backend serves some of 30 requests", expect.describe(observed), verdict(set(observed) == set(weights(service)))


# --- stickiness -------------------------------------------------------------------------------------


def stickiness(ctx: VerifyContext, service: Service) -> CheckResult:
    return timed("sticky cookie", service.name, lambda: _stickiness(ctx, service))


def _stickiness(ctx: VerifyContext, service: Service) -> tuple[str, str, str]:
    client = ctx.clients[0]
    jar = f"/tmp/haops-jar-{service.name}"
    ctx.sh(client, f"rm -f {jar}")
    first = by_backend(parse_responses(ctx.sh(client, http_loop(url(service), 6, jar=jar))))
    observed = f"with cookie: {expect.describe(first)}"
    if len(first) != 1:
        return "6 requests with the cookie on one backend", observed, FAIL
    if not (ctx.faults and ctx.inventory.responders):
        return "6 requests with the cookie on one backend", observed, PASS
    [home] = first
    with backend_down(ctx, home):
        after = parse_responses(ctx.sh(client, http_loop(url(service), 6, jar=jar, pause_s=0.2)))
    moved = by_backend(after)
    failed = sum(not r.ok for r in after)
    observed += f"; {home} stopped: {expect.describe(moved)}, {failed} failed"
    passed = home not in moved and len(moved) == 1 and (failed == 0 or not service.redispatch)
    return "sticks; moves to one other backend when it dies, 0 failed with redispatch", observed, verdict(passed)


@contextmanager
def backend_down(ctx: VerifyContext, host: str) -> Iterator[None]:
    """Stop a backend's responder; afterwards start it and give every balancer time to take it back."""
    ctx.stop_responder(host)
    try:
        yield
    finally:
        ctx.start_responder(host)
        time.sleep(recovery_seconds(ctx, host))


def recovery_seconds(ctx: VerifyContext, host: str) -> float:
    """The longest any balancer needs to trust the backend again: rise checks, or nginx's fail_timeout."""
    waits = [0.0]
    for service in ctx.inventory.services.values():
        if service.health and any(b.host == host for b in service.backends):
            interval = service.health.interval_ms / 1000
            waits.append(interval * max(service.health.rise, service.health.fall) + interval)
    return max(waits)


# --- health checks ------------------------------------------------------------------------------------


def detection_seconds(service: Service) -> float:
    health = service.health
    assert health is not None
    return (health.interval_ms * health.fall + health.timeout_ms) / 1000


def health(ctx: VerifyContext, service: Service) -> CheckResult:
    return timed("dead backend", service.name, lambda: _health(ctx, service))


def _health(ctx: VerifyContext, service: Service) -> tuple[str, str, str]:
    """Stop a backend: while the balancer notices, failures are allowed only without retries and
    redispatch; once it has noticed, no request may fail and no new connection may reach it."""
    expected = "after detection no new connection reaches it; 0 failed with retries" if service.health else "health checks configured"
    if not (ctx.faults and ctx.inventory.responders):
        return expected, "needs faults (the lab or --faults) and responders: true", SKIP
    victim = [b for b in service.backends if not b.backup][-1]
    window = detection_seconds(service) if service.health else 3.0
    requests = min(MAX_HEALTH_REQUESTS, max(10, int(window * 10)))
    with counting_syns(ctx, victim.host, victim.port), backend_down(ctx, victim.host):
        during = parse_responses(ctx.sh(ctx.clients[0], http_loop(url(service), requests, pause_s=0.1)))
        leaked, after = leaked_connections(ctx, service, victim.host)
    failed_during = sum(not r.ok for r in during)
    failed_after = sum(not r.ok for r in after)
    observed = (f"{victim.host} stopped: {failed_during}/{len(during)} failed while detecting, "
                f"{failed_after}/{len(after)} after; {leaked} connection(s) to it after detection")
    if not service.health:
        return expected, observed + "; no health checks", FAIL
    tolerated = 0 if (service.retries and service.redispatch and promised(service).retries) else len(during)
    return expected, observed, verdict(leaked <= 1 and failed_after == 0 and failed_during <= tolerated)


@contextmanager
def counting_syns(ctx: VerifyContext, host: str, port: int) -> Iterator[None]:
    rule = f"-p tcp --dport {port} -m conntrack --ctstate NEW -m comment --comment haops-verify"
    ctx.sh(host, f"iptables -w -I INPUT 1 {rule}")
    try:
        yield
    finally:
        ctx.sh(host, f"iptables -w -D INPUT {rule}")


def syn_count(ctx: VerifyContext, host: str) -> int:
    line = ctx.sh(host, "iptables -w -L INPUT 1 -v -n -x | awk '{print $1}'")
    return int(line.strip() or 0)


def leaked_connections(ctx: VerifyContext, service: Service, host: str) -> tuple[int, list[Response]]:
    """New connections to the dead backend caused by a burst of requests, beyond the health checks' own,
    and the burst's responses. A quiet second shows the health checks' rate; 9 requests must add nothing."""
    before_quiet = syn_count(ctx, host)
    time.sleep(1.0)
    baseline = syn_count(ctx, host) - before_quiet
    before_burst = syn_count(ctx, host)
    started = time.monotonic()
    burst = parse_responses(ctx.sh(ctx.clients[0], http_loop(url(service), 9)))
    burst_seconds = time.monotonic() - started
    during_burst = syn_count(ctx, host) - before_burst
    return max(0, during_burst - math.ceil(baseline * max(1.0, burst_seconds))), burst


# --- DNS ------------------------------------------------------------------------------------------------


def dns_rotation(ctx: VerifyContext, zone: Zone, server: str) -> list[CheckResult]:
    """Each A and each AAAA RRset of two or more rotates; AAAA is asked over IPv6 where the server has it."""
    results = []
    host = ctx.inventory.hosts[server]
    for record in zone.records:
        for version, rtype in ((4, "A"), (6, "AAAA")):
            wanted = {str(a) for a in record.addresses if a.version == version}
            if len(wanted) < 2:
                continue
            name = zone.name if record.name == "@" else f"{record.name}.{zone.name}"
            address = str(host.address_in(version) or host.address)

            def probe(name: str = name, wanted: set[str] = wanted, address: str = address, rtype: str = rtype) -> tuple[str, str, str]:
                answers = parse_answers(ctx.sh(ctx.clients[0], dig_loop(address, name, 2 * len(wanted), rtype)))
                firsts = Counter(a[0] for a in answers)
                complete = sum(set(a) == wanted for a in answers)
                observed = f"{complete}/{len(answers)} answers complete; first record: {expect.describe(firsts)}"
                return f"all {len(wanted)} records in every answer, first one rotating", observed, verdict(expect.rotation_seen(answers, wanted))

            label = f"{name} @{server}" if rtype == "A" else f"{name} AAAA @{address}"
            results.append(timed("DNS round robin", label, probe))
    return results


def dns_serials(ctx: VerifyContext, zone: Zone) -> CheckResult:
    def probe() -> tuple[str, str, str]:
        serials = {server: parse_serial(ctx.sh(ctx.clients[0], soa_serial(str(ctx.inventory.hosts[server].address), zone.name)))
                   for server in zone.servers}
        same = len(set(serials.values())) == 1 and None not in serials.values()
        # A serial of 0 is a real answer: only None means the server did not answer.
        observed = " ".join(f"{s}={'no answer' if serial is None else serial}" for s, serial in sorted(serials.items())) or "nothing"
        return "every server answers the same SOA serial", observed, verdict(same)

    return timed("SOA serial", zone.name, probe)
