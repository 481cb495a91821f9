"""Processes the lab started, recorded by PID and start time so a reused PID is never killed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start_time: int  # clock ticks after boot: /proc/PID/stat field 22

    def is_alive(self) -> bool:
        stat = read_stat(self.pid)
        return stat is not None and stat[0] != "Z" and stat[1] == self.start_time

    def kill(self) -> None:
        if self.is_alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def namespace(self, kind: str) -> str | None:
        """e.g. namespace("pid") -> 'pid:[4026532712]', None once the process is gone."""
        try:
            return os.readlink(f"/proc/{self.pid}/ns/{kind}") if self.is_alive() else None
        except OSError:
            return None


def read_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of `pid`, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def record(pid: int) -> ProcessRecord | None:
    stat = read_stat(pid)
    return ProcessRecord(pid, stat[1]) if stat else None


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def save(path: Path, process: ProcessRecord) -> None:
    path.write_text(f"{process.pid} {process.start_time}\n", encoding="utf-8")


def load(path: Path) -> ProcessRecord | None:
    try:
        pid, start_time = path.read_text(encoding="utf-8").split()
    except (FileNotFoundError, ValueError):
        return None
    return ProcessRecord(int(pid), int(start_time))


def wait_until_dead(processes: Iterable[ProcessRecord], timeout: float = 10) -> bool:
    pending = list(processes)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if p.is_alive()]
        if pending:
            time.sleep(0.005)
    return not pending


def reap_if_child(pid: int, timeout: float = 2) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.005)
