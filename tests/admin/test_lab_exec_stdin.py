"""`haops lab exec HOST -- CMD` forwards standard input as ssh does."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.apply.conftest import ROOT, Cluster

from .conftest import ADMIN_LAB

pytestmark = pytest.mark.lab


def lab_exec(*command: str, stdin: object) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-m", "haops", "lab", "exec", "--name", ADMIN_LAB, *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, stdin=stdin, capture_output=True, timeout=60, env=env, check=False)  # type: ignore[call-overload]


def test_exec_writes_the_bytes_of_stdin(admin_bare: Cluster, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096 + b"no newline at the end"
    local = tmp_path / "local.cfg"
    local.write_bytes(payload)
    with local.open("rb") as stdin:
        done = lab_exec("lb1", "--", "sh", "-c", "cat > /tmp/from-stdin", stdin=stdin)
    assert done.returncode == 0, done.stderr
    remote = admin_bare.sh("lb1", "sha256sum < /tmp/from-stdin; stat -c %s /tmp/from-stdin").split()
    assert remote == [hashlib.sha256(payload).hexdigest(), "-", str(len(payload))]


def test_exec_without_a_redirect_does_not_wait_for_stdin(admin_bare: Cluster) -> None:
    """stdin left open (a terminal nobody types into): a command that never reads it ends as ssh's would."""
    proc = subprocess.Popen([sys.executable, "-m", "haops", "lab", "exec", "--name", ADMIN_LAB, "lb1", "--", "hostname"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.wait(timeout=30) == 0  # its output is a few bytes: the pipe cannot fill
        assert proc.stdout is not None
        stdout = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stdin is not None
        proc.stdin.close()
    assert stdout == b"lb1\n"


def test_exit_code_and_empty_stdin(admin_bare: Cluster) -> None:
    done = lab_exec("lb1", "--", "sh", "-c", "wc -c; exit 3", stdin=subprocess.DEVNULL)
    assert done.returncode == 3
    assert done.stdout.strip() == b"0"
