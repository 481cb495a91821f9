"""The apply lock's holder script, run here under sh on a lock file of the test's own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from haops.apply.lock import HOLDER, LOCK, hold_script

pytestmark = pytest.mark.unit


def holder(tmp_path: Path, then: str) -> subprocess.Popen[str]:
    script = hold_script("tester pid 1", then).replace(LOCK, str(tmp_path / "lock")).replace(HOLDER, str(tmp_path / "holder"))
    return subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def read_until_held(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines = []
    while not (line := process.stdout.readline()).startswith("haops-lock: held"):
        assert line, "the holder ended before it held the lock"
        lines.append(line.rstrip("\n"))
    return [*lines, line.rstrip("\n")]


def test_the_holder_runs_then_under_the_lock_and_frees_it_at_end_of_input(tmp_path: Path) -> None:
    first = holder(tmp_path, "echo fact; exit 3")
    assert read_until_held(first) == ["fact", "", "haops-lock: held 3"]
    assert (tmp_path / "holder").read_text() == "tester pid 1\n"
    second = holder(tmp_path, "echo never")
    out, _ = second.communicate(timeout=10)
    assert second.returncode == 1 and out == "", "a second holder is refused and runs nothing"
    assert first.stdin is not None
    first.stdin.write("beat\n")
    first.stdin.flush()
    first.stdin.close()  # apply's end: the holder's loop ends
    assert first.wait(timeout=10) == 0
    third = holder(tmp_path, "echo again")
    assert read_until_held(third) == ["again", "", "haops-lock: held 0"]
    third.communicate(timeout=10)
