"""One drill, start to end: watchers and probe started, fault injected, restored, all recorded on one clock."""

from __future__ import annotations

import dataclasses
import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from haops.drill import record, watchers
from haops.drill.analysis import failure_runs
from haops.drill.cluster import DrillCluster, instance_for, service_named
from haops.drill.record import DrillRecord, Event, Request
from haops.drill.scenarios import RELOAD_PAUSE_S, Scenario, Stage, scenario_named
from haops.errors import UserError
from haops.inventory.model import Inventory, Service, VrrpInstance
from haops.targets import get_target
from haops.targets.base import BalancerTarget
from haops.targets.keepalived import TRACK_FALL, TRACK_INTERVAL_S, vrrp_version

PROBE_SCRIPT = Path(__file__).with_name("probe.py")
OPERATION_LEAD_S, OPERATION_TAIL_S = 1.0, 2.0
SETTLE_S = 15.0
OPERATION_MAX_S = 300.0  # the probe of a planned operation is stopped when the operation ends
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DrillOptions:
    drill: str
    service: str | None = None
    rate: float = 200.0
    duration: float = 20.0
    fault_at: float = 3.0
    hold: float = 5.0
    timeout: float = 2.0
    reloads: int = 50
    restart: bool = False
    victim: str | None = None
    tcp: bool = False


@dataclass
class Placement:
    """Where the probe and the watchers run: a lab client's namespace, or this machine."""

    client: str | None
    netns: str | None

    def wrap(self, argv: list[str]) -> list[str]:
        return watchers.in_netns(self.netns, argv) if self.netns else argv


def placement(cluster: DrillCluster) -> Placement:
    if cluster.lab is None:
        return Placement(None, None)
    clients = cluster.inventory.group("client")
    if not clients:
        raise UserError("a lab drill sends its probe from a host in group 'client'; the inventory has none")
    return Placement(clients[0], cluster.lab.netns(clients[0]))


def hold_seconds(options: DrillOptions) -> float:
    """How long the fault lasts; the reload drill's fault is its run of reloads."""
    return options.reloads * (RELOAD_PAUSE_S + 0.05) if options.drill == "reload" else options.hold


def check_options(options: DrillOptions, scenario: Scenario) -> None:
    busy_until = options.fault_at + hold_seconds(options)
    if options.duration < busy_until + 2:
        raise UserError(f"--duration {options.duration:g}s is too short: the fault starts at {options.fault_at:g}s and "
                        f"is undone at about {busy_until:g}s; give at least {busy_until + 5:.0f}s")
    check_probe_options(options)
    if options.fault_at < 0.5 or options.hold <= 0 or options.reloads < 1:
        raise UserError("--fault-at must be at least 0.5 s (the probe needs a steady state first), --hold above 0, "
                        "--reloads at least 1")


def check_probe_options(options: DrillOptions) -> None:
    if not 1 <= options.rate <= 2000:
        raise UserError(f"--rate must be 1..2000 requests per second, got {options.rate:g}")
    if not 0 < options.timeout <= 10:
        raise UserError(f"--timeout must be in (0, 10] s, got {options.timeout:g}")


def build_stage(cluster: DrillCluster, options: DrillOptions, scenario: Scenario) -> Stage:
    service = service_named(cluster.inventory, options.service)
    instance = instance_for(cluster.inventory, service)
    if scenario.needs_vrrp and instance is None:
        raise UserError(f"drill {scenario.name} needs a VRRP instance floating {service.name}'s VIP {service.vip}; there is none")
    if instance is not None:
        settled(cluster, instance)
    stage = Stage(cluster, service, instance, "", options.hold, options.reloads, options.restart)
    stage.victim = options.victim or scenario.victim(stage)
    if stage.victim not in cluster.inventory.hosts:
        raise UserError(f"no host {stage.victim!r} in the inventory")
    stage.init(stage.victim)  # connected and its init known now, so the fault costs no SSH handshake
    return stage


def settled(cluster: DrillCluster, instance: VrrpInstance) -> None:
    """A drill measures a healthy cluster: exactly one node holds the VIP before the probe starts."""
    holders = cluster.wait_for_single_holder(instance, SETTLE_S)
    if len(holders) != 1:
        raise UserError(f"VRRP instance {instance.name}: after {SETTLE_S:.0f}s the VIP {instance.vip.ip} is held by "
                        f"{', '.join(holders) or 'no host'}; a drill needs exactly one holder (run `haops apply`)")


def probe_argv(service: Service, options: DrillOptions) -> list[str]:
    argv = [sys.executable, "-I", str(PROBE_SCRIPT), str(service.vip), str(service.port),
            "--rate", f"{options.rate:g}", "--duration", f"{options.duration:g}", "--timeout", f"{options.timeout:g}"]
    return argv if options.tcp else [*argv, "--http", "/"]


def lab_watchers(cluster: DrillCluster, where: Placement, service: Service, instance: VrrpInstance | None,
                 options: DrillOptions) -> list[watchers.Watcher]:
    if cluster.lab is None or where.netns is None or where.client is None:
        return []
    vips = sorted({str(i.vip.ip) for i in cluster.inventory.vrrp.values()})
    by_address = {str(h.address): h.name for h in cluster.inventory.hosts.values()}
    seconds = options.duration + options.timeout + 30
    interface = cluster.inventory.hosts[where.client].interface
    found = [watchers.wire_watcher(where.netns, interface, seconds, vips, by_address, sys.executable),
             watchers.neighbour_watcher(where.netns, where.client, vips, seconds)]
    hosts = instance.hosts if instance else ()
    found += [watchers.vip_watcher(cluster.lab.netns(h), h, vips, seconds) for h in hosts]
    return found + health_watchers(cluster, service, seconds)


def health_watchers(cluster: DrillCluster, service: Service, seconds: float) -> list[watchers.Watcher]:
    """Each balancer's own view of the backends, through the lab's SSH (a stream stamped on arrival)."""
    target = get_target(service.balancer)
    script = target.health_watch(service, seconds) if isinstance(target, BalancerTarget) else None
    if script is None or cluster.lab is None:
        return []
    ssh = ["ssh", "-F", str(cluster.lab.ssh_config)]
    return [watchers.health_watcher([*ssh, host, script], host) for host in service.hosts]


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def inject_and_restore(stage: Stage, scenario: Scenario, start: float, options: DrillOptions, progress: Progress) -> None:
    sleep_until(start + options.fault_at)
    progress(f"{scenario.name}: injecting the fault on {stage.victim}")
    stage.mark(record.FAULT, stage.victim, scenario.plan(stage)[0])
    try:
        scenario.inject(stage)
        stage.mark(record.NOTE, stage.victim, "fault in place")
        sleep_until(start + options.fault_at + hold_seconds(options))
    finally:
        progress(f"{scenario.name}: restoring {stage.victim}")
        stage.mark(record.RESTORE, stage.victim, "")
        scenario.restore(stage)
        stage.mark(record.NOTE, stage.victim, "restored")


def initial_holders(stage: Stage) -> None:
    """Who holds the VIP at the start (in the lab the VIP watchers' first listing says it)."""
    if stage.instance is None or stage.cluster.lab is not None:
        return
    for host in stage.cluster.holders(stage.instance):
        stage.mark(record.VIP_ADDED, host, f"{stage.instance.vip.ip} held at the start")


def run_drill(inventory: Inventory, options: DrillOptions, cluster: DrillCluster, progress: Progress) -> DrillRecord:
    scenario = scenario_named(options.drill)
    check_options(options, scenario)
    stage = build_stage(cluster, options, scenario)
    return observe(stage, options, scenario.name, lambda start: inject_and_restore(stage, scenario, start, options, progress),
                   progress, stop_early=False)


def run_operation(stage: Stage, name: str, operation: Callable[[], None], options: DrillOptions,
                  progress: Progress) -> DrillRecord:
    """A planned operation under the probe: 1 s of steady state, the operation, 2 s after it."""
    check_probe_options(options)

    def act(start: float) -> None:
        sleep_until(start + OPERATION_LEAD_S)
        stage.mark(record.FAULT, stage.victim, f"{name} started")
        operation()
        stage.mark(record.RESTORE, stage.victim, f"{name} done")
        time.sleep(OPERATION_TAIL_S)

    return observe(stage, dataclasses.replace(options, duration=OPERATION_MAX_S), name, act, progress, stop_early=True)


def observe(stage: Stage, options: DrillOptions, name: str, act: Callable[[float], None], progress: Progress,
            stop_early: bool) -> DrillRecord:
    """Watchers and probe around `act`; everything they saw, on one clock."""
    where = placement(stage.cluster)
    watching = lab_watchers(stage.cluster, where, stage.service, stage.instance, options)
    initial_holders(stage)
    probe: subprocess.Popen[str] | None = None
    try:
        with terminations_interrupt():
            watchers.start_all(watching)
            progress(f"{name}: probe {options.rate:g} req/s from {where.client or 'this machine'}")
            probe = subprocess.Popen(where.wrap(probe_argv(stage.service, options)), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
            wait_until_probing(probe)
            act(time.monotonic())
            if stop_early:
                probe.terminate()
            progress(f"{name}: waiting for the probe to finish")
            requests, t0 = collect_probe(probe, options)
    finally:
        if probe is not None and probe.poll() is None:
            probe.kill()
            probe.wait(timeout=5)
        events = watchers.stop_all(watching)
    duration = max([r.t for r in requests], default=0.0) if stop_early else options.duration
    return assemble(name, stage, dataclasses.replace(options, duration=duration), requests, t0, stage.events + events)


@contextmanager
def terminations_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a killed haops, a dropped SSH session) unwind like Ctrl-C, so the fault is undone."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_until_probing(probe: subprocess.Popen[str], seconds: float = 10) -> None:
    """No fault before the probe says it is sending: a probe that died at start measures nothing."""
    assert probe.stdout is not None
    ready = select.select([probe.stdout], [], [], seconds)[0]
    line = probe.stdout.readline() if ready else ""
    if '"ready"' not in line:
        probe.kill()
        _, stderr = probe.communicate(timeout=5)
        raise UserError(f"the probe did not start (exit {probe.returncode}): {stderr.strip()[-500:]}; nothing was changed")


def collect_probe(probe: subprocess.Popen[str], options: DrillOptions) -> tuple[list[Request], float]:
    try:
        stdout, stderr = probe.communicate(timeout=options.duration + options.timeout + 30)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.communicate(timeout=5)
        raise UserError("the probe did not finish in time; it was stopped") from None
    if probe.returncode != 0:
        raise UserError(f"the probe failed (exit {probe.returncode}): {stderr.strip()[-500:]}")
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip() and '"ready"' not in line]
    t0 = next(float(line["t0"]) for line in lines if line.get("done"))
    requests = [Request(line["t"] - t0, line["outcome"], line["latency"], line["backend"], line["status"])
                for line in lines if "outcome" in line]
    return sorted(requests, key=lambda r: r.t), t0


def assemble(name: str, stage: Stage, options: DrillOptions, requests: list[Request], t0: float,
             events: list[Event]) -> DrillRecord:
    shifted = sorted((Event(e.t - t0, e.kind, e.host, e.detail) for e in events), key=lambda e: e.t)
    drill = DrillRecord(name, stage.service.name, f"{'tcp' if options.tcp else 'http'}://{stage.service.vip}:{stage.service.port}/",
                        options.rate, options.duration, requests, shifted, settings(stage, options))
    drill.events = sorted(collapse_bursts(drill.events) + first_ok_events(requests), key=lambda e: e.t)
    return drill


def collapse_bursts(events: list[Event], within_s: float = 0.2) -> list[Event]:
    """keepalived sends its gratuitous ARPs in bursts (5 by default): one event per burst."""
    kept: list[Event] = []
    count = 1
    for event in events:
        last = kept[-1] if kept else None
        if last and event.kind == record.GARP and last.kind == record.GARP and last.detail.split(" x")[0] == event.detail \
                and event.t - last.t <= within_s:
            count += 1
            kept[-1] = Event(last.t, last.kind, last.host, f"{event.detail} x{count}")
            continue
        count = 1
        kept.append(event)
    return kept


def first_ok_events(requests: list[Request], shortest_s: float = 0.1) -> list[Event]:
    """The first good answer after each run of failures that lasted at least `shortest_s`."""
    by_start = {r.t: r for r in requests}
    return [Event(end, record.FIRST_OK, by_start[end].backend, f"after {end - start:.2f}s of failures")
            for start, end in failure_runs(requests) if end - start >= shortest_s and end in by_start and by_start[end].ok]


def settings(stage: Stage, options: DrillOptions) -> dict[str, object]:
    found: dict[str, object] = {"victim": stage.victim, "fault_at": options.fault_at, "hold": options.hold,
                                "timeout": options.timeout, "balancer": stage.service.balancer,
                                "lab": stage.cluster.lab is not None, **stage.extra}
    if stage.instance is not None:
        found |= {"vrrp_instance": stage.instance.name, "advert_int": stage.instance.advert_int_ms / 1000,
                  "vrrp_version": vrrp_version(stage.instance), "track_interval": TRACK_INTERVAL_S, "track_fall": TRACK_FALL,
                  "nopreempt": stage.instance.nopreempt, "priorities": dict(stage.instance.priorities),
                  "vip": str(stage.instance.vip.ip)}
    if stage.service.health is not None:
        found |= {"health_inter": stage.service.health.interval_ms / 1000, "health_fall": stage.service.health.fall}
    if stage.restart:
        found["restart_instead_of_reload"] = True
    if options.drill == "reload":
        found["reloads"] = options.reloads
    return found
