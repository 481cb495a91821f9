"""One lab for the sync tests: a source and three destinations (a name and /24 of their own)."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from haops.lab import Lab
from tests.apply.conftest import Cluster, built_lab

SYNC_LAB = "hasync"
SYNC_NETWORK = IPv4Network("10.213.40.0/24")
DESTINATIONS = ("dst1", "dst2", "dst3")


def sync_inventory(lab: str, network: IPv4Network) -> str:
    prefix = str(network.network_address).rsplit(".", 1)[0]
    hosts = [f"  src1: {{address: {prefix}.11, groups: [files]}}"]
    hosts += [f"  {name}: {{address: {prefix}.{21 + n}, groups: [files, mirrors]}}" for n, name in enumerate(DESTINATIONS)]
    return "\n".join(["lab:", f"  name: {lab}", f"  network: {network}", "hosts:", *hosts]) + "\n"


def built_sync_lab(folder: Path, lab: str, network: IPv4Network) -> Iterator[Cluster]:
    """The source and its three destinations in `lab` (the tests' own, or the benchmark's)."""
    yield from built_lab(folder / "sync.yml", sync_inventory(lab, network), Lab(lab, network))


@pytest.fixture(scope="session")
def sync_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from built_sync_lab(tmp_path_factory.mktemp("sync"), SYNC_LAB, SYNC_NETWORK)
