"""Vagrant: `vagrant ssh-config` output turned into inventory SSH settings for the same hosts,
and the inventory's VMs planned against this machine's memory and CPUs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from haops.errors import UserError
from haops.inventory.model import Inventory, VmSpec


@dataclass(frozen=True)
class VagrantHost:
    name: str
    hostname: str
    user: str
    port: int
    identity: str | None


def parse_ssh_config(text: str) -> dict[str, VagrantHost]:
    """Parse `vagrant ssh-config` output: Host blocks with HostName, User, Port, IdentityFile."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        key, value = key.lower(), value.strip().strip('"')
        if key == "host":
            current = blocks.setdefault(value, {})
        elif current is None:
            raise UserError(f"ssh-config line {number}: {key!r} before any 'Host' line; is this `vagrant ssh-config` output?")
        else:
            current.setdefault(key, value)
    if not blocks:
        raise UserError("no 'Host' blocks found; give the output of `vagrant ssh-config`")
    return {name: _host(name, block) for name, block in blocks.items()}


def _host(name: str, block: dict[str, str]) -> VagrantHost:
    try:
        return VagrantHost(name, block["hostname"], block.get("user", "vagrant"), int(block.get("port", "22")), block.get("identityfile"))
    except KeyError:
        raise UserError(f"ssh-config host {name!r} has no HostName; is the VM up?") from None
    except ValueError:
        raise UserError(f"ssh-config host {name!r} has a Port that is not a number") from None


def merge_into_inventory(inventory_text: str, vagrant_hosts: dict[str, VagrantHost]) -> str:
    """The inventory YAML with each host's ssh_host, ssh_port, ssh_user and ssh_key set."""
    data: dict[str, Any] = yaml.safe_load(inventory_text)
    hosts: dict[str, Any] = data["hosts"]
    unknown = sorted(set(vagrant_hosts) - set(hosts))
    missing = sorted(set(hosts) - set(vagrant_hosts))
    if unknown:
        raise UserError(f"ssh-config names hosts the inventory lacks: {', '.join(unknown)}")
    if missing:
        raise UserError(f"no ssh-config for {', '.join(missing)}: run `vagrant up` for them first")
    for name, vm in vagrant_hosts.items():
        spec = hosts[name] if isinstance(hosts[name], dict) else {"address": hosts[name]}
        variables = spec.setdefault("vars", {})
        variables.update({"ssh_host": vm.hostname, "ssh_port": vm.port, "ssh_user": vm.user})
        if vm.identity:
            variables["ssh_key"] = vm.identity
        hosts[name] = spec
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


# --- planning the VMs against this machine ----------------------------------------------------

DEFAULT_VM = VmSpec()
HOST_RESERVE_MIB = 1024  # this machine itself, libvirtd and QEMU's own processes
# Measured here: a 512 MiB guest under QEMU's software emulation held about 1.6 GiB of host RSS.
EMULATION_OVERHEAD_MIB = 1100
DRIVER_ENV = "HAOPS_VM_DRIVER"  # kvm (the default) or qemu (software emulation, no usable KVM)


@dataclass(frozen=True)
class Machine:
    memory_mib: int
    available_mib: int
    swap_mib: int
    cpus: int

    @classmethod
    def this(cls, meminfo: Path = Path("/proc/meminfo")) -> Machine:
        fields = {}
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            fields[key] = int(rest.split()[0]) // 1024 if rest.split() else 0
        return cls(fields["MemTotal"], fields.get("MemAvailable", fields["MemTotal"]), fields.get("SwapTotal", 0),
                   os.cpu_count() or 1)


@dataclass(frozen=True)
class VmPlan:
    vms: dict[str, VmSpec]
    machine: Machine
    emulated: bool

    @property
    def memory_mib(self) -> int:
        """What the VMs take of this machine's memory: their own, plus emulation's cost per VM."""
        overhead = EMULATION_OVERHEAD_MIB if self.emulated else 0
        return sum(vm.memory_mib + overhead for vm in self.vms.values())

    @property
    def cpus(self) -> int:
        return sum(vm.cpus for vm in self.vms.values())

    @property
    def disks_mib(self) -> int:
        return sum(sum(vm.disks_mib) for vm in self.vms.values())

    def refusal(self) -> str | None:
        """Why the VMs cannot all run here at once, if they cannot."""
        room = self.machine.memory_mib + self.machine.swap_mib - HOST_RESERVE_MIB
        if self.memory_mib > room:
            return (f"the VMs need {mib(self.memory_mib)} but this machine has {mib(self.machine.memory_mib)} of memory "
                    f"and {mib(self.machine.swap_mib)} of swap, {mib(HOST_RESERVE_MIB)} of it kept for itself: "
                    "give the VMs less memory (vm: {memory: ...}) or bring up fewer of them")
        return None

    def warnings(self) -> list[str]:
        said = []
        room = self.machine.available_mib - HOST_RESERVE_MIB
        if self.memory_mib > room:
            said.append(f"memory is overcommitted: the VMs need {mib(self.memory_mib)}, {mib(max(room, 0))} is free "
                        f"(keeping {mib(HOST_RESERVE_MIB)} for this machine); they will swap, or fail when they all touch it")
        if self.cpus > self.machine.cpus:
            said.append(f"{self.cpus} vCPUs on {self.machine.cpus} CPUs: the VMs share them, and timing drills get noisy")
        return said


def vm_plan(inventory: Inventory, machine: Machine, emulated: bool) -> VmPlan:
    return VmPlan({name: host.vm or DEFAULT_VM for name, host in inventory.hosts.items()}, machine, emulated)


def emulated_by_default() -> bool:
    driver = os.environ.get(DRIVER_ENV, "kvm")
    if driver not in ("kvm", "qemu"):
        raise UserError(f"{DRIVER_ENV} must be kvm or qemu, got {driver!r}")
    return driver == "qemu"


def mib(value: int) -> str:
    return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value} MiB"
