"""Continuous sync: a pass on an interval (--every), or after changes on the source
(--watch: inotifywait from inotify-tools on the source host), debounced and bounded.

The first pass runs at once, so a destination is in step from the start, not after the first
change. In watch mode a change made while a pass runs is not lost: inotifywait keeps running
on its own channel and its events queue up for the next pass. Every loop ends by itself after
--count passes or --for seconds when they are given.
"""

from __future__ import annotations

import math
import queue
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from haops.replication.fanout import PassReport, SyncContext, sync_pass

RunPass = Callable[[SyncContext], PassReport]
from haops.transport import HostFailure, Ran, run, stream

WATCHED_EVENTS = "close_write,create,delete,moved_to,moved_from,attrib"
EVENT_LINE = re.compile(r"^[A-Z_]+(,[A-Z_]+)* /")  # --format '%e %w%f': the events, then the path
WATCHES_WAIT_S = 120  # inotifywait -r sets a watch on every directory before it is ready


@dataclass(frozen=True)
class Schedule:
    every_s: float | None = None
    watch: bool = False
    count: int | None = None
    for_s: float | None = None
    debounce_s: float = 1.0
    max_wait_s: float = 10.0

    def ended(self, passes: int, started: float) -> bool:
        return (self.count is not None and passes >= self.count) or \
            (self.for_s is not None and time.monotonic() - started >= self.for_s)

    def time_left(self, started: float) -> float:
        return float("inf") if self.for_s is None else self.for_s - (time.monotonic() - started)


def run_continuous(ctx: SyncContext, schedule: Schedule, on_pass: Callable[[PassReport], None],
                   run_pass: RunPass = sync_pass) -> list[PassReport]:
    """Passes until the schedule ends; `run_pass` runs one (the CLI wraps it in progress bars)."""
    def each(reports: list[PassReport]) -> None:
        one_pass(ctx, on_pass, reports, run_pass)

    if schedule.watch:
        return watched(ctx, schedule, each)
    return every(ctx, schedule, each)


def one_pass(ctx: SyncContext, on_pass: Callable[[PassReport], None], reports: list[PassReport],
             run_pass: RunPass) -> None:
    for dest in ctx.request.destinations:
        if ctx.connections.unreachable(dest):
            ctx.connections.drop(dest)  # a host cut off in an earlier pass is tried again
    report = run_pass(ctx)
    reports.append(report)
    on_pass(report)


def every(ctx: SyncContext, schedule: Schedule, each: Callable[[list[PassReport]], None]) -> list[PassReport]:
    assert schedule.every_s is not None
    reports: list[PassReport] = []
    started = time.monotonic()
    while True:
        each(reports)
        if schedule.ended(len(reports), started):
            return reports
        # the next slot not yet begun: after a slow pass the missed slots are skipped, not caught up
        slot = max(len(reports), math.ceil((time.monotonic() - started) / schedule.every_s))
        next_at = started + slot * schedule.every_s
        wait = min(next_at - time.monotonic(), schedule.time_left(started))
        if wait > 0:
            time.sleep(wait)
        if schedule.ended(len(reports), started):
            return reports


class Watcher:
    """inotifywait -m on the source host, its events queued as they arrive."""

    def __init__(self, ctx: SyncContext, bound_s: float | None) -> None:
        self.ctx, self.events = ctx, queue.Queue[str]()
        self.pid: str | None = None
        self.ended: Ran | HostFailure | None = None
        bound = f"timeout {int(bound_s) + 30} " if bound_s is not None else ""
        self.script = ("command -v inotifywait >/dev/null || { echo 'inotifywait (inotify-tools) is not installed "
                       "on the source' >&2; exit 127; }\n"
                       f"echo \"pid $$\"\nexec {bound}inotifywait -m -r -e {WATCHED_EVENTS} --format '%e %w%f' "
                       f"-- {shlex.quote(ctx.request.source_path)} 2>&1")
        self.said: list[str] = []  # what inotifywait said that was no event: its errors
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.follow, daemon=True, name="haops-sync-watch")

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(WATCHES_WAIT_S):
            raise HostFailure(f"inotifywait did not start on {self.ctx.request.source}")
        if self.pid is None:
            raise HostFailure(f"inotifywait on {self.ctx.request.source}: {self.failure()}")

    def follow(self) -> None:
        source = self.ctx.connections.get(self.ctx.request.source)
        try:
            self.ended = stream(source, self.script, self.take, timeout_s=10 * 365 * 86400)
        except HostFailure as exc:
            self.ended = exc
        self.ready.set()

    def take(self, line: str) -> None:
        """inotifywait's lines: its events, and (on stderr, joined here) its own words. The
        first pass waits for "Watches established.": a change before it would go unseen."""
        if line.startswith("pid ") and self.pid is None:
            self.pid = line.split()[1]
        elif line.strip() == "Watches established.":
            self.ready.set()
        elif EVENT_LINE.match(line):
            self.events.put(line)
        elif not line.startswith("Setting up watches"):
            self.said.append(line.strip())

    def failure(self) -> str:
        if isinstance(self.ended, Ran):
            return f"exit {self.ended.code}: {(' '.join(self.said) + ' ' + self.ended.stderr).strip()[-300:]}"
        return str(self.ended or "stopped")

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        if self.pid is not None and self.pid.isdigit() and self.alive():
            run(self.ctx.connections.get(self.ctx.request.source), f"kill {self.pid} 2>/dev/null || true")
        self.thread.join(10)

    def wait_for_change(self, timeout_s: float, debounce_s: float, max_wait_s: float) -> list[str]:
        return burst_of_changes(self.events, timeout_s, debounce_s, max_wait_s)


def burst_of_changes(events: queue.Queue[str], timeout_s: float, debounce_s: float, max_wait_s: float) -> list[str]:
    """The events of one burst of changes: after the first (waited for up to `timeout_s`), until
    `debounce_s` pass with no new one, or `max_wait_s` after the first, so a tree that never
    stops changing still gets its passes."""
    try:
        burst = [events.get(timeout=max(0.0, timeout_s))]
    except queue.Empty:
        return []
    until = time.monotonic() + max_wait_s
    while (left := until - time.monotonic()) > 0:
        try:
            burst.append(events.get(timeout=min(debounce_s, left)))
        except queue.Empty:
            break
    return burst


def watched(ctx: SyncContext, schedule: Schedule, each: Callable[[list[PassReport]], None]) -> list[PassReport]:
    reports: list[PassReport] = []
    started = time.monotonic()
    watcher = Watcher(ctx, schedule.for_s)
    watcher.start()
    try:
        each(reports)
        while not schedule.ended(len(reports), started):
            if not watcher.alive():
                raise HostFailure(f"inotifywait on {ctx.request.source} stopped: {watcher.failure()}")
            burst = watcher.wait_for_change(min(1.0, schedule.time_left(started)), schedule.debounce_s,
                                            schedule.max_wait_s)
            if burst:
                each(reports)
    finally:
        watcher.stop()
    return reports
