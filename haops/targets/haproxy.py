"""HAProxy: one haproxy.cfg per balancer host, a frontend and backend per service."""

from __future__ import annotations

import shlex
from pathlib import Path

from haops.inventory.model import Inventory, Service
from haops.render import render_template
from haops.targets.base import (
    AFFINITY,
    LEAST,
    REFUSAL_MARK,
    SPLIT,
    BalancerTarget,
    Check,
    ProblemAt,
    Refusal,
    RenderContext,
    RenderedFile,
    TrafficPromise,
    services_on,
    under,
)
from haops.targets.daemon import Daemon

CONFIG = "/etc/haproxy/haproxy.cfg"
MASTER_SOCKET = "/run/haproxy-master.sock"  # where Debian's haproxy.service binds the master CLI
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
    # which inherit the listening sockets, so no connection is refused. The master CLI
    # (root only) tells whether a reload failed.
    start=f"haproxy -W -D -p /run/haproxy.pid -S {MASTER_SOCKET},mode,600 -f {CONFIG}",
    reload='kill -USR2 "$(cat /run/haproxy.pid)"',
)
# The master's line of `show proc` reads `<pid> master <reloads> [failed: <n>] <uptime> <version>`:
# every reload adds to <reloads>, and <n> counts the reloads that failed since the last one that
# took (0 again when one takes). A failed reload leaves the old workers serving.
FAILED_SINCE_MARK = """$2 == "master" && before != "" && $3 + 0 > before + 0 && $5 + 0 > 0 {
    print "haproxy master: reload failed (show proc: " $3 " [failed: " $5 "), the old workers still serve"; found = 1 }
END { exit !found }"""


def show_proc(socket: str) -> str:
    """Shell: the master CLI's process list; nothing while the master re-executes itself."""
    return f"echo 'show proc' | socat -t 1 -T 1 - UNIX-CONNECT:{shlex.quote(socket)} 2>/dev/null"


def master_refusal(socket: str) -> Refusal:
    """The mark is the master's reload count; refused once a later reload counts as failed."""
    return Refusal(
        mark=f"{show_proc(socket)} | awk '$2 == \"master\" {{ print $3 }}'",
        test=f'{show_proc(socket)} | awk -v before="${REFUSAL_MARK}" {shlex.quote(FAILED_SINCE_MARK)}',
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


class HaproxyTarget(BalancerTarget):
    name = "haproxy"
    daemon = DAEMON
    algorithms = ALGORITHMS
    secret_lines = (r"^\s*stats auth [^:\s]*:(\S+)",)

    def review_service(self, service: Service) -> list[ProblemAt]:
        return review(service)

    def traffic(self, service: Service) -> TrafficPromise:
        return traffic(service)

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

    def refused(self) -> Refusal:
        return master_refusal(MASTER_SOCKET)


TARGET = HaproxyTarget()
