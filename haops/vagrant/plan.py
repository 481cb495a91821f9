"""The inventory's VMs planned against this machine's memory and CPUs (`haops vagrant plan`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from haops.errors import UserError
from haops.inventory.model import Inventory, VmSpec

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
