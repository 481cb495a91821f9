"""HAProxy: one haproxy.cfg per balancer host, a frontend and backend per service."""

from __future__ import annotations

import shlex

from pathlib import Path

from haops.inventory.model import Inventory, Service
from haops.render import render_template
from haops.targets.base import (
    AFFINITY,
    LEAST,
    SPLIT,
    BalancerTarget,
    Check,
    ProblemAt,
    RenderContext,
    RenderedFile,
    TrafficPromise,
    services_on,
    under,
)
from haops.targets.daemon import Daemon

CONFIG = "/etc/haproxy/haproxy.cfg"
ALGORITHMS = {
    "roundrobin": "roundrobin",
    "static-rr": "static-rr",
    "leastconn": "leastconn",
    "source": "source",
    "uri": "uri",
    "hdr": "hdr",
}
DISTRIBUTION = {"roundrobin": SPLIT, "static-rr": SPLIT, "leastconn": LEAST, "source": AFFINITY, "uri": AFFINITY, "hdr": AFFINITY}
DAEMON = Daemon(
    name="haproxy", unit="haproxy", process="haproxy", pidfile="/run/haproxy.pid",
    prepare="mkdir -p /run/haproxy",
    # Master-worker: USR2 makes the master re-read the config and start new workers,
    # which inherit the listening sockets, so no connection is refused.
    start=f"haproxy -W -D -p /run/haproxy.pid -f {CONFIG}",
    reload='kill -USR2 "$(cat /run/haproxy.pid)"',
)


def review(service: Service) -> list[ProblemAt]:
    """HAProxy's rules for one service whose method is resolved."""
    problems: list[ProblemAt] = []
    wants_header = service.method == "hdr"
    has_header = bool(service.hash_key and service.hash_key.startswith("header:"))
    if wants_header and not has_header:
        problems.append((("hash_key",), "algorithm hdr needs the header to hash on, e.g. hash_key: header:X-User"))
    if service.hash_key and not wants_header:
        problems.append((("hash_key",), "HAProxy uses hash_key only with algorithm hdr (uri and source need no key)"))
    return problems


def balance_line(service: Service) -> str:
    if service.method == "hdr" and service.hash_key:
        return f"hdr({service.hash_key.split(':', 1)[1]})"
    return service.method


def traffic(service: Service) -> TrafficPromise:
    if service.sticky == "source":
        return TrafficPromise(AFFINITY)
    key = service.hash_key or ("uri" if service.method == "uri" else "source")
    return TrafficPromise(DISTRIBUTION[service.method], hashed_key=key)


ADMIN_SOCKET = "/run/haproxy/admin.sock"
STAT_STATUS_FIELD = 18  # `show stat` CSV: pxname, svname, ..., status (UP, DOWN, UP 1/2, MAINT, DRAIN, no check)


def health_watch(service: Service, seconds: float) -> str:
    """The runtime API's `show stat`, polled every 0.1 s (socat: Debian package socat)."""
    states = (f"echo 'show stat' | socat -t 1 stdio UNIX-CONNECT:{ADMIN_SOCKET} | "
              f"awk -F, -v b={shlex.quote(service.name)} '$1 == b && $2 != \"BACKEND\" && $2 != \"FRONTEND\" "
              f"{{print $2 \" \" ${STAT_STATUS_FIELD}}}'")
    return (f'last=""; end=$(( $(date +%s) + {int(seconds)} )); while [ $(date +%s) -lt $end ]; do '
            f'now=$({states}); [ "$now" != "$last" ] && printf "%s\\n--\\n" "$now"; last=$now; sleep 0.1; done')


STAT_SESSIONS_FIELD = 5  # scur: the server's current connections


def runtime_api() -> str:
    """Shell function `api CMD`: one runtime API command; its answer on stdout, non-empty meaning refused."""
    return f'api() {{ echo "$1" | socat -t 2 stdio UNIX-CONNECT:{ADMIN_SOCKET}; }}'


def set_state(service: Service, backend: str, state: str) -> str:
    command = shlex.quote(f"set server {service.name}/{backend} state {state}")
    return f'answer=$(api {command}); [ -z "$answer" ] || {{ echo "haproxy: $answer" >&2; exit 1; }}'


def drain_script(service: Service, backend: str, seconds: int = 30) -> str:
    """drain (no new connections; sticky clients move), wait for scur 0 (bounded), then maint."""
    sessions = (f"api 'show stat' | awk -F, -v b={shlex.quote(service.name)} -v s={shlex.quote(backend)} "
                f"'$1 == b && $2 == s {{print ${STAT_SESSIONS_FIELD}}}'")
    wait = f'for i in $(seq {seconds * 10}); do [ "$({sessions})" = 0 ] && break; sleep 0.1; done'
    return "; ".join([runtime_api(), set_state(service, backend, "drain"), wait, set_state(service, backend, "maint")])


class HaproxyTarget(BalancerTarget):
    name = "haproxy"
    daemon = DAEMON
    algorithms = ALGORITHMS
    secret_lines = (r"^\s*stats auth [^:\s]*:(\S+)",)

    def review_service(self, service: Service) -> list[ProblemAt]:
        return review(service)

    def traffic(self, service: Service) -> TrafficPromise:
        return traffic(service)

    def health_watch(self, service: Service, seconds: float) -> str | None:
        return health_watch(service, seconds) if service.health else None

    def drain_script(self, service: Service, backend: str) -> str | None:
        return drain_script(service, backend)

    def ready_script(self, service: Service, backend: str) -> str | None:
        return f"{runtime_api()}; {set_state(service, backend, 'ready')}"

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        services = services_on(inventory, self.name, host)
        text = render_template(
            "haproxy/haproxy.cfg.j2",
            services=services,
            balance_line=balance_line,
            maxconn=sum(s.maxconn for s in services),
        )
        secrets = tuple(s.stats.password for s in services if s.stats)
        return [RenderedFile(CONFIG, text, 0o640, secrets)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        return [Check("haproxy", ("haproxy", "-c", "-f", under(root, CONFIG)), "haproxy -c")]


TARGET = HaproxyTarget()
