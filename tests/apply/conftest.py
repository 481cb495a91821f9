"""One lab for the apply and verify tests, and the starting states each test asks for.

The lab is built once per session. A test never relies on what an earlier test left:
it asks for `bare` (the lab rebuilt: nothing applied), `applied` (the example inventory
applied to every host and serving) or `fresh_inventory` (the example inventory written,
the hosts as they are).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from haops import inventory
from haops.apply.run import ApplyOptions, apply
from haops.lab import Lab, LabHost
from haops.apply.lock import LEASE_S, LOCK
from haops.inventory.model import Inventory
from haops.session import settings_for
from tests.lab.conftest import lab_pid_namespaces, leftovers

ROOT = Path(__file__).resolve().parent.parent.parent
CLUSTER_LAB = "haapply"
CLUSTER_NETWORK = IPv4Network("10.213.10.0/24")

# Listens on 0.0.0.0:PORT until killed, or, given a log and a text, until the text is
# written to the log after it started. Debian's python3 (setup installs it): the
# machine's /root, where pyenv lives, is private to each lab host.
PORT_HOLDER = """\
import socket, sys, time
port, log, until = int(sys.argv[1]), sys.argv[2], sys.argv[3]
held = socket.socket()
held.bind(("0.0.0.0", port))
held.listen()
news = open(log) if until else None
if news:
    news.seek(0, 2)
deadline = time.time() + 120
while time.time() < deadline and not (news and until in news.read()):
    time.sleep(0.02)
"""


@dataclass
class Cluster:
    lab: Lab
    path: Path
    namespaces: set[str] = field(default_factory=set)

    @property
    def inventory(self) -> Inventory:
        return inventory.load(self.path)

    def rewrite(self, old: str, new: str) -> None:
        """Edit the inventory file in place (the next test's fixture writes it afresh)."""
        text = self.path.read_text()
        assert old in text, old
        self.path.write_text(text.replace(old, new, 1))

    def sh(self, host: str, script: str, timeout: float = 60) -> str:
        done = self.lab.exec(host, ["sh", "-c", script], timeout=timeout)
        assert done.returncode == 0, f"{host}: {script}\n{done.stdout}{done.stderr}"
        return done.stdout

    @contextmanager
    def port_held(self, host: str, port: int, log: str = "", until: str = "") -> Iterator[None]:
        """Another process holds the TCP port on `host`, so a daemon that wants it cannot bind.
        It must be the one holding it (not something an earlier test left), and it ends by PID."""
        argv = " ".join(shlex.quote(a) for a in ("/usr/bin/python3", "-c", PORT_HOLDER, str(port), log, until))
        pid = self.sh(host, f"setsid {argv} </dev/null >/dev/null 2>&1 & echo $!").strip()
        try:
            self.sh(host, f"for i in $(seq 50); do ss -ltnpH 'sport = :{port}' | grep -q 'pid={pid},' && exit 0; "
                          "sleep 0.1; done; ss -ltnpH; exit 1")
            yield
        finally:
            self.sh(host, f"kill {pid} 2>/dev/null || true")

    def build(self) -> None:
        """The lab as `haops lab up` makes it from the inventory: every host booted, only sshd, nothing applied."""
        self.namespaces.update(lab_pid_namespaces(self.lab).values())
        self.lab.down()
        hosts = [LabHost(h.name, h.address, h.groups, h.address6) for h in self.inventory.hosts.values()]
        self.lab.up(hosts, self.path.read_text())
        self.namespaces.update(lab_pid_namespaces(self.lab).values())

    def converge(self, text: str) -> None:
        """`text` becomes the inventory and is applied to every host, from whatever state they are in."""
        self.path.write_text(text)
        inv = self.inventory
        outcomes = apply(inv, list(inv.hosts), ApplyOptions(), settings_for(inv), lambda host, step: None)
        locked = [o.report.host for o in outcomes if any("another apply is running" in m for m in o.report.messages)]
        if locked:
            for host in locked:
                self.wait_for_lock(host)
            outcomes = apply(inv, list(inv.hosts), ApplyOptions(), settings_for(inv), lambda host, step: None)
        failed = {o.report.host: o.report.messages for o in outcomes if not o.report.ok}
        assert failed == {}, failed
        self.assert_vips_on_masters(inv)

    def wait_for_lock(self, host: str) -> None:
        """A holder cut off mid-run keeps the lock until its lease runs out (no more heartbeats)."""
        self.sh(host, f"for i in $(seq {LEASE_S * 2 + 10}); do flock -n {LOCK} true && exit 0; sleep 0.5; done; exit 1",
                timeout=LEASE_S + 20)

    def assert_vips_on_masters(self, inv: Inventory) -> None:
        """Each VRRP address on its highest-priority host only: apply waited until one node held it,
        and with preempt and every host healthy that one is the highest."""
        for instance in inv.vrrp.values():
            holders = [h for h in instance.hosts if f" {instance.vip.ip}/" in self.sh(h, "ip -br addr")]
            assert holders == [instance.priorities[0][0]], f"{instance.name}: {instance.vip.ip} held by {holders}"


def example_in(lab: str, network: IPv4Network) -> str:
    """The example inventory moved to a lab of its own name and /24."""
    text = (ROOT / "inventories" / "example.yml").read_text()
    prefix = str(network.network_address).rsplit(".", 1)[0] + "."
    return text.replace("10.213.0.", prefix).replace("name: haops", f"name: {lab}").replace(
        "network: 10.213.0.0/24", f"network: {network}")


def example_for_lab() -> str:
    return example_in(CLUSTER_LAB, CLUSTER_NETWORK)


def built_lab(path: Path, text: str, lab: Lab) -> Iterator[Cluster]:
    """`lab` built from the inventory `text` (written to `path`), torn down after with nothing left behind."""
    path.write_text(text)
    built = Cluster(lab, path)
    try:
        built.build()
        yield built
    finally:
        built.namespaces.update(lab_pid_namespaces(built.lab).values())
        built.lab.down()
    left = leftovers(built.lab.name, built.lab.paths.lab_dir, built.namespaces)
    assert left == [], f"lab down left things behind: {left}"


def built_cluster(folder: Path, lab: str, network: IPv4Network) -> Iterator[Cluster]:
    """A lab of the example cluster for a session."""
    yield from built_lab(folder / "cluster.yml", example_in(lab, network), Lab(lab, network))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from built_cluster(tmp_path_factory.mktemp("cluster"), CLUSTER_LAB, CLUSTER_NETWORK)


@pytest.fixture
def fresh_inventory(cluster: Cluster) -> Cluster:
    """The example inventory in the file; the hosts as the last test left them."""
    cluster.path.write_text(example_for_lab())
    return cluster


@pytest.fixture
def bare(cluster: Cluster) -> Cluster:
    """Hosts nothing was ever applied to: the lab is rebuilt (well under a second)."""
    cluster.path.write_text(example_for_lab())
    cluster.build()
    return cluster


@pytest.fixture
def applied(cluster: Cluster) -> Cluster:
    """The example inventory applied to every host (hand edits of managed files undone), the VIP on lb1."""
    cluster.converge(example_for_lab())
    return cluster
