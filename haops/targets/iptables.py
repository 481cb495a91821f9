"""iptables: nth-statistic DNAT round robin in chains haops owns, loaded by iptables-restore --noflush.

/etc/haops/iptables.rules declares HAOPS-PREROUTING, HAOPS-OUTPUT, HAOPS-POSTROUTING and one
chain per service with `:CHAIN - [0:0]`. `iptables-restore --noflush` flushes and refills exactly
the chains a file declares, so a second apply leaves the same rules (never duplicates) and rules
haops does not own stay untouched; no built-in chain is ever flushed.

The only rules outside those chains are the jumps from the built-in chains into them. A
--noflush file can only append to a built-in chain (a duplicate on every run), so they are
data: hook_rules() lists them, and the apply stage adds each one only when
`iptables -w -t nat -C BUILTIN -j CHAIN` exits 1 ("no such rule"). Any other failure of -C,
e.g. status 4 when the xtables lock is busy, is an error and never means "missing".

Splitting. The nat table sees only the first packet of a connection (the rest follow conntrack),
so every rule here acts on new connections: `-m conntrack --ctstate NEW` is implied. Each
`-m statistic --mode nth` rule keeps its own counter and counts only the connections the rules
before it let through. So slot i (from 0) of S uses `--every S-i --packet 0` and the last slot
is unconditional: exact round robin. The old `-m nth --every S --packet i` recipe, copied to
`statistic`, is skewed for that reason; simulate_split() shows both. Weights become slots in
smooth weighted round-robin order (after dividing by their greatest common divisor).

IPv6 services get the same chains and the same exact split in /etc/haops/ip6tables.rules,
loaded by ip6tables-restore (rendered only on hosts with an IPv6 service); a service's VIP
and backends are always of one family (the inventory picks each backend's address in the
VIP's family).
"""

from __future__ import annotations

import hashlib
import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING

from haops.inventory.model import Backend, Inventory, Service, endpoint
from haops.render import render_template
from haops.targets.base import (
    ALL_BACKENDS,
    NO_CHECKS,
    SPLIT,
    BackendState,
    BalancerTarget,
    Check,
    HostRun,
    ProblemAt,
    RemoteHost,
    RenderContext,
    RenderedFile,
    StateCheck,
    TrafficPromise,
    Verdict,
    services_on,
    under,
)
from haops.verify.result import verdict

if TYPE_CHECKING:
    from fabric import Connection

CONFIG = "/etc/haops/iptables.rules"
CONFIG6 = "/etc/haops/ip6tables.rules"
TOOLS = {CONFIG: "iptables", CONFIG6: "ip6tables"}  # each rules file and the tool that loads it
TABLE = "nat"
PREFIX = "HAOPS-"
HOOKS = (("PREROUTING", "HAOPS-PREROUTING"), ("OUTPUT", "HAOPS-OUTPUT"), ("POSTROUTING", "HAOPS-POSTROUTING"))
MAX_CHAIN_NAME = 28  # XT_EXTENSION_MAXNAMELEN (29) minus the terminating NUL
ALGORITHMS = {"roundrobin": "nth", "nth": "nth"}
NOT_BALANCED = "(not balanced)"
REVERT_SECONDS = 30


def review(service: Service) -> list[ProblemAt]:
    problems: list[ProblemAt] = []
    if service.health is not None:
        problems.append((("health",), ("iptables DNAT has no health checks: a dead backend keeps getting its share of "
                                      "connections; use balancer lvs (keepalived checks) or haproxy")))
    if service.sticky != "none":
        problems.append((("sticky",), (f"sticky {service.sticky} is impossible with nth DNAT: every new connection takes "
                                      "the next slot whoever sent it, and iptables never sees HTTP cookies; use lvs (sticky source) or haproxy")))
    if service.hash_key:
        problems.append((("hash_key",), "nth DNAT hashes nothing; hash_key is for HTTP balancers"))
    if any(backend.backup for backend in service.backends):
        problems.append((("backends",), "nth DNAT has no backup servers: every listed backend gets its share; drop backup or use haproxy"))
    return problems


# --- chains, slots and rules ------------------------------------------------------------------


def service_chain(name: str) -> str:
    """HAOPS-<service>, or a shortened name with a digest when that is too long or names a hook chain."""
    chain = PREFIX + name
    if len(chain) <= MAX_CHAIN_NAME and chain not in {haops for _, haops in HOOKS}:
        return chain
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{PREFIX}{name[:12]}-{digest}"


def slots(backends: tuple[Backend, ...]) -> list[Backend]:
    """One entry per share of traffic, weights reduced by their gcd, in smooth weighted order."""
    divisor = reduce(gcd, (b.weight for b in backends))
    weights = [b.weight // divisor for b in backends]
    total = sum(weights)
    current = [0] * len(backends)
    order = []
    for _ in range(total):
        current = [c + w for c, w in zip(current, weights)]
        chosen = current.index(max(current))
        current[chosen] -= total
        order.append(backends[chosen])
    return order


@dataclass(frozen=True)
class NthRule:
    """A DNAT rule: `every` None means unconditional; otherwise `-m statistic --mode nth`."""

    destination: str
    every: int | None = None
    packet: int = 0


def dnat_rules(service: Service) -> list[NthRule]:
    chosen = slots(service.backends)
    count = len(chosen)
    return [NthRule(endpoint(b.address, b.port), count - i if i < count - 1 else None) for i, b in enumerate(chosen)]


def hook_rules(inventory: Inventory, host: str) -> list[tuple[str, str, str]]:
    """(table, built-in chain, haops chain) jumps the apply stage adds when `iptables -C` says missing."""
    if not services_on(inventory, "iptables", host):
        return []
    return [(TABLE, builtin, chain) for builtin, chain in HOOKS]


# --- proof of the split --------------------------------------------------------------------------


def simulate_split(rules: list[NthRule], connections: int) -> Counter[str]:
    """New connections per destination, with per-rule counters as xt_statistic keeps them.

    The kernel stores every-1 and starts the counter at every-1-packet; each packet that reaches
    the rule advances it (wrapping after every-1) and the rule matches when it lands on 0.
    Connections no rule takes count under NOT_BALANCED.
    """
    counters = [(r.every - 1 - r.packet) if r.every else 0 for r in rules]
    split: Counter[str] = Counter()
    for _ in range(connections):
        split[_first_match(rules, counters)] += 1
    return split


def _first_match(rules: list[NthRule], counters: list[int]) -> str:
    for index, rule in enumerate(rules):
        if rule.every is None:
            return rule.destination
        counters[index] = 0 if counters[index] == rule.every - 1 else counters[index] + 1
        if counters[index] == 0:
            return rule.destination
    return NOT_BALANCED


def parse_dnat_chain(text: str, chain: str) -> list[NthRule]:
    """The DNAT rules of `chain` in an iptables-restore file, in order."""
    rules = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        words = shlex.split(line)
        if words[:2] != ["-A", chain] or "DNAT" not in words:
            continue
        destination = words[words.index("--to-destination") + 1]
        every = int(words[words.index("--every") + 1]) if "--every" in words else None
        packet = int(words[words.index("--packet") + 1]) if "--packet" in words else 0
        rules.append(NthRule(destination, every, packet))
    return rules


# --- the target ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ServiceRules:
    service: Service
    chain: str
    rules: list[NthRule]


# --- going live -------------------------------------------------------------------------------------


def activate_script(tool: str = "iptables", config: str = CONFIG) -> str:
    """One iptables-restore --noflush of haops' own chains, then the jumps into them, each only
    if missing; then HAOPS-* chains the file no longer declares (a removed service's) are deleted,
    being unreferenced once the hook chains are refilled. `tool` ip6tables does the same for IPv6."""
    # `iptables -C` exits 1 when the rule is missing; anything else (4 under the xtables
    # lock, 2 for a bad rule) is an error and must not be read as "absent".
    hooks = [
        f"{tool} -w -t {TABLE} -C {builtin} -j {chain} 2>/dev/null; c=$?; "
        f"if [ $c = 1 ]; then {tool} -w -t {TABLE} -A {builtin} -j {chain}; elif [ $c != 0 ]; then exit $c; fi"
        for builtin, chain in HOOKS
    ]
    stale = (f"for c in $({tool}-save -t {TABLE} | sed -n 's/^:\\({PREFIX}[^ ]*\\) .*/\\1/p'); do "
             f"grep -q \"^:$c \" {config} || {{ {tool} -w -t {TABLE} -F $c && {tool} -w -t {TABLE} -X $c; }} || exit 1; done")
    return " && ".join([f"{tool}-restore -w --noflush {config}", *(f"( {h} )" for h in hooks), f"( {stale} )"])


def retire_script() -> str:
    """Every jump into a HAOPS-* chain removed (as often as it is there), then the chains flushed and deleted."""
    jumps = [f"while iptables -w -t {TABLE} -C {builtin} -j {chain} 2>/dev/null; do iptables -w -t {TABLE} -D {builtin} -j {chain} || exit 1; done"
             for builtin, chain in HOOKS]
    chains = (f"for c in $(iptables-save -t {TABLE} | sed -n 's/^:\\({PREFIX}[^ ]*\\) .*/\\1/p'); do "
              f"iptables -w -t {TABLE} -F $c || exit 1; done; "
              f"for c in $(iptables-save -t {TABLE} | sed -n 's/^:\\({PREFIX}[^ ]*\\) .*/\\1/p'); do "
              f"iptables -w -t {TABLE} -X $c || exit 1; done")
    return " && ".join([*(f"( {j} )" for j in jumps), f"( {chains} )", f"rm -f {CONFIG}"])


def proof_script(files: list[RenderedFile]) -> str:
    """Every rule of each file loaded (by iptables or ip6tables), and each jump exactly once."""
    checks = []
    for file in files:
        tool = TOOLS.get(file.path, "iptables")
        wanted = sum(1 for line in file.text.splitlines() if line.startswith("-A "))
        checks.append(f"[ \"$({tool}-save -t {TABLE} | grep -c '^-A {PREFIX}')\" = {wanted} ]")
        checks += [f"[ \"$({tool}-save -t {TABLE} | grep -cx -- '-A {builtin} -j {chain}')\" = 1 ]" for builtin, chain in HOOKS]
    return " && ".join(checks)


class RevertGuard:
    """If the new rules cut SSH off, the host puts the old nat table back by itself; a fresh SSH
    connection after the change proves they did not, and disarms it."""

    def before(self, connection: Connection, backup: str) -> None:
        from haops.transport import HostFailure, run

        saved = shlex.quote(f"{backup}/iptables.{TABLE}")
        saved6 = shlex.quote(f"{backup}/ip6tables.{TABLE}")
        # IPv6 is saved (and put back) where the host has an IPv6 nat table at all.
        restore6 = f"if [ -s {saved6} ]; then ip6tables-restore -w -T {TABLE} < {saved6}; fi"
        script = "\n".join([
            f"mkdir -p {shlex.quote(backup)} && iptables-save -t {TABLE} > {saved} || exit 1",
            f"ip6tables-save -t {TABLE} > {saved6} 2>/dev/null || rm -f {saved6}",
            f"setsid sh -c {shlex.quote(f'sleep {REVERT_SECONDS}; iptables-restore -w -T {TABLE} < {saved}; {restore6}')} </dev/null >/dev/null 2>&1 &",
            f"echo $! > {revert_pid(backup)}",
        ])
        if run(connection, script).code != 0:
            raise HostFailure("could not arm the iptables revert; nothing changed")

    def after(self, connection: Connection, backup: str, activated: bool, reconnect: Callable[[], Connection]) -> str | None:
        from haops.transport import HostFailure

        if not activated:
            disarm(connection, backup)
            return None
        try:
            fresh = reconnect()
        except HostFailure:
            return "a new SSH connection failed after the rules changed; the host reverts them by itself"
        try:
            disarmed = disarm(fresh, backup)
        finally:
            fresh.close()
        return None if disarmed else "could not disarm the iptables revert; the host will put the old rules back"


def revert_pid(backup: str) -> str:
    return f"/run/haops-iptables-revert.{Path(backup).name}.pid"


def disarm(connection: Connection, backup: str) -> bool:
    from haops.transport import run

    pid = revert_pid(backup)
    return run(connection, f'kill "$(cat {pid})" && rm -f {pid}').code == 0


# --- verify -------------------------------------------------------------------------------------------


def chains_once(host: RemoteHost, version: int = 4) -> Verdict:
    rules = host.iptables.rules(TABLE, version=version)
    chains = [rule for rule in rules if rule.startswith(f"-N {PREFIX}")]
    hooks = {chain: rules.count(f"-A {builtin} -j {chain}") for builtin, chain in HOOKS}
    ours = [rule for rule in rules if rule.startswith(f"-A {PREFIX}")]
    repeated = len(ours) - len(set(ours))
    ok = all(count == 1 for count in hooks.values()) and not repeated and bool(chains)
    observed = f"{len(chains)} chains, {len(ours)} rules ({repeated} repeated), jumps " + "/".join(str(c) for c in hooks.values())
    return "every haops rule and jump exactly once", observed, verdict(ok)


class IptablesTarget(BalancerTarget):
    name = "iptables"
    algorithms = ALGORITHMS
    hook = RevertGuard()

    def review_service(self, service: Service) -> list[ProblemAt]:
        return review(service)

    def backend_states(self, inventory: Inventory, host: str, run: HostRun) -> list[BackendState]:
        return [BackendState(s.name, host, ALL_BACKENDS, NO_CHECKS, "nth DNAT sends every backend its share, alive or not")
                for s in services_on(inventory, self.name, host)]

    def traffic(self, service: Service) -> TrafficPromise:
        return TrafficPromise(SPLIT, dead_backend=False)

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        return []

    def probe(self) -> str:
        return f"iptables -w -t {TABLE} -S {HOOKS[0][1]} >/dev/null 2>&1"

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        paths = {f.path for f in files} or {CONFIG}
        return " && ".join(activate_script(tool, config) for config, tool in TOOLS.items() if config in paths)

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        return proof_script(files)

    retire_with_apply = True  # the jumps would keep DNATing new connections to the old backends

    def retire(self, init: str) -> str:
        return retire_script()

    def state_checks(self, inventory: Inventory, host: str) -> list[StateCheck]:
        checks = [StateCheck("iptables chains", host, chains_once)]
        if _services_of(inventory, host, 6):
            checks.append(StateCheck("ip6tables chains", host, lambda remote: chains_once(remote, 6)))
        return checks

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        files = [_rules_file(CONFIG, _services_of(inventory, host, 4), 32)]
        if services6 := _services_of(inventory, host, 6):
            files.append(_rules_file(CONFIG6, services6, 128))
        return files

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        configs = [CONFIG, *([CONFIG6] if _services_of(inventory, host, 6) else [])]
        return [Check(f"{TOOLS[c]}-restore", (f"{TOOLS[c]}-restore", "--test", "--noflush", under(root, c)),
                      f"{TOOLS[c]}-restore --test --noflush") for c in configs]


def _services_of(inventory: Inventory, host: str, version: int) -> list[Service]:
    return [s for s in services_on(inventory, "iptables", host) if s.vip.version == version]


def _rules_file(path: str, services: list[Service], host_prefix: int) -> RenderedFile:
    entries = [_ServiceRules(s, service_chain(s.name), dnat_rules(s)) for s in services]
    text = render_template("iptables/iptables.rules.j2", hooks=[chain for _, chain in HOOKS], entries=entries,
                           host_prefix=host_prefix)
    return RenderedFile(path, text, 0o644)


TARGET = IptablesTarget()
