"""What the checks share: the inventory, SSH to hosts, the client hosts, and the lab for faults."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from haops.errors import UserError
from haops.targets import all_targets
from haops.targets.base import Target
from haops.targets.daemon import PLAIN
from haops.inventory.model import Inventory, Service
from haops.transport import HostFailure, SshSettings, open_connection, run

if TYPE_CHECKING:
    from fabric import Connection

    from haops.lab import Lab



LOCAL = "local"
LOCAL_PROBE_MAX_S = 120.0
IPV4_LITERAL = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.])")


@dataclass
class VerifyContext:
    inventory: Inventory
    settings: SshSettings
    lab: Lab | None = None
    faults: bool = False
    connections: dict[str, Connection] = field(default_factory=dict)
    source: str | None = None  # where probes go from: a host, LOCAL (this machine), None: group 'client'

    @property
    def clients(self) -> list[str]:
        """Where the traffic probes run: --from, else the hosts in group 'client'."""
        if self.source is not None:
            return [self.source]
        clients = list(self.inventory.group("client"))
        if not clients:
            raise UserError(NO_SOURCE)
        return clients

    def traffic_sources(self, service: Service, wanted: int) -> list[str]:
        """Clients first, then other hosts that neither balance nor back this service (not with --from)."""
        if self.source is not None:
            return [self.source]
        busy = set(service.hosts) | {b.host for b in service.backends}
        others = [h for h in self.inventory.hosts if h not in busy and h not in self.clients]
        return (self.clients + others)[:wanted]

    def sh(self, host: str, script: str, timeout_s: float = 120) -> str:
        if host == LOCAL:
            return run_locally(script, allowed_targets(self.inventory), timeout_s)
        if host not in self.connections:
            self.connections[host] = open_connection(self.inventory.hosts[host], self.settings)
        ran = run(self.connections[host], script, timeout_s)
        if ran.code != 0:
            raise HostFailure(f"{host}: probe failed ({ran.code}): {(ran.stderr or ran.stdout).strip()[:300]}")
        return ran.stdout

    def stop_responder(self, host: str) -> None:
        """Stop the stand-in application on a backend, and wait (bounded) until it is gone."""
        target = stand_in()
        self.sh(host, f"{target.stop(PLAIN)}; for i in $(seq 50); do ( {target.probe()} ) || exit 0; sleep 0.1; done; exit 1")

    def start_responder(self, host: str) -> None:
        target = stand_in()
        self.sh(host, f"( {target.probe()} ) || ( {target.activate(PLAIN, False, [])} )")

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()
        self.connections.clear()


def stand_in() -> Target:
    """The target that answers for backends in test clusters (verify stops it to fake a dead one)."""
    return next(t for t in all_targets() if t.serves_backends)


NO_SOURCE = ("no traffic source: verify sends its probes from a host in group 'client' and the inventory has "
             "none; add one (groups: [client]), or run `haops verify --from local` (from this machine) or "
             "`--from HOST`")


def allowed_targets(inventory: Inventory) -> set[str]:
    """The only addresses a probe from this machine may reach: the services' VIPs and the DNS servers."""
    found = {str(s.vip) for s in inventory.services.values()}
    found |= {str(inventory.hosts[server].address) for zone in inventory.zones.values() for server in zone.servers}
    return found


def run_locally(script: str, allowed: set[str], timeout_s: float) -> str:
    """Run a probe script on this machine: it may name no address but the inventory's services',
    and it is stopped after `timeout_s` (at most LOCAL_PROBE_MAX_S)."""
    strangers = sorted(set(IPV4_LITERAL.findall(script)) - allowed)
    if strangers:
        raise HostFailure(f"refused to probe {', '.join(strangers)} from this machine: only the inventory's "
                          f"service addresses are probed from here")
    limit = min(timeout_s, LOCAL_PROBE_MAX_S)
    try:
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=limit,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise HostFailure(f"a probe from this machine did not finish within {limit:.0f}s; it was stopped") from None
    if done.returncode != 0:
        raise HostFailure(f"this machine: probe failed ({done.returncode}): {(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout


def check_source(inventory: Inventory, source: str | None) -> str | None:
    """--from as given, checked: an inventory host, or LOCAL when this machine reaches every service address."""
    if source is None:
        return None
    if source != LOCAL:
        if source not in inventory.hosts:
            raise UserError(f"--from {source}: no such host; hosts: {', '.join(inventory.hosts)} (or --from local)")
        return source
    from haops.apply.vips import routable

    unreachable = sorted(a for a in allowed_targets(inventory) if not routable(a))
    if unreachable:
        hint = next(iter(inventory.group("client")), None) or "HOST"
        raise UserError(f"--from local: this machine has no route to {', '.join(unreachable)} (a cluster behind a "
                        f"bastion?); send the probes from a host that reaches them: --from {hint}")
    return LOCAL
