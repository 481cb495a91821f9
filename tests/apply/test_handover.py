"""The wait before a daemon takes a listener another process on the host is giving up, run for
real with ss against real sockets on loopback: it waits while another daemon holds the port, ends
as soon as the port is free, and waits neither for the daemon's own listener nor for a stranger."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haops.apply.execute import HANDOVER_WAIT_S, handover_wait
from haops.targets.daemon import Daemon
from tests.apply.listeners import holder

pytestmark = pytest.mark.unit


@pytest.fixture
def released_after_1s() -> Iterator[tuple[subprocess.Popen[str], int]]:
    yield from holder(1.0)


@pytest.fixture
def held() -> Iterator[tuple[subprocess.Popen[str], int]]:
    yield from holder(60.0)


def daemon_with_master(tmp_path: Path, pid: int) -> Daemon:
    pidfile = tmp_path / "daemon.pid"
    pidfile.write_text(f"{pid}\n")
    return Daemon("probe", None, "no-such-process", str(pidfile), "true", "true")


def program(process: subprocess.Popen[str]) -> str:
    """The holder's process name as ss shows it: a daemon haops runs, for the wait under test."""
    return Path(f"/proc/{process.pid}/comm").read_text().strip()


def seconds_to_run(script: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(["sh", "-c", "\n".join(script)], check=True, timeout=HANDOVER_WAIT_S + 5)
    return time.monotonic() - start


def test_waits_while_another_process_lets_go_of_the_port(tmp_path: Path,
                                                         released_after_1s: tuple[subprocess.Popen[str], int]) -> None:
    process, port = released_after_1s
    waited = seconds_to_run(handover_wait(daemon_with_master(tmp_path, 1), [("127.0.0.1", port)], [program(process)]))
    assert 0.8 <= waited < HANDOVER_WAIT_S, waited


def test_a_wildcard_listener_on_the_port_is_in_the_way_of_one_address_too(tmp_path: Path) -> None:
    for process, port in holder(1.0, "0.0.0.0"):
        waited = seconds_to_run(handover_wait(daemon_with_master(tmp_path, 1), [("127.0.0.1", port)], [program(process)]))
        assert 0.8 <= waited < HANDOVER_WAIT_S, waited


def test_does_not_wait_for_a_port_the_daemon_holds_itself(tmp_path: Path,
                                                          held: tuple[subprocess.Popen[str], int]) -> None:
    process, port = held
    waited = seconds_to_run(handover_wait(daemon_with_master(tmp_path, process.pid), [("127.0.0.1", port)],
                                          [program(process)]))
    assert waited < 1.0, waited


def test_does_not_wait_for_a_stranger_on_the_port(tmp_path: Path, held: tuple[subprocess.Popen[str], int]) -> None:
    _, port = held
    waited = seconds_to_run(handover_wait(daemon_with_master(tmp_path, 1), [("127.0.0.1", port)], ["nginx", "apache2"]))
    assert waited < 1.0, waited


def test_gives_up_after_the_bound_when_the_port_stays_taken(tmp_path: Path,
                                                            held: tuple[subprocess.Popen[str], int]) -> None:
    process, port = held
    waited = seconds_to_run(handover_wait(daemon_with_master(tmp_path, 1), [("127.0.0.1", port)], [program(process)]))
    assert HANDOVER_WAIT_S <= waited < HANDOVER_WAIT_S + 3, waited


def test_a_daemon_without_listeners_waits_for_nothing(tmp_path: Path) -> None:
    assert handover_wait(daemon_with_master(tmp_path, 1), [], ["nginx"]) == []
