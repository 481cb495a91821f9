"""A daemon's generation (its master's children) read on a real process tree, by both ways the
host may offer: the kernel's children lists and pidof's PIDs filtered by parent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haops.targets.daemon import CHILDREN_BY_NAME, CHILDREN_LISTED, WORKERS

# A master with two `sleep` workers, one of which has a child of its own (not a worker), and a
# `sleep` that is not its child at all.
MASTER = "sleep 60 & sh -c 'sleep 60 & wait' & wait"


def children_of(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


@pytest.fixture
def tree() -> Iterator[tuple[int, set[int]]]:
    """The master's PID and its two children, once the grandchild runs too."""
    master = subprocess.Popen(["sh", "-c", MASTER], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while True:
            children = children_of(master.pid)
            if len(children) == 2 and all(children_of(p) for p in children if comm(p) == "sh"):
                break
            assert time.monotonic() < deadline, f"the tree did not form: {children}"
            time.sleep(0.01)
        yield master.pid, children
    finally:
        os.killpg(master.pid, signal.SIGKILL)  # the master's session: it, its children and theirs
        for process in (master, stranger):
            process.kill()
            process.wait()


def pids(script: str) -> set[int]:
    return {int(p) for p in subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.split()}


def workers(master: int, way: str) -> set[int]:
    return pids(f"m={master}; g=; {way.format(process='sleep')}; echo $g")


def test_the_kernels_lists_name_every_child_of_the_master_and_nothing_else(tree: tuple[int, set[int]]) -> None:
    master, children = tree
    assert len(children) == 2
    assert workers(master, CHILDREN_LISTED) == children


def test_pidof_finds_the_children_of_that_name(tree: tuple[int, set[int]]) -> None:
    master, children = tree
    sleeping = {p for p in children if comm(p) == "sleep"}
    assert len(sleeping) == 1
    assert workers(master, CHILDREN_BY_NAME) == sleeping


def test_the_generation_uses_the_kernels_lists_where_they_exist(tree: tuple[int, set[int]]) -> None:
    master, children = tree
    assert pids(f"m={master}; " + WORKERS.format(process="sleep")) == children


def test_no_master_no_generation() -> None:
    assert pids("m=; " + WORKERS.format(process="sleep")) == set()
