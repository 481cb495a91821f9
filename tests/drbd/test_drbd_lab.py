"""Every `haops drbd` command on real SSH hosts that, like all lab hosts, have no DRBD kernel
module: a one-screen error naming each host and what it lacks, exit 1, nothing changed. And the
fact script's disk inspection with the real drbdmeta and blkid on a loop device, over SSH."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from haops import inventory
from haops.apply.run import ApplyOptions, apply
from haops.cli import main
from haops.lab import Lab, LabHost
from haops.session import settings_for
from haops.targets.drbd.remote import gather
from haops.transport import Connections
from tests.lab.conftest import lab_pid_namespaces, leftovers

pytestmark = pytest.mark.lab
LAB, NETWORK = "hadrbd", IPv4Network("10.213.42.0/24")
DISK_MIB = 64


@dataclass
class DrbdLab:
    lab: Lab
    path: Path
    disk: str

    def sh(self, host: str, script: str) -> str:
        done = self.lab.exec(host, ["sh", "-c", script])
        assert done.returncode == 0, f"{host}: {script}\n{done.stdout}{done.stderr}"
        return done.stdout


def inventory_text(disk: str) -> str:
    return f"""\
lab: {{name: {LAB}, network: {NETWORK}}}
hosts:
  store1: {{address: 10.213.42.11, groups: [storage]}}
  store2: {{address: 10.213.42.12, groups: [storage]}}
drbd:
  r0:
    nodes: storage
    disk: {disk}
"""


@pytest.fixture(scope="module")
def drbd_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrbdLab]:
    """Two storage hosts with the resource file applied, and a loop device both can see (lab hosts
    share this machine's /dev); the loop device is detached and the lab removed afterwards."""
    folder = tmp_path_factory.mktemp("drbd")
    image = folder / "disk.img"
    with image.open("wb") as f:
        f.truncate(DISK_MIB * 1024 * 1024)
    disk = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True, text=True).stdout.strip()
    path = folder / "inventory.yml"
    path.write_text(inventory_text(disk))
    lab = Lab(LAB, NETWORK)
    namespaces: set[str] = set()
    try:
        inv = inventory.load(path)
        lab.up([LabHost(h.name, h.address, h.groups) for h in inv.hosts.values()], path.read_text())
        namespaces.update(lab_pid_namespaces(lab).values())
        outcomes = apply(inv, list(inv.hosts), ApplyOptions(), settings_for(inv), lambda host, step: None)
        assert {o.report.host: o.report.ok for o in outcomes} == {"store1": True, "store2": True}
        yield DrbdLab(lab, path, disk)
    finally:
        namespaces.update(lab_pid_namespaces(lab).values())
        lab.down()
        subprocess.run(["losetup", "-d", disk], check=False)
    assert leftovers(LAB, lab.paths.lab_dir, namespaces) == []
    assert disk not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout


def haops(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


COMMANDS = [
    ("init", "r0", "--initial-primary", "store1"),
    ("init", "r0", "--force", "--check"),
    ("up", "r0"),
    ("promote", "r0", "store1"),
    ("demote", "r0"),
    ("status",),
    ("status", "r0", "--json"),
    ("verify", "r0"),
    ("resolve-split-brain", "r0", "--victim", "store2", "--yes"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_says_clearly_that_the_module_is_missing(drbd_lab: DrbdLab, capsys: pytest.CaptureFixture[str],
                                                               command: tuple[str, ...]) -> None:
    code, out, err = haops(capsys, "drbd", *command, "-i", str(drbd_lab.path))
    text = out + err
    assert code == 1, text
    assert "Traceback" not in text
    for host in ("store1", "store2"):
        assert f"{host}: no DRBD kernel module: modprobe: FATAL: Module drbd not found" in text, text
    assert "run `haops apply` first" not in text, "apply wrote the resource file, so only the module is missing"
    assert len(err.splitlines()) <= 20


def test_nothing_was_changed_on_the_hosts(drbd_lab: DrbdLab, capsys: pytest.CaptureFixture[str]) -> None:
    haops(capsys, "drbd", "init", "r0", "--initial-primary", "store1", "--force", "-i", str(drbd_lab.path))
    for host in ("store1", "store2"):
        assert drbd_lab.sh(host, f"drbdmeta 0 v09 {drbd_lab.disk} internal dump-md 2>&1; true").strip() == \
            "No valid meta data found"
        assert drbd_lab.sh(host, "test -e /proc/drbd && echo loaded || echo absent").strip() == "absent"


def test_disk_facts_with_the_real_tools_over_ssh(drbd_lab: DrbdLab) -> None:
    """The fact script itself, on a real block device: nothing, then DRBD metadata, then ext4."""
    inv = inventory.load(drbd_lab.path)
    # Both lab nodes see the one loop device (they share /dev): read both at once and each
    # drbdmeta refuses the other's exclusive open (exit 20). Real nodes have disks of their own.
    resource = replace(inv.drbd["r0"], nodes=inv.drbd["r0"].nodes[:1])

    def facts_of_store1():  # type: ignore[no-untyped-def]
        connections = Connections(inv.hosts, settings_for(inv))
        try:
            return gather(resource, connections, inspect_disk=True).facts["store1"]
        finally:
            connections.close()

    try:
        check_disk_facts(drbd_lab, facts_of_store1)
    finally:
        drbd_lab.sh("store1", f"wipefs -a -q {drbd_lab.disk}")


def check_disk_facts(drbd_lab: DrbdLab, facts_of_store1) -> None:  # type: ignore[no-untyped-def]
    empty = facts_of_store1()
    assert empty.module.state == "missing" and empty.utils and empty.configured and empty.block_device
    assert empty.metadata is not None and not empty.metadata.valid and empty.signature == {}
    drbd_lab.sh("store1", f"drbdmeta --force 0 v09 {drbd_lab.disk} internal create-md 1 >/dev/null 2>&1")
    created = facts_of_store1()
    assert created.metadata is not None and created.metadata.valid and created.metadata.current_uuid == 4
    assert not created.metadata.has_history and created.signature.get("TYPE") == "drbd"
    drbd_lab.sh("store1", f"wipefs -a -q {drbd_lab.disk} && mkfs.ext4 -q -L shop {drbd_lab.disk}")
    ext4 = facts_of_store1()
    assert ext4.metadata is not None and not ext4.metadata.valid
    assert (ext4.signature.get("TYPE"), ext4.signature.get("LABEL")) == ("ext4", "shop")
