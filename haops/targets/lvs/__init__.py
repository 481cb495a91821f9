"""LVS (IPVS): one set of virtual services per director, in two forms of the same model.

Who loads a director's IPVS table is decided per host, never both:
- keepalived, where it runs anyway: the host is in a VRRP instance, or one of its LVS services
  has health checks (keepalived is the checker). virtual_server_blocks() gives it the services
  with HTTP_GET / TCP_CHECK checkers in keepalived.conf; lvs.rules is rendered there only as the
  ipvsadm form of the same services, marked KEEPALIVED_MARK, and never loaded.
- this target, elsewhere: /etc/haops/lvs.rules (the `ipvsadm -S -n` format) is loaded by
  ipvs.load_script, the difference in one `ipvsadm -R`; the probe and the proof compare the
  live table with the file. Where the kernel has no IPVS and cannot load it (the namespace lab),
  the file is written, the activation says so, and nothing claims a table.

Real servers of DR services hold the VIP on lo: haops.targets.lvs.dr (target lvs-dr).

ipvsadm refuses to start without the ip_vs kernel module, which many build machines lack, so
the rules file is proved by parsing it back (parse_rules; `python -m haops.targets.lvs check
FILE`) and the virtual_server blocks by `keepalived -t` on a scratch keepalived.conf.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from haops.inventory.model import Health, Inventory, IPAddress, Service, endpoint
from haops.inventory.values import one_of, seconds
from haops.render import render_template
from haops.targets.base import (
    AFFINITY,
    ALWAYS,
    LEAST,
    SPLIT,
    BalancerTarget,
    Check,
    OptionField,
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
from haops.targets.lvs.ipvs import IPVS_PROC, holds_or_cannot, load_script, table_holds, unload_script
from haops.verify.result import SKIP, verdict

RULES = "/etc/haops/lvs.rules"
# Inside the candidate tree only: never rendered for a host, never pushed.
SCRATCH_KEEPALIVED = "/.haops-scratch/lvs/keepalived.conf"
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "sh")
ALGORITHMS = {"roundrobin": "rr", "leastconn": "lc", "source": "sh", **{name: name for name in SCHEDULERS}}
WEIGHTED_TWIN = {"rr": "wrr", "lc": "wlc"}
DEFAULT_PERSISTENCE_S = 300
FORWARDING_FLAG = {"nat": "-m", "dr": "-g"}
KEEPALIVED_KIND = {"nat": "NAT", "dr": "DR"}
MAX_PERSISTENCE_S = 2_678_400  # ipvsadm's MAX_TIMEOUT: 31 days
OPTIONS = {"lvs": {"mode": OptionField(one_of("nat", "dr"), "nat"), "persistence": OptionField(seconds, None)}}
DISTRIBUTION = {"rr": SPLIT, "wrr": SPLIT, "lc": LEAST, "wlc": LEAST, "sh": AFFINITY}
NO_IPVS = "needs the ip_vs kernel module (Vagrant VMs, real servers)"
# The line that tells the host's shell (probe, activation) that keepalived loads this table.
KEEPALIVED_MARK = "# haops: keepalived loads these services on this host; ipvsadm never loads this file here"


def keepalived_directs(inventory: Inventory, host: str) -> bool:
    """keepalived runs on the host anyway (VRRP, or health checks to run), so it loads the table."""
    in_vrrp = any(host in instance.hosts for instance in inventory.vrrp.values())
    return in_vrrp or any(s.health is not None for s in services_on(inventory, "lvs", host))


def mode(service: Service) -> str:
    return str(service.options["lvs"]["mode"])


def review(service: Service) -> list[ProblemAt]:
    problems: list[ProblemAt] = []
    if service.weighted and service.method in WEIGHTED_TWIN:
        twin = WEIGHTED_TWIN[service.method]
        problems.append((("algorithm",), f"{service.method} ignores weights, but the backends' weights differ; use {twin}"))
    if service.sticky == "cookie":
        problems.append((("sticky",), ("LVS works at layer 4 and never sees HTTP cookies; use sticky: source "
                                      "(LVS persistence, lvs.persistence seconds) or an HTTP balancer such as haproxy")))
    if service.hash_key:
        problems.append((("hash_key",), "LVS hashes only on the client address (algorithm source / sh); hash_key is for HTTP balancers"))
    if any(backend.backup for backend in service.backends):
        problems.append((("backends",), "LVS has no backup servers: every real server takes traffic; drop backup or use haproxy"))
    if mode(service) == "dr":
        problems.extend(_review_direct_routing(service))
    return problems


def _review_direct_routing(service: Service) -> list[ProblemAt]:
    moved = [f"{b.host}:{b.port}" for b in service.backends if b.port != service.port]
    if not moved:
        return []
    return [(("lvs", "mode"), (f"DR mode forwards packets unchanged (only the MAC address is rewritten), so real servers "
                              f"must listen on the service port {service.port}; {', '.join(moved)} differ. Use lvs.mode nat, or backend_port {service.port}"))]


def persistence_s(service: Service) -> int | None:
    """Seconds a client stays on its real server: lvs.persistence, else 300 s for sticky source."""
    written = service.options["lvs"]["persistence"]
    if written is not None:
        return int(written)
    return DEFAULT_PERSISTENCE_S if service.sticky == "source" else None


# --- the model both forms render, and the rules file parsed back -------------------------


@dataclass(frozen=True)
class RealServer:
    address: IPAddress
    port: int
    mode: str  # "nat" or "dr"
    weight: int


@dataclass(frozen=True)
class VirtualService:
    address: IPAddress
    port: int
    scheduler: str
    persistence_s: int | None
    real_servers: tuple[RealServer, ...]


def virtual_service(service: Service) -> VirtualService:
    servers = tuple(RealServer(b.address, b.port, mode(service), b.weight) for b in service.backends)
    return VirtualService(service.vip, service.port, service.method, persistence_s(service), servers)


def virtual_services(inventory: Inventory, host: str) -> list[VirtualService]:
    return [virtual_service(s) for s in services_on(inventory, "lvs", host)]


class RulesError(ValueError):
    """A line of an ipvsadm rules file that ipvsadm-restore would refuse or misread."""


# ipvsadm writes an IPv6 address in brackets: [fd00::100]:80
_ENDPOINT = r"(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]{2,45}\]):(\d{1,5})"
_ADD_SERVICE = re.compile(rf"-A -t {_ENDPOINT} -s ([a-z]+)(?: -p (\d{{1,7}}))?")
_ADD_SERVER = re.compile(rf"-a -t {_ENDPOINT} -r {_ENDPOINT} (-m|-g) -w (\d{{1,5}})")


def parse_rules(text: str) -> list[VirtualService]:
    """The virtual services of an ipvsadm-restore file, strictly: any other line is an error."""
    services: dict[tuple[IPAddress, int], VirtualService] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            _apply_rule(line, services)
        except ValueError as exc:
            raise RulesError(f"line {number}: {exc}: {raw.strip()!r}") from None
    return list(services.values())


def _apply_rule(line: str, services: dict[tuple[IPAddress, int], VirtualService]) -> None:
    if match := _ADD_SERVICE.fullmatch(line):
        key = _endpoint(match.group(1), match.group(2))
        if key in services:
            raise ValueError("virtual service defined twice")
        services[key] = VirtualService(*key, _scheduler(match.group(3)), _persistence(match.group(4)), ())
    elif match := _ADD_SERVER.fullmatch(line):
        key = _endpoint(match.group(1), match.group(2))
        if key not in services:
            raise ValueError("real server for a virtual service not defined above")
        service = services[key]
        server = RealServer(*_endpoint(match.group(3), match.group(4)), _mode(match.group(5)), _weight(match.group(6)))
        if any((s.address, s.port) == (server.address, server.port) for s in service.real_servers):
            raise ValueError("real server listed twice")
        if server.address.version != service.address.version:
            raise ValueError("a real server must be of the virtual service's address family (NAT and DR do not translate families)")
        if server.mode == "dr" and server.port != service.port:
            raise ValueError("a DR real server must use the virtual service's port")
        services[key] = VirtualService(service.address, service.port, service.scheduler, service.persistence_s,
                                       service.real_servers + (server,))
    else:
        raise ValueError("not '-A -t VIP:PORT -s SCHED [-p SECONDS]' or '-a -t VIP:PORT -r IP:PORT -m|-g -w WEIGHT'")


def _endpoint(address: str, port: str) -> tuple[IPAddress, int]:
    number = int(port)
    if not 1 <= number <= 65535:
        raise ValueError(f"port {port} out of range")
    if address.startswith("["):
        return IPv6Address(address[1:-1]), number
    return IPv4Address(address), number


def _scheduler(name: str) -> str:
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}")
    return name


def _persistence(seconds: str | None) -> int | None:
    if seconds is None:
        return None
    if not 1 <= int(seconds) <= MAX_PERSISTENCE_S:
        raise ValueError(f"persistence {seconds} outside 1..{MAX_PERSISTENCE_S}")
    return int(seconds)


def _mode(flag: str) -> str:
    return {value: key for key, value in FORWARDING_FLAG.items()}[flag]


def _weight(text: str) -> int:
    if int(text) > 65535:
        raise ValueError(f"weight {text} outside 0..65535")
    return int(text)


# --- keepalived form -----------------------------------------------------------------------


def decimal_seconds(milliseconds: int) -> str:
    """Milliseconds as keepalived's decimal seconds: 500 -> '0.5', 2000 -> '2'."""
    whole, rest = divmod(milliseconds, 1000)
    return f"{whole}.{rest:03d}".rstrip("0").rstrip(".") if rest else str(whole)


def virtual_server_blocks(inventory: Inventory, host: str) -> str:
    """keepalived `virtual_server` blocks for the LVS services `host` directs ('' if none)."""
    services = services_on(inventory, "lvs", host)
    if not services or not keepalived_directs(inventory, host):
        return ""
    return render_template(
        "lvs/virtual_servers.conf.j2",
        services=services,
        persistence_s=persistence_s,
        mode=mode,
        kind=KEEPALIVED_KIND,
        seconds=decimal_seconds,
        retries=health_retries,
    )


def health_retries(health: Health) -> int:
    """keepalived marks a server down after 1 failed check + `retry` failed retries = fall."""
    return health.fall - 1


def scratch_keepalived_conf(inventory: Inventory, host: str) -> str:
    return render_template("lvs/check-keepalived.conf.j2", host=host, blocks=virtual_server_blocks(inventory, host))


# --- the target ------------------------------------------------------------------------------


def loaded_by_keepalived(files: list[RenderedFile]) -> bool:
    return any(KEEPALIVED_MARK in f.text.splitlines() for f in files if f.path == RULES)


def keepalived_marked() -> str:
    """Shell: the host's rules file says keepalived loads the table."""
    return f"grep -qxF {shlex.quote(KEEPALIVED_MARK)} {RULES}"


def table_matches_file(remote: RemoteHost) -> Verdict:
    expected = f"the IPVS table holds exactly {RULES}"
    if not remote.file(IPVS_PROC).exists:
        return expected, "no ip_vs kernel module on this host", SKIP
    held = remote.run(table_holds(RULES))
    return expected, "it does" if held.rc == 0 else "it differs (or ipvsadm failed)", verdict(held.rc == 0)


class LvsTarget(BalancerTarget):
    """Loads the rules file on directors keepalived does not manage (see the module docstring);
    where keepalived loads the table this target has nothing to load or prove."""

    name = "lvs"
    algorithms = ALGORITHMS
    option_blocks = OPTIONS
    # A director that no longer runs LVS keeps steering the VIP's connections to the old real
    # servers (IPVS takes them before any local listener) until its services are deleted.
    retire_with_apply = True

    def probe(self) -> str:
        return f"if {keepalived_marked()}; then true; else {holds_or_cannot(RULES)}; fi"

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        return ALWAYS if loaded_by_keepalived(files) else load_script(RULES)

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        return ALWAYS if loaded_by_keepalived(files) else f"( {holds_or_cannot(RULES)} )"

    def retire(self, init: str) -> str:
        return f"if {keepalived_marked()}; then true; else {unload_script(RULES)}\nfi"

    def state_checks(self, inventory: Inventory, host: str) -> list[StateCheck]:
        return [] if keepalived_directs(inventory, host) else [StateCheck("IPVS table", host, table_matches_file)]

    def review_service(self, service: Service) -> list[ProblemAt]:
        return review(service)

    def traffic(self, service: Service) -> TrafficPromise:
        # persistence holds each client to one real server, whatever the scheduler
        distribution = AFFINITY if persistence_s(service) is not None else DISTRIBUTION[service.method]
        return TrafficPromise(distribution, dead_backend=service.health is not None,
                              unsupported=NO_IPVS, requires=f"[ -e {IPVS_PROC} ]", retries=False)

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        return []

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        text = render_template(
            "lvs/lvs.rules.j2",
            entries=[(s.name, virtual_service(s)) for s in services_on(inventory, "lvs", host)],
            flag=FORWARDING_FLAG,
            keepalived_mark=KEEPALIVED_MARK if keepalived_directs(inventory, host) else None,
        )
        return [RenderedFile(RULES, text, 0o644)]

    def scratch_files(self, inventory: Inventory, host: str) -> list[RenderedFile]:
        return [RenderedFile(SCRATCH_KEEPALIVED, scratch_keepalived_conf(inventory, host))]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        return [
            Check(sys.executable, (sys.executable, "-m", "haops.targets.lvs", "check", under(root, RULES)),
                  "ipvsadm rules parse-back", (("PYTHONPATH", _package_path()),), local_only=True),
            Check("keepalived", ("keepalived", "-t", "-f", under(root, SCRATCH_KEEPALIVED)), "keepalived -t (virtual_server blocks)"),
        ]


def _package_path() -> str:
    """Lets the parse-back check import haops from any working directory."""
    here = str(Path(__file__).resolve().parents[3])
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([here, inherited]) if inherited else here


def main(argv: list[str]) -> int:
    """`python -m haops.targets.lvs check FILE`: exit 0 when FILE parses back, 1 with the reason."""
    if len(argv) != 2 or argv[0] != "check":
        print("usage: python -m haops.targets.lvs check RULES_FILE", file=sys.stderr)
        return 2
    try:
        services = parse_rules(Path(argv[1]).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RulesError) as exc:
        print(f"{argv[1]}: {exc}", file=sys.stderr)
        return 1
    empty = [endpoint(s.address, s.port) for s in services if not s.real_servers]
    if empty:
        print(f"{argv[1]}: virtual service without real servers: {', '.join(empty)}", file=sys.stderr)
        return 1
    return 0


TARGET = LvsTarget()
