"""Numbers drawn from a drill record: requests per time bucket and the gaps clients saw.

Pure functions over the record's requests, shared by the pictures, the report and the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from haops.drill.record import DrillRecord, Request

BUCKET_SECONDS = 0.1

# A time that is a whole number of buckets can land a hair below it in floating point
# (0.3 / 0.1 == 2.9999999999999996); nudging by a billionth of a bucket puts it where a
# person counting by hand would.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Bucket:
    start: float
    end: float
    ok: int
    failed: int

    @property
    def total(self) -> int:
        return self.ok + self.failed


def record_span(record: DrillRecord) -> float:
    """Seconds from 0 to the last thing on the record: the probe's end, a request or an event."""
    times = [record.duration] + [r.t for r in record.requests] + [e.t for e in record.events]
    return max(times)


def bucket_index(t: float, width: float, buckets: int) -> int:
    """The bucket holding time t; times before 0 or after the last bucket go to the edge ones."""
    return min(max(math.floor(t / width + _EPSILON), 0), buckets - 1)


def bucket_counts(requests: Sequence[Request], span: float, width: float = BUCKET_SECONDS) -> list[Bucket]:
    """Ok and failed requests by start time, in buckets of `width` seconds covering 0..span."""
    buckets = max(1, math.ceil(span / width - _EPSILON))
    ok = [0] * buckets
    failed = [0] * buckets
    for request in requests:
        counts = ok if request.ok else failed
        counts[bucket_index(request.t, width, buckets)] += 1
    return [Bucket(i * width, (i + 1) * width, ok[i], failed[i]) for i in range(buckets)]


def failure_runs(requests: Sequence[Request]) -> list[tuple[float, float]]:
    """Each run of failed requests, in start-time order, as (start, end).

    A run starts at its first failed request and ends at the first success after it. A run
    still open when the probe stopped ends when its last failed attempt did.
    """
    runs: list[tuple[float, float]] = []
    run_start: float | None = None
    last_failure_end = 0.0
    for request in sorted(requests, key=lambda r: r.t):
        if request.ok:
            if run_start is not None:
                runs.append((run_start, request.t))
                run_start = None
        else:
            if run_start is None:
                run_start, last_failure_end = request.t, request.t
            last_failure_end = max(last_failure_end, request.t + request.latency)
    if run_start is not None:
        runs.append((run_start, last_failure_end))
    return runs


def longest_gap(requests: Sequence[Request]) -> tuple[float, float] | None:
    """The longest run of failed requests as (start, end), the earliest of equals; None if none failed."""
    runs = failure_runs(requests)
    if not runs:
        return None
    return max(runs, key=lambda run: run[1] - run[0])
