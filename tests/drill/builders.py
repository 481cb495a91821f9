"""Drill records made by hand for the tests, with failures and events where the test says."""

from __future__ import annotations

from haops.drill.record import (
    FAILBACK, FAULT, FIRST_OK, GARP, OK, RESTORE, TIMEOUT, VIP_ADDED, DrillRecord, Event, Request,
)

RATE = 200  # requests per second
DURATION = 10.0
FAIL_FROM, FAIL_UNTIL = 4.0, 4.8  # requests starting in [4.0, 4.8) time out
TIMEOUT_SECONDS = 1.0
OK_LATENCY = 0.002

EVENTS = [
    Event(4.0, FAULT, "lb1", "kill -9 keepalived"),
    Event(4.75, VIP_ADDED, "lb2", "10.213.0.100/24 on eth0"),
    Event(4.76, GARP, "lb2"),
    Event(4.8, FIRST_OK, "client"),
    Event(7.0, RESTORE, "lb1"),
    Event(7.5, FAILBACK, "lb1"),
]


def request_at(t: float, failed: bool) -> Request:
    if failed:
        return Request(t, TIMEOUT, TIMEOUT_SECONDS)
    return Request(t, OK, OK_LATENCY, backend="web1", status=200)


def steady_requests(fail_from: float = FAIL_FROM, fail_until: float = FAIL_UNTIL) -> list[Request]:
    """200 req/s for 10 s: request i starts at i/200 s and fails if it starts in [fail_from, fail_until)."""
    times = [i / RATE for i in range(int(RATE * DURATION))]
    return [request_at(t, fail_from <= t < fail_until) for t in times]


def lb_failure_record(requests: list[Request] | None = None, events: list[Event] | None = None) -> DrillRecord:
    return DrillRecord(
        drill="lb-failure", service="web", target="http://10.213.0.100:80/", rate=RATE, duration=DURATION,
        requests=steady_requests() if requests is None else requests,
        events=list(EVENTS) if events is None else events,
    )


def empty_record() -> DrillRecord:
    return DrillRecord(drill="lb-failure", service="web", target="http://10.213.0.100:80/", rate=RATE, duration=0.0)


def crowded_record() -> DrillRecord:
    """Six events inside 60 ms, one near each edge: their labels must stagger, not pile up."""
    close = [Event(3.93 + i * 0.01, kind, "lb2") for i, kind in enumerate(
        ["detect", "vrrp_advert", "vip_added", "garp", "neigh", "first_ok"])]
    edges = [Event(0.0, "note", "", "probe started"), Event(9.97, "note", "", "probe stopping, end of the drill")]
    return lb_failure_record(events=[Event(3.0, FAULT, "lb1"), *close, *edges])
