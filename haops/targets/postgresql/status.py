"""What each PostgreSQL host says about itself, in one SSH command per host.

A host: its role (primary, standby, down, fenced, unreachable), its WAL position (a primary's
pg_current_wal_lsn, a standby's pg_last_wal_receive_lsn and pg_last_wal_replay_lsn), whom it
streams from; a primary also lists pg_stat_replication (per standby: state, sync_state, replay
lag in bytes, and PostgreSQL's own replay_lag in seconds)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from haops.inventory.model import Inventory
from haops.targets.postgresql import layout
from haops.transport import HostFailure, Ran

PRIMARY, STANDBY, DOWN, FENCED, UNREACHABLE = "primary", "standby", "down", "fenced", "unreachable"

_HOST_SQL = ("SELECT 'H', pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() "
             "ELSE pg_current_wal_lsn() END, pg_last_wal_replay_lsn(), "
             "(SELECT sender_host FROM pg_stat_wal_receiver), (SELECT status FROM pg_stat_wal_receiver)")
_PEERS_SQL = ("SELECT 'R', application_name, client_addr, state, sync_state, "
              "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), extract(epoch FROM replay_lag) "
              "FROM pg_stat_replication WHERE NOT pg_is_in_recovery() ORDER BY application_name")


def lsn(text: str) -> int | None:
    """'16/B374D848' -> its byte position."""
    high, _, low = text.partition("/")
    try:
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError:
        return None


@dataclass(frozen=True)
class Peer:
    """One standby as its primary's pg_stat_replication shows it."""

    name: str
    address: str
    state: str
    sync_state: str
    lag_bytes: int | None
    lag_seconds: float | None


@dataclass(frozen=True)
class HostState:
    host: str
    role: str
    wal: int | None = None  # primary: current LSN; standby: last received
    replayed: int | None = None
    upstream: str | None = None
    receiver: str | None = None
    peers: tuple[Peer, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class ClusterState:
    hosts: tuple[HostState, ...]
    problems: list[str] = field(default_factory=list)

    def role_of(self, host: str) -> str:
        return next(h.role for h in self.hosts if h.host == host)

    @property
    def primaries(self) -> list[str]:
        return [h.host for h in self.hosts if h.role == PRIMARY]

    @property
    def standbys(self) -> list[HostState]:
        return [h for h in self.hosts if h.role == STANDBY]

    def lag_bytes(self, standby: HostState) -> int | None:
        """The primary's WAL position minus what the standby has replayed."""
        primaries = [h for h in self.hosts if h.role == PRIMARY and h.wal is not None]
        if len(primaries) != 1 or standby.replayed is None:
            return None
        return max(0, (primaries[0].wal or 0) - standby.replayed)


def read_script(port: int) -> str:
    return (f"if [ -e {layout.FENCED} ]; then echo FENCED; fi; "
            f"if {layout.running()}; then {layout.psql(_HOST_SQL, port)} -F '|'; {layout.psql(_PEERS_SQL, port)} -F '|'; "
            "else echo DOWN; fi")


def parse_host(host: str, ran: Ran) -> HostState:
    lines = ran.stdout.splitlines()
    if "FENCED" in lines:
        return HostState(host, FENCED, error="fenced by haops db promote")
    if "DOWN" in lines:
        return HostState(host, DOWN, error="the cluster is not running")
    rows = [line.split("|") for line in lines]
    mine = next((r for r in rows if r[0] == "H" and len(r) == 6), None)
    if mine is None:
        return HostState(host, DOWN, error=(ran.stderr.strip() or ran.stdout.strip())[:200])
    peers = tuple(Peer(r[1], r[2], r[3], r[4], _bytes(r[5]), _seconds(r[6]))
                  for r in rows if r[0] == "R" and len(r) == 7)
    recovery = mine[1] == "t"
    return HostState(host, STANDBY if recovery else PRIMARY, lsn(mine[2]), lsn(mine[3]) if recovery else None,
                     mine[4] or None, mine[5] or None, peers)


def _bytes(text: str) -> int | None:
    try:
        return int(text.split(".")[0])
    except ValueError:
        return None


def _seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_cluster(inventory: Inventory, hosts: tuple[str, ...], runner: Callable[[str], Callable[[str], Ran]], port: int) -> ClusterState:
    def one(host: str) -> HostState:
        try:
            return parse_host(host, runner(host)(read_script(port)))
        except HostFailure as exc:
            return HostState(host, UNREACHABLE, error=str(exc))

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        states = tuple(pool.map(one, hosts))
    return ClusterState(states, problems_of(states))


def problems_of(states: tuple[HostState, ...]) -> list[str]:
    primaries = [s.host for s in states if s.role == PRIMARY]
    problems = []
    if len(primaries) > 1:
        problems.append(f"{len(primaries)} primaries accept writes: {', '.join(primaries)} (split brain)")
    if not primaries:
        problems.append("no primary: nothing accepts writes")
    for state in states:
        if state.role == STANDBY and state.receiver != "streaming":
            problems.append(f"{state.host} is a standby but not streaming ({state.receiver or 'no WAL receiver'})")
        if state.role in (DOWN, UNREACHABLE):
            problems.append(f"{state.host}: {state.error}")
    return problems
