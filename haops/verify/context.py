"""What the checks share: the inventory, SSH to hosts, the client hosts, and the lab for faults."""

from __future__ import annotations

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



@dataclass
class VerifyContext:
    inventory: Inventory
    settings: SshSettings
    lab: Lab | None = None
    faults: bool = False
    connections: dict[str, Connection] = field(default_factory=dict)

    @property
    def clients(self) -> list[str]:
        clients = list(self.inventory.group("client"))
        if not clients:
            raise UserError("verify sends traffic from hosts in group 'client'; the inventory has none")
        return clients

    def traffic_sources(self, service: Service, wanted: int) -> list[str]:
        """Clients first, then other hosts that neither balance nor back this service."""
        busy = set(service.hosts) | {b.host for b in service.backends}
        others = [h for h in self.inventory.hosts if h not in busy and h not in self.clients]
        return (self.clients + others)[:wanted]

    def sh(self, host: str, script: str, timeout_s: float = 120) -> str:
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
