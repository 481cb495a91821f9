"""A reload is proven only once the workers of the generation before it stop listening: an old
worker that still holds the listener may take a new connection under the old configuration.
Run for real with ss against a real socket on loopback."""

from __future__ import annotations

import subprocess
import time

import pytest

from haops.targets.daemon import Daemon
from tests.apply.listeners import holder

pytestmark = pytest.mark.unit

DAEMON = Daemon("probe", None, "no-such-process", "/nonexistent.pid", "true", "true")


def let_go(generation: str, port: int) -> bool:
    return subprocess.run(["sh", "-c", DAEMON.old_workers_let_go(generation, port, "127.0.0.1")], timeout=10).returncode == 0


def test_an_old_worker_still_listening_is_not_let_go() -> None:
    for process, port in holder(60.0):
        assert not let_go(f"4000000 {process.pid}", port)


def test_once_the_old_worker_closes_its_listener_it_has_let_go() -> None:
    for process, port in holder(0.5):
        assert not let_go(str(process.pid), port)
        deadline = time.monotonic() + 5
        while not let_go(str(process.pid), port):
            assert time.monotonic() < deadline, "the closed listener is still seen"
            time.sleep(0.1)


def test_a_listener_of_another_process_is_not_an_old_worker() -> None:
    for process, port in holder(60.0):
        assert let_go(str(process.pid + 100000), port)


def test_a_generation_without_workers_has_nothing_to_let_go() -> None:
    assert DAEMON.old_workers_let_go("", 80) == "true"
