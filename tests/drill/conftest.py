"""A lab of the example cluster for the drills (its own name and /24, apart from the apply tests' lab)."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from haops.lab import Lab
from tests.apply.conftest import ROOT, Cluster
from tests.lab.conftest import lab_pid_namespaces, leftovers

DRILL_LAB = "hadrill"
DRILL_NETWORK = IPv4Network("10.213.20.0/24")


def example_for_drills() -> str:
    text = (ROOT / "inventories" / "example.yml").read_text()
    return text.replace("10.213.0.", "10.213.20.").replace("name: haops", f"name: {DRILL_LAB}").replace(
        "network: 10.213.0.0/24", f"network: {DRILL_NETWORK}")


@pytest.fixture(scope="session")
def drill_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    path: Path = tmp_path_factory.mktemp("drill") / "cluster.yml"
    path.write_text(example_for_drills())
    built = Cluster(Lab(DRILL_LAB, DRILL_NETWORK), path)
    try:
        built.build()
        yield built
    finally:
        built.namespaces.update(lab_pid_namespaces(built.lab).values())
        built.lab.down()
    assert leftovers(built.lab.name, built.lab.paths.lab_dir, built.namespaces) == []


@pytest.fixture
def example_cluster(drill_lab: Cluster) -> Cluster:
    """The example inventory applied and settled: every VIP on its highest-priority host."""
    drill_lab.converge(example_for_drills())
    return drill_lab
