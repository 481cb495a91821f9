"""A real lab for the session (name and /24 of its own, so a developer's lab is untouched)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from haops.lab import Lab
from haops.lab.naming import bridge_name, netns_prefix, private_bridge_name

TEST_LAB = "hatest"
TEST_NETWORK = IPv4Network("10.213.7.0/24")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs root; builds real namespace hosts with sshd")


def lab_pid_namespaces(lab: Lab) -> dict[str, str]:
    """host -> 'pid:[inode]' of its running init."""
    found = {}
    for host in lab.hosts:
        init = lab.init_process(host.name)
        namespace = init.namespace("pid") if init else None
        if namespace:
            found[host.name] = namespace
    return found


def processes_in(namespaces: set[str]) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") in namespaces:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def leftovers(lab_name: str, state_dir: Path, pid_namespaces: set[str]) -> list[str]:
    """Everything of the lab still on the machine; [] after a clean `down`."""
    found = [f"netns {n}" for n in os.listdir("/run/netns")
             if n.startswith(netns_prefix(lab_name))] if Path("/run/netns").exists() else []
    found += [f"interface {i}" for i in os.listdir("/sys/class/net")
              if i.startswith(netns_prefix(lab_name)) or i in (bridge_name(lab_name), private_bridge_name(lab_name))]
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines()
              if str(state_dir) in line or f"/run/netns/{netns_prefix(lab_name)}" in line]
    found += [f"process {pid}" for pid in processes_in(pid_namespaces)]
    found += [f"state dir {state_dir}"] if state_dir.exists() else []
    return found


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    lab = Lab(TEST_LAB, TEST_NETWORK)
    lab.down()  # a crashed earlier run must not make this one fail or lie
    namespaces: set[str] = set()
    try:
        lab.up()
        namespaces.update(lab_pid_namespaces(lab).values())
        yield lab
    finally:
        namespaces.update(lab_pid_namespaces(lab).values())
        lab.down()
    remaining = leftovers(lab.name, lab.paths.lab_dir, namespaces)
    assert remaining == [], f"lab down left things behind: {remaining}"
