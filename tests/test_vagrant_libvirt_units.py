"""libvirt as `haops vagrant up` prepares it, with fakes for the device and the daemons: /dev/kvm
only ever gains group kvm read/write, and each daemon haops starts is recorded at once."""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from haops.errors import UserError
from haops.vagrant import libvirt

pytestmark = pytest.mark.unit
KVM_GID = 4242


@pytest.fixture
def kvm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[int]]:
    device = tmp_path / "kvm"
    device.write_text("")
    chowned: list[int] = []
    monkeypatch.setattr(libvirt, "KVM_DEVICE", str(device))
    monkeypatch.setattr(grp, "getgrnam", lambda _name: SimpleNamespace(gr_gid=KVM_GID))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "chown", lambda _path, _uid, gid: chowned.append(gid))
    return device, chowned


@pytest.mark.parametrize("before, after", [(0o666, 0o666), (0o600, 0o660), (0o640, 0o660), (0o604, 0o664)])
def test_kvm_only_gains_group_read_write(kvm: tuple[Path, list[int]], before: int, after: int) -> None:
    device, chowned = kvm
    device.chmod(before)
    assert libvirt.apply_kvm_udev_rule()
    assert stat.S_IMODE(device.stat().st_mode) == after and chowned == [KVM_GID]


def test_the_mode_keeps_every_bit_it_had() -> None:
    assert libvirt.with_kvm_group_rw(stat.S_IFCHR | 0o606) == 0o666


def test_virtlogd_is_recorded_even_when_libvirtd_fails_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def start(name: str, _pidfile: Path) -> libvirt.Started:
        if name == "libvirtd":
            raise UserError("libvirtd -d failed (exit 1): no")
        return libvirt.Started(name, 4321)

    monkeypatch.setattr(libvirt, "STARTED_RECORD", tmp_path / "started.json")
    monkeypatch.setattr(libvirt, "responds", lambda: False)
    monkeypatch.setattr(libvirt, "under_systemd", lambda: False)
    monkeypatch.setattr(libvirt, "alive_from", lambda _pidfile: None)
    monkeypatch.setattr(libvirt, "start_daemon", start)
    monkeypatch.setattr(libvirt.shutil, "which", lambda _tool: "/usr/sbin/libvirtd")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(UserError, match="libvirtd -d failed"):
        libvirt.ensure_running()
    assert json.loads((tmp_path / "started.json").read_text()) == [{"name": "virtlogd", "pid": 4321}]
