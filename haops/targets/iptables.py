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
"""

from __future__ import annotations

import hashlib
import shlex
from collections import Counter
from dataclasses import dataclass
from functools import reduce
from math import gcd
from pathlib import Path

from haops.model import Backend, Inventory, Service
from haops.render import render_template
from haops.targets.base import (
    BalancerTarget,
    Check,
    ProblemAt,
    RenderContext,
    RenderedFile,
    services_on,
    under,
)

CONFIG = "/etc/haops/iptables.rules"
TABLE = "nat"
PREFIX = "HAOPS-"
HOOKS = (("PREROUTING", "HAOPS-PREROUTING"), ("OUTPUT", "HAOPS-OUTPUT"), ("POSTROUTING", "HAOPS-POSTROUTING"))
MAX_CHAIN_NAME = 28  # XT_EXTENSION_MAXNAMELEN (29) minus the terminating NUL
ALGORITHMS = {"roundrobin": "nth", "nth": "nth"}
NOT_BALANCED = "(not balanced)"


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
    return [NthRule(f"{b.address}:{b.port}", count - i if i < count - 1 else None) for i, b in enumerate(chosen)]


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


class IptablesTarget(BalancerTarget):
    name = "iptables"
    service = None
    summary = "iptables nth DNAT round robin (weighted by slots) in chains haops owns, via iptables-restore --noflush"

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        entries = [_ServiceRules(s, service_chain(s.name), dnat_rules(s)) for s in services_on(inventory, "iptables", host)]
        text = render_template(
            "iptables/iptables.rules.j2",
            hooks=[chain for _, chain in HOOKS],
            entries=entries,
        )
        return [RenderedFile(CONFIG, text, 0o644)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        argv = ("iptables-restore", "--test", "--noflush", under(root, CONFIG))
        return [Check("iptables-restore", argv, "iptables-restore --test --noflush")]


TARGET = IptablesTarget()
