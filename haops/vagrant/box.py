"""`haops vagrant box build`: a local Debian bookworm box for vagrant-libvirt, built here from the
Debian mirror apt already uses, for machines that cannot reach Vagrant Cloud.

The box carries every package haops drives (templates/host-packages.txt), because its VMs sit
on isolated networks and reach no mirror. It boots its kernel directly (no bootloader, the
disk is one ext4 filesystem): the box's own Vagrantfile points vagrant-libvirt at the kernel
and initrd shipped inside it. Each VM makes its SSH host keys at first boot, and Vagrant swaps
its well-known insecure key for a new one at first `up`.

A build is named by its recipe (suite, mirror, packages and the files below); the box is
current when the one Vagrant holds carries the same recipe, and then nothing is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from haops.errors import UserError
from haops.render import render_template, template_root

BOX_NAME = "haops/bookworm"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DISK_GIB = 4
BASE_PACKAGES = ("linux-image-amd64", "systemd-sysv", "openssh-server", "sudo", "ifupdown", "isc-dhcp-client",
                 "iproute2", "ca-certificates", "netbase", "less")
# The box's kernel command line: the whole disk is the root filesystem; eth0, eth1... as
# vagrant's Debian guest support expects; the console on the serial port libvirt records.
KERNEL_CMD_LINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 biosdevname=0"
# Timers and units that cost a software-emulated VM boot time or CPU and do nothing for a cluster.
MASKED_UNITS = ("e2scrub_reap.service", "apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer",
                "e2scrub_all.timer", "fstrim.timer", "systemd-timesyncd.service")
# Daemons the packages enable at boot: haops starts what the inventory asks for, and nothing else
# may hold port 80 or a VIP first.
DISABLED_UNITS = ("haproxy", "nginx", "apache2", "apache-htcacheclean", "named", "keepalived", "postgresql",
                  "rsync", "drbd", "ipvsadm")
INSECURE_KEY_PATHS = (Path("/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant.pub"),)

Say = Callable[[str], None]


@dataclass(frozen=True)
class BoxRecipe:
    mirror: str
    packages: tuple[str, ...]
    suite: str = SUITE
    disk_gib: int = DISK_GIB

    def digest(self) -> str:
        """Names the build: changes when anything that goes into the box changes."""
        parts = {"suite": self.suite, "mirror": self.mirror, "packages": sorted(self.packages), "disk": self.disk_gib,
                 "cmdline": KERNEL_CMD_LINE, "configure": first_boot_script("KEY"), "configured": CONFIGURED_FILES,
                 "files": {name: (template_root() / "vagrant" / name).read_text() for name in BOX_TEMPLATES}}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


BOX_TEMPLATES = ("box.Vagrantfile.j2", "host-keys.service")


def host_packages() -> tuple[str, ...]:
    """The packages every cluster host needs, as setup.sh and the Vagrantfile read them."""
    lines = (template_root() / "host-packages.txt").read_text().splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def apt_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org."""
    texts = [p.read_text() for p in sorted(sources_dir.glob("sources.list.d/*.sources"))]
    for text in texts:
        for stanza in text.split("\n\n"):
            uris = re.search(r"^URIs:(.*)$", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            found = usable_uri(uris.group(1).split()) if uris and suites and SUITE in suites.group(1).split() else None
            if found:
                return found
    one_line = sources_dir / "sources.list"
    if one_line.is_file():
        for line in one_line.read_text().splitlines():
            fields = line.split()
            found = usable_uri([field for field in fields if "://" in field]) if fields[:1] == ["deb"] else None
            if found and SUITE in fields:
                return found
    return DEFAULT_MIRROR


def usable_uri(uris: list[str]) -> str | None:
    """The first URI debootstrap can fetch from: http, https or file; a mirror+file list (as Debian's
    cloud images use) is read for its first http(s) mirror."""
    for uri in uris:
        if uri.startswith("mirror+file://"):
            uri = first_listed_mirror(Path(uri.removeprefix("mirror+file://"))) or ""
        if uri.startswith(("http://", "https://", "file:/")):
            return uri.rstrip("/")
    return None


def first_listed_mirror(mirror_list: Path) -> str | None:
    """The first http(s) mirror of an apt-transport-mirror list (a URI per line, then tab-separated metadata)."""
    try:
        lines = mirror_list.read_text().splitlines()
    except OSError:
        return None
    return next((line.split()[0] for line in lines if line.startswith(("http://", "https://"))), None)


def recipe(mirror: str | None = None) -> BoxRecipe:
    return BoxRecipe(mirror or apt_mirror(), BASE_PACKAGES + host_packages())


def vagrant_home() -> Path:
    return Path(os.environ.get("VAGRANT_HOME") or Path.home() / ".vagrant.d")


def installed_recipe(name: str = BOX_NAME) -> str | None:
    """The recipe of the box Vagrant holds under `name`, or None when it holds none of ours."""
    stamp = vagrant_home() / "boxes" / name.replace("/", "-VAGRANTSLASH-") / "0" / "libvirt" / "haops-recipe"
    return stamp.read_text().strip() if stamp.is_file() else None


def box_is_current(wanted: BoxRecipe) -> bool:
    return installed_recipe() == wanted.digest()


def build_box(wanted: BoxRecipe, work: Path, say: Say) -> Path:
    """Build the box file under `work` and return its path; every step is told through `say`."""
    missing = [tool for tool in ("debootstrap", "mkfs.ext4", "qemu-img", "tar") if shutil.which(tool) is None]
    if missing:
        raise UserError(f"box build needs {', '.join(missing)}: run scripts/setup.sh (Debian: debootstrap, e2fsprogs, qemu-utils)")
    if os.geteuid() != 0:
        raise UserError("box build runs debootstrap and chroot: run it as root")
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot make the box's work directory {work}: {error.strerror}") from None
    build = work / wanted.digest()
    remove_build(build)
    with terminate_raises():
        try:
            box_file = build_in(build, wanted, work, say)
        finally:
            release_mounts(build)
    remove_build(build)
    return box_file


def build_in(build: Path, wanted: BoxRecipe, work: Path, say: Say) -> Path:
    root = build / "rootfs"
    root.mkdir(parents=True)
    say(f"debootstrap {wanted.suite} from {wanted.mirror} (the base system, about a minute)")
    run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", wanted.suite, str(root), wanted.mirror])
    say(f"installing {len(wanted.packages) - len(BASE_PACKAGES)} cluster packages in the image, without starting them")
    install_packages(root, wanted)
    say("vagrant user, sudo, first-boot host keys, quiet timers")
    configure(root, wanted)
    say(f"one ext4 filesystem of {wanted.disk_gib} GiB from the tree, as qcow2")
    box_dir = build / "box"
    box_dir.mkdir()
    make_disk(root, box_dir, wanted)
    write_box_files(root, box_dir, wanted)
    box_file = work / f"haops-{wanted.suite}-{wanted.digest()}.box"
    run(["tar", "-cf", str(box_file), "-C", str(box_dir), "."])
    return box_file


@contextmanager
def terminate_raises() -> Iterator[None]:
    """SIGTERM ends the build as Ctrl-C does, through every `finally` (the chroot's mounts are released)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def mount_points(mountinfo: str) -> list[Path]:
    """Every mount point in /proc/self/mountinfo text (its 5th field, octal escapes undone)."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])))
    return points


def mounts_under(points: list[Path], directory: Path) -> list[Path]:
    """The mount points at or below `directory`, deepest first (the order they can be unmounted in)."""
    inside = {point for point in points if point == directory or directory in point.parents}
    return sorted(inside, key=lambda point: (len(point.parts), str(point)), reverse=True)


def mounts_now(directory: Path) -> list[Path]:
    return mounts_under(mount_points(Path("/proc/self/mountinfo").read_text()), directory)


def release_mounts(build: Path) -> list[Path]:
    """Lazily unmount everything mounted under `build`, deepest first; what is still mounted after."""
    build = build.resolve()
    for point in mounts_now(build):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
    return mounts_now(build)


def remove_build(build: Path) -> None:
    """Remove a build tree, never through a mount: a killed build can leave the host's /dev bound
    inside it, and rmtree would unlink the host's device nodes."""
    if not build.exists():
        return
    left = release_mounts(build)
    if left:
        raise UserError(f"still mounted under {build}, so it is not removed: {', '.join(map(str, left))}; "
                        "unmount them (umount -l PATH) and run the build again")
    shutil.rmtree(build)


def add_box(box_file: Path) -> None:
    run(["vagrant", "box", "add", "--force", "--name", BOX_NAME, str(box_file)])


def run(argv: list[str], **extra: object) -> None:
    finished = subprocess.run(argv, capture_output=True, text=True, **extra)  # type: ignore[call-overload]
    if finished.returncode != 0:
        tail = "\n".join((finished.stdout + finished.stderr).strip().splitlines()[-15:])
        raise UserError(f"{argv[0]} failed (exit {finished.returncode}):\n{tail}")


def chroot(root: Path, script: str) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    run(["chroot", str(root), "sh", "-euc", script], env=env)


@contextmanager
def mounted_for_chroot(root: Path) -> Iterator[None]:
    """/proc, /sys and /dev inside the tree while package scripts run, unmounted whatever happens."""
    points = [("proc", root / "proc", ["-t", "proc", "proc"]), ("sys", root / "sys", ["-t", "sysfs", "sysfs"]),
              ("dev", root / "dev", ["--bind", "/dev"])]
    done: list[Path] = []
    try:
        for _, point, how in points:
            run(["mount", *how, str(point)])
            done.append(point)
            # no mount or unmount under the tree may reach this machine's own /dev (shared propagation)
            run(["mount", "--make-rslave", str(point)])
        yield
    finally:
        for point in reversed(done):
            subprocess.run(["umount", "-l", str(point)], check=False)


def install_packages(root: Path, wanted: BoxRecipe) -> None:
    extra = " ".join(package for package in wanted.packages if package not in BASE_PACKAGES)
    (root / "etc/apt/sources.list").write_text(f"deb {wanted.mirror} {wanted.suite} main\n")
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    with mounted_for_chroot(root):
        chroot(root, f"apt-get update -q && apt-get install -y -q --no-install-recommends {extra} && apt-get clean")
    policy.unlink()
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)


# The files configure() writes into the image, by path under its root.
CONFIGURED_FILES = {
    "etc/hostname": "haops-box\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 haops-box\n::1 localhost ip6-localhost ip6-loopback\n",
    "etc/fstab": "/dev/vda / ext4 errors=remount-ro 0 1\n",
    "etc/network/interfaces": ("source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n"
                               "allow-hotplug eth0\niface eth0 inet dhcp\n"),
    "etc/sudoers.d/vagrant": "vagrant ALL=(ALL) NOPASSWD: ALL\n",
}


def configure(root: Path, wanted: BoxRecipe) -> None:
    for path, text in CONFIGURED_FILES.items():
        (root / path).write_text(text)
    (root / "etc/sudoers.d/vagrant").chmod(0o440)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    shutil.copy(template_root() / "vagrant" / "host-keys.service", root / "etc/systemd/system/haops-host-keys.service")
    chroot(root, first_boot_script(insecure_key()))


def insecure_key() -> str:
    for path in INSECURE_KEY_PATHS + tuple(Path("/usr/share/rubygems-integration/all/gems").glob("vagrant-*/keys/vagrant.pub")):
        if path.is_file():
            return path.read_text().strip()
    raise UserError("Vagrant's insecure public key (keys/vagrant.pub of the vagrant package) is missing: install vagrant")


def first_boot_script(public_key: str) -> str:
    disabled = " ".join(f"{unit}.service" for unit in DISABLED_UNITS)
    return (
        "useradd -m -s /bin/bash vagrant\n"
        "install -d -m 700 -o vagrant -g vagrant /home/vagrant/.ssh\n"
        f"printf '%s\\n' '{public_key}' > /home/vagrant/.ssh/authorized_keys\n"
        "chown vagrant:vagrant /home/vagrant/.ssh/authorized_keys && chmod 600 /home/vagrant/.ssh/authorized_keys\n"
        "systemctl enable haops-host-keys.service\n"
        f"systemctl mask {' '.join(MASKED_UNITS)}\n"
        f"for unit in {disabled}; do if [ -e \"/lib/systemd/system/$unit\" ]; then systemctl disable \"$unit\"; fi; done\n"
        "printf 'UseDNS no\\n' > /etc/ssh/sshd_config.d/haops.conf\n"
        "passwd -l root\n"
    )


def make_disk(root: Path, box_dir: Path, wanted: BoxRecipe) -> None:
    raw = box_dir.parent / "disk.raw"
    with raw.open("wb") as disk:
        disk.truncate(wanted.disk_gib * 1024**3)
    run(["mkfs.ext4", "-q", "-L", "root", "-d", str(root), str(raw)])
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(box_dir / "box.img")])
    raw.unlink()


def write_box_files(root: Path, box_dir: Path, wanted: BoxRecipe) -> None:
    kernel = newest(root / "boot", "vmlinuz-*")
    initrd = newest(root / "boot", "initrd.img-*")
    shutil.copy(kernel, box_dir / "vmlinuz")
    shutil.copy(initrd, box_dir / "initrd.img")
    metadata = {"provider": "libvirt", "format": "qcow2", "virtual_size": wanted.disk_gib}
    (box_dir / "metadata.json").write_text(json.dumps(metadata) + "\n")
    (box_dir / "Vagrantfile").write_text(render_template("vagrant/box.Vagrantfile.j2", digest=wanted.digest(),
                                                         cmd_line=KERNEL_CMD_LINE))
    (box_dir / "haops-recipe").write_text(wanted.digest() + "\n")


def newest(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if not found:
        raise UserError(f"the image has no {directory.name}/{pattern}: did linux-image-amd64 install?")
    return found[-1]
