"""The apply lock's holder script, run here under sh on a lock file of the test's own."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from haops.apply.lock import BASH, HOLDER, LOCK, hold_script

pytestmark = pytest.mark.unit


def holder(tmp_path: Path, then: str, lease_s: int = 20, bash: str = BASH,
           env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    script = (hold_script("tester pid 1", then, lease_s).replace(LOCK, str(tmp_path / "lock"))
              .replace(HOLDER, str(tmp_path / "holder")).replace(BASH, bash))
    return subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


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


# Without bash the holder waits with `timeout head`; the path named here does not exist.
WAYS = {"bash": BASH, "no bash": "/nonexistent/bash"}


@contextmanager
def holding(tmp_path: Path, lease_s: int, bash: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    process = holder(tmp_path, "true", lease_s, bash, env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


@pytest.mark.parametrize("bash", WAYS.values(), ids=WAYS.keys())
def test_heartbeats_keep_the_lock_and_their_end_frees_it(tmp_path: Path, bash: str) -> None:
    with holding(tmp_path, 2, bash) as first:
        read_until_held(first)
        assert first.stdin is not None
        for _ in range(6):  # 3 s of beats on a 2 s lease
            first.stdin.write("beat\n")
            first.stdin.flush()
            time.sleep(0.5)
        assert first.poll() is None, "the holder gave up while heartbeats came"
        waiting_in = Path(f"/proc/{first.pid}/comm").read_text().strip()
        children = Path(f"/proc/{first.pid}/task/{first.pid}/children").read_text().split()
        if bash == BASH:
            assert (waiting_in, children) == ("bash", []), "bash waits with no process of its own"
        else:
            assert waiting_in == "sh" and len(children) == 1, "sh waits on one `timeout head` at a time"
        second = holder(tmp_path, "echo never")
        assert second.communicate(timeout=10)[0] == "" and second.returncode == 1
        first.stdin.close()
        assert first.wait(timeout=10) == 0


@pytest.mark.parametrize("bash", WAYS.values(), ids=WAYS.keys())
def test_a_silent_holder_lets_go_when_its_lease_runs_out(tmp_path: Path, bash: str) -> None:
    started = time.monotonic()
    with holding(tmp_path, 2, bash) as first:
        read_until_held(first)
        first.wait(timeout=15)  # its input stays open, as when the network splits
        assert 2 <= time.monotonic() - started < 12
        third = holder(tmp_path, "echo again")
        assert read_until_held(third)[0] == "again"
        third.communicate(timeout=10)


def test_the_lease_wait_in_bash_reads_no_bashrc(tmp_path: Path) -> None:
    """Debian's bash sources ~/.bashrc under sshd (SSH_CLIENT set, SHLVL unset) even for -c."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text(f"echo ran > {tmp_path / 'bashrc-ran'}\n")
    env = {k: v for k, v in os.environ.items() if k != "SHLVL"} | {"HOME": str(home), "SSH_CLIENT": "10.213.0.1 50000 22"}
    with holding(tmp_path, 2, BASH, env) as first:
        read_until_held(first)
        assert first.stdin is not None
        first.stdin.close()
        assert first.wait(timeout=10) == 0
    assert not (tmp_path / "bashrc-ran").exists()
