"""A lab whose cluster sits on a private network that only its bastion reaches, and a plain one for
`verify --from local`. Both are module-scoped (one lab name, one at a time) and leave nothing behind."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from haops.lab import Lab, LabHost
from haops.lab.state import Private
from tests.apply.conftest import Cluster, built_lab, example_in

BASTION_LAB = "habast"
LAB_NETWORK = IPv4Network("10.213.48.0/24")
PRIVATE_NETWORK = IPv4Network("10.213.49.0/24")
BASTION = LabHost("bastion", IPv4Address("10.213.48.5"), ("bastion",))


def behind_bastion_inventory() -> str:
    """The example cluster moved to the private network, the lab and its bastion on the lab network."""
    text = example_in(BASTION_LAB, PRIVATE_NETWORK)
    return text.replace(f"network: {PRIVATE_NETWORK}",
                        f"network: {LAB_NETWORK}\n  private_network: {PRIVATE_NETWORK}\n  bastion: {BASTION.address}")


def built(folder: Path, text: str, private: Private | None) -> Iterator[Cluster]:
    yield from built_lab(folder / "cluster.yml", text, Lab(BASTION_LAB, LAB_NETWORK, private=private))
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def bastion_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from built(tmp_path_factory.mktemp("bastion"), behind_bastion_inventory(), Private(PRIVATE_NETWORK, BASTION))


@pytest.fixture(scope="module")
def open_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The example cluster on the lab network: this machine reaches its VIP."""
    yield from built(tmp_path_factory.mktemp("open"), example_in(BASTION_LAB, LAB_NETWORK), None)
