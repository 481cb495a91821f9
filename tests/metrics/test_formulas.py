"""Every formula against cases worked by hand; the arithmetic is in the comments, not in calls to the code."""

from __future__ import annotations

import math

import pytest

from haops.metrics import formulas
from haops.metrics.formulas import IncidentTimes, Means

pytestmark = pytest.mark.unit

SPANS = [(30.0, 35.0), (10.0, 12.0), (50.0, 51.0)]  # deliberately out of order


def test_ttf_ttr_tbf_per_incident() -> None:
    # Window from t = 0. Sorted: (10, 12), (30, 35), (50, 51).
    # TTF: 10 - 0 = 10, 30 - 12 = 18, 50 - 35 = 15.  TTR: 2, 5, 1.  TBF: none, 30 - 10 = 20, 50 - 30 = 20.
    assert formulas.incident_times(0.0, SPANS) == [
        IncidentTimes(ttf=10.0, ttr=2.0, tbf=None),
        IncidentTimes(ttf=18.0, ttr=5.0, tbf=20.0),
        IncidentTimes(ttf=15.0, ttr=1.0, tbf=20.0),
    ]


def test_ttf_counts_from_the_window_start() -> None:
    # Window from t = 4: the first TTF is 10 - 4 = 6.
    assert formulas.incident_times(4.0, [(10.0, 12.0)]) == [IncidentTimes(ttf=6.0, ttr=2.0, tbf=None)]


def test_means_and_the_mtbf_convention() -> None:
    # Window 0..100 with the spans above: downtime 2 + 5 + 1 = 8, uptime 100 - 8 = 92, r = 3.
    # MTTF = 92 / 3 = 30.667, MTTR = 8 / 3 = 2.667, MTBF = MTTF + MTTR = 100 / 3 = 33.333.
    means = Means(failures=3, uptime=92.0, downtime=8.0)
    assert means.mttf == pytest.approx(30.6667, abs=1e-4)
    assert means.mttr == pytest.approx(2.6667, abs=1e-4)
    assert means.mtbf == pytest.approx(33.3333, abs=1e-4)


def test_no_failures_have_no_means() -> None:
    assert (Means(0, 100.0, 0.0).mttf, Means(0, 100.0, 0.0).mttr, Means(0, 100.0, 0.0).mtbf) == (None, None, None)


def test_time_and_request_availability() -> None:
    # 92 s up of 100 s = 0.92; 995 ok of 1000 sent = 0.995.
    assert formulas.availability(92.0, 100.0) == pytest.approx(0.92)
    assert formulas.request_availability(995, 1000) == pytest.approx(0.995)


@pytest.mark.parametrize("fraction, expected", [
    (0.9, 1.0),  # -log10(0.1) = 1
    (0.999, 3.0),  # -log10(0.001) = 3
    (0.9995, 3.30103),  # -log10(0.0005) = 4 - log10(5) = 4 - 0.69897 = 3.30103
    (0.0, 0.0),  # -log10(1) = 0
])
def test_nines(fraction: float, expected: float) -> None:
    assert formulas.nines(fraction) == pytest.approx(expected, abs=1e-5)


def test_no_downtime_is_infinitely_many_nines() -> None:
    assert math.isinf(formulas.nines(1.0))


def test_periods() -> None:
    # 365.2425 days x 86,400 s = 31,556,952 s; a month is a twelfth: 2,629,746 s; a week 7 x 86,400 = 604,800 s.
    assert formulas.YEAR == pytest.approx(31_556_952)
    assert formulas.MONTH == pytest.approx(2_629_746)
    assert formulas.WEEK == pytest.approx(604_800)


@pytest.mark.parametrize("sla, period, expected", [
    (99.9, formulas.YEAR, 31_556.952),  # 0.001 x 31,556,952 s = 31,556.952 s = 8 h 45 m 57 s
    (99.9, formulas.MONTH, 2_629.746),  # 0.001 x 2,629,746 s = 43 m 49.7 s
    (99.9, formulas.WEEK, 604.8),  # 0.001 x 604,800 s = 10 m 4.8 s
    (99.99, formulas.MONTH, 262.9746),  # 0.0001 x 2,629,746 s
    (99.0, 86_400.0, 864.0),  # 0.01 x one day
])
def test_allowed_downtime(sla: float, period: float, expected: float) -> None:
    assert formulas.allowed_downtime(sla, period) == pytest.approx(expected, rel=1e-9)


def test_budget_use_in_a_window() -> None:
    # 30 days = 2,592,000 s at 99.9% allow 2,592 s; 3,600 s of downtime used 3,600 / 2,592 = 1.3889 of it.
    use = formulas.budget_use(3600.0, 99.9, 2_592_000.0)
    assert use.allowed == pytest.approx(2592.0)
    assert use.used == 3600.0
    assert use.fraction == pytest.approx(1.388889, rel=1e-6)


# Chi-square quantiles from the published tables (left-tail probability p, k degrees of freedom):
#   chi2(0.05; 2) = 0.103    chi2(0.05; 4) = 0.711    chi2(0.05; 6) = 1.635
#   chi2(0.90; 2) = 4.605    chi2(0.95; 4) = 9.488    chi2(0.95; 6) = 12.592   chi2(0.95; 8) = 15.507
#   chi2(0.025; 2) = 0.0506  chi2(0.975; 4) = 11.143
# The tables give 3 or 4 significant figures, hence rel=1e-3.

def test_two_failures_at_90_percent() -> None:
    # T = 800 h, r = 2, alpha = 0.1: lower = 2 x 800 / chi2(0.95; 6) = 1600 / 12.592 = 127.06
    #                                 upper = 2 x 800 / chi2(0.05; 4) = 1600 / 0.711 = 2250.4
    interval = formulas.mttf_interval(800.0, 2, 0.9)
    assert interval.lower == pytest.approx(127.06, rel=1e-3)
    assert interval.upper == pytest.approx(2250.4, rel=1e-3)
    assert interval.two_sided and interval.confidence == 0.9


def test_one_failure_at_90_percent() -> None:
    # T = 100, r = 1: lower = 200 / chi2(0.95; 4) = 200 / 9.488 = 21.079; upper = 200 / chi2(0.05; 2) = 200 / 0.103 = 1941.7
    # The table's 0.103 has three figures (the quantile is -2 ln 0.95 = 0.10259), hence rel=5e-3 for the upper bound.
    interval = formulas.mttf_interval(100.0, 1, 0.9)
    assert interval.lower == pytest.approx(21.079, rel=1e-3)
    assert interval.upper == pytest.approx(1941.7, rel=5e-3)


def test_three_failures_at_90_percent() -> None:
    # The docs' example, www: T = 718.25 h, r = 3: lower = 1436.5 / chi2(0.95; 8) = 1436.5 / 15.507 = 92.64
    #                                              upper = 1436.5 / chi2(0.05; 6) = 1436.5 / 1.635 = 878.6
    interval = formulas.mttf_interval(718.25, 3, 0.9)
    assert interval.lower == pytest.approx(92.64, rel=1e-3)
    assert interval.upper == pytest.approx(878.6, rel=1e-3)


def test_one_failure_at_95_percent() -> None:
    # T = 100, r = 1, alpha = 0.05: lower = 200 / chi2(0.975; 4) = 200 / 11.143 = 17.949
    #                                upper = 200 / chi2(0.025; 2) = 200 / 0.0506 = 3953
    interval = formulas.mttf_interval(100.0, 1, 0.95)
    assert interval.lower == pytest.approx(17.949, rel=1e-3)
    assert interval.upper == pytest.approx(3953.0, rel=2e-3)


def test_no_failures_give_only_a_lower_bound() -> None:
    # r = 0, T = 1000, 90% one-sided: 2 x 1000 / chi2(0.90; 2) = 2000 / 4.605 = 434.3,
    # which is NIST's T / -ln(alpha) = 1000 / 2.302585 = 434.29.
    interval = formulas.mttf_interval(1000.0, 0, 0.9)
    assert interval.lower == pytest.approx(434.29, rel=1e-4)
    assert interval.upper is None and not interval.two_sided


def test_mtbf_interval_is_the_mttf_interval_moved_by_mttr() -> None:
    # r = 2, uptime 800, downtime 10: MTTR = 10 / 2 = 5; bounds 127.06 + 5 = 132.06 and 2250.4 + 5 = 2255.4.
    interval = formulas.mtbf_interval(Means(failures=2, uptime=800.0, downtime=10.0), 0.9)
    assert interval.lower == pytest.approx(132.06, rel=1e-3)
    assert interval.upper == pytest.approx(2255.4, rel=1e-3)


def test_mtbf_interval_without_failures_is_mttf_lower_bound() -> None:
    # No failures, no MTTR: the bound stays 1000 / 2.302585 = 434.29, one-sided.
    interval = formulas.mtbf_interval(Means(failures=0, uptime=1000.0, downtime=0.0), 0.9)
    assert interval.lower == pytest.approx(434.29, rel=1e-4)
    assert interval.upper is None
