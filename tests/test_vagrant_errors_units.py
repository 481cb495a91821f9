"""User-facing failures of the VM commands are one-screen errors (UserError, exit 2) or preflight
findings, never tracebacks: with fakes for the tools and the machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from haops.cli import main
from haops.errors import UserError
from haops.vagrant import box, libvirt, preflight
from haops.vagrant.ssh_config import VagrantHost, merge_into_inventory

pytestmark = pytest.mark.unit


def fake_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_box_build_as_a_user_says_run_it_as_root_and_makes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAGRANT_HOME", str(tmp_path / "vagrant.d"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(box.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    work = tmp_path / "work"
    with pytest.raises(SystemExit) as exited:
        main(["vagrant", "box", "build", "--mirror", "http://deb.example/debian", "--work-dir", str(work)])
    assert exited.value.code == 2 and "run it as root" in capsys.readouterr().err
    assert not work.exists()


def test_a_work_dir_that_cannot_be_made_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(box.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="cannot make the box's work directory"):
        box.build_box(box.BoxRecipe("http://deb.example/debian", ()), tmp_path / "a-file" / "work", print)


def test_a_hung_libvirt_is_a_clean_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(argv: list[str], **_kw: object) -> None:
        raise subprocess.TimeoutExpired(argv, 15)

    monkeypatch.setattr(libvirt.shutil, "which", lambda _tool: "/usr/bin/virsh")
    monkeypatch.setattr(libvirt.subprocess, "run", hang)
    with pytest.raises(UserError, match="does not answer on qemu:///system within 15 s"):
        libvirt.responds()


def test_a_failed_systemctl_start_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tool(tmp_path, monkeypatch, "systemctl", "echo 'Unit libvirtd.service not found.' >&2; exit 5")
    monkeypatch.setattr(libvirt, "responds", lambda: False)
    monkeypatch.setattr(libvirt, "under_systemd", lambda: True)
    monkeypatch.setattr(libvirt.shutil, "which", lambda _tool: "/usr/sbin/libvirtd")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(UserError, match="systemctl start libvirtd failed \\(exit 5\\): Unit libvirtd.service not found"):
        libvirt.ensure_running()


def test_bridge_filtering_without_iptables_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    knob = tmp_path / "bridge-nf-call-iptables"
    knob.write_text("1\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    finding = preflight.bridge_filtering(knob)
    assert finding.level == preflight.WARN and "could not be read" in finding.detail


def test_a_wrong_management_network_is_a_clean_error_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAOPS_VM_MANAGEMENT", "10.213.20.5/24")
    imported = subprocess.run([sys.executable, "-c", "import haops.vagrant.preflight"], capture_output=True, text=True,
                              timeout=60)
    assert imported.returncode == 0, imported.stderr  # importing it never fails
    with pytest.raises(UserError, match="HAOPS_VM_MANAGEMENT='10.213.20.5/24' is not an IPv4 network"):
        preflight.management_network()
    monkeypatch.setenv("HAOPS_VM_MANAGEMENT", "10.213.21.0/24")
    assert str(preflight.management_network()) == "10.213.21.0/24"


def test_a_host_whose_vars_are_empty_gets_its_ssh_settings() -> None:
    merged = merge_into_inventory("hosts:\n  lb1: {address: 10.213.1.11, vars: null}\n",
                                  {"lb1": VagrantHost("lb1", "10.213.20.5", "vagrant", 22, None)})
    assert "ssh_host: 10.213.20.5" in merged
    with pytest.raises(UserError, match="vars must be a mapping"):
        merge_into_inventory("hosts:\n  lb1: {address: 10.213.1.11, vars: [a]}\n",
                             {"lb1": VagrantHost("lb1", "10.213.20.5", "vagrant", 22, None)})
