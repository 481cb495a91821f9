"""`haops vagrant up|down|status`: the inventory's VMs through Vagrant and vagrant-libvirt.

Each inventory is its own Vagrant project: its state lives in .vagrant/<inventory name>/ beside
the inventory, its libvirt domains are named haops-<inventory name>-<hash>-<host> (a short hash
of the inventory's resolved path), and `up` writes <inventory name>.vagrant.yml beside it: the same inventory, logging in to each VM's management
address as `vagrant`, against a known_hosts file of its own. Each VM's host keys are recorded
once, from its serial console (the hypervisor's log, not the network), and the user is told;
after that they are checked strictly, and a VM whose key changed is refused.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from typing import IO

import yaml

from haops.errors import UserError
from haops.render import template_root
from haops.vagrant.box import terminate_raises
from haops.vagrant.ssh_config import VagrantHost, merge_into_inventory, parse_ssh_config

Say = Callable[[str], None]
CONSOLE_DIR = Path("/var/log/libvirt/qemu")
HOST_KEY_LINE = re.compile(r"haops-host-key: (\S+) (\S+)")
UP_TIMEOUT_S = 1800
CONSOLE_KEYS_WAIT_S = 60  # after `up`, for a VM whose console shows no keys yet
# Vagrant's own chatter that says nothing about progress: upload percentages, domain settings.
NOISE = re.compile(r"^(Progress: |\s*-- |.*:\s+-- |.*(No version detected for|generating a local metadata|See https://www.vagrantup.com/docs/boxes/format))")


@dataclass(frozen=True)
class Project:
    inventory_path: Path
    box: str
    emulated: bool

    @property
    def name(self) -> str:
        return self.inventory_path.stem

    @property
    def state_dir(self) -> Path:
        return self.inventory_path.resolve().parent / ".vagrant" / self.name

    @property
    def prefix(self) -> str:
        """haops-<name>-<6 hex of the inventory's resolved path>-: a/vm.yml and b/vm.yml never share
        domains or console logs."""
        where = hashlib.sha256(str(self.inventory_path.resolve()).encode()).hexdigest()[:6]
        return f"haops-{self.name}-{where}-"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def vm_inventory(self) -> Path:
        return self.inventory_path.resolve().with_name(f"{self.name}.vagrant.yml")

    def console_log(self, host: str) -> Path:
        return CONSOLE_DIR / f"{self.prefix}{host}-console.log"

    def environment(self) -> dict[str, str]:
        here = vagrantfile_dir()
        return {**os.environ, "VAGRANT_CWD": str(here), "VAGRANT_VAGRANTFILE": "Vagrantfile",
                "VAGRANT_DOTFILE_PATH": str(self.state_dir), "HAOPS_INVENTORY": str(self.inventory_path.resolve()),
                "HAOPS_BOX": self.box, "HAOPS_VM_DRIVER": "qemu" if self.emulated else "kvm",
                "HAOPS_VM_PREFIX": self.prefix, "VAGRANT_NO_COLOR": "1"}


def vagrantfile_dir() -> Path:
    """Where the Vagrantfile is: inside the wheel's templates, else a source checkout's top level."""
    packaged = template_root() / "vagrant"
    if (packaged / "Vagrantfile").is_file():
        return packaged
    return Path(__file__).resolve().parents[2]


def vagrant(project: Project, args: list[str], say: Say, timeout_s: float = UP_TIMEOUT_S) -> str:
    """Run vagrant for the project, telling its progress lines; its whole output on failure."""
    process = start_vagrant(project, args)
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    with terminate_raises(), ended_with_us(process):
        for raw in lines_until(process, deadline):
            for line in raw.replace("\r", "\n").splitlines():
                if line.strip() and not NOISE.match(line):
                    lines.append(line)
                    if line.startswith("==> "):
                        say(line[4:])
        status = wait_or_kill(process, args, deadline, timeout_s)
    if status != 0:
        raise UserError(f"vagrant {' '.join(args)} failed (exit {status}):\n" + "\n".join(lines[-25:]))
    return "\n".join(lines)


def vagrant_quietly(project: Project, args: list[str], timeout_s: float = 120) -> str:
    process = start_vagrant(project, args, stderr=subprocess.PIPE)
    with terminate_raises(), ended_with_us(process):
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise timed_out(process, args, timeout_s) from None
    if process.returncode != 0:
        raise UserError(f"vagrant {' '.join(args)} failed (exit {process.returncode}): {stderr.strip()[-600:]}")
    return stdout


def start_vagrant(project: Project, args: list[str], stderr: int = subprocess.STDOUT) -> subprocess.Popen[str]:
    """vagrant in a session of its own, so a timeout ends it with every process it started."""
    try:
        return subprocess.Popen(["vagrant", *args], env=project.environment(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=stderr, encoding="utf-8", errors="replace",
                                start_new_session=True)
    except FileNotFoundError:
        raise UserError("vagrant is not installed: run scripts/setup.sh (Debian: vagrant, vagrant-libvirt)") from None


def lines_until(process: subprocess.Popen[str], deadline: float) -> Iterator[str]:
    """The process's output lines as they come, until it closes its output or the deadline passes."""
    assert process.stdout is not None
    queue = Queue[str | None]()
    threading.Thread(target=read_into, args=(process.stdout, queue), daemon=True).start()
    while True:
        try:
            line = queue.get(timeout=max(deadline - time.monotonic(), 0))
        except Empty:
            return
        if line is None:
            return
        yield line


def read_into(stream: IO[str], queue: Queue[str | None]) -> None:
    try:
        for line in stream:
            queue.put(line)
    finally:
        queue.put(None)


@contextmanager
def ended_with_us(process: subprocess.Popen[str]) -> Iterator[None]:
    """vagrant runs in a session of its own, out of reach of the terminal's Ctrl-C: when haops is
    interrupted (Ctrl-C, SIGTERM made an exception), vagrant's whole group ends with it, asked
    first, then killed, and is reaped."""
    try:
        yield
    except BaseException:
        end_group(process)
        raise


def end_group(process: subprocess.Popen[str], grace_s: float = 10) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def wait_or_kill(process: subprocess.Popen[str], args: list[str], deadline: float, timeout_s: float) -> int:
    try:
        return process.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        raise timed_out(process, args, timeout_s) from None


def timed_out(process: subprocess.Popen[str], args: list[str], timeout_s: float) -> UserError:
    """End vagrant's whole process group (its provider's children too), reap it, and say so."""
    end_group(process)
    return UserError(f"vagrant {' '.join(args)} took longer than {timeout_s:g} s and was killed with its child "
                     f"processes; see `haops vagrant status` and virsh list --all for what it left")


def bring_up(project: Project, hosts: list[str], say: Say) -> None:
    """The first VM alone (it makes the shared networks: vagrant-libvirt was seen to hang making
    them from parallel VMs), then the rest in parallel."""
    project.state_dir.mkdir(parents=True, exist_ok=True)
    first, rest = hosts[:1], hosts[1:]
    vagrant(project, ["up", "--provider=libvirt", *first], say)
    if rest:
        vagrant(project, ["up", "--provider=libvirt", "--parallel", *rest], say)


# --- host keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostKey:
    kind: str
    base64: str

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.base64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def keys_on_console(text: str) -> list[HostKey]:
    """The host keys of the VM's latest boot, as the haops box prints them on its console."""
    latest: dict[str, HostKey] = {}
    for kind, blob in HOST_KEY_LINE.findall(text):
        if key_blob_fields(blob)[:1] == [kind.encode()]:  # else kernel output cut into the line
            latest[kind] = HostKey(kind, blob)
    return sorted(latest.values(), key=lambda k: k.kind)


def key_blob_fields(blob: str) -> list[bytes]:
    """An SSH public key blob's length-prefixed fields (its type first), or [] when the text is not
    base64 or the fields do not fill it exactly."""
    try:
        data = base64.b64decode(blob, validate=True)
    except ValueError:
        return []
    fields, at = [], 0
    while at + 4 <= len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        fields.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return fields if at == len(data) else []


def recorded_keys(known_hosts: Path) -> dict[str, list[HostKey]]:
    """The known_hosts haops wrote, by the VM named in each line's comment."""
    found: dict[str, list[HostKey]] = {}
    if known_hosts.is_file():
        for line in known_hosts.read_text().splitlines():
            fields = line.split()
            if len(fields) == 4:
                found.setdefault(fields[3], []).append(HostKey(fields[1], fields[2]))
    return found


def record_host_keys(project: Project, vms: dict[str, VagrantHost], say: Say) -> None:
    """Record each VM's keys once; refuse a VM whose keys differ from the recorded ones, and, once
    the others are recorded, every VM that has no keys to trust."""
    recorded = recorded_keys(project.known_hosts)
    lines, unknown = [], []
    wait_until = time.monotonic() + CONSOLE_KEYS_WAIT_S  # one wait for all the VMs, not one each
    for name, vm in vms.items():
        keys = trusted_keys(project, name, recorded.get(name), say, wait_until)
        if not keys:
            unknown.append(name)
        lines += [f"{vm.hostname} {key.kind} {key.base64} {name}" for key in keys]
    write_private(project.known_hosts, "".join(line + "\n" for line in lines))
    if unknown:
        raise UserError(how_to_record(project, {name: vms[name] for name in unknown}))


def trusted_keys(project: Project, name: str, known: list[HostKey] | None, say: Say, wait_until: float) -> list[HostKey]:
    """The VM's keys from its console, checked against the recorded ones; the recorded ones when
    its console shows none (a box other than haops'); none when there are neither."""
    keys = console_keys(project, name, wait_until=0 if known else wait_until)
    known = sorted(known, key=lambda k: k.kind) if known else None
    if not keys:
        if known:
            say(f"{name}: no host keys on its console; using the recorded {known[0].kind} {known[0].fingerprint}")
        return known or []
    if known is not None and known != keys:
        raise UserError(f"{name}: its SSH host key changed since it was recorded ({known[0].fingerprint}); "
                        f"if you rebuilt the VM yourself, run `haops vagrant down` first; otherwise find out why")
    if known is None:
        say(f"{name}: recorded host key {keys[0].kind} {keys[0].fingerprint} (from its console)")
    return keys


def how_to_record(project: Project, unknown: dict[str, VagrantHost]) -> str:
    scans = "".join(f"  ssh-keyscan -p {vm.port} {vm.hostname} 2>/dev/null | sed 's/$/ {name}/' >> {project.known_hosts}\n"
                    for name, vm in unknown.items())
    return (f"no SSH host keys to trust for {', '.join(unknown)}: none on its console (only the haops box prints "
            f"them there: `haops vagrant box build`) and none recorded before. {project.vm_inventory.name} is "
            f"written, but haops refuses these hosts until their keys are in {project.known_hosts}. Record them "
            "from this machine, over the VMs' isolated management network:\n"
            f"{scans}then run `haops vagrant up -i {project.inventory_path}` again: it keeps them and checks them strictly.")


def console_keys(project: Project, host: str, wait_until: float) -> list[HostKey]:
    """The keys on the VM's console, waiting (until the monotonic `wait_until`) for them: the box
    prints them as the VM boots, and a VM's console may hold them only a little after Vagrant calls it up."""
    while not (keys := keys_on_console(read_console(project, host))) and time.monotonic() < wait_until:
        time.sleep(2)
    return keys


def read_console(project: Project, host: str) -> str:
    try:
        return project.console_log(host).read_text(errors="replace")
    except OSError:
        return ""


# --- the inventory for the VMs ---------------------------------------------------------------


def write_vm_inventory(project: Project, vms: dict[str, VagrantHost]) -> None:
    merged = yaml.safe_load(merge_into_inventory(project.inventory_path.read_text(), vms))
    for spec in merged["hosts"].values():
        spec["vars"]["ssh_known_hosts"] = str(project.known_hosts)
    header = (f"# Written by `haops vagrant up -i {project.inventory_path}`: that inventory, logging in to its VMs.\n"
              "# Edit the original; this file is written again at every `up`.\n")
    write_private(project.vm_inventory, header + yaml.safe_dump(merged, sort_keys=False, default_flow_style=None))


def write_private(path: Path, text: str) -> None:
    """Write `path` 0600 whatever the umask (INV.vagrant.yml holds the inventory's secrets),
    atomically: a temp file in the same directory, renamed over it."""
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600, O_EXCL
    temp = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def ssh_config_of(project: Project) -> dict[str, VagrantHost]:
    return parse_ssh_config(vagrant_quietly(project, ["ssh-config"]))


def import_vms(project: Project, say: Say) -> dict[str, VagrantHost]:
    """The running VMs into INV.vagrant.yml, then their host keys (the inventory is written even
    when a VM's keys still have to be recorded by hand)."""
    vms = ssh_config_of(project)
    write_vm_inventory(project, vms)
    record_host_keys(project, vms, say)
    return vms


# --- status and down -------------------------------------------------------------------------


def states(project: Project) -> dict[str, str]:
    """Each VM's state as Vagrant sees it (running, shutoff, not_created...)."""
    if not project.state_dir.is_dir():
        return {}
    text = vagrant_quietly(project, ["status", "--machine-readable"])
    found = {}
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) >= 4 and fields[2] == "state":
            found[fields[1]] = fields[3]
    return found


def tear_down(project: Project, say: Say) -> None:
    """Destroy the VMs and forget what `up` recorded of them."""
    if project.state_dir.is_dir():
        vagrant(project, ["destroy", "--force"], say, timeout_s=600)
    for host in hosts_of(project):
        project.console_log(host).unlink(missing_ok=True)
    project.known_hosts.unlink(missing_ok=True)
    project.vm_inventory.unlink(missing_ok=True)


def hosts_of(project: Project) -> list[str]:
    data = yaml.safe_load(project.inventory_path.read_text()) or {}
    return list(data.get("hosts", {}))
