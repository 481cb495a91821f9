"""Apache: one self-contained apache2.conf per balancer host, a mod_proxy_balancer vhost per service."""

from __future__ import annotations

import shlex
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from xml.etree import ElementTree

from haops.inventory.model import Inventory, Service, endpoint
from haops.inventory.values import ip_networks, ipv4_networks
from haops.render import render_template, whole_seconds
from haops.targets.base import (
    ALL_BACKENDS,
    DOWN,
    LEAST,
    MAINT,
    NOT_EXPOSED,
    REFUSAL_MARK,
    SPLIT,
    SPREAD,
    UNKNOWN,
    UP,
    BackendState,
    BalancerTarget,
    Check,
    HostRun,
    OptionField,
    ProblemAt,
    Refusal,
    RenderContext,
    RenderedFile,
    TrafficPromise,
    services_on,
    under,
)
from haops.targets.daemon import Daemon, log_since, log_size

CONFIG = "/etc/apache2/apache2.conf"
ERROR_LOG = "/var/log/apache2/error.log"
MODULES_DIR = "/usr/lib/apache2/modules"
ALGORITHMS = {
    "byrequests": "byrequests",
    "roundrobin": "byrequests",
    "bytraffic": "bytraffic",
    "bybusyness": "bybusyness",
    "leastconn": "bybusyness",
    "heartbeat": "heartbeat",
}
OPTIONS = {"manager": {"allow": OptionField(lambda v: tuple(ip_networks(v)), tuple(ipv4_networks(["127.0.0.1/32"])))}}
# byrequests keeps each member's running score across failovers and child processes, so a
# window of requests may be off by one per member; it evens out over time.
DISTRIBUTION = {"byrequests": TrafficPromise(SPLIT, tolerance=1), "bybusyness": TrafficPromise(LEAST)}
DAEMON = Daemon(name="apache2", unit="apache2", process="apache2", pidfile="/run/apache2/apache2.pid",
                prepare="mkdir -p /run/apache2 /run/lock/apache2 /var/log/apache2",
                start="apache2ctl start", reload="apache2ctl graceful")
BASE_MODULES = ("mpm_event", "authz_core", "authz_host", "slotmem_shm", "proxy", "proxy_http", "proxy_balancer")
THREADS_PER_CHILD = 25
MIN_HEALTH_INTERVAL_MS = 100

# Debian's apache2ctl creates /run/apache2 before starting; `apache2 -t` insists that
# DefaultRuntimeDir exists. A private /run (mount namespace) gives it without touching the machine.
CHECK_SCRIPT = """\
set -e
mount -t tmpfs haops-check /run
mkdir -p /run/apache2
exec apache2 -t -d "$1" -f "$2"
"""


def parent_exit_refusal(daemon: Daemon, log: str) -> Refusal:
    """A graceful restart that fails makes the parent log why and exit, its children with it
    (httpd's main loop ends each failed re-read of the config in destroy_and_exit_process):
    nothing serves until the rollback. The mark is the running parent's PID and the log's size;
    refused once that parent is gone, printing what was logged since. Waiting for the parent to
    be gone, not for its last words, lets the rollback's graceful restart find no parent and
    start Apache afresh instead of signalling the dying one."""
    mark = f'{daemon.running()} && echo "$m $({log_size(log)})"'
    parent, offset = f'"${{{REFUSAL_MARK}% *}}"', f"${{{REFUSAL_MARK}#* }}"
    why = f"{log_since(log, offset)} | grep -v ':notice\\]' | sed 's/^\\[[^]]*\\] //'"
    gone = "echo 'apache2 stopped: its parent exits when a graceful restart fails'"
    return Refusal(mark=mark, test=f'[ -n "${REFUSAL_MARK}" ] && ! kill -0 {parent} 2>/dev/null && {{ {why}; {gone}; }}')


def review(service: Service) -> list[ProblemAt]:
    problems: list[ProblemAt] = []
    if service.method == "heartbeat":
        problems.append((("algorithm",), ("lbmethod heartbeat balances on load reports that every backend must multicast "
                         "with mod_heartbeat to a mod_heartmonitor listener; haops configures neither, and without "
                         "reports Apache finds no usable member (503). Use byrequests, bytraffic or bybusyness")))
    if service.sticky == "source":
        problems.append((("sticky",), ("mod_proxy_balancer cannot pin clients by source address: its stickysession "
                         "follows only a cookie or URL parameter. Use sticky: cookie, or balancer haproxy or nginx")))
    if service.hash_key:
        problems.append((("hash_key",), "mod_proxy_balancer has no hash balancing; remove hash_key"))
    if service.stats:
        problems.append((("stats",), ("Apache's status page is the balancer-manager at /balancer-manager on each "
                         "service, limited to manager.allow; haops does not add a password to it. Remove stats")))
    if service.health and service.health.interval_ms < MIN_HEALTH_INTERVAL_MS:
        problems.append((("health", "interval"), f"mod_proxy_hcheck needs an interval of at least {MIN_HEALTH_INTERVAL_MS}ms"))
    return problems


def apache_time(milliseconds: int) -> str:
    """A mod_proxy time parameter: plain seconds, or an 'ms' suffix when not whole seconds."""
    return str(milliseconds // 1000) if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def member_parameters(service: Service, host: str, weight: int, backup: bool) -> str:
    parameters = [f"loadfactor={weight}"]
    if service.sticky == "cookie":
        parameters.append(f"route={host}")
    if backup:
        parameters.append("status=+H")
    parameters += [f"connectiontimeout={apache_time(service.timeouts.connect_ms)}",
                   f"timeout={whole_seconds(service.timeouts.server_ms)}"]
    if service.health:
        method = f"hcmethod=GET hcuri={service.health.path}" if service.health.path else "hcmethod=TCP"
        parameters += [method, f"hcinterval={apache_time(service.health.interval_ms)}",
                       f"hcpasses={service.health.rise}", f"hcfails={service.health.fall}"]
    return " ".join(parameters)


def balancer_parameters(service: Service) -> str:
    parameters = [f"lbmethod={service.method}", f"maxattempts={service.retries}"]
    if service.sticky == "cookie":
        parameters += [f"stickysession={service.cookie}", f"nofailover={'Off' if service.redispatch else 'On'}"]
    return " ".join(parameters)


def modules(services: list[Service]) -> list[str]:
    wanted = list(BASE_MODULES)
    wanted += sorted({f"lbmethod_{s.method}" for s in services})
    if any(s.health for s in services):
        wanted.append("proxy_hcheck")  # its mod_watchdog is built into Debian's apache2
    if any(s.sticky == "cookie" for s in services):
        wanted.append("headers")
    return wanted


def server_limit(services: list[Service]) -> int:
    """Enough event-MPM processes of THREADS_PER_CHILD workers for the services' maxconn."""
    return max(1, -(-sum(s.maxconn for s in services) // THREADS_PER_CHILD))


def manager_allow(service: Service) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(service.options["manager"]["allow"])


# --- balancer-manager: each member's state as this Apache sees it ---------------------------------
# Its XML form (?xml=1) lists every member with a status of flags, "Ok" when usable (ap_proxy_parse_wstatus
# in modules/proxy/proxy_util.c). Parameters without a same-site Referer are ignored (against CSRF).
# Apache listens only on the VIP, so only the host holding it can reach its own balancer-manager,
# from 127.0.0.1, which the default manager.allow admits.

MANAGER = "/balancer-manager"
NAMESPACE = "{http://httpd.apache.org}"
NOT_HELD = "VIP-NOT-HELD-HERE"
LOOPBACK = IPv4Address("127.0.0.1")
LOOPBACK6 = IPv6Address("::1")  # where haops reads the manager of a service on an IPv6 VIP
MAINT_FLAGS = {"Dis", "Stop", "Drn", "Shut"}


def manager_script(service: Service) -> str:
    url = f"http://{endpoint(service.vip, service.port)}{MANAGER}"
    held = f"ip -br -{service.vip.version} addr | grep -qF {shlex.quote(f' {service.vip}/')}"
    fetch = f"curl -sS -g -m 3 --interface {loopback(service)} -e {shlex.quote(url)} {shlex.quote(url + '?xml=1')}"
    return f"if {held}; then {fetch}; else echo {NOT_HELD}; fi"


def loopback(service: Service) -> IPv4Address | IPv6Address:
    return LOOPBACK6 if service.vip.version == 6 else LOOPBACK


def member_state(status: str) -> str:
    flags = set(status.split())
    if "Ok" in flags:
        return UP
    return MAINT if flags & MAINT_FLAGS else DOWN


def parse_manager(xml: str) -> dict[str, str]:
    """Each member's status flags by its URL (http://10.213.0.21:8080), from balancer-manager's XML."""
    root = ElementTree.fromstring(xml)
    return {(worker.findtext(f"{NAMESPACE}name") or ""): (worker.findtext(f"{NAMESPACE}status") or "").strip()
            for worker in root.iter(f"{NAMESPACE}worker")}


def member_states(service: Service, host: str, statuses: dict[str, str]) -> list[BackendState]:
    states = []
    for backend in service.backends:
        status = statuses.get(f"http://{endpoint(backend.address, backend.port)}")
        state = member_state(status) if status is not None else UNKNOWN
        states.append(BackendState(service.name, host, backend.host, state, status if status is not None else "not a member here"))
    return states


def manager_states(service: Service, host: str, run: HostRun) -> list[BackendState]:
    def whole(state: str, detail: str) -> list[BackendState]:
        return [BackendState(service.name, host, ALL_BACKENDS, state, detail)]

    if not any(loopback(service) in network for network in manager_allow(service)):
        return whole(NOT_EXPOSED, f"manager.allow does not admit {loopback(service)}, from where haops reads {MANAGER}")
    ran = run(manager_script(service))
    if ran.stdout.strip() == NOT_HELD:
        return whole(NOT_EXPOSED, f"Apache listens only on {service.vip}, which {host} does not hold")
    try:
        if ran.code != 0:
            raise ValueError(f"{MANAGER}: {(ran.stderr or ran.stdout).strip()}")
        return member_states(service, host, parse_manager(ran.stdout))
    except (ValueError, ElementTree.ParseError) as exc:
        return whole(UNKNOWN, str(exc))


class ApacheTarget(BalancerTarget):
    name = "apache"
    daemon = DAEMON
    algorithms = ALGORITHMS
    option_blocks = OPTIONS
    speaks_http = True

    def review_service(self, service: Service) -> list[ProblemAt]:
        return review(service)

    def traffic(self, service: Service) -> TrafficPromise:
        return DISTRIBUTION.get(service.method, TrafficPromise(SPREAD))

    def backend_states(self, inventory: Inventory, host: str, run: HostRun) -> list[BackendState]:
        return [state for s in services_on(inventory, self.name, host) for state in manager_states(s, host, run)]

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        services = services_on(inventory, self.name, host)
        text = render_template(
            "apache/apache2.conf.j2",
            host=host,
            services=services,
            modules=modules(services),
            modules_dir=MODULES_DIR,
            server_limit=server_limit(services),
            threads_per_child=THREADS_PER_CHILD,
            member_parameters=member_parameters,
            balancer_parameters=balancer_parameters,
            manager_allow=manager_allow,
            error_log=ERROR_LOG,
        )
        return [RenderedFile(CONFIG, text, 0o644)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        argv = ("unshare", "--mount", "sh", "-c", CHECK_SCRIPT, "haops-apache-check", under(root, "/etc/apache2"), under(root, CONFIG))
        return [Check("apache2", argv, "apache2 -t")]

    def refused(self) -> Refusal:
        return parent_exit_refusal(DAEMON, ERROR_LOG)


TARGET = ApacheTarget()
