"""libvirt for the VMs: the system daemon (qemu:///system, never a session one), started by hand
where PID 1 is not systemd, and stopped again only when haops started it, by the PIDs it
recorded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from haops.errors import UserError

SYSTEM_URI = "qemu:///system"
SOCKET = Path("/run/libvirt/libvirt-sock")
STARTED_RECORD = Path("/run/haops/libvirt-started.json")
# Started in this order, stopped in the reverse one: libvirtd hands QEMU's output to virtlogd.
DAEMONS = (("virtlogd", Path("/run/virtlogd.pid")), ("libvirtd", Path("/run/libvirtd.pid")))
READY_TIMEOUT_S = 20
KVM_DEVICE = "/dev/kvm"


@dataclass(frozen=True)
class Started:
    name: str
    pid: int


def responds(timeout_s: float = 15) -> bool:
    """libvirtd answers on the system socket."""
    if shutil.which("virsh") is None:
        return False
    try:
        finished = subprocess.run(["virsh", "-c", SYSTEM_URI, "version"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UserError(f"libvirt does not answer on {SYSTEM_URI} within 15 s (virsh version hung): libvirtd is "
                        "running but stuck; see /var/log/libvirt/ and restart it") from None
    return finished.returncode == 0


def under_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def kvm_device_needs_udev_rule() -> bool:
    """/dev/kvm is not group kvm with read/write, as Debian's udev rule makes it where udev runs.
    Then QEMU's user cannot open it, and libvirt finds its cached QEMU capabilities stale at every
    call: each `virsh capabilities` probed every QEMU binary again (7.6 s measured here), and
    vagrant-libvirt spent 100-180 s of each `up` on it."""
    import grp

    try:
        device = os.stat(KVM_DEVICE)
        kvm_group = grp.getgrnam("kvm").gr_gid
    except (OSError, KeyError):
        return False
    return device.st_gid != kvm_group or stat.S_IMODE(device.st_mode) & 0o060 != 0o060


def with_kvm_group_rw(mode: int) -> int:
    """The device's permission bits with group read/write added; none taken away (a 0666
    /dev/kvm stays open to every user)."""
    return stat.S_IMODE(mode) | 0o060


def apply_kvm_udev_rule() -> bool:
    """Give group kvm read/write on /dev/kvm, as Debian's udev rule does; True when it was needed."""
    if not kvm_device_needs_udev_rule() or os.geteuid() != 0:
        return False
    import grp

    mode = os.stat(KVM_DEVICE).st_mode
    os.chown(KVM_DEVICE, -1, grp.getgrnam("kvm").gr_gid)
    os.chmod(KVM_DEVICE, with_kvm_group_rw(mode))
    return True


def ensure_running() -> list[Started]:
    """Start libvirt when it does not answer; returns what haops started (empty when it already ran)."""
    if responds():
        return []
    if shutil.which("libvirtd") is None:
        raise UserError("libvirtd is not installed: run scripts/setup.sh (Debian: libvirt-daemon-system, "
                        "libvirt-daemon-driver-qemu, qemu-system-x86)")
    if os.geteuid() != 0:
        raise UserError("libvirtd is not running and only root can start the system daemon: "
                        "start it (systemctl start libvirtd) or run haops as root")
    if under_systemd():
        start_unit("libvirtd")
        wait_until_it_responds()
        return []
    started = []
    for name, pidfile in DAEMONS:
        if not alive_from(pidfile):
            started.append(start_daemon(name, pidfile))
            record([started[-1]])  # at once: `down` stops it even when the next daemon fails to start
    wait_until_it_responds()
    return started


def start_unit(unit: str) -> None:
    try:
        finished = subprocess.run(["systemctl", "start", unit], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise UserError(f"systemctl start {unit} took longer than 60 s: see journalctl -u {unit}") from None
    if finished.returncode != 0:
        raise UserError(f"systemctl start {unit} failed (exit {finished.returncode}): "
                        f"{finished.stderr.strip()[-400:]}; see journalctl -u {unit}")


def start_daemon(name: str, pidfile: Path) -> Started:
    finished = subprocess.run([name, "-d"], capture_output=True, text=True, timeout=30)
    if finished.returncode != 0:
        raise UserError(f"{name} -d failed (exit {finished.returncode}): {finished.stderr.strip()[-400:]}")
    for _ in range(50):
        pid = alive_from(pidfile)
        if pid:
            return Started(name, pid)
        time.sleep(0.1)
    raise UserError(f"{name} started but wrote no PID to {pidfile}")


def alive_from(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def wait_until_it_responds() -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if SOCKET.exists() and responds(timeout_s=max(deadline - time.monotonic(), 1)):
                return
        except UserError:  # still starting: slow to answer is not stuck yet
            pass
        time.sleep(0.3)
    raise UserError(f"libvirtd did not answer on {SYSTEM_URI} within {READY_TIMEOUT_S} s: see /var/log/libvirt/")


def record(started: list[Started]) -> None:
    known = [Started(**entry) for entry in json.loads(STARTED_RECORD.read_text())] if STARTED_RECORD.exists() else []
    STARTED_RECORD.parent.mkdir(parents=True, exist_ok=True)
    STARTED_RECORD.write_text(json.dumps([vars(s) for s in known + started]))


def stop_what_haops_started() -> list[Started]:
    """Stop the daemons haops started (by their recorded PIDs, still running the same program)."""
    if not STARTED_RECORD.exists():
        return []
    started = [Started(**entry) for entry in json.loads(STARTED_RECORD.read_text())]
    stopped = [s for s in reversed(started) if stop(s)]
    STARTED_RECORD.unlink()
    return stopped


def stop(daemon: Started) -> bool:
    try:
        program = Path(f"/proc/{daemon.pid}/comm").read_text().strip()
    except OSError:
        return False
    if program != daemon.name:
        return False  # the PID was reused by another program: not ours to end
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        os.kill(daemon.pid, sig)
        for _ in range(wait_s * 10):
            if not Path(f"/proc/{daemon.pid}").exists():
                return True
            time.sleep(0.1)
    return False


def domains() -> list[str]:
    """Every libvirt domain, running or not (none when libvirt does not answer)."""
    if not responds():
        return []
    return virsh("list", "--all", "--name").stdout.split()


def virsh(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["virsh", "-c", SYSTEM_URI, *args], input=stdin, capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"virsh {' '.join(args)} did not answer in 60 s: is libvirtd stuck? "
                        "See /var/log/libvirt/libvirtd.log") from exc

