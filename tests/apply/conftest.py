"""A lab of its own running the example cluster, for apply (and later verify) tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from haops import inventory
from haops.lab import Lab, LabHost
from haops.inventory.model import Inventory
from tests.lab.conftest import lab_pid_namespaces, leftovers

ROOT = Path(__file__).resolve().parent.parent.parent
CLUSTER_LAB = "haapply"
CLUSTER_NETWORK = IPv4Network("10.213.10.0/24")


@dataclass
class Cluster:
    lab: Lab
    path: Path

    @property
    def inventory(self) -> Inventory:
        return inventory.load(self.path)

    def rewrite(self, old: str, new: str) -> None:
        """Edit the inventory file in place (tests put it back)."""
        text = self.path.read_text()
        assert old in text, old
        self.path.write_text(text.replace(old, new, 1))

    def sh(self, host: str, script: str, timeout: float = 60) -> str:
        done = self.lab.exec(host, ["sh", "-c", script], timeout=timeout)
        assert done.returncode == 0, f"{host}: {script}\n{done.stdout}{done.stderr}"
        return done.stdout


def example_for_lab() -> str:
    text = (ROOT / "inventories" / "example.yml").read_text()
    return text.replace("10.213.0.", "10.213.10.").replace("name: haops", f"name: {CLUSTER_LAB}").replace(
        "network: 10.213.0.0/24", f"network: {CLUSTER_NETWORK}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    path = tmp_path_factory.mktemp("cluster") / "cluster.yml"
    path.write_text(example_for_lab())
    parsed = inventory.load(path)
    lab = Lab(CLUSTER_LAB, CLUSTER_NETWORK)
    lab.down()
    namespaces: set[str] = set()
    try:
        lab.up([LabHost(h.name, h.address, h.groups) for h in parsed.hosts.values()], path.read_text())
        namespaces.update(lab_pid_namespaces(lab).values())
        yield Cluster(lab, path)
    finally:
        namespaces.update(lab_pid_namespaces(lab).values())
        lab.down()
    assert leftovers(lab.name, lab.paths.lab_dir, namespaces) == []
