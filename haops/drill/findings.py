"""What a drill record means: the gaps, the phases, the expected bound and whether it held.

Pure functions of a DrillRecord, so a saved record can be explained again later.

Bounds (RFC 3768 / RFC 5798 timers, as keepalived implements them):
- the master dies or is cut off: a backup declares it down after Master_Down_Interval =
  3 x advert_int + skew, where skew = (256 - backup priority) / 256 seconds in VRRPv2
  (RFC 3768) and (256 - backup priority) / 256 x advert_int in VRRPv3 (RFC 5798);
- the master stops cleanly: it sends priority 0 and the backup waits only the skew;
- the balancer dies under a track script: the script fails `fall` times, `interval` apart
  (up to one more interval for where its cycle was), then the instance goes to FAULT and sends
  priority 0, so the backup waits the skew;
- a backend dies: a health check declares it down after about inter x fall (plus up to one
  inter for where the check cycle was when it died).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from haops.drill import record
from haops.drill.analysis import failure_runs, longest_gap
from haops.drill.record import DrillRecord, Event, Request

SIMULTANEOUS_S = 0.005  # two VIP changes this close (on two hosts, seen by two watchers) are one hand-over
TAKEOVER_DRILLS = ("lb-failure", "link-cut", "balancer-failure")
NOT_OBSERVED = "not observed: off the lab haops sees no VIP moves or health checks, only what the probe measured"
# The drills whose target is that clients see nothing at all.
ZERO_FAILURE_DRILLS = ("backend-failure", "reload", "switchover", "drain", "failback")


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    holders: tuple[str, ...]

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass
class Findings:
    sent: int
    failed: int
    outcomes: dict[str, int]
    longest_gap: tuple[float, float] | None
    fault: float | None
    restore: float | None
    detect: float | None = None
    takeover: float | None = None
    recovered: float | None = None
    failback: float | None = None
    bound_s: float | None = None
    bound_why: str = ""
    measured_s: float | None = None
    during: Latency | None = None
    outside: Latency | None = None
    no_holder: list[Window] = field(default_factory=list)
    two_holders: list[Window] = field(default_factory=list)
    steps: list[tuple[str, float]] = field(default_factory=list)
    verdicts: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.verdicts)


def latency(requests: Sequence[Request]) -> Latency | None:
    """Percentiles of the answered requests (a refusal takes 0 ms and a timeout exactly the limit)."""
    requests = [r for r in requests if r.ok]
    if not requests:
        return None
    from hdrh.histogram import HdrHistogram

    histogram = HdrHistogram(1, 60_000_000, 3)  # microseconds, 1 us .. 60 s, 3 significant digits
    for request in requests:
        histogram.record_value(max(1, int(request.latency * 1_000_000)))
    return Latency(len(requests), histogram.get_value_at_percentile(50) / 1000,
                   histogram.get_value_at_percentile(99) / 1000, histogram.get_max_value() / 1000)


def first(events: Sequence[Event], kind: str, after: float | None = None, host: str | None = None,
          not_host: str | None = None) -> float | None:
    for event in events:
        if event.kind != kind or (after is not None and event.t < after):
            continue
        if (host is not None and event.host != host) or (not_host is not None and event.host == not_host):
            continue
        return event.t
    return None


def holder_windows(events: Sequence[Event], end: float) -> tuple[list[Window], list[Window]]:
    """From the VIP watchers' changes: the windows with no holder, and with two or more."""
    holders: set[str] = set()
    seen = False
    empty: list[Window] = []
    crowded: list[Window] = []
    since = 0.0
    for event in [e for e in events if e.kind in (record.VIP_ADDED, record.VIP_REMOVED)] + [Event(end, "end")]:
        if seen and len(holders) != 1 and event.t - since > SIMULTANEOUS_S:
            (empty if not holders else crowded).append(Window(since, event.t, tuple(sorted(holders))))
        if event.kind == record.VIP_ADDED:
            holders.add(event.host)
        elif event.kind == record.VIP_REMOVED:
            holders.discard(event.host)
        seen, since = True, event.t
    return empty, crowded


def detection(drill: DrillRecord, fault: float, victim: str) -> float | None:
    candidates = [first(drill.events, record.DETECT, fault),
                  first(drill.events, record.VIP_REMOVED, fault, host=victim),
                  first(drill.events, record.VRRP_ADVERT, fault, not_host=victim)]
    found = [t for t in candidates if t is not None]
    return min(found) if found else None


def skew_seconds(drill: DrillRecord, priority: int) -> float:
    unit = float(drill.settings.get("advert_int", 1.0)) if drill.settings.get("vrrp_version") == 3 else 1.0
    return (256 - priority) / 256 * unit


def vrrp_bound(drill: DrillRecord, how: str) -> tuple[float, str] | None:
    """The VRRP bound for a crash or cut ("silent"), a clean stop ("stop") or a track script ("track")."""
    advert = drill.settings.get("advert_int")
    priorities: dict[str, int] = drill.settings.get("priorities", {})
    victim = drill.settings.get("victim")
    backups = [p for h, p in priorities.items() if h != victim]
    if advert is None or not backups:
        return None
    skew = skew_seconds(drill, max(backups))
    unit = "x advert_int" if drill.settings.get("vrrp_version") == 3 else "s (VRRPv2)"
    skew_why = f"skew {skew:.2f}s = (256 - {max(backups)}) / 256 {unit}"
    if how == "stop":
        return skew, f"{skew_why}, priority 0 from the stopping master"
    if how == "track":
        interval, fall = float(drill.settings.get("track_interval", 1)), int(drill.settings.get("track_fall", 2))
        return interval * (fall + 1) + skew, f"track script interval {interval:g}s x (fall {fall} + 1) + {skew_why}"
    return 3 * float(advert) + skew, f"3 x advert_int {advert}s + {skew_why}"


def health_bound(drill: DrillRecord) -> tuple[float, str] | None:
    inter, fall = drill.settings.get("health_inter"), drill.settings.get("health_fall")
    if inter is None or fall is None:
        return None
    return float(inter) * (int(fall) + 1), f"inter {inter}s x (fall {fall} + 1 check cycle)"


def expected_bound(drill: DrillRecord) -> tuple[float, str] | None:
    if drill.drill == "balancer-failure":
        return vrrp_bound(drill, "track")
    if drill.drill in TAKEOVER_DRILLS:
        return vrrp_bound(drill, "silent")
    if drill.drill == "lb-stop":
        return vrrp_bound(drill, "stop")
    if drill.drill == "backend-failure":
        return health_bound(drill)
    return None


def phase_steps(drill: DrillRecord, fault: float, victim: str) -> list[tuple[str, float]]:
    """Fault -> detection -> VIP on the new holder -> client's ARP updated -> first good answer."""
    steps: list[tuple[str, float]] = []
    since = fault
    detected = detection(drill, fault, victim)
    if detected is not None:
        steps.append(("detected", detected - since))
        since = detected
    for name, kind, not_host in (("VIP added on the new holder", record.VIP_ADDED, victim),
                                 ("client's ARP entry updated", record.NEIGH, None),
                                 ("first good answer after the gap", record.FIRST_OK, None)):
        moment = first(drill.events, kind, since, not_host=not_host)
        if moment is not None:
            steps.append((name, moment - since))
            since = moment
    return steps


def explain(drill: DrillRecord) -> Findings:
    requests, events = drill.requests, drill.events
    fault = first(events, record.FAULT)
    restore = first(events, record.RESTORE)
    failed = [r for r in requests if not r.ok]
    found = Findings(len(requests), len(failed), dict(Counter(r.outcome for r in failed)), longest_gap(requests),
                     fault, restore)
    end = max([drill.duration] + [e.t for e in events])
    found.no_holder, found.two_holders = holder_windows(events, end)
    if fault is not None:
        explain_fault(drill, found, fault, restore)
    judge(drill, found)
    return found


def explain_fault(drill: DrillRecord, found: Findings, fault: float, restore: float | None) -> None:
    victim = str(drill.settings.get("victim", ""))
    found.detect = detection(drill, fault, victim)
    found.takeover = first(drill.events, record.VIP_ADDED, fault, not_host=victim)
    until_restore = restore if restore is not None else drill.duration
    runs = [run for run in failure_runs(drill.requests) if run[1] >= fault and run[0] < until_restore]
    found.recovered = runs[-1][1] if runs else None
    if restore is not None:
        found.failback = first(drill.events, record.VIP_ADDED, restore, host=victim)
    until = restore if restore is not None else drill.duration
    found.during = latency([r for r in drill.requests if fault <= r.t < until])
    found.outside = latency([r for r in drill.requests if not fault <= r.t < until])
    found.steps = phase_steps(drill, fault, victim)
    bound = expected_bound(drill)
    if bound is not None:
        found.bound_s, found.bound_why = bound
        moment = found.detect if drill.drill == "backend-failure" else found.takeover
        found.measured_s = None if moment is None else moment - fault


def judge(drill: DrillRecord, found: Findings) -> None:
    """The verdicts a demanding admin would check, each with what happened in words."""
    verdicts = found.verdicts
    if found.failed:
        counted = drill.drill in ZERO_FAILURE_DRILLS
        verdicts.append((not counted, f"{found.failed} of {found.sent} requests failed ({describe_outcomes(found.outcomes)})"
                                      + ("" if counted else "; this drill's target is the VIP gap, not zero failures")))
    else:
        verdicts.append((True, f"all {found.sent} requests answered"))
    hand_over = float(drill.settings.get("advert_int", 1.0))
    for window in [w for w in found.two_holders if w.length > hand_over]:
        verdicts.append((False, f"split brain: {' and '.join(window.holders)} both held the VIP for "
                                f"{window.length:.2f}s from t={window.start:.2f}s (two MASTERs)"))
    judge_reloads(drill, found)
    judge_bound(drill, found)
    judge_failback(drill, found)


def judge_bound(drill: DrillRecord, found: Findings) -> None:
    verdicts = found.verdicts
    if found.bound_s is None:
        return
    if found.measured_s is None and not drill.settings.get("lab", True):
        verdicts.append((True, NOT_OBSERVED))
    elif found.measured_s is not None:
        ok = found.measured_s <= found.bound_s + 0.5
        slowest = max(found.steps, key=lambda step: step[1]) if found.steps else ("", 0.0)
        why = "" if ok else f"; the slowest step: {slowest[0]} took {slowest[1]:.2f}s"
        verdicts.append((ok, f"measured {found.measured_s:.2f}s against the expected {found.bound_s:.2f}s "
                             f"({found.bound_why}){why}"))
    elif drill.drill == "balancer-failure":
        verdicts.append((False, f"the VIP stayed on {drill.settings.get('victim')} while its balancer was dead: "
                                "is the VRRP instance tracking the balancer process (track_process)?"))
    else:
        verdicts.append((False, "the expected event never happened: no takeover or detection was seen"
                                f" (expected within {found.bound_s:.2f}s: {found.bound_why})"))


def judge_reloads(drill: DrillRecord, found: Findings) -> None:
    done: dict[str, int] = drill.settings.get("reloads_done", {})
    wanted = int(drill.settings.get("reloads", 0))
    for host, count in sorted(done.items()):
        if count < wanted:
            found.verdicts.append((False, f"only {max(count, 0)} of {wanted} reloads succeeded on {host} "
                                          "(see /tmp/haops-drill-reload.log there)" if count >= 0 else
                                          f"the reloads on {host} had not finished {wanted} rounds when the drill ended"))
        else:
            found.verdicts.append((True, f"{count} reloads done on {host}"))


def judge_failback(drill: DrillRecord, found: Findings) -> None:
    if not drill.settings.get("lab", True):
        return  # no VIP watchers off the lab
    if "nopreempt" not in drill.settings or found.restore is None or drill.drill not in (*TAKEOVER_DRILLS, "lb-stop"):
        return
    if drill.settings["nopreempt"]:
        ok = found.failback is None
        found.verdicts.append((ok, "nopreempt: the VIP stayed on the new master after the restore" if ok else
                               f"nopreempt was asked for, but the VIP went back to the restored node at t={found.failback:.2f}s"))
    else:
        ok = found.failback is not None
        found.verdicts.append((ok, f"preempt: the VIP went back to the restored node at t={found.failback:.2f}s" if ok else
                               "preempt was asked for, but the VIP never went back to the restored node"))


def describe_outcomes(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items(), key=lambda kv: -kv[1]))
