"""`haops vagrant preflight` with fakes for virsh and the tools: its probe network is its own and
is proven gone, root's tools are found from a user's PATH, and an opted-in NAT management network
is no problem."""

from __future__ import annotations

import os
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from haops import inventory
from haops.vagrant import libvirt, preflight

pytestmark = pytest.mark.unit
NETWORK = IPv4Network("10.213.22.0/24")
NAT_MANAGEMENT = "<network><name>haops-management</name><forward mode='nat'/><ip address='10.213.20.1'/></network>"


def fake_virsh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, destroy_exit: int) -> Path:
    log = tmp_path / "virsh.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "virsh").write_text(
        f'#!/bin/sh\necho "$@" >> {log}\ncase "$3" in net-create) cat >> {log};; '
        f'net-destroy) echo "network is busy" >&2; exit {destroy_exit};; esac\n')
    (bin_dir / "virsh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(libvirt, "responds", lambda: True)
    return log


def test_the_probe_network_is_named_after_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_virsh(tmp_path, monkeypatch, destroy_exit=0)
    assert preflight.probe_network(NETWORK, "network").level == preflight.OK
    calls = log.read_text()
    assert f"<name>haops-preflight-{os.getpid()}</name>" in calls and f"bridge name='haopspf{os.getpid()}'" in calls
    assert f"net-destroy haops-preflight-{os.getpid()}" in calls


def test_a_probe_network_left_behind_is_a_problem_with_its_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_virsh(tmp_path, monkeypatch, destroy_exit=1)
    finding = preflight.probe_network(NETWORK, "network")
    assert finding.level == preflight.PROBLEM and "could not take it down: network is busy" in finding.detail
    assert finding.fix.endswith(f"net-destroy haops-preflight-{os.getpid()}")


def test_tools_in_sbin_are_found_from_a_users_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir, sbin = tmp_path / "bin", tmp_path / "sbin"
    for directory, tools in ((bin_dir, set(preflight.TOOLS) - {"libvirtd"}), (sbin, {"libvirtd"})):
        directory.mkdir()
        for tool in tools:
            (directory / tool).write_text("#!/bin/sh\n")
            (directory / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(preflight, "SBIN_DIRS", (str(sbin),))
    assert [f.level for f in preflight.tools()] == [preflight.OK]


def test_an_opted_in_nat_management_network_is_no_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "libvirt_networks", lambda: {"haops-management": NAT_MANAGEMENT})
    monkeypatch.setattr(libvirt, "responds", lambda: False)
    hosts = inventory.parse("hosts:\n  real1: 10.213.22.21\n")
    monkeypatch.setenv("HAOPS_VM_MANAGEMENT_NAT", "yes")
    found = {f.check: f for f in preflight.networks(hosts)}
    assert found["network 10.213.20.0/24"].level == preflight.OK and "NATs out" in found["network 10.213.20.0/24"].detail
    monkeypatch.setenv("HAOPS_VM_MANAGEMENT_NAT", "no")
    assert {f.check: f for f in preflight.networks(hosts)}["network 10.213.20.0/24"].level == preflight.PROBLEM
