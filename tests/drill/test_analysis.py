"""Buckets and gaps against counts worked out by hand."""

from __future__ import annotations

import pytest

from haops.drill.analysis import Bucket, bucket_counts, failure_runs, longest_gap, record_span
from haops.drill.record import OK, REFUSED, Event, Request
from tests.drill.builders import DURATION, lb_failure_record, request_at, steady_requests

pytestmark = pytest.mark.unit


def test_steady_load_fills_each_100ms_bucket_with_20_and_the_window_with_failures() -> None:
    buckets = bucket_counts(steady_requests(), DURATION)
    # 10 s / 0.1 s = 100 buckets of 20 requests; [4.0, 4.8) is buckets 40..47.
    assert len(buckets) == 100
    assert [(b.ok, b.failed) for b in buckets[:40]] == [(20, 0)] * 40
    assert [(b.ok, b.failed) for b in buckets[40:48]] == [(0, 20)] * 8
    assert [(b.ok, b.failed) for b in buckets[48:]] == [(20, 0)] * 52
    assert buckets[40].start == pytest.approx(4.0) and buckets[40].end == pytest.approx(4.1)


def test_a_request_exactly_on_a_bucket_boundary_counts_in_the_bucket_it_opens() -> None:
    # 0.3 / 0.1 is 2.9999999999999996 in floating point; by hand 0.3 opens bucket 3.
    requests = [Request(0.0, OK, 0.01), Request(0.05, OK, 0.01), Request(0.1, OK, 0.01),
                Request(0.3, OK, 0.01), Request(0.35, REFUSED, 0.001), Request(0.99, OK, 0.01)]
    buckets = bucket_counts(requests, 1.0)
    assert [(b.ok, b.failed) for b in buckets] == [
        (2, 0), (1, 0), (0, 0), (1, 1), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (1, 0)]


def test_requests_past_the_span_land_in_the_last_bucket() -> None:
    last = bucket_counts([Request(1.0, OK, 0.01), Request(1.3, REFUSED, 0.0)], 1.0)[-1]
    assert (last.start, last.ok, last.failed) == (pytest.approx(0.9), 1, 1)


def test_no_requests_give_empty_buckets() -> None:
    assert [b.total for b in bucket_counts([], 0.5)] == [0] * 5
    assert bucket_counts([], 0.0) == [Bucket(0.0, 0.1, 0, 0)]


def test_longest_gap_runs_from_the_first_failure_to_the_next_success() -> None:
    # The last failed request starts at 4.795 s, the next one (4.8 s) succeeds.
    assert longest_gap(steady_requests()) == (4.0, 4.8)


def test_longest_gap_picks_the_longer_of_two_runs_in_either_order() -> None:
    short_early = [request_at(t, 1.0 <= t < 1.2 or 3.0 <= t < 3.5) for t in (i / 10 for i in range(60))]
    assert failure_runs(short_early) == [(1.0, 1.2), (3.0, 3.5)]
    assert longest_gap(short_early) == (3.0, 3.5)
    long_early = [request_at(t, 1.0 <= t < 1.5 or 3.0 <= t < 3.2) for t in (i / 10 for i in range(60))]
    assert longest_gap(long_early) == (1.0, 1.5)


def test_requests_out_of_order_are_read_by_start_time() -> None:
    shuffled = list(reversed(steady_requests()))
    assert longest_gap(shuffled) == (4.0, 4.8)


def test_a_run_still_open_at_the_end_closes_when_its_last_attempt_did() -> None:
    requests = [Request(0.0, OK, 0.01), Request(0.5, REFUSED, 0.001), Request(1.0, "timeout", 0.25)]
    assert longest_gap(requests) == (0.5, 1.25)


def test_failures_from_the_first_request_start_the_gap_at_that_request() -> None:
    requests = [Request(0.2, REFUSED, 0.001), Request(0.4, REFUSED, 0.001), Request(0.6, OK, 0.01)]
    assert longest_gap(requests) == (0.2, 0.6)


def test_no_failures_no_gap() -> None:
    assert longest_gap(steady_requests(fail_from=99, fail_until=99)) is None
    assert longest_gap([]) is None


def test_span_reaches_the_last_request_or_event_past_the_probe() -> None:
    record = lb_failure_record()
    assert record_span(record) == DURATION
    record.events.append(Event(12.5, "failback", "lb1"))
    assert record_span(record) == 12.5
