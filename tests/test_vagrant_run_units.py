"""vagrant as haops runs it, against a fake `vagrant` on PATH: a hung vagrant is killed with its
children at the timeout, and a missing or slow one is a clean error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from haops.errors import UserError
from haops.vagrant import box, machines

pytestmark = pytest.mark.unit


def fake_vagrant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> machines.Project:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "vagrant"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    inventory = tmp_path / "vm.yml"
    inventory.write_text("hosts:\n  real1: 10.213.22.21\n")
    return machines.Project(inventory, box.BOX_NAME, True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def gone(pid: int, within_s: float = 5) -> bool:
    """The process ended (a killed group's orphan dies a moment after its leader is reaped)."""
    give_up = time.monotonic() + within_s
    while alive(pid) and time.monotonic() < give_up:
        time.sleep(0.05)
    return not alive(pid)


def test_progress_lines_are_told_and_the_output_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = fake_vagrant(tmp_path, monkeypatch, "echo '==> real1: Creating domain'; echo 'Progress: 40%'; echo done")
    said: list[str] = []
    assert machines.vagrant(project, ["up"], said.append, timeout_s=10) == "==> real1: Creating domain\ndone"
    assert said == ["real1: Creating domain"]


def test_a_hung_vagrant_is_killed_with_its_children_at_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    child = tmp_path / "child.pid"
    project = fake_vagrant(tmp_path, monkeypatch, f"echo '==> real1: Waiting'; sleep 60 & echo $! > {child}; wait")
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(UserError, match="took longer than 1 s and was killed"):
        machines.vagrant(project, ["up"], said.append, timeout_s=1)
    assert time.monotonic() - started < 10 and said == ["real1: Waiting"]
    assert gone(int(child.read_text()))


def test_a_vagrant_that_prints_forever_is_still_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = fake_vagrant(tmp_path, monkeypatch, "while :; do echo tick; sleep 0.05; done")
    started = time.monotonic()
    with pytest.raises(UserError, match="took longer than"):
        machines.vagrant(project, ["up"], lambda _s: None, timeout_s=1)
    assert time.monotonic() - started < 10


def test_a_failed_vagrant_shows_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = fake_vagrant(tmp_path, monkeypatch, "echo 'the domain exists'; exit 3")
    with pytest.raises(UserError, match="(?s)failed \\(exit 3\\).*the domain exists"):
        machines.vagrant(project, ["up"], lambda _s: None, timeout_s=10)


def test_quiet_vagrant_times_out_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    child = tmp_path / "child.pid"
    project = fake_vagrant(tmp_path, monkeypatch, f"sleep 60 & echo $! > {child}; wait")
    with pytest.raises(UserError, match="vagrant ssh-config took longer than 1 s"):
        machines.vagrant_quietly(project, ["ssh-config"], timeout_s=1)
    assert gone(int(child.read_text()))


def test_quiet_vagrant_returns_stdout_or_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = fake_vagrant(tmp_path, monkeypatch, 'if [ "$1" = status ]; then echo ok; else echo broken >&2; exit 1; fi')
    assert machines.vagrant_quietly(project, ["status"], timeout_s=10) == "ok\n"
    with pytest.raises(UserError, match="failed \\(exit 1\\): broken"):
        machines.vagrant_quietly(project, ["ssh-config"], timeout_s=10)


@pytest.mark.parametrize("quietly", [True, False])
def test_a_missing_vagrant_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quietly: bool) -> None:
    project = fake_vagrant(tmp_path, monkeypatch, "exit 0")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="vagrant is not installed"):
        if quietly:
            machines.vagrant_quietly(project, ["status"])
        else:
            machines.vagrant(project, ["up"], lambda _s: None)


def test_output_that_is_not_utf8_is_read_through_to_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A provisioner's dpkg output may hold any byte: it must not stop the reading (haops would
    then wait for the whole timeout, and vagrant block on a full pipe)."""
    project = fake_vagrant(tmp_path, monkeypatch, "printf 'ok\\n\\377\\376 bad\\n==> real1: after\\n'")
    said: list[str] = []
    started = time.monotonic()
    out = machines.vagrant(project, ["up"], said.append, timeout_s=20)
    assert said == ["real1: after"] and "bad" in out and time.monotonic() - started < 10


def test_an_interrupted_haops_ends_vagrants_whole_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vagrant runs in its own session, so Ctrl-C reaches only haops: haops must end vagrant."""
    child = tmp_path / "child.pid"
    project = fake_vagrant(tmp_path, monkeypatch, f"sleep 60 & echo $! > {child}; echo '==> real1: booting'; wait")

    def interrupt(_text: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        machines.vagrant(project, ["up"], interrupt, timeout_s=30)
    assert gone(int(child.read_text()))
