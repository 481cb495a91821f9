"""The cluster a drill acts on: its inventory, SSH to its hosts, and the lab when there is one."""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from haops.errors import UserError
from haops.inventory.model import Inventory, Service, VrrpInstance
from haops.transport import Connections, HostFailure, SshSettings, put_text, run

if TYPE_CHECKING:
    from fabric import Connection

    from haops.lab import Lab


@dataclass
class DrillCluster:
    inventory: Inventory
    settings: SshSettings
    lab: Lab | None
    connections: Connections = field(init=False)

    def __post_init__(self) -> None:
        self.connections = Connections(self.inventory.hosts, self.settings)

    def sh(self, host: str, script: str, timeout_s: float = 60) -> str:
        ran = run(self.connection(host), script, timeout_s)
        if ran.code != 0:
            raise HostFailure(f"{host}: {(ran.stderr or ran.stdout).strip()[:300]} (exit {ran.code})")
        return ran.stdout

    def connection(self, host: str) -> Connection:
        return self.connections.get(host)

    def put(self, host: str, text: str, path: str) -> None:
        put_text(self.connection(host), text, path)

    def forget(self, host: str) -> None:
        """Drop a connection to a host that was crashed or cut (the next sh() reconnects)."""
        self.connections.drop(host)

    def close(self) -> None:
        self.connections.close()

    def holders(self, instance: VrrpInstance) -> list[str]:
        """The instance's hosts that hold its VIP now. In the lab each host's namespace is read
        directly, so a cut-off host is seen too; elsewhere an unreachable host counts as not holding it."""
        if self.lab is not None:
            return [h for h in instance.hosts if self.lab_host_holds(h, str(instance.vip.ip))]
        held = f"ip -o -4 addr show | grep -qF {shlex.quote(f' {instance.vip.ip}/')}"
        found = []
        for host in instance.hosts:
            try:
                answer = self.sh(host, f"{held} && echo yes || echo no", timeout_s=5)
            except HostFailure:
                self.forget(host)
                continue
            if answer.strip() == "yes":
                found.append(host)
        return found

    def lab_host_holds(self, host: str, address: str) -> bool:
        assert self.lab is not None
        shown = subprocess.run(["ip", "-n", self.lab.netns(host), "-o", "-4", "addr", "show"],
                               capture_output=True, text=True, timeout=5, check=False)
        return f" {address}/" in shown.stdout

    def wait_for_single_holder(self, instance: VrrpInstance, seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        while True:
            holders = self.holders(instance)
            if len(holders) == 1 or time.monotonic() > deadline:
                return holders
            time.sleep(0.2)

    def apply_to(self, hosts: list[str], inventory: Inventory | None = None) -> None:
        """Converge hosts to the inventory (or a derived one, for a switchover), failing loudly."""
        from haops.apply.run import ApplyOptions, apply

        for host in hosts:
            self.forget(host)
        outcomes = apply(inventory or self.inventory, hosts, ApplyOptions(), self.settings, lambda host, step: None)
        failed = [f"{o.report.host}: {'; '.join(o.report.messages)}" for o in outcomes if not o.report.ok]
        if failed:
            raise HostFailure("apply failed: " + " | ".join(failed))


def service_named(inventory: Inventory, name: str | None) -> Service:
    if name is None:
        if not inventory.services:
            raise UserError("the inventory has no services to drill")
        return next(iter(inventory.services.values()))
    if name not in inventory.services:
        raise UserError(f"no service {name!r}; services: {', '.join(inventory.services) or 'none'}")
    return inventory.services[name]


def instance_for(inventory: Inventory, service: Service) -> VrrpInstance | None:
    """The VRRP instance that floats the service's VIP, if any."""
    return next((i for i in inventory.vrrp.values() if i.vip.ip == service.vip), None)
