"""The contract every technology implements. The stages call it without knowing which target they hold.

A target says, for its technology:
  review        its rules for the neutral inventory, as problems with key paths
  hosts/render  the files each host gets; checks: the real checker argv for a candidate tree
  probe         shell: exit 0 when the target is live at all (daemon running, rules loaded)
  generation    shell: prints what a taking reload changes (worker PIDs); '' when unused
  activate      shell: start, reload or load, for this init system
  proof         shell: exit 0 once the *new* configuration is live; apply polls it to a deadline
  refused       how the daemon itself says it refused the new configuration (a Refusal), so
                apply stops waiting for the proof at once
  stop          shell: stop it (rollback of a target that was not running before)
  listeners     what it listens on once live; proofs and verify check its own processes hold them
  hook          what only it needs around activation (the iptables revert guard)
  state_checks  what verify checks on the host beyond files, daemon and listeners
  vrrp_nodes    for `haops status` and apply's VIP wait: its VRRP instances on a host, as its daemon reports them
A balancer also says what each of its algorithms must show in traffic (BalancerTarget.traffic),
whether its services speak HTTP, and how it sees each backend now (backend_states).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from haops.inventory.model import Inventory, Service
from haops.targets.daemon import Daemon

if TYPE_CHECKING:
    from fabric import Connection

    from haops.transport import Ran

KeyPath = tuple[str | int, ...]
ProblemAt = tuple[KeyPath, str]
ALWAYS = "true"
# An activation's output line that starts with this is shown in apply's report (the rest is
# not): what the host could not make live and why, when that is no failure (no kernel module).
NOTICE = "haops-notice:"


@dataclass(frozen=True)
class RenderedFile:
    """One file as it must exist on a host. `secrets` are masked wherever text is shown."""

    path: str
    text: str
    mode: int = 0o644
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    """A real checker run against a candidate tree; `tool` must be on PATH."""

    tool: str
    argv: tuple[str, ...]
    label: str
    env: tuple[tuple[str, str], ...] = ()
    local_only: bool = False  # needs haops itself, so it cannot run on a target host


@dataclass(frozen=True)
class RenderContext:
    """What rendering may depend on besides the inventory: the date, and live files."""

    today: date = field(default_factory=date.today)
    live: Mapping[str, str] = field(default_factory=dict)


class RemoteHost(Protocol):
    """What a state check may ask of a host: testinfra's Host API, the part haops uses."""

    def run(self, command: str, *args: Any) -> Any: ...

    def file(self, path: str) -> Any: ...

    @property
    def iptables(self) -> Any: ...


Verdict = tuple[str, str, str]  # expected, observed, status
HostRun = Callable[[str], "Ran"]  # runs a POSIX sh script on one host


@dataclass(frozen=True)
class VrrpNode:
    """One VRRP instance on one host, as the daemon reports it; `state` None when it could not be read."""

    instance: str
    host: str
    state: str | None
    priority: int | None = None
    effective_priority: int | None = None
    holds_vip: bool = False
    error: str | None = None


UP, DOWN, MAINT = "UP", "DOWN", "MAINT"
UNKNOWN = "unknown"  # the balancer could not be read
NOT_EXPOSED, PASSIVE_ONLY, NO_CHECKS = "not exposed", "passive checks only", "no health checks"
ALL_BACKENDS = "*"


@dataclass(frozen=True)
class BackendState:
    """A backend as one balancer host sees it: UP, DOWN or MAINT; UNKNOWN when the balancer could
    not be read; or why the balancer keeps no state to read (`backend` is ALL_BACKENDS then)."""

    service: str
    host: str
    backend: str
    state: str
    detail: str = ""

REFUSAL_MARK = "refusal_mark"  # the shell variable that holds what Refusal.mark printed


@dataclass(frozen=True)
class Refusal:
    """How a daemon tells that it refused a new configuration, in its own words.

    mark  shell run just before the activation: prints where the daemon's account stands
          (a log's size, a reload counter), or nothing when it has none to give
    test  shell test run while apply waits for the proof, with the mark in $refusal_mark:
          exit 0, printing why, only when the daemon refused the configuration since the
          mark. With an empty mark it fails: nothing said before the mark ever counts.
    """

    mark: str
    test: str


@dataclass(frozen=True)
class StateCheck:
    check: str
    subject: str
    probe: Callable[[RemoteHost], Verdict]


class ActivationHook(Protocol):
    """Around one target's activation on one host, for what only that technology needs."""

    def before(self, connection: Connection, backup: str) -> None: ...

    def after(self, connection: Connection, backup: str, activated: bool,
              reconnect: Callable[[], Connection]) -> str | None:
        """None when all is well; else why the activation must count as failed."""
        ...


class Target:
    """One technology. Defaults describe a target with no daemon and nothing to prove."""

    name: ClassVar[str]
    daemon: ClassVar[Daemon | None] = None
    reads_live_files: ClassVar[bool] = False  # rendering depends on the host's current files
    # Regexes whose first group is a secret, for text haops did not render (a live file's old
    # values): masked in diffs whatever they were.
    secret_lines: ClassVar[tuple[str, ...]] = ()
    hook: ClassVar[ActivationHook | None] = None
    serves_backends: ClassVar[bool] = False  # a stand-in application verify may stop and start

    # --- inventory and files ---------------------------------------------------------------

    def review(self, inventory: Inventory) -> list[ProblemAt]:
        return []

    def resolve(self, inventory: Inventory) -> Inventory:
        """The inventory with this target's resolved names filled in (after a clean review)."""
        return inventory

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        raise NotImplementedError

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        raise NotImplementedError

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        """Checker commands for the files rendered under `root` (a candidate tree)."""
        raise NotImplementedError

    def scratch_files(self, inventory: Inventory, host: str) -> list[RenderedFile]:
        """Files the checks need in the candidate tree that are never installed."""
        return []

    # --- going live --------------------------------------------------------------------------

    def probe(self) -> str:
        return self.daemon.running() if self.daemon else ALWAYS

    def generation(self) -> str:
        return self.daemon.generation() if self.daemon else "echo"

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        if self.daemon is None:
            return ALWAYS
        return self.daemon.reload_command(init) if live else self.daemon.enable_and_start_command(init)

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        """Running, its workers replaced when it ran before (the old ones no longer listening),
        and its own processes on its ports."""
        checks = [self.probe()]
        if before is not None:
            checks.append(f'[ "$({self.generation()})" != {shlex.quote(before)} ]')
        listeners = sorted(set(self.listeners(inventory, host)))
        if self.daemon is not None:
            checks += [self.daemon.holds_port(port, address) for address, port in listeners]
            if before is not None:
                checks += [self.daemon.old_workers_let_go(before, port, address) for address, port in listeners]
        return " && ".join(f"( {check} )" for check in checks)

    def refused(self) -> Refusal | None:
        return None

    def stop(self, init: str) -> str | None:
        return self.daemon.stop_and_disable_command(init) if self.daemon else None

    # Leftovers are removed by apply itself when they keep steering traffic (iptables' jumps),
    # else only by `haops prune`.
    retire_with_apply: ClassVar[bool] = False

    def retire(self, init: str) -> str:
        """Shell: undo what this target made live on a host that no longer runs it (its files go separately)."""
        stop = self.stop(init)
        return f"if ( {self.probe()} ) >/dev/null 2>&1; then {stop}; fi" if stop else ALWAYS

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        return []

    # --- verify -------------------------------------------------------------------------------

    def state_checks(self, inventory: Inventory, host: str) -> list[StateCheck]:
        return []

    # --- status -------------------------------------------------------------------------------

    def vrrp_nodes(self, inventory: Inventory, host: str, run: HostRun) -> list[VrrpNode]:
        """The VRRP instances this target runs on `host`, as its daemon reports them now."""
        return []


# --- balancers ---------------------------------------------------------------------------------

SPLIT, AFFINITY, LEAST, SPREAD = "split", "affinity", "least", "spread"


@dataclass(frozen=True)
class TrafficPromise:
    """What a service's traffic must show, as a balancer promises it for the service's algorithm.

    distribution  SPLIT: sequential new connections split exactly by weight (within `tolerance`);
                  AFFINITY: one key, one backend; LEAST: a slow backend gets less; SPREAD: all serve
    hashed_key    for AFFINITY: source, uri, header:NAME, cookie:NAME or arg:NAME
    key_prefix    for AFFINITY on source: clients in one /N share a key (nginx ip_hash: 24)
    dead_backend  health checks exist, so a stopped backend must stop getting connections
    unsupported   why traffic cannot be measured on these hosts (None: it can)
    retries       False for a layer-4 balancer that cannot retry: a connection it sent to a dead
                  backend before detection fails, whatever `retries` says
    requires      a shell test every balancer host must pass for traffic to be measured there;
                  where one fails, `unsupported` says why (e.g. no ip_vs module in the kernel)
    """

    distribution: str
    tolerance: int = 0
    hashed_key: str = "source"
    key_prefix: int | None = None
    dead_backend: bool = True
    unsupported: str | None = None
    requires: str | None = None
    retries: bool = True  # the balancer retries a failed connection on another backend (not LVS)


@dataclass(frozen=True)
class OptionField:
    """One key of a balancer's own option block in a service, e.g. `lvs: {mode: dr}`."""

    check: Callable[[Any], Any]
    default: Any = None


class BalancerTarget(Target):
    """A target that runs on the hosts of the services whose balancer it is.

    `algorithms` maps what users may write (roundrobin, leastconn, source, ...) to the
    balancer's own name; `option_blocks` are the service keys only this balancer reads."""

    algorithms: ClassVar[Mapping[str, str]]
    option_blocks: ClassVar[Mapping[str, Mapping[str, OptionField]]] = {}
    speaks_http: ClassVar[bool] = False  # its services answer HTTP (else only TCP is promised)

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        return hosts_running(inventory, self.name)

    def review(self, inventory: Inventory) -> list[ProblemAt]:
        from haops.targets.balancing import review_services

        return review_services(self, inventory)

    def resolve(self, inventory: Inventory) -> Inventory:
        from haops.targets.balancing import resolve_services

        return resolve_services(self, inventory)

    def review_service(self, service: Service) -> list[ProblemAt]:
        """This balancer's rules for one service (method and options resolved), paths inside it."""
        return []

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        services = services_on(inventory, self.name, host)
        return [(str(s.vip), s.port) for s in services] + [("0.0.0.0", s.stats.port) for s in services if s.stats]

    def traffic(self, service: Service) -> TrafficPromise:
        return TrafficPromise(SPREAD)

    def backend_states(self, inventory: Inventory, host: str, run: HostRun) -> list[BackendState]:
        """Each backend of this balancer's services on `host`, as the balancer sees it now."""
        return [BackendState(s.name, host, ALL_BACKENDS, NOT_EXPOSED, f"haops reads no backend state from {self.name}")
                for s in services_on(inventory, self.name, host)]

    def health_watch(self, service: Service, seconds: float) -> str | None:
        """Shell: for `seconds`, print "<backend> <state>" lines, then "--", whenever the balancer's
        view of the service's backends changes (state DOWN: it took one out). None: nothing to watch."""
        return None

    def drain_script(self, service: Service, backend: str) -> str | None:
        """Shell: take the backend out through the balancer's runtime API, letting connections in
        flight finish. None: no runtime API; a switchover drains by configuration and a reload."""
        return None

    def ready_script(self, service: Service, backend: str) -> str | None:
        """Shell: put a drained backend back through the runtime API (None: by configuration)."""
        return None


def under(root: Path, path: str) -> str:
    """The place of an absolute host path inside a candidate tree."""
    return str(root / path.lstrip("/"))


def services_on(inventory: Inventory, balancer: str, host: str) -> list[Service]:
    """By name, so reordering the inventory's services does not change the file."""
    return sorted((s for s in inventory.services.values() if s.balancer == balancer and host in s.hosts), key=lambda s: s.name)


def hosts_running(inventory: Inventory, balancer: str) -> tuple[str, ...]:
    wanted = {h for s in inventory.services.values() if s.balancer == balancer for h in s.hosts}
    return tuple(name for name in inventory.hosts if name in wanted)
