"""Fail a standby over: fence the old primary, pg_promote, re-point the others, prove a write.

Order matters. The old primary is fenced *before* the standby is promoted, wherever SSH still
reaches it: stopped if it runs, and left with standby.signal and a fence mark, so a start
brings it up read-only and apply refuses to start it at all. Two primaries never accept writes.
The other standbys are re-pointed (ALTER SYSTEM primary_conninfo, reload: PostgreSQL 13+ restarts
the WAL receiver) before the write probe, so in synchronous mode the first write has a standby
to confirm it. RTO here runs from the start of the promotion to the first committed write."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from haops.errors import UserError
from haops.inventory.model import Inventory, PostgresCluster
from haops.targets.postgresql import layout
from haops.targets.postgresql.status import DOWN, PRIMARY, STANDBY, UNREACHABLE, ClusterState, read_cluster
from haops.transport import HostFailure, Ran

Runner = Callable[[str], Callable[[str], Ran]]
Say = Callable[[str], None]
PROMOTE_WAIT_S = 30
WRITE_WAIT_S = 30
REPOINT_WAIT_S = 20


@dataclass
class Promotion:
    new_primary: str
    fenced: list[str] = field(default_factory=list)
    not_fenced: list[str] = field(default_factory=list)  # old primaries SSH could not reach
    repointed: list[str] = field(default_factory=list)
    not_repointed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = 0.0  # time.monotonic() when the promotion began
    writable: float | None = None  # time.monotonic() of the first committed write on the new primary

    @property
    def rto_s(self) -> float | None:
        return None if self.writable is None else self.writable - self.started


def fence_script() -> str:
    """Stop the cluster if it runs, and leave it unable to come back as a primary."""
    return (f"if ! {layout.running()} && [ -e {layout.DATA}/standby.signal ]; then echo 'a standby, down'; exit 0; fi; "
            f"if {layout.running()}; then {layout.CTL} stop -m fast || {layout.CTL} stop -m immediate; fi; "
            f"{layout.running()} && exit 1; "
            f"touch {layout.DATA}/standby.signal && chown postgres:postgres {layout.DATA}/standby.signal && "
            f'echo "$(date -u +%FT%TZ) by haops db promote" > {layout.FENCED}')


def conninfo(inventory: Inventory, pg: PostgresCluster, primary: str, host: str) -> str:
    return (f"host={inventory.hosts[primary].address} port={pg.port} user={pg.replication_role} "
            f"passfile={layout.PGPASS} application_name={host}")


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def probe_write_sql(host: str) -> str:
    return (f"INSERT INTO {layout.LEDGER_TABLE} (run, n) VALUES ('promote-{host}', "
            "(extract(epoch FROM clock_timestamp()) * 1000)::bigint % 2000000000) ON CONFLICT DO NOTHING")


def choose_candidate(state: ClusterState, wanted: str, force: bool) -> None:
    """Refuse a promotion that would lose more than it must: `wanted` must be a standby, and none
    that haops can read may have received more WAL than it."""
    role = state.role_of(wanted)
    if role != STANDBY:
        raise UserError(f"{wanted} is {role}, not a standby; only a running standby can be promoted")
    mine = next(h for h in state.hosts if h.host == wanted).wal or 0
    ahead = [h for h in state.standbys if h.host != wanted and (h.wal or 0) > mine]
    if ahead and not force:
        names = ", ".join(f"{h.host} (+{(h.wal or 0) - mine} bytes)" for h in ahead)
        raise UserError(f"{ahead[0].host} has received more WAL than {wanted}: {names}; promote it instead, "
                        "or pass --force to lose what only it has")


def promote(inventory: Inventory, pg: PostgresCluster, wanted: str, runner: Runner, say: Say,
            force: bool = False, state: ClusterState | None = None, started: float | None = None) -> Promotion:
    state = state or read_cluster(inventory, pg.hosts, runner, pg.port)
    choose_candidate(state, wanted, force)
    result = Promotion(wanted, started=time.monotonic() if started is None else started)
    old = [h.host for h in state.hosts if h.host != wanted and h.role in (PRIMARY, DOWN, UNREACHABLE)]
    for host in old:
        fence(host, runner, say, result)
    say(f"promoting {wanted}")
    ran = runner(wanted)(layout.psql(f"SELECT pg_promote(true, {PROMOTE_WAIT_S})", pg.port))
    if ran.code != 0 or ran.stdout.strip() != "t":
        raise UserError(f"pg_promote on {wanted} failed: {(ran.stdout + ran.stderr).strip()[:300]}")
    others = [h.host for h in state.standbys if h.host != wanted]
    if pg.synchronous and not others:
        result.notes.append(f"no standby is left to confirm commits: {wanted} now commits asynchronously")
        runner(wanted)(layout.psql("ALTER SYSTEM SET synchronous_standby_names = ''", pg.port) + "; "
                       + layout.psql("SELECT pg_reload_conf()", pg.port))
    for host in others:
        repoint(inventory, pg, wanted, host, runner, say, result)
    say(f"waiting for a committed write on {wanted}")
    result.writable = wait_for_write(wanted, pg.port, runner)
    if result.writable is None:
        result.notes.append(f"{wanted} did not commit a write within {WRITE_WAIT_S}s")
    return result


def fence(host: str, runner: Runner, say: Say, result: Promotion) -> None:
    say(f"fencing {host}")
    try:
        ran = runner(host)(fence_script())
    except HostFailure as exc:
        result.not_fenced.append(host)
        result.notes.append(f"could not reach {host} to fence it ({exc}); it must not be started again before it rejoins")
        return
    if ran.code != 0:
        raise UserError(f"could not fence {host}, so nothing was promoted: {(ran.stdout + ran.stderr).strip()[:300]}")
    if "a standby, down" in ran.stdout:
        result.notes.append(f"{host} is a standby that is down: left as it is")
        return
    result.fenced.append(host)


def repoint(inventory: Inventory, pg: PostgresCluster, primary: str, host: str, runner: Runner, say: Say,
            result: Promotion) -> None:
    say(f"re-pointing {host} at {primary}")
    info = conninfo(inventory, pg, primary, host)
    script = (layout.psql(f"ALTER SYSTEM SET primary_conninfo = {sql_literal(info)}", pg.port) + " && "
              + layout.psql("SELECT pg_reload_conf()", pg.port) + " >/dev/null && "
              + streaming_from(str(inventory.hosts[primary].address), pg.port))
    try:
        ran = runner(host)(script)
    except HostFailure as exc:
        result.not_repointed.append(host)
        result.notes.append(f"{host}: {exc}")
        return
    (result.repointed if ran.code == 0 else result.not_repointed).append(host)
    if ran.code != 0:
        result.notes.append(f"{host} did not stream from {primary} within {REPOINT_WAIT_S}s")


def streaming_from(address: str, port: int) -> str:
    query = layout.psql("SELECT status || ' ' || sender_host FROM pg_stat_wal_receiver", port)
    return (f"for i in $(seq {REPOINT_WAIT_S * 10}); do [ \"$({query})\" = {shlex.quote('streaming ' + address)} ] "
            "&& exit 0; sleep 0.1; done; exit 1")


def wait_for_write(host: str, port: int, runner: Runner) -> float | None:
    deadline = time.monotonic() + WRITE_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            # a synchronous commit with no standby to confirm it waits forever: each try is bounded
            if runner(host)(f"timeout {max(1, round(left))} " + layout.psql(probe_write_sql(host), port)).code == 0:
                return time.monotonic()
        except HostFailure:
            pass
        time.sleep(0.05)
    return None
