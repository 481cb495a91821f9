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
