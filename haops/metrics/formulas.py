"""The formulas, on plain numbers: no files, no clocks, no printing. docs/metrics.md works each one by hand.

Times are seconds. Availabilities are fractions (0.999), SLAs are percentages (99.9) as users write them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DAY = 86_400.0
# The mean Gregorian year (365.2425 days), a month as a twelfth of it, and a week of 7 days, so that
# a monthly budget does not depend on which month it is.
YEAR = 365.2425 * DAY
MONTH = YEAR / 12
WEEK = 7 * DAY
PERIODS = {"year": YEAR, "month": MONTH, "week": WEEK}

CI_SOURCE = ("NIST/SEMATECH e-Handbook of Statistical Methods, 8.4.5.1 (constant repair rate, HPP/exponential model), "
             "https://www.itl.nist.gov/div898/handbook/apr/section4/apr451.htm")


@dataclass(frozen=True)
class IncidentTimes:
    ttf: float  # up time before this incident: since the window's start or the previous incident's end
    ttr: float  # the incident's duration
    tbf: float | None  # from the previous incident's start to this one's; None for the first in a window


@dataclass(frozen=True)
class Means:
    failures: int
    uptime: float
    downtime: float

    @property
    def mttf(self) -> float | None:
        """Total uptime / failures: the exponential MLE, which counts the uptime after the last incident too."""
        return self.uptime / self.failures if self.failures else None

    @property
    def mttr(self) -> float | None:
        return self.downtime / self.failures if self.failures else None

    @property
    def mtbf(self) -> float | None:
        """MTTF + MTTR, which equals the window's length / failures."""
        if self.mttf is None or self.mttr is None:
            return None
        return self.mttf + self.mttr


@dataclass(frozen=True)
class Interval:
    """A confidence interval; upper is None when only a one-sided lower bound exists (no failures)."""

    lower: float
    upper: float | None
    confidence: float

    @property
    def two_sided(self) -> bool:
        return self.upper is not None

    def shifted(self, by: float) -> Interval:
        return Interval(self.lower + by, None if self.upper is None else self.upper + by, self.confidence)


@dataclass(frozen=True)
class BudgetUse:
    allowed: float  # seconds of downtime the SLA allows in the period
    used: float  # seconds of downtime observed
    fraction: float | None  # used / allowed


def incident_times(window_start: float, spans: Sequence[tuple[float, float]]) -> list[IncidentTimes]:
    """TTF, TTR and TBF of each (start, end) span, in order of start, inside a window starting at window_start."""
    times: list[IncidentTimes] = []
    previous_start: float | None = None
    previous_end = window_start
    for start, end in sorted(spans):
        tbf = None if previous_start is None else start - previous_start
        times.append(IncidentTimes(ttf=start - previous_end, ttr=end - start, tbf=tbf))
        previous_start, previous_end = start, end
    return times


def availability(uptime: float, total: float) -> float:
    """Time-based availability: uptime / total time."""
    return uptime / total


def request_availability(ok: int, sent: int) -> float:
    """Request-based availability: successful requests / requests sent."""
    return ok / sent


def nines(fraction: float) -> float:
    """-log10(1 - A): 0.999 is 3 nines, 0.9995 is 3.3. Infinite for A = 1."""
    if fraction >= 1:
        return math.inf
    return -math.log10(1 - fraction)


def allowed_downtime(sla_percent: float, period: float) -> float:
    """Seconds of downtime an SLA allows in a period: (1 - SLA) x period."""
    return (1 - sla_percent / 100) * period


def budget_use(downtime: float, sla_percent: float, period: float) -> BudgetUse:
    allowed = allowed_downtime(sla_percent, period)
    return BudgetUse(allowed, downtime, downtime / allowed if allowed > 0 else None)


def mttf_interval(uptime: float, failures: int, confidence: float) -> Interval:
    """The chi-square interval for the mean of exponential up times, from a time-terminated observation.

    With r failures in T seconds of operation and alpha = 1 - confidence (CI_SOURCE):
      two-sided, r >= 1:  2T / chi2(1 - alpha/2; 2r + 2)  <=  MTTF  <=  2T / chi2(alpha/2; 2r)
      r = 0, one-sided:   MTTF >= 2T / chi2(1 - alpha; 2) = T / -ln(alpha)
    where chi2(p; k) is the p quantile (left-tail probability p) with k degrees of freedom."""
    from scipy.stats import chi2

    alpha = 1 - confidence
    if failures == 0:
        return Interval(2 * uptime / float(chi2.ppf(confidence, 2)), None, confidence)
    lower = 2 * uptime / float(chi2.ppf(1 - alpha / 2, 2 * failures + 2))
    upper = 2 * uptime / float(chi2.ppf(alpha / 2, 2 * failures))
    return Interval(lower, upper, confidence)


def mtbf_interval(means: Means, confidence: float) -> Interval:
    """The MTTF interval moved by the observed MTTR, so that MTBF = MTTF + MTTR holds at both ends.

    MTTR's own sampling error is not in it. With no failures there is no MTTR, and the MTTF lower bound
    stands as MTBF's (MTBF >= MTTF)."""
    interval = mttf_interval(means.uptime, means.failures, confidence)
    return interval.shifted(means.mttr or 0.0)
