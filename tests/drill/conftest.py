"""A lab of the example cluster for the drills (its own name and /24, apart from the apply tests' lab)."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network

import pytest

from tests.apply.conftest import Cluster, built_cluster, example_in

DRILL_LAB = "hadrill"
DRILL_NETWORK = IPv4Network("10.213.20.0/24")


def example_for_drills() -> str:
    return example_in(DRILL_LAB, DRILL_NETWORK)


@pytest.fixture(scope="session")
def drill_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from built_cluster(tmp_path_factory.mktemp("drill"), DRILL_LAB, DRILL_NETWORK)


@pytest.fixture
def example_cluster(drill_lab: Cluster) -> Cluster:
    """The example inventory applied and settled: every VIP on its highest-priority host."""
    drill_lab.converge(example_for_drills())
    return drill_lab
