"""`haops inventory from-vagrant` on recorded `vagrant ssh-config` output, the Vagrantfile, and
the inventory's VMs planned against a machine (`haops vagrant plan`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from haops import inventory
from haops.errors import UserError
from haops.inventory.model import Inventory
from haops.vagrant.plan import EMULATION_OVERHEAD_MIB, Machine, vm_plan
from haops.vagrant.ssh_config import merge_into_inventory, parse_ssh_config

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


# --- the inventory's VMs: read alike by haops and the Vagrantfile, and planned against a machine ----

VMS = """\
vars: {vm: {memory: 1G}}
groups:
  db: {hosts: [db1], vars: {vm: {cpus: 2, memory: 768, disks: [1G, 512M], nics: [10.213.2.51]}}}
  zz: {hosts: [db1], vars: {vm: {cpus: 3, memory: 2G}}}
hosts:
  lb1: {address: 10.213.1.11, vars: {vm: {cpus: 4, nics: [10.213.2.11, 10.213.3.11], gateway: 10.213.1.1}}}
  db1: {address: 10.213.1.51, groups: [db]}
  web1: 10.213.1.21
"""


def test_the_vagrantfile_reads_each_vm_as_haops_does(tmp_path: Path) -> None:
    path = tmp_path / "vms.yml"
    path.write_text(VMS)
    script = ('require "yaml"; require "json"; require_relative ARGV[0]; inv = YAML.safe_load(File.read(ARGV[1])); '
              'puts JSON.dump(inv["hosts"].to_h { |name, spec| [name, vm_resources(inv, name, spec)] })')
    done = subprocess.run(["ruby", "-e", script, str(ROOT / "scripts" / "vagrant_vms.rb"), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ours = {name: {"cpus": vm.cpus, "memory": vm.memory_mib, "disks": list(vm.disks_mib), "nics": [str(n) for n in vm.nics],
                   "gateway": None if vm.gateway is None else str(vm.gateway)}
            for name, vm in vm_plan(inventory.parse(VMS), MACHINE_20G, False).vms.items()}
    assert json.loads(done.stdout) == ours
    assert ours["db1"] == {"cpus": 3, "memory": 2048, "disks": [], "nics": [], "gateway": None}  # zz after db: replaces it whole
    assert ours["web1"] == {"cpus": 1, "memory": 1024, "disks": [], "nics": [], "gateway": None}
    assert (ours["lb1"]["nics"], ours["lb1"]["gateway"]) == (["10.213.2.11", "10.213.3.11"], "10.213.1.1")


MACHINE_20G = Machine(memory_mib=20 * 1024, available_mib=18 * 1024, swap_mib=0, cpus=8)


def six_gib_vms(count: int) -> Inventory:
    hosts = "".join(f"  vm{i}: {{address: 10.213.1.{i + 10}}}\n" for i in range(count))
    return inventory.parse(f"vars: {{vm: {{memory: 6G, cpus: 2}}}}\nhosts:\n{hosts}")


def test_vms_that_fit_plan_without_a_word() -> None:
    planned = vm_plan(six_gib_vms(2), MACHINE_20G, emulated=False)
    assert (planned.memory_mib, planned.cpus, planned.warnings(), planned.refusal()) == (12 * 1024, 4, [], None)


def test_the_seeds_hypervisor_is_warned_of_overcommit_then_refused() -> None:
    three = vm_plan(six_gib_vms(3), MACHINE_20G, emulated=False)
    assert three.refusal() is None and any("memory is overcommitted: the VMs need 18.0 GiB" in w for w in three.warnings())
    four = vm_plan(six_gib_vms(4), MACHINE_20G, emulated=False)
    assert "the VMs need 24.0 GiB but this machine has 20.0 GiB" in (four.refusal() or "")
    assert not any("vCPUs" in w for w in four.warnings())  # 8 vCPUs on 8 CPUs is no overcommit
    assert any("10 vCPUs on 8 CPUs" in w for w in vm_plan(six_gib_vms(5), MACHINE_20G, False).warnings())


def test_software_emulation_counts_its_own_memory_per_vm() -> None:
    assert vm_plan(six_gib_vms(2), MACHINE_20G, emulated=True).memory_mib == 12 * 1024 + 2 * EMULATION_OVERHEAD_MIB


def test_the_machine_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24576000 kB\nMemFree:  1 kB\nMemAvailable:   20480000 kB\nSwapTotal:      1048576 kB\n")
    machine = Machine.this(meminfo)
    assert (machine.memory_mib, machine.available_mib, machine.swap_mib) == (24000, 20000, 1024)


@pytest.mark.parametrize("vm, message", [
    ("{cpu: 2}", "has no cpu; it takes cpus, memory, disks, nics and gateway"),
    ("{memory: 64M}", "at least 128 MiB"),
    ("{memory: 2T}", "a size such as 512M or 2G"),
    ("{cpus: 0}", "cpus must be a whole number 1-64"),
    ("{disks: 1G}", "disks must be a list"),
    ("2G", "must be a mapping"),
])
def test_a_wrong_vm_is_refused_with_what_it_takes(vm: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        inventory.parse(f"hosts:\n  a: {{address: 10.213.1.11, vars: {{vm: {vm}}}}}\n")


def test_plan_exits_1_when_the_vms_cannot_fit_this_machine(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    path.write_text("hosts:\n  big: {address: 10.213.1.11, vars: {vm: {memory: 4194304}}}\n  small: 10.213.1.12\n")
    done = subprocess.run([sys.executable, "-m", "haops", "vagrant", "plan", "-i", str(path), "--json"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    report = json.loads(done.stdout)
    assert done.returncode == 1 and "the VMs need 4096.5 GiB" in report["refusal"], done.stdout + done.stderr
    assert report["vms"]["small"] == {"cpus": 1, "memory_mib": 512, "disks_mib": [], "nics": [], "gateway": None}


def test_the_vagrantfiles_direct_use_with_the_public_box_asks_for_nat() -> None:
    header = [line for line in (ROOT / "Vagrantfile").read_text().splitlines() if line.startswith("#")]
    direct = [line for line in header if "vagrant up --provider" in line]
    assert direct and all("HAOPS_VM_MANAGEMENT_NAT=yes" in line for line in direct)
