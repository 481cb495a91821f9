"""The VM tier: three real-kernel VMs (an LVS director and two real servers), made once per
session by `haops vagrant up` from a copy of inventories/vm.yml and destroyed at the end.

Each test's fixture converges the VMs to what it needs (an apply of the inventory it names,
a DRBD resource in a known state), so no test relies on what an earlier one left behind.
Run with `bash scripts/test-vm.sh` (pytest -m vm); the default run deselects the tier.
`--keep-vms` leaves the VMs up for the next run (a developer's aid; `haops vagrant down -i
<the printed inventory>` removes them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from haops import inventory as haops_inventory
from haops.session import settings_for
from haops.transport import Connections, run

ROOT = Path(__file__).resolve().parents[2]
SOURCE_INVENTORY = ROOT / "inventories" / "vm.yml"
KEPT_DIR = Path("/var/tmp/haops-vm-tier")  # where --keep-vms keeps the VMs' project between runs
STEM = "vmtier"
UP_TIMEOUT_S = 1800
COMMAND_TIMEOUT_S = 600


@dataclass
class VmCluster:
    """The VMs of one session, and the commands tests run against them."""

    directory: Path
    current: Path | None = None  # the inventory the last fixture applied

    @property
    def inventory(self) -> Path:
        return self.directory / f"{STEM}.yml"

    @property
    def vm_inventory(self) -> Path:
        """The inventory `up` wrote: the original plus each VM's SSH settings and host keys."""
        return self.directory / f"{STEM}.vagrant.yml"

    def haops(self, *args: str, check: bool = True, timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        ran = subprocess.run([sys.executable, "-m", "haops", *args], capture_output=True, text=True,
                             timeout=timeout_s, cwd=ROOT, env=vm_environment())
        if check and ran.returncode != 0:
            raise AssertionError(f"haops {' '.join(args)} exited {ran.returncode}:\n{ran.stdout[-4000:]}\n{ran.stderr[-4000:]}")
        return ran

    def sh(self, host: str, script: str, timeout_s: float = 120) -> str:
        """Run `script` on a VM as root (vagrant logs in and goes through sudo); fail on a non-zero exit."""
        ran = self.try_sh(host, script, timeout_s)
        if ran.code != 0:
            raise AssertionError(f"{host}: {script!r} exited {ran.code}: {(ran.stderr or ran.stdout).strip()[-2000:]}")
        return ran.stdout

    def try_sh(self, host: str, script: str, timeout_s: float = 120) -> Any:
        inv = haops_inventory.load(self.vm_inventory)
        connections = Connections(inv.hosts, settings_for(inv))
        try:
            return run(connections.get(host), script, timeout_s)
        finally:
            connections.close()

    def variant(self, name: str, services: dict[str, Any]) -> Path:
        """An inventory of the same VMs (the written one, logging in to them) with other services.
        DRBD stays: a prune of this inventory must not take the DRBD tests' resource away."""
        data = yaml.safe_load(self.vm_inventory.read_text())
        data["services"] = services
        path = self.directory / f"{name}.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


def vm_environment() -> dict[str, str]:
    """This machine's /dev/kvm cannot run a stock kernel: software emulation unless told otherwise."""
    return {**os.environ, "HAOPS_VM_DRIVER": os.environ.get("HAOPS_VM_DRIVER", "qemu")}


@pytest.fixture(scope="session")
def vms(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmCluster]:
    keep = bool(request.config.getoption("--keep-vms"))
    directory = KEPT_DIR if keep else tmp_path_factory.mktemp("vm-tier")
    directory.mkdir(parents=True, exist_ok=True)
    cluster = VmCluster(directory)
    shutil.copyfile(SOURCE_INVENTORY, cluster.inventory)
    try:
        cluster.haops("vagrant", "box", "build", timeout_s=UP_TIMEOUT_S)
        cluster.haops("vagrant", "preflight", "-i", str(cluster.inventory))
        cluster.haops("vagrant", "up", "-i", str(cluster.inventory), timeout_s=UP_TIMEOUT_S)
        yield cluster
    finally:
        if keep:
            print(f"\nVM tier: VMs kept; remove them with: haops vagrant down -i {cluster.inventory}")
        else:
            tear_down(cluster)


def tear_down(cluster: VmCluster) -> None:
    """`haops vagrant down`, then proof that none of this run's domains, QEMU processes or
    networks is left (another inventory's VMs on this machine are not this run's). The VMs'
    consoles are kept in the session's directory first (down removes them): a failed run's evidence."""
    from haops.vagrant.machines import Project
    from haops.vagrant.networks import RECORD

    project = Project(cluster.inventory, "", True)
    made_networks = json.loads((project.state_dir / RECORD).read_text()) if (project.state_dir / RECORD).is_file() else []
    kept = cluster.directory / "consoles"
    kept.mkdir(exist_ok=True)
    for console in Path("/var/log/libvirt/qemu").glob(f"{project.prefix}*-console.log"):
        shutil.copyfile(console, kept / console.name)
    down = cluster.haops("vagrant", "down", "-i", str(cluster.inventory), check=False, timeout_s=COMMAND_TIMEOUT_S)
    left = sorted(path.name for path in Path("/etc/libvirt/qemu").glob(f"{project.prefix}*.xml"))
    left += [name for name in made_networks if (Path("/etc/libvirt/qemu/networks") / f"{name}.xml").exists()]
    running = subprocess.run(["pgrep", "-f", f"guest={project.prefix}"], capture_output=True, text=True, check=False).stdout.split()
    assert made_networks, "VM tier: up recorded no networks it made"
    assert down.returncode == 0 and not left and not running, (
        f"VM tier: down exited {down.returncode}, domains or networks left: {left}, QEMU PIDs left: {running}\n{down.stderr[-2000:]}")
