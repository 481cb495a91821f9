"""The drills: which fault each injects, on whom, how it is undone, and which HA term it exercises.

In the lab a fault is the lab's own (crash pulls power and cable, cut pulls the cable). On
real hosts a fault is what an admin would do by hand: stop the daemon, or take the VIP
interface down, with a timer on the host that brings it back even if this machine loses the
host (the SSH session it ran on dies with the interface).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from haops.drill import planned, record
from haops.drill.cluster import DrillCluster
from haops.drill.record import Event
from haops.errors import UserError
from haops.inventory.model import Inventory, Service, VrrpInstance
from haops.targets import get_target
from haops.targets.base import Target
from haops.targets.daemon import DETECT_INIT, PLAIN, Daemon
from haops.verify.context import stand_in

RELOAD_PAUSE_S = 0.2


@dataclass
class Stage:
    """What a drill acts on, and where its events go."""

    cluster: DrillCluster
    service: Service
    instance: VrrpInstance | None
    victim: str
    hold_s: float
    reloads: int = 50
    restart: bool = False
    events: list[Event] = field(default_factory=list)
    inits: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # what the fault learned, for the record's settings

    @property
    def inventory(self) -> Inventory:
        return self.cluster.inventory

    def mark(self, kind: str, host: str = "", detail: str = "") -> None:
        self.events.append(Event(time.monotonic(), kind, host, detail))

    def init(self, host: str) -> str:
        if host not in self.inits:
            self.inits[host] = self.cluster.sh(host, DETECT_INIT).strip() or PLAIN
        return self.inits[host]

    def run_daemon(self, host: str, target: Target, verb: str) -> None:
        daemon = daemon_of(target)
        init = self.init(host)
        command = {"start": daemon.start_command, "stop": daemon.stop_command, "reload": daemon.reload_command}[verb](init)
        if verb == "stop":
            command = f"{command}; ( {daemon.until_stopped()} )"
        self.cluster.sh(host, command)


def daemon_of(target: Target) -> Daemon:
    if target.daemon is None:
        raise UserError(f"{target.name} runs no daemon to stop, start or reload")
    return target.daemon


@dataclass(frozen=True)
class Scenario:
    name: str
    term: str  # the HA word it exercises
    summary: str
    victim: Callable[[Stage], str]
    plan: Callable[[Stage], list[str]]
    inject: Callable[[Stage], None]
    restore: Callable[[Stage], None]
    needs_vrrp: bool = True


def vip_holder(stage: Stage) -> str:
    assert stage.instance is not None
    holders = stage.cluster.holders(stage.instance)
    if len(holders) != 1:
        raise UserError(f"VRRP instance {stage.instance.name}: the VIP {stage.instance.vip.ip} is held by "
                        f"{', '.join(holders) or 'no host'}; a drill needs exactly one holder (run `haops apply`)")
    return holders[0]


def first_backend(stage: Stage) -> str:
    return stage.service.backends[0].host


def in_lab(stage: Stage) -> bool:
    return stage.cluster.lab is not None


# --- faults --------------------------------------------------------------------------------------

def crash(stage: Stage) -> None:
    """Lab: power and cable gone at once. Real hosts: the VIP interface goes down (with its timer)."""
    if stage.cluster.lab is None:
        cut(stage)
        return
    stage.cluster.forget(stage.victim)
    stage.cluster.lab.crash(stage.victim)


def boot_and_converge(stage: Stage) -> None:
    if stage.cluster.lab is None:
        heal(stage)
        return
    stage.cluster.lab.boot(stage.victim)
    stage.mark(record.NOTE, stage.victim, "booted; re-applying the inventory to it")
    stage.cluster.apply_to([stage.victim])


def interface_of(stage: Stage, host: str) -> str:
    if stage.instance is not None and stage.instance.interface:
        return stage.instance.interface
    return stage.inventory.hosts[host].interface


def cut(stage: Stage) -> None:
    if stage.cluster.lab is not None:
        stage.cluster.lab.cut(stage.victim)
        return
    # The interface comes back by itself after the hold: nothing depends on this machine reaching the host
    # again. A link going down deletes its routes (the default route too), so they are saved and put back.
    # The first second lets this SSH command return before the link goes.
    interface = shlex.quote(interface_of(stage, stage.victim))
    bounce = (f"sleep 1; routes=$(ip -4 route show dev {interface}); ip link set dev {interface} down; "
              f"sleep {stage.hold_s:.1f}; ip link set dev {interface} up; sleep 0.5; "
              f'echo "$routes" | while read -r route; do [ -n "$route" ] && ip route replace $route dev {interface}; done')
    stage.cluster.sh(stage.victim, f"nohup setsid sh -c {shlex.quote(bounce)} >/dev/null 2>&1 &")
    stage.cluster.forget(stage.victim)
    time.sleep(1.1)


def heal(stage: Stage) -> None:
    if stage.cluster.lab is not None:
        stage.cluster.lab.heal(stage.victim)
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            stage.cluster.sh(stage.victim, "true", timeout_s=5)
            return
        except Exception:  # noqa: BLE001 - any failure to reach it means: not back yet
            stage.cluster.forget(stage.victim)
            time.sleep(1)
    raise UserError(f"{stage.victim} did not come back within 30 s of its interface timer")


def keepalived() -> Target:
    return get_target("keepalived")


def stop_keepalived(stage: Stage) -> None:
    stage.run_daemon(stage.victim, keepalived(), "stop")


def start_keepalived(stage: Stage) -> None:
    stage.run_daemon(stage.victim, keepalived(), "start")


def kill_responder(stage: Stage) -> None:
    """SIGKILL the stand-in responder's master and its own workers, nothing else on the host."""
    if not stage.inventory.responders:
        raise UserError("backend-failure on real hosts kills the haops stand-in responder, and this inventory has "
                        "none (responders: false); crash a backend in the lab, or stop your application by hand")
    daemon = daemon_of(stand_in())
    stage.cluster.sh(stage.victim, f'workers=$({daemon.generation()}); kill -9 {daemon.master_pid()} $workers 2>/dev/null; true')


def start_responder(stage: Stage) -> None:
    stage.cluster.sh(stage.victim, stand_in().activate(PLAIN, False, []))


def fail_backend(stage: Stage) -> None:
    if in_lab(stage):
        crash(stage)
    else:
        kill_responder(stage)


def recover_backend(stage: Stage) -> None:
    if in_lab(stage):
        boot_and_converge(stage)
    else:
        start_responder(stage)


def balancer(stage: Stage) -> Target:
    return get_target(stage.service.balancer)


def kill_balancer(stage: Stage) -> None:
    """SIGKILL the balancer's master and workers: a crash, not a stop."""
    process = shlex.quote(daemon_of(balancer(stage)).process)
    stage.cluster.sh(stage.victim, f"pkill -KILL -x {process}; for i in $(seq 50); do pgrep -x {process} >/dev/null || exit 0; "
                                   "sleep 0.1; done; exit 1")


def start_balancer(stage: Stage) -> None:
    stage.run_daemon(stage.victim, balancer(stage), "start")


RELOAD_DONE = "/tmp/haops-drill-reload.done"
RELOAD_WAIT_S = 60


def reload_balancers(stage: Stage) -> None:
    """`reloads` back-to-back reloads (or restarts) of the service's balancer on every host it runs on,
    in the background; each loop writes how many succeeded to RELOAD_DONE when it ends."""
    daemon = daemon_of(balancer(stage))
    for host in stage.service.hosts:
        init = stage.init(host)
        if stage.restart:
            once = f"{daemon.stop_command(init)}; sleep 0.1; {daemon.start_command(init)}"
        else:
            once = daemon.reload_command(init)
        loop = (f"n=0; for i in $(seq {stage.reloads}); do {once} || break; n=$((n + 1)); sleep {RELOAD_PAUSE_S}; done; "
                f"echo $n > {RELOAD_DONE}")
        stage.cluster.sh(host, f"rm -f {RELOAD_DONE}; nohup setsid sh -c {shlex.quote(loop)} >/tmp/haops-drill-reload.log 2>&1 &")


def reloads_done(stage: Stage) -> None:
    """Wait (bounded) for every host's loop; record how many reloads each really did."""
    wait = (f"for i in $(seq {RELOAD_WAIT_S * 10}); do [ -s {RELOAD_DONE} ] && exec cat {RELOAD_DONE}; sleep 0.1; done; "
            "echo unfinished")
    for host in stage.service.hosts:
        done = stage.cluster.sh(host, wait, timeout_s=RELOAD_WAIT_S + 10).strip()
        stage.extra.setdefault("reloads_done", {})[host] = int(done) if done.isdigit() else -1
        stage.mark(record.NOTE, host, f"{done} of {stage.reloads} {'restarts' if stage.restart else 'reloads'} done")


VRRP_DROP = "INPUT -p 112 -m comment --comment haops-drill -j DROP"


def backup_of(stage: Stage) -> str:
    holder = vip_holder(stage)
    assert stage.instance is not None
    return next(h for h in stage.instance.hosts if h != holder)


def drop_vrrp(stage: Stage) -> None:
    """The backup stops hearing the master's adverts, while clients still reach both: a split brain."""
    stage.cluster.sh(stage.victim, f"iptables -w -I {VRRP_DROP}")


def pass_vrrp(stage: Stage) -> None:
    stage.cluster.sh(stage.victim, f"while iptables -w -D {VRRP_DROP} 2>/dev/null; do :; done")


# --- switchover: the VIP moves by priority ------------------------------------------------------------

def switch_vip(stage: Stage) -> None:
    """Planned move: the backup gets the highest priority (preempt), or the master steps down cleanly."""
    assert stage.instance is not None
    new_master = next(h for h in stage.instance.hosts if h != stage.victim)
    if stage.instance.nopreempt:
        stop_keepalived(stage)
        holders = stage.cluster.wait_for_single_holder(stage.instance, 10)
        start_keepalived(stage)
        if holders != [new_master]:
            raise UserError(f"switchover: after keepalived stopped on {stage.victim} the VIP was held by "
                            f"{', '.join(holders) or 'no host'}, not {new_master}")
        return
    planned.move_vip(stage.cluster, stage.instance, new_master)


def give_back(stage: Stage) -> None:
    """Giveback: converge the instance's hosts to the inventory, which puts the VIP where it says."""
    assert stage.instance is not None
    planned.give_back_vip(stage.cluster, stage.instance)


def victim_plan(action: str) -> Callable[[Stage], list[str]]:
    return lambda stage: [action.format(victim=stage.victim, hold=stage.hold_s, reloads=stage.reloads,
                                        balancer=stage.service.balancer, hosts=", ".join(stage.service.hosts))]


SCENARIOS = {s.name: s for s in (
    Scenario("backend-failure", "failover", "a backend dies; the balancers' health checks route around it",
             first_backend, victim_plan("crash backend {victim} (lab) or kill its responder, restore after {hold:.0f} s"),
             fail_backend, recover_backend, needs_vrrp=False),
    Scenario("lb-failure", "takeover", "the VIP holder crashes; the backup takes the VIP over",
             vip_holder, victim_plan("crash {victim} (lab: power and cable; real hosts: its interface down), bring it back after {hold:.0f} s"),
             crash, boot_and_converge),
    Scenario("balancer-failure", "takeover", "the balancer daemon on the VIP holder crashes; track_process moves the VIP",
             vip_holder, victim_plan("kill {balancer} on {victim}, start it after {hold:.0f} s"),
             kill_balancer, start_balancer),
    Scenario("lb-stop", "takeover", "keepalived on the VIP holder stops cleanly (priority 0 advert)",
             vip_holder, victim_plan("stop keepalived on {victim}, start it after {hold:.0f} s"),
             stop_keepalived, start_keepalived),
    Scenario("link-cut", "takeover", "the VIP holder's network link goes down",
             vip_holder, victim_plan("take {victim}'s link down for {hold:.0f} s"),
             cut, heal),
    Scenario("vrrp-cut", "split brain", "the backup stops hearing VRRP adverts: two MASTERs (a negative drill)",
             backup_of, victim_plan("drop VRRP adverts arriving at {victim} for {hold:.0f} s"),
             drop_vrrp, pass_vrrp),
    Scenario("reload", "reload", "back-to-back graceful reloads of the balancer under load",
             lambda stage: stage.service.hosts[0],
             victim_plan("{reloads} back-to-back reloads of {balancer} on {hosts}"),
             reload_balancers, reloads_done, needs_vrrp=False),
    Scenario("switchover", "switchover", "a planned move of the VIP to the backup, then giveback",
             vip_holder, victim_plan("move the VIP away from {victim} by priority, give it back after {hold:.0f} s"),
             switch_vip, give_back),
)}


def scenario_named(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise UserError(f"no drill {name!r}; drills: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]
