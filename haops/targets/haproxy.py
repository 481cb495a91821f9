"""HAProxy: one haproxy.cfg per balancer host, a frontend and backend per service."""

from __future__ import annotations

from pathlib import Path

from haops.model import Inventory, Service
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

CONFIG = "/etc/haproxy/haproxy.cfg"
ALGORITHMS = {
    "roundrobin": "roundrobin",
    "static-rr": "static-rr",
    "leastconn": "leastconn",
    "source": "source",
    "uri": "uri",
    "hdr": "hdr",
}


def review(service: Service) -> list[ProblemAt]:
    problems: list[ProblemAt] = []
    wants_header = service.algorithm == "hdr"
    has_header = bool(service.hash_key and service.hash_key.startswith("header:"))
    if wants_header and not has_header:
        problems.append((("hash_key",), "algorithm hdr needs the header to hash on, e.g. hash_key: header:X-User"))
    if service.hash_key and not wants_header:
        problems.append((("hash_key",), "HAProxy uses hash_key only with algorithm hdr (uri and source need no key)"))
    return problems


def balance_line(service: Service) -> str:
    if service.algorithm == "hdr" and service.hash_key:
        return f"hdr({service.hash_key.split(':', 1)[1]})"
    return service.algorithm


class HaproxyTarget(BalancerTarget):
    name = "haproxy"
    service = "haproxy"
    secret_lines = (r"^\s*stats auth [^:\s]*:(\S+)",)
    summary = "HAProxy frontends and backends: algorithms, health checks, stickiness, stats"

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        services = services_on(inventory, "haproxy", host)
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
