"""The explanation of a drill record: bounds, holder windows, phases and verdicts, on hand-made records."""

from __future__ import annotations

import pytest

from haops.drill import record
from haops.drill.findings import explain, holder_windows
from haops.drill.record import DrillRecord, Event, Request
from haops.drill.run import collapse_bursts, first_ok_events

pytestmark = pytest.mark.unit
RATE = 100


def steady(seconds: float, failing: tuple[float, float] | None = None, outcome: str = record.TIMEOUT) -> list[Request]:
    requests = []
    for i in range(int(seconds * RATE)):
        t = i / RATE
        fails = failing is not None and failing[0] <= t < failing[1]
        requests.append(Request(t, outcome if fails else record.OK, 2.0 if fails else 0.002, "" if fails else "web1"))
    return requests


def crash_record(vip_on_lb2_at: float, failing: tuple[float, float] | None, events: list[Event] | None = None,
                 drill: str = "lb-failure", nopreempt: bool = False) -> DrillRecord:
    base = [Event(-0.5, record.VIP_ADDED, "lb1"), Event(2.0, record.FAULT, "lb1"), Event(2.0, record.VIP_REMOVED, "lb1"),
            Event(vip_on_lb2_at, record.VIP_ADDED, "lb2"), Event(7.0, record.RESTORE, "lb1")]
    settings = {"victim": "lb1", "advert_int": 1.0, "priorities": {"lb1": 150, "lb2": 100}, "nopreempt": nopreempt}
    return DrillRecord(drill, "www", "http://10.213.0.100:80/", RATE, 10.0, steady(10.0, failing),
                       sorted(base + (events or []), key=lambda e: e.t), settings)


def test_crash_bound_is_three_adverts_plus_skew_and_takeover_is_measured_from_the_fault() -> None:
    found = explain(crash_record(5.3, (2.0, 5.3)))
    # skew = (256 - 100) / 256 x 1 s = 0.609375 s; bound = 3 x 1 s + skew
    assert found.bound_s == pytest.approx(3.609375)
    assert found.measured_s == pytest.approx(3.3)
    assert found.takeover == pytest.approx(5.3)
    assert found.no_holder and found.no_holder[0].start == pytest.approx(2.0) and found.no_holder[0].end == pytest.approx(5.3)
    assert found.failed == 330  # requests starting in [2.0, 5.3) at 100/s


def test_a_takeover_slower_than_the_bound_names_the_slowest_step() -> None:
    events = [Event(6.4, record.NEIGH, "client1", "moved"), Event(6.5, record.FIRST_OK, "web1")]
    found = explain(crash_record(6.3, (2.0, 6.5), events))
    assert found.measured_s == pytest.approx(4.3)
    failed = [text for ok, text in found.verdicts if not ok]
    # fault 2.0 -> detected (VIP removed, 2.0) -> VIP on lb2 (6.3) -> ARP (6.4) -> first ok (6.5): 4.3 s is the VIP step
    assert any("slowest step: VIP added on the new holder took 4.30s" in text for text in failed), failed


def test_preempt_without_failback_is_a_failure_and_nopreempt_with_one_is_too() -> None:
    no_failback = explain(crash_record(5.3, None))
    assert any("preempt was asked for, but the VIP never went back" in t for ok, t in no_failback.verdicts if not ok)
    failback = [Event(9.0, record.VIP_ADDED, "lb1"), Event(9.0005, record.VIP_REMOVED, "lb2")]
    moved_back = explain(crash_record(5.3, None, failback, nopreempt=True))
    assert moved_back.failback == pytest.approx(9.0)
    assert any("nopreempt was asked for" in t for ok, t in moved_back.verdicts if not ok)
    kept = explain(crash_record(5.3, None, nopreempt=True))
    assert any(ok and "stayed on the new master" in t for ok, t in kept.verdicts)


def test_two_holders_longer_than_an_advert_is_split_brain_and_a_hand_over_is_not() -> None:
    hand_over = [Event(9.0, record.VIP_ADDED, "lb1"), Event(9.0004, record.VIP_REMOVED, "lb2")]
    assert not [t for ok, t in explain(crash_record(5.3, None, hand_over)).verdicts if "split brain" in t]
    split = [Event(9.0, record.VIP_ADDED, "lb1"), Event(9.0 + 1.5, record.VIP_REMOVED, "lb2")]
    texts = [t for ok, t in explain(crash_record(5.3, None, split)).verdicts if not ok]
    assert any("split brain: lb1 and lb2 both held the VIP for 1.50s" in t for t in texts), texts


def test_holder_windows_count_no_holder_and_crowds_between_changes() -> None:
    events = [Event(0.0, record.VIP_ADDED, "a"), Event(1.0, record.VIP_REMOVED, "a"), Event(1.5, record.VIP_ADDED, "b"),
              Event(2.0, record.VIP_ADDED, "a"), Event(2.25, record.VIP_REMOVED, "b")]
    empty, crowded = holder_windows(events, end=3.0)
    assert [(w.start, w.end, w.holders) for w in empty] == [(1.0, 1.5, ())]
    assert [(w.start, w.end, w.holders) for w in crowded] == [(2.0, 2.25, ("a", "b"))]


def test_failed_requests_fail_zero_failure_drills_only() -> None:
    backend = DrillRecord("backend-failure", "www", "t", RATE, 10.0, steady(10.0, (3.0, 3.05)),
                          [Event(2.9, record.FAULT, "web1"), Event(3.6, record.DETECT, "lb1", "health check: web1 DOWN")],
                          {"victim": "web1", "health_inter": 0.5, "health_fall": 2})
    found = explain(backend)
    assert not found.passed
    assert found.bound_s == pytest.approx(1.5) and found.measured_s == pytest.approx(0.7)
    crash = explain(crash_record(5.3, (2.0, 5.3), [Event(9.0, record.VIP_ADDED, "lb1"), Event(9.0, record.VIP_REMOVED, "lb2")]))
    assert crash.failed and crash.passed, crash.verdicts


def test_a_dead_balancer_whose_vip_stays_is_explained() -> None:
    stuck = DrillRecord("balancer-failure", "www", "t", RATE, 10.0, steady(10.0, (2.0, 7.0), record.REFUSED),
                        [Event(-0.5, record.VIP_ADDED, "lb1"), Event(2.0, record.FAULT, "lb1"), Event(7.0, record.RESTORE, "lb1")],
                        {"victim": "lb1", "advert_int": 1.0, "priorities": {"lb1": 150, "lb2": 100}, "nopreempt": False})
    texts = [t for ok, t in explain(stuck).verdicts if not ok]
    assert any("the VIP stayed on lb1 while its balancer was dead" in t for t in texts), texts


def test_gratuitous_arp_bursts_collapse_and_first_ok_marks_only_real_gaps() -> None:
    burst = [Event(1.0 + i * 0.001, record.GARP, "", "10.0.0.1 is-at aa") for i in range(5)] + [Event(6.0, record.GARP, "", "10.0.0.1 is-at aa")]
    collapsed = collapse_bursts(burst)
    assert [(e.t, e.detail) for e in collapsed] == [(1.0, "10.0.0.1 is-at aa x5"), (6.0, "10.0.0.1 is-at aa")]
    requests = steady(3.0, (1.0, 1.5))
    requests[50] = Request(0.5, record.RESET, 0.001)  # one lone failure: no gap worth a marker
    assert [round(e.t, 2) for e in first_ok_events(requests)] == [1.5]


def with_settings(drill: DrillRecord, **settings: object) -> DrillRecord:
    drill.settings.update(settings)
    return drill


def test_vrrpv2_skew_is_in_seconds_and_vrrpv3_skew_scales_with_the_advert() -> None:
    v2 = explain(with_settings(crash_record(9.0, None), advert_int=3.0, vrrp_version=2))
    # RFC 3768: 3 x 3 s + (256 - 100) / 256 s = 9.609375 s
    assert v2.bound_s == pytest.approx(9.609375)
    v3 = explain(with_settings(crash_record(2.5, None), advert_int=0.2, vrrp_version=3))
    # RFC 5798: 3 x 0.2 s + (256 - 100) / 256 x 0.2 s = 0.721875 s
    assert v3.bound_s == pytest.approx(0.721875)


def test_a_dead_balancer_is_bounded_by_the_track_script_not_by_silence() -> None:
    record_ = crash_record(4.5, None, drill="balancer-failure")
    found = explain(with_settings(record_, advert_int=0.2, vrrp_version=3, track_interval=1, track_fall=2))
    # 1 s x (2 + 1) + (256 - 100) / 256 x 0.2 s = 3.121875 s; measured 4.5 - 2.0 = 2.5 s
    assert found.bound_s == pytest.approx(3.121875)
    assert any(ok and "measured 2.50s" in text for ok, text in found.verdicts), found.verdicts


def test_off_the_lab_unseen_events_are_said_to_be_unobserved_not_failed() -> None:
    unseen = DrillRecord("lb-failure", "www", "t", RATE, 10.0, steady(10.0), [Event(2.0, record.FAULT, "lb1"), Event(7.0, record.RESTORE, "lb1")],
                         {"victim": "lb1", "advert_int": 1.0, "priorities": {"lb1": 150, "lb2": 100}, "nopreempt": False, "lab": False})
    found = explain(unseen)
    assert found.passed, found.verdicts
    assert any("not observed" in text for _, text in found.verdicts)


def test_reloads_that_stopped_early_fail_the_drill() -> None:
    reload = DrillRecord("reload", "www", "t", RATE, 10.0, steady(10.0), [Event(2.0, record.FAULT, "lb1")],
                         {"victim": "lb1", "reloads": 50, "reloads_done": {"lb1": 50, "lb2": 7}})
    texts = [text for ok, text in explain(reload).verdicts if not ok]
    assert texts == ["only 7 of 50 reloads succeeded on lb2 (see /tmp/haops-drill-reload.log there)"]


def test_latency_percentiles_count_answered_requests_only() -> None:
    found = explain(crash_record(5.3, (2.0, 5.3)))
    assert found.during is not None and found.during.count == 170  # [2.0, 7.0) holds 500 requests, 330 of them failed
    assert found.during.max_ms == pytest.approx(2.0, abs=0.01)
