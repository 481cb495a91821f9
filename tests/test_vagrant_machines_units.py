"""The VM lifecycle's pure parts: host keys read off a console and checked against the recorded
ones, the box's mirror and recipe, and a rollback that re-activates only files that existed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from haops.errors import UserError
from haops.vagrant import box, machines
from haops.vagrant.ssh_config import VagrantHost

pytestmark = pytest.mark.unit
ED = "AAAAC3NzaC1lZDI1NTE5AAAAIH7UCBkO+eSTKYF8kY52QiNjV/6OAAAAAAAAAAAAAAAA"
ED2 = "AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"


def console(*keys: str) -> str:
    return "".join(f"\x1b[0mhaops-box login: haops-host-key: ssh-ed25519 {key}\r\n" for key in keys)


def project(tmp_path: Path) -> machines.Project:
    inventory = tmp_path / "vm.yml"
    inventory.write_text("hosts:\n  real1: 10.213.22.21\n")
    return machines.Project(inventory, box.BOX_NAME, True)


REAL1 = VagrantHost("real1", "10.213.20.5", "vagrant", 22, None)


def test_the_latest_boot_wins_on_a_console_that_kept_an_earlier_one() -> None:
    assert machines.keys_on_console(console(ED, ED2)) == [machines.HostKey("ssh-ed25519", ED2)]
    assert machines.keys_on_console("no keys here\n") == []


def test_keys_are_recorded_once_then_a_changed_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = project(tmp_path)
    vm.state_dir.mkdir(parents=True)
    seen: list[str] = []
    monkeypatch.setattr(machines, "read_console", lambda _p, _h: console(ED))
    hosts = {"real1": VagrantHost("real1", "10.213.20.5", "vagrant", 22, None)}
    machines.record_host_keys(vm, hosts, seen.append)
    assert vm.known_hosts.read_text() == f"10.213.20.5 ssh-ed25519 {ED} real1\n"
    assert len(seen) == 1 and "SHA256:" in seen[0]
    machines.record_host_keys(vm, hosts, seen.append)
    assert len(seen) == 1  # known already: nothing said, nothing changed
    monkeypatch.setattr(machines, "read_console", lambda _p, _h: console(ED2))
    with pytest.raises(UserError, match="host key changed"):
        machines.record_host_keys(vm, hosts, seen.append)
    assert vm.known_hosts.read_text() == f"10.213.20.5 ssh-ed25519 {ED} real1\n"


def test_a_vm_without_console_keys_keeps_the_recorded_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = project(tmp_path)
    vm.state_dir.mkdir(parents=True)
    vm.known_hosts.write_text(f"10.213.20.5 ssh-ed25519 {ED} real1\n")
    monkeypatch.setattr(machines, "read_console", lambda _p, _h: "")
    seen: list[str] = []
    machines.record_host_keys(vm, {"real1": REAL1}, seen.append)
    assert vm.known_hosts.read_text() == f"10.213.20.5 ssh-ed25519 {ED} real1\n"
    assert len(seen) == 1 and "using the recorded ssh-ed25519 SHA256:" in seen[0]


def test_a_vm_with_no_keys_at_all_is_refused_with_how_to_record_them(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    vm = project(tmp_path)
    vm.inventory_path.write_text("hosts:\n  real1: 10.213.22.21\n  real2: 10.213.22.22\n")
    vm.state_dir.mkdir(parents=True)
    real2 = VagrantHost("real2", "10.213.20.6", "vagrant", 22, None)
    monkeypatch.setattr(machines, "ssh_config_of", lambda _p: {"real1": REAL1, "real2": real2})
    monkeypatch.setattr(machines, "read_console", lambda _p, host: console(ED) if host == "real1" else "")
    monkeypatch.setattr(machines, "CONSOLE_KEYS_WAIT_S", 0)
    with pytest.raises(UserError, match="no SSH host keys to trust for real2") as refused:
        machines.import_vms(vm, print)
    assert f"ssh-keyscan -p 22 10.213.20.6 2>/dev/null | sed 's/$/ real2/' >> {vm.known_hosts}" in str(refused.value)
    assert vm.known_hosts.read_text() == f"10.213.20.5 ssh-ed25519 {ED} real1\n"  # real2 is not trusted
    assert vm.vm_inventory.is_file()


def test_the_mirror_is_read_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n")
    assert box.apt_mirror(tmp_path) == "http://mirror.example/debian"
    other = tmp_path / "one"
    (other / "sources.list.d").mkdir(parents=True)
    (other / "sources.list").write_text("deb [arch=amd64] http://old.example/debian bookworm main\n")
    assert box.apt_mirror(other) == "http://old.example/debian"
    assert box.apt_mirror(tmp_path / "none") == box.DEFAULT_MIRROR


def test_the_recipe_changes_with_what_goes_into_the_box() -> None:
    base = box.BoxRecipe("http://deb.debian.org/debian", ("haproxy",))
    assert base.digest() == box.BoxRecipe("http://deb.debian.org/debian", ("haproxy",)).digest()
    assert base.digest() != box.BoxRecipe("http://deb.debian.org/debian", ("haproxy", "nginx")).digest()
    assert base.digest() != box.BoxRecipe("http://other/debian", ("haproxy",)).digest()


def test_the_recipe_changes_with_the_files_written_into_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    base = box.BoxRecipe("http://deb.debian.org/debian", ("haproxy",)).digest()
    monkeypatch.setitem(box.CONFIGURED_FILES, "etc/fstab", "/dev/vda / ext4 defaults 0 1\n")
    assert box.BoxRecipe("http://deb.debian.org/debian", ("haproxy",)).digest() != base


def test_the_vm_inventory_with_its_secrets_is_written_0600_whatever_the_umask(tmp_path: Path) -> None:
    vm = project(tmp_path)
    vm.inventory_path.write_text("vars: {keepalived_auth_pass: s3cret}\nhosts:\n  real1: {address: 10.213.22.21}\n")
    vm.vm_inventory.write_text("an older copy, world-readable\n")
    vm.vm_inventory.chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        machines.write_vm_inventory(vm, {"real1": REAL1})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(vm.vm_inventory.stat().st_mode) == 0o600
    assert "s3cret" in vm.vm_inventory.read_text() and "ssh_known_hosts" in vm.vm_inventory.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vm.vagrant.yml", "vm.yml"]  # no temp file left


def test_inventories_of_the_same_name_share_no_domain_or_console_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machines, "CONSOLE_DIR", tmp_path / "consoles")
    (tmp_path / "consoles").mkdir()
    a, b = (tmp_path / "a", tmp_path / "b")
    for directory in (a, b):
        directory.mkdir()
        (directory / "vm.yml").write_text("hosts:\n  real1: 10.213.22.21\n")
    first, second = (machines.Project(d / "vm.yml", box.BOX_NAME, True) for d in (a, b))
    assert first.prefix != second.prefix and first.prefix.startswith("haops-vm-")
    assert first.prefix == machines.Project(a / "." / "vm.yml", box.BOX_NAME, True).prefix  # stable: the resolved path
    assert first.environment()["HAOPS_VM_PREFIX"] == first.prefix
    first.console_log("real1").write_text("a's console\n")
    second.console_log("real1").write_text("b's console\n")
    machines.tear_down(second, print)
    assert first.console_log("real1").read_text() == "a's console\n" and not second.console_log("real1").exists()


def test_a_cloud_images_mirror_list_is_read_for_its_first_http_mirror(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "mirrors").mkdir()
    (tmp_path / "mirrors" / "debian.list").write_text("# the cloud's mirror\nhttps://cdn.example/debian/\tpriority:1\n")
    sources = tmp_path / "sources.list.d" / "debian.sources"
    sources.write_text(f"Types: deb\nURIs: mirror+file://{tmp_path}/mirrors/debian.list\nSuites: bookworm\n")
    assert box.apt_mirror(tmp_path) == "https://cdn.example/debian"
    (tmp_path / "mirrors" / "debian.list").write_text("mirror+http://mirrors.example/list\n")
    assert box.apt_mirror(tmp_path) == box.DEFAULT_MIRROR


@pytest.mark.parametrize("uri", ["mirror+file:///nonexistent/debian.list", "cdrom:[Debian]/", "tor+http://x.onion/debian"])
def test_a_mirror_debootstrap_cannot_use_falls_back_to_the_default(tmp_path: Path, uri: str) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(f"Types: deb\nURIs: {uri}\nSuites: bookworm\n")
    (tmp_path / "sources.list").write_text(f"deb {uri} bookworm main\n")
    assert box.apt_mirror(tmp_path) == box.DEFAULT_MIRROR


@pytest.mark.parametrize("garbled", [
    f"haops-host-key: ssh-ed25519 {ED[:30]}[    4.812345] random: crng init done\r\n",  # printk inside the blob
    f"haops-host-key: ssh-ed25519 {ED[:28]}\r\n[    4.812345] {ED[28:]}\r\n",  # cut at a base64 boundary
    f"haops-host-key: ssh-rsa {ED}\r\n",  # the blob's own type is ed25519
    "haops-host-key: ssh-ed25519 not-base64!\r\n",
])
def test_a_key_line_garbled_by_kernel_output_is_ignored(garbled: str) -> None:
    assert machines.keys_on_console(console(ED) + garbled) == [machines.HostKey("ssh-ed25519", ED)]
    assert machines.keys_on_console(garbled) == []


def test_keys_that_reach_the_console_late_are_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen on the VMs: a VM up by Vagrant's word whose console did not hold its keys yet."""
    vm = project(tmp_path)
    vm.state_dir.mkdir(parents=True)
    reads = iter(["", "[  OK  ] Started getty\r\n", console(ED)])
    monkeypatch.setattr(machines, "read_console", lambda _p, _h: next(reads))
    monkeypatch.setattr(machines.time, "sleep", lambda _s: None)
    machines.record_host_keys(vm, {"real1": REAL1}, [].append)
    assert vm.known_hosts.read_text() == f"10.213.20.5 ssh-ed25519 {ED} real1\n"
