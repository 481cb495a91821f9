"""After the hosts are applied: wait (bounded) until each VIP is held by exactly one node and answers.

keepalived starts every instance as BACKUP (only an address owner, priority 255, starts MASTER),
so a fresh VIP appears only after the master-down interval, 3 x advert_int plus skew: an apply
that returned at once would hand `curl` a VIP nobody holds yet. Each round reads every VRRP host
over apply's own connections, then connects from this machine to each service on a settled VIP,
with an HTTP request for balancers that speak HTTP (from a client host when this machine has no
route to the VIP: a cluster behind a bastion).
"""

from __future__ import annotations

import shlex
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from haops.inventory.model import Inventory, Service, VrrpInstance, endpoint
from haops.status import VipView, read_vips
from haops.targets import balancers

if TYPE_CHECKING:
    from haops.apply.run import HostOutcome
    from haops.transport import Connections

VIP_WAIT_S = 12.0
ROUND_PAUSE_S = 0.2
CONNECT_TIMEOUT_S = 1.0
ANSWER_TIMEOUT_S = 2.0
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Answer:
    port: int
    ok: bool
    said: str  # "HTTP 200", "TCP", or why not


def answer(address: str, port: int, http: bool) -> Answer:
    """One TCP connect to the service (and one HTTP request when it speaks HTTP), bounded in time."""
    try:
        with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT_S) as connection:
            if not http:
                return Answer(port, True, "TCP")
            connection.settimeout(ANSWER_TIMEOUT_S)
            host = endpoint(address, port).rsplit(":", 1)[0]  # an IPv6 address in brackets
            connection.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            status_line = connection.recv(64).split(b"\r\n")[0].decode("latin-1")
    except OSError as exc:
        return Answer(port, False, f"{type(exc).__name__}: {exc.strerror or exc}")
    fields = status_line.split()
    if len(fields) >= 2 and fields[0].startswith("HTTP/") and fields[1].isdigit():
        return Answer(port, True, f"HTTP {fields[1]}")
    return Answer(port, False, f"no HTTP answer ({status_line[:40]!r})")


def routable(address: str) -> bool:
    """This machine has a route to the address (a UDP connect only looks the route up; nothing is sent)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((address, 9))
        except OSError:
            return False
    return True


def remote_answer_script(address: str, port: int) -> str:
    """One bounded curl on a host that reaches the VIP: the HTTP code and whether TCP connected."""
    url = shlex.quote(f"http://{endpoint(address, port)}/")
    return (f"curl -s -o /dev/null --connect-timeout {CONNECT_TIMEOUT_S:g} -m {CONNECT_TIMEOUT_S + ANSWER_TIMEOUT_S:g} "
            f"-w '%{{http_code}} %{{time_connect}}' {url}; true")


def parse_remote_answer(port: int, http: bool, output: str, source: str) -> Answer:
    fields = output.split()
    code, connected = (fields[0], float(fields[1])) if len(fields) == 2 and fields[0].isdigit() else ("000", 0.0)
    if connected <= 0:
        return Answer(port, False, f"no connection from {source}")
    if not http:
        return Answer(port, True, f"TCP from {source}")
    return Answer(port, code != "000", f"HTTP {code} from {source}" if code != "000" else f"no HTTP answer at {source}")


def answers_from(source: str, connections: Connections, address: str, services: list[Service],
                 http: list[bool]) -> list[Answer]:
    from haops.transport import HostFailure, run

    found = []
    for service, speaks in zip(services, http):
        try:
            ran = run(connections.get(source), remote_answer_script(address, service.port), timeout_s=10)
            found.append(parse_remote_answer(service.port, speaks, ran.stdout, source))
        except HostFailure as exc:
            found.append(Answer(service.port, False, f"could not ask {source}: {exc}"))
    return found


def services_on_vip(inventory: Inventory, instance: VrrpInstance) -> list[Service]:
    return [s for s in inventory.services.values() if s.vip == instance.vip.ip]


def answers(inventory: Inventory, instance: VrrpInstance, connections: Connections) -> list[Answer]:
    """From this machine; when it has no route to the VIP (a cluster behind a bastion), from the
    first host in group 'client', over SSH."""
    known = balancers()
    services = services_on_vip(inventory, instance)
    http = [known[s.balancer].speaks_http if s.balancer in known else False for s in services]
    if not routable(str(instance.vip.ip)):
        clients = inventory.group("client")
        if not clients:
            return [Answer(s.port, True, "not tried: no route from this machine, no host in group 'client'") for s in services]
        return answers_from(clients[0], connections, str(instance.vip.ip), services, http)
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        return list(pool.map(lambda pair: answer(str(instance.vip.ip), pair[0].port, pair[1]), zip(services, http)))


@dataclass(frozen=True)
class Round:
    """One look at an instance: its nodes and, once it is settled, its services' answers."""

    view: VipView
    answers: tuple[Answer, ...] = ()

    @property
    def problem(self) -> str | None:
        if self.view.problem:
            return self.view.problem
        silent = [f"{a.port} ({a.said})" for a in self.answers if not a.ok]
        if not silent:
            return None
        return f"{self.view.instance.name}: {self.view.holder} holds {self.view.instance.vip.ip}, but it does not answer on {', '.join(silent)}"


def look(inventory: Inventory, instances: list[VrrpInstance], connections: Connections) -> list[Round]:
    rounds = []
    for view in read_vips(inventory, instances, connections):
        settled = view.problem is None
        rounds.append(Round(view, tuple(answers(inventory, view.instance, connections)) if settled else ()))
    return rounds


def instances_to_wait_for(inventory: Inventory, batch: Sequence[HostOutcome], failed: set[str]) -> list[VrrpInstance]:
    """Instances with a host applied in this batch, none of whose hosts failed in this run (that
    failure is reported already, and its host's state is not what this run meant)."""
    applied = {o.report.host for o in batch if o.report.ok}
    return [i for i in inventory.vrrp.values() if applied & set(i.hosts) and not failed & set(i.hosts)]


def show(rounds: list[Round], progress: Progress) -> None:
    for one in rounds:
        for node in one.view.nodes:
            holds = ", holds it" if node.holds_vip else ""
            progress(node.host, f"VIP {one.view.instance.vip.ip} ({one.view.instance.name}): {node.state or 'unreadable'}{holds}")


def wait_for_vips(inventory: Inventory, batch: Sequence[HostOutcome], failed: set[str], connections: Connections,
                  progress: Progress) -> None:
    """Report on the batch's hosts: who holds each VIP and what answers, or why not within VIP_WAIT_S."""
    instances = instances_to_wait_for(inventory, batch, failed)
    if not instances:
        return
    started = time.monotonic()
    while True:
        rounds = look(inventory, instances, connections)
        show(rounds, progress)
        unsettled = [r for r in rounds if r.problem]
        # A host that could not be reached is not tried again, so its instance cannot settle.
        hopeless = any(connections.unreachable(h) for r in unsettled for h in r.view.instance.hosts)
        if not unsettled or hopeless or time.monotonic() - started >= VIP_WAIT_S:
            break
        time.sleep(ROUND_PAUSE_S)
    report(rounds, batch, time.monotonic() - started, progress)


def report(rounds: list[Round], batch: Sequence[HostOutcome], seconds: float, progress: Progress) -> None:
    by_host = {o.report.host: o.report for o in batch}
    for one in rounds:
        instance = one.view.instance
        mine = [by_host[h] for h in instance.hosts if h in by_host]
        if one.problem:
            for host_report in mine:
                host_report.fail(f"VIP {instance.vip.ip} not settled (waited {seconds:.1f}s): {one.problem}")
                progress(host_report.host, "failed")
            continue
        said = ", ".join(f"{a.port} {a.said}" for a in one.answers) or "no service on it"
        holder = by_host.get(one.view.holder or "") or mine[0]
        holder.messages.append(f"VIP {instance.vip.ip} ({instance.name}) held by {one.view.holder} after {seconds:.1f}s; answers: {said}")
