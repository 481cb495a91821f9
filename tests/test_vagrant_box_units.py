"""The box build's care for the host: a build tree is removed only once nothing is mounted in it
(a killed build can leave the host's /dev bound inside), and SIGTERM ends a build through its
`finally` blocks."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from haops.errors import UserError
from haops.vagrant import box

pytestmark = pytest.mark.unit
BUILD = Path("/var/cache/haops/box/0123abcd")
MOUNTINFO = f"""\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:5 / {BUILD}/rootfs/dev rw shared:2 - devtmpfs udev rw
91 90 0:20 / {BUILD}/rootfs/dev/pts rw shared:3 - devpts devpts rw
92 22 0:21 / {BUILD}/rootfs/proc rw - proc proc rw
93 22 0:22 / {BUILD}/rootfs/my\\040disk rw - tmpfs tmpfs rw
94 22 0:23 / {BUILD}-other/rootfs/dev rw - devtmpfs udev rw
95 22 0:24 / /var/cache/haops/box rw - tmpfs tmpfs rw
"""


def test_mount_points_are_read_with_their_escapes_undone() -> None:
    points = box.mount_points(MOUNTINFO)
    assert points[0] == Path("/") and BUILD / "rootfs/my disk" in points and len(points) == 7


def test_only_mounts_inside_the_build_are_chosen_deepest_first() -> None:
    chosen = box.mounts_under(box.mount_points(MOUNTINFO), BUILD)
    assert chosen[0] == BUILD / "rootfs/dev/pts"
    assert set(chosen) == {BUILD / "rootfs/dev/pts", BUILD / "rootfs/dev", BUILD / "rootfs/proc", BUILD / "rootfs/my disk"}
    assert chosen.index(BUILD / "rootfs/dev/pts") < chosen.index(BUILD / "rootfs/dev")


def test_a_build_still_mounted_after_unmounting_is_refused_not_removed(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    build = tmp_path / "build"
    (build / "rootfs/dev").mkdir(parents=True)
    (build / "rootfs/dev/null").write_text("stands for the host's device node\n")
    unmounted: list[list[str]] = []
    monkeypatch.setattr(box, "mounts_now", lambda _d: [build / "rootfs/dev"])
    monkeypatch.setattr(subprocess, "run", lambda argv, **_kw: unmounted.append(argv))
    with pytest.raises(UserError, match="still mounted under"):
        box.remove_build(build)
    assert unmounted == [["umount", "-l", str(build / "rootfs/dev")]]
    assert (build / "rootfs/dev/null").exists()


def test_a_build_is_removed_after_its_mounts_are_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = tmp_path / "build"
    (build / "rootfs/proc").mkdir(parents=True)
    mounted = [build / "rootfs/proc"]
    monkeypatch.setattr(box, "mounts_now", lambda _d: list(mounted))
    monkeypatch.setattr(subprocess, "run", lambda argv, **_kw: mounted.remove(Path(argv[-1])))
    box.remove_build(build)
    assert not build.exists()


def test_sigterm_during_a_build_runs_its_finally_blocks() -> None:
    cleaned = []
    with pytest.raises(SystemExit) as stopped:
        with box.terminate_raises():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            finally:
                cleaned.append(True)
    assert cleaned == [True] and stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
