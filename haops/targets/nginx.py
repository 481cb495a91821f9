"""Nginx: one self-contained nginx.conf per balancer host, an upstream and server per service."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from haops.inventory.model import Inventory, Service
from haops.inventory.values import boolean, one_of
from haops.render import render_template, whole_seconds
from haops.targets.base import (
    AFFINITY,
    ALL_BACKENDS,
    LEAST,
    NOT_EXPOSED,
    PASSIVE_ONLY,
    REFUSAL_MARK,
    SPLIT,
    SPREAD,
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

CONFIG = "/etc/nginx/nginx.conf"
ERROR_LOG = "/var/log/nginx/error.log"
PLUS_ONLY = "# NGINX Plus only"
ALGORITHMS = {
    "roundrobin": "roundrobin",
    "least_conn": "least_conn",
    "leastconn": "least_conn",
    "ip_hash": "ip_hash",
    "source": "ip_hash",
    "hash": "hash",
    "random": "random",
    "least_time": "least_time",
}
DISTRIBUTION = {"roundrobin": SPLIT, "least_conn": LEAST, "ip_hash": AFFINITY, "hash": AFFINITY}
IP_HASH_PREFIX = 24  # ip_hash keys on the first three octets of the client address
DAEMON = Daemon(name="nginx", unit="nginx", process="nginx", pidfile="/run/nginx.pid",
                start=f"nginx -c {CONFIG}", reload=f"nginx -c {CONFIG} -s reload")
# A reload nginx refuses leaves the master on its old workers, and it says why at [emerg] in
# the error log. Two kinds of [emerg] line do not end a reload: a listen address in use
# (errno 98) is tried 5 times, 500 ms apart, before "still could not bind()", and a failed
# close() is only reported.
NOT_FINAL = ("failed (98: ", ": close() ")
NO_BACKUP_METHODS = ("hash", "ip_hash", "random")
STICKY_COOKIE_ALGORITHMS = ("roundrobin",)
STICKY_SOURCE_ALGORITHMS = ("roundrobin", "ip_hash")

# `nginx -t` binds every listen address, so the VIP must be bindable even on the VRRP
# backup: a private network namespace with ip_nonlocal_bind gives that without touching the
# machine. A private /run keeps the check from creating an empty /run/nginx.pid. Lines
# marked PLUS_ONLY are commented out (line numbers kept) when the binary is open-source nginx.
CHECK_SCRIPT = f"""\
set -e
echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind
[ ! -e /proc/sys/net/ipv6/ip_nonlocal_bind ] || echo 1 > /proc/sys/net/ipv6/ip_nonlocal_bind
mount -t tmpfs haops-check /run
conf=$2
if grep -q '{PLUS_ONLY}$' "$2" && ! nginx -v 2>&1 | grep -q nginx-plus; then
    sed 's/^\\( *\\)\\(.*{PLUS_ONLY}\\)$/\\1# \\2/' "$2" > /run/nginx-oss-view.conf
    conf=/run/nginx-oss-view.conf
fi
set +e
out=$(nginx -t -q -p "$1" -c "$conf" 2>&1)
status=$?
[ -z "$out" ] || printf '%s\\n' "$out" | sed "s|$conf|$2|g" >&2
exit $status
"""


def emerg_refusal(log: str) -> Refusal:
    """The mark is the log's size; refused once a final [emerg] line follows it. Prints each
    [emerg] message since the mark once (the retries of a bind repeat theirs)."""
    emerg = f'emerg=$({log_since(log, f"${REFUSAL_MARK}")} | grep -F "[emerg]")'
    final = "printf '%s\\n' \"$emerg\" | grep -Fv " + " ".join(f"-e {shlex.quote(line)}" for line in NOT_FINAL) + " | grep -q ."
    why = "printf '%s\\n' \"$emerg\" | sed 's/^.*\\[emerg\\] [0-9]*#[0-9]*: //' | awk '!seen[$0]++'"
    return Refusal(mark=log_size(log), test=f'[ -n "${REFUSAL_MARK}" ] && {emerg} && {final} && {why}')


def next_upstream_list(value: Any) -> list[str]:
    allowed = ("error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504", "http_403", "http_404", "http_429", "non_idempotent", "off")
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a list of: {', '.join(allowed)}")
    return [one_of(*allowed)(item) for item in value]


OPTIONS = {"nginx": {"plus": OptionField(boolean, False),
                     "next_upstream": OptionField(lambda v: tuple(next_upstream_list(v)), ("error", "timeout"))}}


def plus(service: Service) -> bool:
    return bool(service.options["nginx"]["plus"])


def next_upstream(service: Service) -> tuple[str, ...]:
    return tuple(service.options["nginx"]["next_upstream"])


def review(service: Service) -> list[ProblemAt]:
    problems: list[ProblemAt] = []
    problems += _review_algorithm(service)
    problems += _review_sticky(service)
    problems += _review_backups(service)
    if service.stats:
        problems.append((("stats",), ("nginx has no stats page with a login: open-source nginx offers only stub_status "
                         "(no per-backend state, no password). Remove stats, or use balancer haproxy for a stats page")))
    if "off" in next_upstream(service) and len(next_upstream(service)) > 1:
        problems.append((("nginx", "next_upstream"), "'off' disables retries and cannot be combined with other conditions"))
    return problems


def _review_algorithm(service: Service) -> list[ProblemAt]:
    if service.method == "least_time" and not plus(service):
        return [(("algorithm",), ("least_time exists only in NGINX Plus (the commercial build); open-source nginx stops "
                 "with 'unknown directive \"least_time\"'. Set nginx.plus: true if these hosts run NGINX Plus, "
                 "or choose least_conn"))]
    if service.method == "hash" and not service.hash_key:
        return [(("hash_key",), "algorithm hash needs a key, e.g. hash_key: uri, source, cookie:NAME, header:NAME or arg:NAME")]
    if service.hash_key and service.method != "hash":
        return [(("hash_key",), f"nginx uses hash_key only with algorithm hash, not {service.method}")]
    return []


def _review_sticky(service: Service) -> list[ProblemAt]:
    if service.sticky == "cookie" and service.method not in STICKY_COOKIE_ALGORITHMS:
        return [(("sticky",), (f"sticky: cookie makes nginx balance by a consistent hash of the {service.cookie} cookie, "
                 f"which replaces algorithm {service.method}; remove the algorithm or the stickiness"))]
    if service.sticky == "source" and service.method not in STICKY_SOURCE_ALGORITHMS:
        return [(("sticky",), (f"sticky: source makes nginx balance by a hash of the client address, which replaces "
                 f"algorithm {service.method}; remove the algorithm, or use ip_hash"))]
    return []


def _review_backups(service: Service) -> list[ProblemAt]:
    method = balancing_line(service)
    keyword = method.split()[0] if method else "roundrobin"
    if keyword not in NO_BACKUP_METHODS:
        return []
    why = (f"nginx refuses backup servers with '{method}' ('balancing method does not support parameter \"backup\"'): "
           "a hash or random pick has no fallback order. Use roundrobin, least_conn or no backup")
    return [(("backends", index, "backup"), why) for index, backend in enumerate(service.backends) if backend.backup]


def hash_key_variable(hash_key: str) -> str:
    """The nginx variable for a hash_key of the model's grammar."""
    if hash_key == "uri":
        return "$request_uri"
    if hash_key == "source":
        return "$remote_addr"
    kind, name = hash_key.split(":", 1)
    if kind == "header":
        return "$http_" + name.lower().replace("-", "_")
    return f"${kind}_{name}"


def sticky_variable(service: Service) -> str:
    """A variable name unique per service: '_' doubles and '-' becomes '_d', so no two names meet."""
    return "haops_sticky_" + service.name.replace("_", "__").replace("-", "_d")


def balancing_line(service: Service) -> str | None:
    """The upstream's balancing directive; None is nginx's default weighted round robin."""
    if service.sticky == "cookie":
        return f"hash ${sticky_variable(service)} consistent"
    if service.sticky == "source" and service.method == "roundrobin":
        return "hash $remote_addr consistent"
    if service.method == "hash" and service.hash_key:
        return f"hash {hash_key_variable(service.hash_key)} consistent"
    return {
        "least_conn": "least_conn",
        "ip_hash": "ip_hash",
        "random": "random two",
        "least_time": "least_time header",
    }.get(service.method)


def server_parameters(service: Service, weight: int, backup: bool) -> str:
    parameters = [f"weight={weight}"]
    if service.health:
        fail_timeout_s = whole_seconds(service.health.interval_ms * service.health.fall)
        parameters += [f"max_fails={service.health.fall}", f"fail_timeout={fail_timeout_s}s"]
    if backup:
        parameters.append("backup")
    return " ".join(parameters)


def backend_state(service: Service, host: str) -> BackendState:
    """Open-source nginx keeps no health state it can show: max_fails marks a backend failed only
    while requests to it fail, inside nginx's workers."""
    if plus(service):
        return BackendState(service.name, host, ALL_BACKENDS, NOT_EXPOSED, "haops renders no NGINX Plus API to read")
    return BackendState(service.name, host, ALL_BACKENDS, PASSIVE_ONLY, "open-source nginx has no active health state to read")


def traffic(service: Service) -> TrafficPromise:
    if service.sticky == "cookie":
        return TrafficPromise(SPREAD)
    if service.sticky == "source":
        return TrafficPromise(AFFINITY)
    prefix = IP_HASH_PREFIX if service.method == "ip_hash" else None
    return TrafficPromise(DISTRIBUTION.get(service.method, SPREAD), hashed_key=service.hash_key or "source", key_prefix=prefix)


class NginxTarget(BalancerTarget):
    name = "nginx"
    daemon = DAEMON
    algorithms = ALGORITHMS
    option_blocks = OPTIONS
    speaks_http = True

    def review_service(self, service: Service) -> list[ProblemAt]:
        return review(service)

    def backend_states(self, inventory: Inventory, host: str, run: HostRun) -> list[BackendState]:
        return [backend_state(s, host) for s in services_on(inventory, self.name, host)]

    def traffic(self, service: Service) -> TrafficPromise:
        return traffic(service)

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        services = services_on(inventory, self.name, host)
        worker_connections = 2 * sum(s.maxconn for s in services)
        text = render_template(
            "nginx/nginx.conf.j2",
            services=services,
            balancing_line=balancing_line,
            server_parameters=server_parameters,
            sticky_variable=sticky_variable,
            plus_only=PLUS_ONLY,
            next_upstream=next_upstream,
            worker_connections=worker_connections,
            error_log=ERROR_LOG,
        )
        return [RenderedFile(CONFIG, text, 0o644)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        prefix = under(root, "/etc/nginx") + "/"
        argv = ("unshare", "--net", "--mount", "sh", "-c", CHECK_SCRIPT, "haops-nginx-check", prefix, under(root, CONFIG))
        return [Check("nginx", argv, "nginx -t")]

    def refused(self) -> Refusal:
        return emerg_refusal(ERROR_LOG)


TARGET = NginxTarget()
