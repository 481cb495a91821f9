"""Each service's figures from its segments: the formulas applied, nothing read or printed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from haops.metrics import formulas
from haops.metrics.formulas import BudgetUse, IncidentTimes, Interval, Means
from haops.metrics.model import Incident, Segment


@dataclass(frozen=True)
class TimedIncident:
    incident: Incident
    times: IncidentTimes


@dataclass(frozen=True)
class ServiceMetrics:
    service: str
    segments: tuple[Segment, ...]
    incidents: tuple[TimedIncident, ...]
    means: Means
    mttf_interval: Interval
    mtbf_interval: Interval
    availability: float  # time-based
    request_availability: float | None  # None without probe records
    sla: float  # percent
    budgets: dict[str, BudgetUse]  # per year, month and week: what the SLA allows, and this downtime's share
    window_budget: BudgetUse  # the SLA's budget pro rata over the observed window

    @property
    def observed(self) -> float:
        return sum(s.length for s in self.segments)

    @property
    def requests_sent(self) -> int | None:
        return total(s.requests_sent for s in self.segments)

    @property
    def requests_ok(self) -> int | None:
        return total(s.requests_ok for s in self.segments)

    @property
    def resolution(self) -> float | None:
        """The coarsest of the segments' resolutions: how far any incident edge may be off."""
        known = [s.resolution for s in self.segments if s.resolution is not None]
        return max(known) if known else None

    def meets_sla(self) -> bool:
        figures = [self.availability, *([] if self.request_availability is None else [self.request_availability])]
        return all(figure * 100 >= self.sla for figure in figures)


def total(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def analyse(segments: Sequence[Segment], sla: float, confidence: float) -> list[ServiceMetrics]:
    """One ServiceMetrics per service, in order of first appearance; a service's segments add up."""
    services: dict[str, list[Segment]] = {}
    for segment in segments:
        services.setdefault(segment.service, []).append(segment)
    return [service_metrics(name, group, sla, confidence) for name, group in services.items()]


def service_metrics(service: str, segments: Sequence[Segment], sla: float, confidence: float) -> ServiceMetrics:
    timed = tuple(timed_incident for segment in segments for timed_incident in timed_incidents(segment))
    observed = sum(s.length for s in segments)
    downtime = sum(t.times.ttr for t in timed)
    means = Means(failures=len(timed), uptime=observed - downtime, downtime=downtime)
    sent = total(s.requests_sent for s in segments)
    ok = total(s.requests_ok for s in segments)
    return ServiceMetrics(
        service=service, segments=tuple(segments), incidents=timed, means=means,
        mttf_interval=formulas.mttf_interval(means.uptime, means.failures, confidence),
        mtbf_interval=formulas.mtbf_interval(means, confidence),
        availability=formulas.availability(means.uptime, observed),
        request_availability=formulas.request_availability(ok, sent) if sent and ok is not None else None,
        sla=sla,
        budgets={name: formulas.budget_use(downtime, sla, period) for name, period in formulas.PERIODS.items()},
        window_budget=formulas.budget_use(downtime, sla, observed),
    )


def timed_incidents(segment: Segment) -> list[TimedIncident]:
    incidents = sorted(segment.incidents, key=lambda i: (i.start, i.end))
    times = formulas.incident_times(segment.start, [(i.start, i.end) for i in incidents])
    return [TimedIncident(incident, t) for incident, t in zip(incidents, times)]
