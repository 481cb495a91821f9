"""A tiny HTTP responder on every backend, so verify can tell which backend answered.

Opt-in with `responders: true`: it is for labs and test clusters, never for hosts that
already run the real application. It is a separate nginx instance (its own config,
pid file and log), so it coexists with an nginx balancer on the same host.
"""

from __future__ import annotations

from pathlib import Path

from haops.inventory.model import Inventory, IPAddress
from haops.render import render_template
from haops.targets.lvs.dr import dr_services
from haops.targets.base import Check, RenderContext, RenderedFile, Target, under
from haops.targets.daemon import Daemon
from haops.targets.nginx import CHECK_SCRIPT

CONFIG = "/etc/haops/responder/nginx.conf"
PREFIX = "/etc/haops/responder"
DAEMON = Daemon(name="haops-responder", unit=None, process="nginx", pidfile="/run/haops-responder.pid",
                start=f"nginx -c {CONFIG}", reload=f"nginx -c {CONFIG} -s reload")


def ports_on(inventory: Inventory, host: str) -> list[int]:
    return sorted({b.port for s in inventory.services.values() for b in s.backends if b.host == host})


def endpoints(inventory: Inventory, host: str) -> list[tuple[IPAddress, int]]:
    """Where the responder listens: each backend port on each of the host's addresses, and on
    the VIP of each LVS DR service the host serves (the director forwards those packets
    unchanged, so they arrive addressed to the VIP, which the lvs-dr target put on lo)."""
    wanted = {(address, port) for port in ports_on(inventory, host) for address in inventory.hosts[host].addresses}
    wanted |= {(service.vip, backend.port) for service in dr_services(inventory, host)
               for backend in service.backends if backend.host == host}
    return sorted(wanted, key=lambda pair: (pair[1], pair[0].version, int(pair[0])))


class ResponderTarget(Target):
    name = "responder"
    daemon = DAEMON
    serves_backends = True

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        return [(str(address), port) for address, port in endpoints(inventory, host)]

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        if not inventory.responders:
            return ()
        return tuple(name for name in inventory.hosts if ports_on(inventory, name))

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        text = render_template(
            "responder/nginx.conf.j2",
            host=host,
            endpoints=endpoints(inventory, host),
        )
        return [RenderedFile(CONFIG, text)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        argv = ("unshare", "--net", "--mount", "sh", "-c", CHECK_SCRIPT, "haops-responder-check", under(root, PREFIX) + "/", under(root, CONFIG))
        return [Check("nginx", argv, "nginx -t")]


TARGET = ResponderTarget()
