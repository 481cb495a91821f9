"""One lab host's life: its disk (overlay upper dirs), power on (boot) and power off (crash)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from haops.lab import processes
from haops.lab.commands import LabError
from haops.lab.processes import ProcessRecord
from haops.lab.state import OVERLAID_DIRS, HostPaths

SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = "/etc/haops-lab/sshd_config"
AUTHORIZED_KEYS = "/etc/haops-lab/authorized_keys"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"

# PID 1 of the host. A constant script; everything variable arrives as "$@".
# It runs in fresh mount/UTS/PID namespaces (unshare already mounted a private /proc).
# The overlays and the bind of /root are mounted before the lab state root is hidden.
INIT_SCRIPT = r"""
set -eu
name=$1 disk=$2 hide=$3 dirs=$4
hostname "$name"
mount -t sysfs lab-sys /sys
# Drop our copies of the machine's netns pins, or a deleted lab's namespaces would live on.
if mountpoint -q /run/netns; then umount -l /run/netns; fi
for dir in $dirs; do
    mount -t overlay "lab-$dir" -o "lowerdir=/$dir,upperdir=$disk/upper/$dir,workdir=$disk/work/$dir" "/$dir"
done
mount --bind "$disk/root" /root
mount -t tmpfs -o ro,size=4k,mode=0700 lab-hidden "$hide"
mount -t tmpfs -o mode=0755,nosuid,nodev lab-run /run
mount -t tmpfs -o mode=1777,nosuid,nodev lab-tmp /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev lab-shm /dev/shm
mkdir -p -m 0755 /run/sshd /run/lock
exec /usr/sbin/sshd -D -e -f /etc/haops-lab/sshd_config
"""

SSHD_CONFIG_TEXT = f"""\
# haops lab host sshd: key-only root login, no PAM, no systemd.
Port 22
HostKey {HOST_KEY}
PidFile none
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile {AUTHORIZED_KEYS}
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 100:30:200
MaxSessions 100
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
"""


DOTFILES = {".bashrc": "/usr/share/base-files/dot.bashrc", ".profile": "/usr/share/base-files/dot.profile"}


def prepare_disk(paths: HostPaths, files: dict[str, tuple[str, int]]) -> None:
    """Create the upper dirs and write `files` (path inside the host -> text, mode) into them."""
    for name in OVERLAID_DIRS:
        paths.upper(name).mkdir(parents=True, exist_ok=True)
        paths.work(name).mkdir(parents=True, exist_ok=True)
    paths.home.mkdir(mode=0o700, exist_ok=True)
    for dotfile, source in DOTFILES.items():
        if Path(source).exists():
            shutil.copyfile(source, paths.home / dotfile)
    for inside, (text, mode) in files.items():
        target = paths.root / "upper" / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        target.chmod(mode)


def running_init(paths: HostPaths) -> ProcessRecord | None:
    init = processes.load(paths.init_pid)
    return init if init is not None and init.is_alive() else None


def power_on(paths: HostPaths, name: str, netns: str, hide: Path) -> int:
    """Start the host's namespaces and init in `netns`; return the supervisor's PID.

    The supervisor is `unshare --fork`, which waits for the init and kills it if it dies.
    """
    argv = ["nsenter", f"--net=/run/netns/{netns}", "--",
            "unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts",
            "--propagation", "private", "--mount-proc", "--",
            "/bin/sh", "-c", INIT_SCRIPT, "haops-lab-init",
            name, str(paths.root), str(hide), " ".join(OVERLAID_DIRS)]
    keep_inherited_descriptors_to_ourselves()
    log_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, str(paths.console_log), log_flags, 0o600),
               (os.POSIX_SPAWN_DUP2, 1, 2)]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    return os.posix_spawnp("nsenter", argv, env, file_actions=actions, setsid=True)


def keep_inherited_descriptors_to_ourselves() -> None:
    """A host outlives the command that booted it, so it must not hold what that command was given:
    `flock LOCK haops lab up` would otherwise leave LOCK held by the hosts until `lab down`.
    Python opens nothing inheritable itself, so an inheritable descriptor above 2 came from our parent."""
    for name in os.listdir("/proc/self/fd"):
        descriptor = int(name)
        try:
            if descriptor > 2 and os.get_inheritable(descriptor):
                os.set_inheritable(descriptor, False)
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor, or another thread's)


def record_processes(paths: HostPaths, supervisor_pid: int, timeout: float = 5) -> ProcessRecord:
    """Find and record the init (the supervisor's only child) by PID and start time."""
    supervisor = processes.record(supervisor_pid)
    if supervisor is None:
        raise LabError(f"host at {paths.root} failed to start; see {paths.console_log}")
    processes.save(paths.supervisor_pid, supervisor)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = processes.children(supervisor_pid)
        init = processes.record(kids[0]) if kids else None
        if init is not None:
            processes.save(paths.init_pid, init)
            return init
        if not supervisor.is_alive():
            break
        time.sleep(0.002)
    raise LabError(f"host at {paths.root} did not start its init; see {paths.console_log}")


def power_off(paths: HostPaths, timeout: float = 10) -> None:
    """Kill the host's PID-namespace init (the kernel then kills every process in it)."""
    init = processes.load(paths.init_pid)
    supervisor = processes.load(paths.supervisor_pid)
    recorded = [p for p in (init, supervisor) if p is not None]
    if init is not None:
        init.kill()
    if not processes.wait_until_dead([init] if init else [], timeout):
        raise LabError(f"host at {paths.root}: init {init} survived SIGKILL")
    if supervisor is not None:
        supervisor.kill()  # normally already gone: it exits when its child does
        processes.reap_if_child(supervisor.pid)
    if not processes.wait_until_dead(recorded, timeout):
        raise LabError(f"host at {paths.root}: processes {recorded} survived SIGKILL")
    paths.init_pid.unlink(missing_ok=True)
    paths.supervisor_pid.unlink(missing_ok=True)
