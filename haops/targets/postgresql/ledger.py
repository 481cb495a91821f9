"""A ledger of acknowledged writes: numbered rows committed on the primary at a steady rate,
each recorded only once its COMMIT returned, and readers that see them appear on each standby.

The writer and readers run on this machine and connect to the hosts' addresses as the replication
role (pg_hba admits it to database postgres from the inventory's `clients`). One clock
(time.monotonic here) stamps the acknowledgement and the sighting, so the lag of a row on a standby
is the time from its COMMIT returning to a reader seeing it there; readers poll every 5 ms, so a
lag is at most that much late. Every loop is bounded in rows and time."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from haops.inventory.model import Inventory, PostgresCluster
from haops.targets.postgresql.layout import LEDGER_TABLE

POLL_S = 0.005
CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_MS = 5000


def connect(inventory: Inventory, pg: PostgresCluster, host: str) -> Any:
    import psycopg

    return psycopg.connect(host=str(inventory.hosts[host].address), port=pg.port, user=pg.replication_role,
                           password=pg.replication_password, dbname="postgres", autocommit=True,
                           connect_timeout=CONNECT_TIMEOUT_S, application_name="haops-ledger",
                           options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]  # nearest rank


@dataclass
class Writer:
    """Writes numbered rows at `rate` per second to whichever host `target()` names now, until `rows` are acknowledged."""

    inventory: Inventory
    pg: PostgresCluster
    target: Callable[[], str]
    rows: int
    rate: float
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    acked: dict[int, tuple[float, str]] = field(default_factory=dict)  # n -> (ack time, host)
    failures: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    limit_s: float = 300.0

    def __call__(self) -> None:
        """Until `rows` are acknowledged (or the time limit): one attempt per tick, each with the next
        number; a failed attempt is not acknowledged, and a late writer never bursts to catch up."""
        connection, host, n = None, "", 0
        started = due = time.monotonic()
        while len(self.acked) < self.rows and time.monotonic() - started < self.limit_s:
            if self.stop.wait(max(0.0, due - time.monotonic())):
                break
            due = max(due + 1 / self.rate, time.monotonic())
            n += 1
            try:
                if connection is None or host != self.target():
                    if connection is not None:
                        connection.close()
                    host = self.target()
                    connection = connect(self.inventory, self.pg, host)
                connection.execute(f"INSERT INTO {LEDGER_TABLE} (run, n) VALUES (%s, %s)", (self.run, n))
                self.acked[n] = (time.monotonic(), host)
            except Exception as exc:  # any failure means: not acknowledged
                self.failures.append((time.monotonic(), f"{host}: {type(exc).__name__}: {str(exc).strip()[:120]}"))
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()


@dataclass
class Reader:
    """Sees the writer's rows appear on one standby: the first time each row number is visible."""

    inventory: Inventory
    pg: PostgresCluster
    host: str
    run: str
    seen: dict[int, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    limit_s: float = 300.0

    def __call__(self) -> None:
        started, highest, connection = time.monotonic(), 0, None
        while not self.stop.is_set() and time.monotonic() - started < self.limit_s:
            try:
                if connection is None:
                    connection = connect(self.inventory, self.pg, self.host)
                rows = connection.execute(f"SELECT n FROM {LEDGER_TABLE} WHERE run = %s AND n > %s",
                                          (self.run, highest)).fetchall()
                now = time.monotonic()
                for (n,) in rows:
                    self.seen.setdefault(n, now)
                    highest = max(highest, n)
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {str(exc).strip()[:120]}")
                connection = None
                time.sleep(0.1)
            time.sleep(POLL_S)
        if connection is not None:
            connection.close()


def present(inventory: Inventory, pg: PostgresCluster, host: str, run: str) -> set[int]:
    """Every row number of the run the host holds now."""
    with connect(inventory, pg, host) as connection:
        return {n for (n,) in connection.execute(f"SELECT n FROM {LEDGER_TABLE} WHERE run = %s", (run,)).fetchall()}


@dataclass(frozen=True)
class StandbyReadback:
    host: str
    acknowledged: int
    present: int
    missing: tuple[int, ...]
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    lag_max_ms: float | None
    error: str = ""


def readback(writer: Writer, reader: Reader, held: set[int] | None, error: str = "") -> StandbyReadback:
    acked = set(writer.acked)
    lags = [(reader.seen[n] - writer.acked[n][0]) * 1000 for n in acked if n in reader.seen]
    lags = [max(0.0, lag) for lag in lags]
    missing = tuple(sorted(acked - (held or set()))) if held is not None else ()

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return StandbyReadback(reader.host, len(acked), len(acked & held) if held is not None else 0, missing,
                           ms(percentile(lags, 0.5)), ms(percentile(lags, 0.99)), ms(max(lags) if lags else None), error)
