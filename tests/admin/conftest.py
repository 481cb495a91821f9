"""The admin tests' own lab (`haadmin`, 10.213.46.0/24): the example cluster, built by the apply tests' builder."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network

import pytest

from tests.apply.conftest import Cluster, built_cluster, example_in

ADMIN_LAB = "haadmin"
ADMIN_NETWORK = IPv4Network("10.213.46.0/24")


def example_for_admin() -> str:
    return example_in(ADMIN_LAB, ADMIN_NETWORK)


@pytest.fixture(scope="session")
def admin_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from built_cluster(tmp_path_factory.mktemp("admin"), ADMIN_LAB, ADMIN_NETWORK)


@pytest.fixture
def admin_bare(admin_cluster: Cluster) -> Cluster:
    """Hosts nothing was ever applied to (the lab rebuilt)."""
    admin_cluster.path.write_text(example_for_admin())
    admin_cluster.build()
    return admin_cluster


@pytest.fixture
def admin_applied(admin_cluster: Cluster) -> Cluster:
    """The example inventory applied to every host, the VIP on lb1."""
    admin_cluster.converge(example_for_admin())
    return admin_cluster
