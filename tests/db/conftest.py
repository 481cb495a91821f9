"""One lab (hapg) for the PostgreSQL tests: three hosts, a primary and two standbys.

A test asks for `replicated`: the lab rebuilt (nothing left from an earlier test) and the
inventory applied, so every test starts from a freshly seeded cluster."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network

import pytest

from haops.apply.run import ApplyOptions, HostOutcome, apply
from haops.lab import Lab
from haops.session import settings_for
from tests.apply.conftest import ROOT, Cluster, built_lab

LAB = "hapg"
NETWORK = IPv4Network("10.213.44.0/24")
INVENTORY = ROOT / "inventories" / "postgresql.yml"


def apply_all(cluster: Cluster) -> list[HostOutcome]:
    inv = cluster.inventory
    return apply(inv, list(inv.hosts), ApplyOptions(), settings_for(inv), lambda host, step: None)


@pytest.fixture(scope="session")
def pg_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    path = tmp_path_factory.mktemp("pg") / "postgresql.yml"
    yield from built_lab(path, INVENTORY.read_text(), Lab(LAB, NETWORK))


@pytest.fixture
def replicated(pg_lab: Cluster) -> Cluster:
    pg_lab.path.write_text(INVENTORY.read_text())
    pg_lab.build()
    failed = {o.report.host: o.report.messages for o in apply_all(pg_lab) if not o.report.ok}
    assert failed == {}
    return pg_lab
