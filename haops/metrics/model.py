"""What the metrics are computed from: stretches of observation on one clock, and the incidents in them."""

from __future__ import annotations

from dataclasses import dataclass

EPOCH = "epoch"  # seconds since 1970-01-01T00:00:00Z: incident logs
PROBE = "probe"  # seconds since the probe started: drill records


@dataclass(frozen=True)
class Incident:
    """One failure: the service was down from start to end."""

    start: float
    end: float
    service: str = ""
    where: str = ""  # the log's file:line, or the drill record it was derived from
    clipped: bool = False  # cut by the window's edge: began before it, or still down at its end

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Segment:
    """One service watched from start to end on one clock, with every incident inside that window.

    Incidents are sorted by start, do not overlap, and lie within [start, end]."""

    service: str
    start: float
    end: float
    clock: str
    source: str
    incidents: tuple[Incident, ...] = ()
    requests_sent: int | None = None  # probe requests, for drill records only
    requests_ok: int | None = None
    resolution: float | None = None  # seconds an incident's edge may be off by: 1/rate for drill records

    @property
    def length(self) -> float:
        return self.end - self.start
