"""`haops inventory from-vagrant` on recorded `vagrant ssh-config` output, and the Vagrantfile."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from haops import inventory
from haops.errors import UserError
from haops.vagrant import merge_into_inventory, parse_ssh_config

pytestmark = pytest.mark.unit
RECORDED = Path(__file__).parent / "data" / "vagrant-ssh-config.txt"
ROOT = Path(__file__).resolve().parent.parent
THREE_HOSTS = "hosts:\n  lb1: {address: 10.213.1.11}\n  lb2: {address: 10.213.1.12}\n  web1: 10.213.1.21\n"


def test_parses_every_host_block() -> None:
    hosts = parse_ssh_config(RECORDED.read_text())
    assert list(hosts) == ["lb1", "lb2", "web1"]
    assert (hosts["lb1"].hostname, hosts["lb1"].user, hosts["lb1"].port) == ("192.168.121.37", "vagrant", 22)
    assert hosts["web1"].port == 2222
    assert hosts["web1"].identity == "/root/haops/.vagrant/machines/web1/virtualbox/private_key"


def test_merged_inventory_connects_to_the_vm_but_keeps_cluster_addresses() -> None:
    merged = inventory.parse(merge_into_inventory(THREE_HOSTS, parse_ssh_config(RECORDED.read_text())))
    web1 = merged.hosts["web1"]
    assert (str(web1.address), web1.connect_to, web1.ssh_port, web1.ssh_user) == ("10.213.1.21", "127.0.0.1", 2222, "vagrant")
    assert merged.hosts["lb1"].ssh_key == "/root/haops/.vagrant/machines/lb1/libvirt/private_key"


@pytest.mark.parametrize("text, message", [
    ("", "no 'Host' blocks"),
    ("HostName 1.2.3.4\n", "before any 'Host' line"),
    ("Host lb1\n  User vagrant\n", "has no HostName"),
    ("Host lb1\n  HostName 10.0.0.1\n  Port twenty\n", "Port that is not a number"),
])
def test_broken_ssh_config_is_a_clean_error(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_ssh_config(text)


def test_hosts_must_match_the_inventory() -> None:
    with pytest.raises(UserError, match="no ssh-config for web1"):
        merge_into_inventory(THREE_HOSTS, {k: v for k, v in parse_ssh_config(RECORDED.read_text()).items() if k != "web1"})
    with pytest.raises(UserError, match="inventory lacks: lb2"):
        merge_into_inventory("hosts:\n  lb1: 10.213.1.11\n  web1: 10.213.1.21\n", parse_ssh_config(RECORDED.read_text()))


@pytest.mark.parametrize("provider, flags", [("libvirt", []), ("virtualbox", ["--ignore-provider"])])
def test_vagrantfile_validates(provider: str, flags: list[str], tmp_path: Path) -> None:
    assert shutil.which("vagrant"), "vagrant is installed by scripts/setup.sh"
    env = {**os.environ, "VAGRANT_DEFAULT_PROVIDER": provider, "VAGRANT_HOME": str(tmp_path), "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot")}
    done = subprocess.run(["vagrant", "validate", *flags], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout


def test_vagrantfile_refuses_a_broken_inventory(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("hosts:\n  lb1: {groups: [lb]}\n")
    env = {**os.environ, "HAOPS_INVENTORY": str(broken), "VAGRANT_HOME": str(tmp_path), "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot")}
    done = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode != 0 and "address" in done.stdout + done.stderr
