"""`haops db check` and `haops db drill`: the ledger under a steady write load, read back.

check: rows written to the primary, seen appear on every standby (lag), then counted there.
drill: the same load; the primary's postmaster killed with SIGKILL partway; the first failed
write is the detection; the most advanced standby promoted (promote.py fences the old one);
the writer carries on against it. RTO = crash -> first acknowledged write on the new primary.
RPO = acknowledged rows the new primary does not hold. Nothing in a drill is simulated."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from haops.errors import UserError
from haops.inventory.model import Inventory, PostgresCluster
from haops.targets.postgresql import layout
from haops.targets.postgresql.ledger import LEDGER_TABLE, Reader, StandbyReadback, Writer, connect, present, readback
from haops.targets.postgresql.promote import Promotion, Runner, Say, promote
from haops.targets.postgresql.status import ClusterState, read_cluster

CATCH_UP_S = 10.0
DETECT_WAIT_S = 15.0


@dataclass(frozen=True)
class CheckReport:
    primary: str
    run: str
    rows: int
    rate: float
    acknowledged: int
    failed_writes: int
    standbys: tuple[StandbyReadback, ...]
    seconds: float
    not_checked: tuple[str, ...] = ()  # the inventory's standbys that were not running as standbys

    @property
    def ok(self) -> bool:
        return (self.acknowledged == self.rows and not self.not_checked
                and all(not s.missing and not s.error for s in self.standbys))


@dataclass(frozen=True)
class DrillReport:
    old_primary: str
    new_primary: str
    synchronous: bool
    run: str
    acknowledged: int
    acknowledged_before_crash: int
    failed_writes: int
    lost: tuple[int, ...]  # acknowledged rows the new primary does not hold: the RPO
    rto_s: float | None
    detect_s: float | None
    promote_s: float | None  # from the first failed write to the promotion's first committed write
    promotion: Promotion
    lag_before_crash: tuple[StandbyReadback, ...]

    @property
    def rpo_rows(self) -> int:
        return len(self.lost)

    @property
    def ok(self) -> bool:
        return self.rto_s is not None and (self.rpo_rows == 0 or not self.synchronous)


def single_primary(state: ClusterState) -> str:
    if len(state.primaries) != 1:
        raise UserError(f"need exactly one running primary, found {len(state.primaries)}: "
                        + ("; ".join(state.problems) or "none"))
    return state.primaries[0]


def started(*jobs: Callable[[], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    return threads


def wait_caught_up(writer: Writer, readers: list[Reader], seconds: float = CATCH_UP_S) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(set(writer.acked) - set(r.seen) for r in readers):
        time.sleep(0.05)


def stop_all(readers: list[Reader], threads: list[threading.Thread]) -> None:
    for reader in readers:
        reader.stop.set()
    for thread in threads:
        thread.join(timeout=10)


def forget_run(inventory: Inventory, pg: PostgresCluster, host: str, run: str) -> None:
    try:
        with connect(inventory, pg, host) as connection:
            connection.execute(f"DELETE FROM {LEDGER_TABLE} WHERE run = %s", (run,))
    except Exception:
        pass  # the ledger keeps the rows; they name their run and harm nothing


def held_by(inventory: Inventory, pg: PostgresCluster, host: str, run: str) -> tuple[set[int] | None, str]:
    try:
        return present(inventory, pg, host, run), ""
    except Exception as exc:
        return None, f"{type(exc).__name__}: {str(exc).strip()[:160]}"


def check(inventory: Inventory, pg: PostgresCluster, runner: Runner, rows: int, rate: float, say: Say) -> CheckReport:
    state = read_cluster(inventory, pg.hosts, runner, pg.port)
    primary = single_primary(state)
    begun = time.monotonic()
    writer = Writer(inventory, pg, lambda: primary, rows, rate, limit_s=rows / rate + 60)
    readers = [Reader(inventory, pg, s.host, writer.run, limit_s=writer.limit_s + CATCH_UP_S) for s in state.standbys]
    reading = started(*readers)
    say(f"writing {rows} rows at {rate:g}/s to {primary}, reading them back on {len(readers)} standbys")
    for thread in started(writer):
        thread.join(timeout=writer.limit_s + 5)
    writer.stop.set()
    wait_caught_up(writer, readers)
    stop_all(readers, reading)
    results = tuple(readback(writer, r, *held_by(inventory, pg, r.host, writer.run)) for r in readers)
    forget_run(inventory, pg, primary, writer.run)
    streaming = {s.host for s in state.standbys}
    return CheckReport(primary, writer.run, rows, rate, len(writer.acked), len(writer.failures), results,
                       round(time.monotonic() - begun, 2), tuple(h for h in pg.standbys if h not in streaming))


def most_advanced(state: ClusterState) -> str:
    streaming = sorted(state.standbys, key=lambda s: s.wal or 0, reverse=True)
    if not streaming:
        raise UserError("no running standby to promote")
    return streaming[0].host


def first_failure_after(writer: Writer, crashed: float, wait_s: float) -> float | None:
    """When the writer first saw a write fail after the crash (one that failed before it is no
    detection of it), waiting up to `wait_s` for one."""
    give_up_at = time.monotonic() + wait_s
    while True:
        seen = next((at for at, _ in list(writer.failures) if at >= crashed), None)
        if seen is not None or time.monotonic() > give_up_at:
            return seen
        time.sleep(0.01)


def crash_postmaster(host: str, runner: Runner) -> None:
    ran = runner(host)(f'pid=$({layout.postmaster_pid()}); [ -n "$pid" ] && kill -9 "$pid"')
    if ran.code != 0:
        raise UserError(f"could not kill the postmaster on {host}: {(ran.stdout + ran.stderr).strip()[:200]}")


def drill(inventory: Inventory, pg: PostgresCluster, runner: Runner, rows: int, rate: float,
          crash_after: int, say: Say) -> DrillReport:
    state = read_cluster(inventory, pg.hosts, runner, pg.port)
    old = single_primary(state)
    current = [old]
    writer = Writer(inventory, pg, lambda: current[0], rows, rate, limit_s=rows / rate + 60)
    readers = [Reader(inventory, pg, s.host, writer.run, limit_s=writer.limit_s + CATCH_UP_S) for s in state.standbys]
    reading = started(*readers)
    writing = started(writer)
    say(f"writing {rows} rows at {rate:g}/s to {old}; crash after {crash_after} acknowledged")
    deadline = time.monotonic() + crash_after / rate + 30
    while len(writer.acked) < crash_after and time.monotonic() < deadline and writing[0].is_alive():
        time.sleep(0.01)
    lag = tuple(readback(writer, r, None) for r in readers)
    say(f"kill -9 of the postmaster on {old}")
    crashed = time.monotonic()
    crash_postmaster(old, runner)
    before_crash = len(writer.acked)
    detected = first_failure_after(writer, crashed, DETECT_WAIT_S)
    after = read_cluster(inventory, pg.hosts, runner, pg.port)
    chosen = most_advanced(after)
    promotion = promote(inventory, pg, chosen, runner, say, state=after, started=crashed)
    current[0] = chosen
    writing[0].join(timeout=writer.limit_s + 5)
    writer.stop.set()
    stop_all(readers, reading)
    held, error = held_by(inventory, pg, chosen, writer.run)
    if held is None:
        raise UserError(f"could not read the ledger back on the new primary {chosen}: {error}")
    on_new = [t for t, host in writer.acked.values() if host == chosen and t > crashed]
    rto = min(on_new) - crashed if on_new else None
    lost = tuple(sorted(set(writer.acked) - held))
    forget_run(inventory, pg, chosen, writer.run)
    failed_after_crash = sum(1 for at, _ in writer.failures if at >= crashed)
    return DrillReport(old, chosen, pg.synchronous, writer.run, len(writer.acked), before_crash, failed_after_crash,
                       lost, None if rto is None else round(rto, 3),
                       None if detected is None else round(detected - crashed, 3),
                       None if promotion.writable is None or detected is None else round(promotion.writable - detected, 3),
                       promotion, lag)
