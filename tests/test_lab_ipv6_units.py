"""The lab's IPv6 pieces that need no root: the range, host addresses, the record and inventory it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest
import yaml

from haops.lab import Lab, LabError, LabHost
from haops.lab.network import SAFETY_NET6, check_host_address6, check_lab_network6, gateway_interface6
from haops.lab.state import LabRecord
from haops.lab.topology import hosts_from_inventory, inventory_yaml

pytestmark = pytest.mark.unit

NETWORK6 = IPv6Network("fd00:213:0:50::/64")
HOSTS = (LabHost("lb1", IPv4Address("10.213.50.11"), ("lb",), IPv6Address("fd00:213:0:50::11")),
         LabHost("web1", IPv4Address("10.213.50.21"), ("web",)))


def test_the_lab_ipv6_range_is_a_slice_of_the_haops_ula_prefix() -> None:
    assert str(SAFETY_NET6) == "fd00:213::/48"
    assert check_lab_network6(NETWORK6) == NETWORK6
    assert str(gateway_interface6(NETWORK6)) == "fd00:213:0:50::1/64"
    for outside in ("fd00::/64", "fd00:214::/64", "fd00:213::/48", "2001:db8::/64"):
        with pytest.raises(LabError, match="inside fd00:213::/48"):
            check_lab_network6(IPv6Network(outside))
    with pytest.raises(LabError):
        Lab("ha6", IPv4Network("10.213.50.0/24"), Path("/tmp/haops-unit-none"), IPv6Network("fd00:1::/64"))


def test_host_ipv6_addresses_must_be_usable_in_the_lab_network() -> None:
    check_host_address6("lb1", IPv6Address("fd00:213:0:50::11"), NETWORK6)
    for address in ("fd00:213:0:50::1", "fd00:213:0:50::", "fd00:213:0:51::11"):
        with pytest.raises(LabError, match="not a usable address"):
            check_host_address6("lb1", IPv6Address(address), NETWORK6)
    with pytest.raises(LabError, match="lab.network6"):
        check_host_address6("lb1", IPv6Address("fd00:213:0:50::11"), None)


def test_the_record_keeps_the_ipv6_network_and_addresses(tmp_path: Path) -> None:
    record = LabRecord("ha6", IPv4Network("10.213.50.0/24"), HOSTS, NETWORK6)
    record.save(tmp_path / "lab.json")
    assert LabRecord.load(tmp_path / "lab.json") == record
    plain = LabRecord("ha4", IPv4Network("10.213.50.0/24"), HOSTS[1:])
    plain.save(tmp_path / "plain.json")
    assert "6" not in (tmp_path / "plain.json").read_text().replace("10.213.50", "")


def test_the_written_inventory_carries_network6_and_address6(tmp_path: Path) -> None:
    text = inventory_yaml("ha6", IPv4Network("10.213.50.0/24"), HOSTS, None, NETWORK6)
    data = yaml.safe_load(text)
    assert data["lab"] == {"name": "ha6", "network": "10.213.50.0/24", "network6": "fd00:213:0:50::/64"}
    assert data["hosts"]["lb1"]["address6"] == "fd00:213:0:50::11" and "address6" not in data["hosts"]["web1"]
    path = tmp_path / "inv.yml"
    path.write_text(text)
    read = hosts_from_inventory(path)
    assert read.network6 == NETWORK6 and read.hosts == HOSTS


def test_a_lab_host_needs_an_ipv4_address(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text("hosts:\n  lb1: {address: 'fd00:213:0:50::11'}\n")
    with pytest.raises(LabError, match="needs an IPv4 address"):
        hosts_from_inventory(path)


def test_hosts_never_inherit_a_descriptor_the_caller_was_given(tmp_path: Path) -> None:
    """`flock LOCK haops lab up`: the hosts outlive the command and must not keep LOCK held."""
    script = tmp_path / "spawn.py"
    script.write_text(
        "import os, sys\n"
        "from haops.lab.host import keep_inherited_descriptors_to_ourselves\n"
        "fd = int(sys.argv[1])\n"
        "assert os.get_inheritable(fd)\n"
        "keep_inherited_descriptors_to_ourselves()\n"
        "pid = os.posix_spawnp('sh', ['sh', '-c', f'[ ! -e /proc/self/fd/{fd} ]'], dict(os.environ))\n"
        "sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    lock = os.open(tmp_path / "lock", os.O_CREAT | os.O_RDWR)
    os.set_inheritable(lock, True)
    try:
        done = subprocess.run([sys.executable, str(script), str(lock)], pass_fds=(lock,), timeout=30,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    finally:
        os.close(lock)
    assert done.returncode == 0
