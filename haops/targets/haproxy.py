"""HAProxy: one haproxy.cfg per balancer host, a frontend and backend per service."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

from haops.inventory.model import Inventory, Service
from haops.render import render_template
from haops.targets.base import (
    AFFINITY,
    ALL_BACKENDS,
    DOWN,
    LEAST,
    MAINT,
    REFUSAL_MARK,
    SPLIT,
    UNKNOWN,
    UP,
    BackendState,
    BalancerTarget,
    Check,
    HostRun,
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
ADMIN_SOCKET = "/run/haproxy/admin.sock"
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


# --- the runtime API: each server's state as this HAProxy sees it ---------------------------------


def runtime_api() -> str:
    """Shell function `api CMD`: one runtime API command; its answer on stdout, non-empty meaning refused."""
    return f'api() {{ echo "$1" | socat -t 2 stdio UNIX-CONNECT:{ADMIN_SOCKET}; }}'


NO_SOCAT = shlex.quote("socat is not installed on this host; haops reads HAProxy's admin socket with it")
SHOW_STAT = (f"{DAEMON.running()} || {{ echo 'HAProxy is not running'; exit 3; }}; "
             f"command -v socat >/dev/null || {{ echo {NO_SOCAT}; exit 3; }}; "
             f"{runtime_api()}; api 'show stat'")
STATES = {"UP": UP, "no check": UP, "DOWN": DOWN, "MAINT": MAINT, "DRAIN": MAINT, "NOLB": MAINT}


def parse_show_stat(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """`show stat` CSV (a '# ' header line names the columns) by (proxy, server)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"HAProxy's `show stat` answered {text.strip()[:200]!r}")
    rows = csv.DictReader([lines[0][2:], *lines[1:]])
    return {(row["pxname"], row["svname"]): row for row in rows if row.get("svname")}


def server_state(row: dict[str, str]) -> tuple[str, str]:
    """UP, DOWN or MAINT, and HAProxy's own words: 'UP 1/2' is up, going down after one more failed check."""
    status = row.get("status", "")
    state = next((s for word, s in STATES.items() if status.startswith(word)), UNKNOWN)
    check = " ".join(filter(None, (row.get("check_status"), row.get("check_code"))))
    detail = ", ".join(filter(None, (status, f"check {check}" if check else "", row.get("last_chk") if state != UP else "")))
    return state, detail


def backend_states(service: Service, host: str, stats: dict[tuple[str, str], dict[str, str]]) -> list[BackendState]:
    states = []
    for backend in service.backends:
        row = stats.get((service.name, backend.host))
        state, detail = server_state(row) if row else (UNKNOWN, "not in this HAProxy's running configuration")
        states.append(BackendState(service.name, host, backend.host, state, detail))
    return states


def traffic(service: Service) -> TrafficPromise:
    if service.sticky == "source":
        return TrafficPromise(AFFINITY)
    key = service.hash_key or ("uri" if service.method == "uri" else "source")
    return TrafficPromise(DISTRIBUTION[service.method], hashed_key=key)


STAT_STATUS_FIELD = 18  # `show stat` CSV: pxname, svname, ..., status (UP, DOWN, UP 1/2, MAINT, DRAIN, no check)


def health_watch(service: Service, seconds: float) -> str:
    """The runtime API's `show stat`, polled every 0.1 s (socat: Debian package socat)."""
    states = (f"echo 'show stat' | socat -t 1 stdio UNIX-CONNECT:{ADMIN_SOCKET} | "
              f"awk -F, -v b={shlex.quote(service.name)} '$1 == b && $2 != \"BACKEND\" && $2 != \"FRONTEND\" "
              f"{{print $2 \" \" ${STAT_STATUS_FIELD}}}'")
    # Ends with its time, or as soon as its SSH session is gone (adopted by init).
    return (f'last=""; end=$(( $(date +%s) + {int(seconds)} )); while [ $(date +%s) -lt $end ] && [ "$(ps -o ppid= -p $$ | tr -d " ")" != 1 ]; do '
            f'now=$({states}); [ "$now" != "$last" ] && printf "%s\\n--\\n" "$now"; last=$now; sleep 0.1; done')


STAT_SESSIONS_FIELD = 5  # scur: the server's current connections


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
    speaks_http = True

    def review_service(self, service: Service) -> list[ProblemAt]:
        return review(service)

    def traffic(self, service: Service) -> TrafficPromise:
        return traffic(service)

    def backend_states(self, inventory: Inventory, host: str, run: HostRun) -> list[BackendState]:
        services = services_on(inventory, self.name, host)
        ran = run(SHOW_STAT)
        try:
            if ran.code != 0:
                raise ValueError(f"reading {ADMIN_SOCKET} failed: {(ran.stdout + ran.stderr).strip()}")
            stats = parse_show_stat(ran.stdout)
        except ValueError as exc:
            return [BackendState(s.name, host, ALL_BACKENDS, UNKNOWN, str(exc)) for s in services]
        return [state for s in services for state in backend_states(s, host, stats)]

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
            admin_socket=ADMIN_SOCKET,
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
