"""What a drill records, on one clock: every request the probe sent, and the cluster's events.

Times are seconds on the machine's CLOCK_MONOTONIC, counted from the probe's start (t = 0).
In the lab every host is a namespace of this machine, so the probe, the wire watcher and the
fault injector all read the same clock; nothing is converted between clocks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OK = "ok"
# Outcomes of a failed request, from the client's side.
REFUSED = "refused"  # TCP RST to the SYN: nothing listens
RESET = "reset"  # the connection was reset after it was accepted
TIMEOUT = "timeout"  # no answer within the probe's request timeout
HTTP_ERROR = "http_error"  # an answer with status >= 400, or no valid HTTP status line
UNREACHABLE = "unreachable"  # no route, host unreachable (ICMP or no ARP answer)
FAILURES = (REFUSED, RESET, TIMEOUT, HTTP_ERROR, UNREACHABLE)

# Event kinds of the timeline.
FAULT = "fault"  # the drill injected the fault
DETECT = "detect"  # the cluster noticed: health check marked a backend down, VRRP left MASTER
VRRP_ADVERT = "vrrp_advert"  # first advert from a new VRRP sender, or a priority change (0 = stepping down)
VIP_ADDED = "vip_added"  # the VIP appeared on a host
VIP_REMOVED = "vip_removed"  # the VIP left a host
GARP = "garp"  # a gratuitous ARP for the VIP seen on the wire
NEIGH = "neigh"  # the client's neighbour entry for the VIP changed MAC
FIRST_OK = "first_ok"  # the first successful request after a run of failures
RESTORE = "restore"  # the drill undid the fault
FAILBACK = "failback"  # the VIP or backend returned to its original placement
NOTE = "note"


@dataclass(frozen=True)
class Request:
    t: float  # start of the attempt
    outcome: str  # OK or one of FAILURES
    latency: float  # seconds from start to the answer or the failure
    backend: str = ""  # who answered (the responder's X-Backend header), if known
    status: int = 0  # HTTP status, 0 for plain TCP or no answer

    @property
    def ok(self) -> bool:
        return self.outcome == OK


@dataclass(frozen=True)
class Event:
    t: float
    kind: str
    host: str = ""
    detail: str = ""


@dataclass
class DrillRecord:
    drill: str
    service: str
    target: str  # what the probe hit, e.g. http://10.213.0.100:80/
    rate: float  # requests per second the probe was asked for
    duration: float  # seconds the probe ran
    requests: list[Request] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # advert_int, preempt, health inter/fall...

    def events_of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "clock": "seconds on CLOCK_MONOTONIC since the probe started"}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DrillRecord:
        return cls(
            drill=data["drill"], service=data["service"], target=data["target"],
            rate=float(data["rate"]), duration=float(data["duration"]),
            requests=[Request(**r) for r in data.get("requests", [])],
            events=[Event(**e) for e in data.get("events", [])],
            settings=dict(data.get("settings", {})),
        )

    @classmethod
    def load(cls, path: Path) -> DrillRecord:
        return cls.from_json(json.loads(path.read_text()))
