"""`haops db status|promote|check|drill`: PostgreSQL streaming replication, read and failed over."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from haops.cli.common import AskBecomePass, InventoryPath, JsonFlag, load_inventory, ssh_settings
from haops.cli.output import err, out

if TYPE_CHECKING:
    from haops.inventory.model import Inventory, PostgresCluster
    from haops.targets.postgresql.check import CheckReport, DrillReport
    from haops.targets.postgresql.promote import Promotion, Runner
    from haops.targets.postgresql.status import ClusterState

app = typer.Typer(help="PostgreSQL streaming replication: status, promote, check (a write ledger), drill (crash + promote).",
                  no_args_is_help=True)
Rows = typer.Option(1000, "--rows", min=1, max=100_000, help="Acknowledged writes to make (numbered rows).")
Rate = typer.Option(100.0, "--rate", min=1.0, max=2000.0, help="Writes per second, steady.")


@contextmanager
def cluster(inventory: Path, ask_become_pass: bool) -> Iterator[tuple[Inventory, PostgresCluster, Runner]]:
    from haops.targets.postgresql import cluster_of
    from haops.transport import Connections

    inv = load_inventory(inventory)
    pg = cluster_of(inv)
    connections = Connections(inv.hosts, ssh_settings(inv, ask_become_pass=ask_become_pass))
    try:
        yield inv, pg, connections.runner
    finally:
        connections.close()


def say(text: str) -> None:
    err().print(f"[dim]{text}[/]")


def plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


@app.command()
def status(inventory: Path = InventoryPath, ask_become_pass: bool = AskBecomePass, as_json: bool = JsonFlag) -> None:
    """Each host's role, WAL positions, and each standby's lag in bytes and seconds (read only)."""
    from haops.targets.postgresql.status import read_cluster

    with cluster(inventory, ask_become_pass) as (inv, pg, runner), err().status("reading the cluster"):
        found = read_cluster(inv, pg.hosts, runner, pg.port)
    if as_json:
        out().print_json(json.dumps({"hosts": [plain(h) | {"lag_bytes": found.lag_bytes(h)} for h in found.hosts],
                                     "problems": found.problems}))
    else:
        print_status(found)
    raise typer.Exit(1 if found.problems else 0)


def print_status(found: ClusterState) -> None:
    from rich.table import Table

    lag_seconds = {p.name: p for h in found.hosts for p in h.peers}
    table = Table(title="PostgreSQL")
    for column in ("host", "role", "WAL (current/received)", "replayed", "upstream", "lag bytes", "lag s", "sync"):
        table.add_column(column)
    for h in found.hosts:
        peer = lag_seconds.get(h.host)
        table.add_row(h.host, h.role, _lsn(h.wal), _lsn(h.replayed), h.upstream or "-",
                      _text(found.lag_bytes(h)) if h.role == "standby" else "-",
                      _text(peer.lag_seconds) if peer else "-", peer.sync_state if peer else "-")
    out().print(table)
    for problem in found.problems:
        out().print(f"[bold red]problem:[/] {problem}")


def _lsn(value: int | None) -> str:
    return "-" if value is None else f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _text(value: float | int | None) -> str:
    return "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


@app.command()
def promote(host: str = typer.Argument(..., help="The standby to make the primary."), inventory: Path = InventoryPath,
            force: bool = typer.Option(False, "--force", help="Promote even if another standby has more WAL."),
            ask_become_pass: bool = AskBecomePass, as_json: bool = JsonFlag) -> None:
    """Fence the old primary (where SSH reaches it), pg_promote HOST, re-point the other standbys, prove a write."""
    from haops.errors import UserError
    from haops.targets.postgresql.promote import promote as run_promote

    with cluster(inventory, ask_become_pass) as (inv, pg, runner):
        if host not in pg.hosts:
            raise UserError(f"{host} is not a host of the postgresql cluster: {', '.join(pg.hosts)}")
        done = run_promote(inv, pg, host, runner, say, force)
    if as_json:
        out().print_json(json.dumps(plain(done) | {"rto_s": done.rto_s}))
    else:
        print_promotion(done)
    # an old primary that could not be fenced may still take writes: that is no clean failover
    raise typer.Exit(0 if done.writable is not None and not done.not_repointed and not done.not_fenced else 1)


def print_promotion(done: Promotion) -> None:
    rto = "no write accepted" if done.rto_s is None else f"{done.rto_s:.2f} s"
    out().print(f"[green]{done.new_primary} is the primary[/]; RTO (promotion start -> first committed write): {rto}")
    out().print(f"fenced: {', '.join(done.fenced) or 'none'}; re-pointed: {', '.join(done.repointed) or 'none'}"
                + (f"; NOT re-pointed: {', '.join(done.not_repointed)}" if done.not_repointed else ""))
    if done.not_fenced:
        out().print(f"[bold red]NOT fenced:[/] {', '.join(done.not_fenced)}: SSH could not reach it; make sure it is "
                    "down (power, network) before clients can reach it, or two primaries take writes")
    for note in done.notes:
        out().print(f"[yellow]note:[/] {note}")
    out().print("Update the inventory's postgresql.primary and standbys to match before the next apply.")


@app.command()
def check(inventory: Path = InventoryPath, rows: int = Rows, rate: float = Rate, ask_become_pass: bool = AskBecomePass,
          as_json: bool = JsonFlag) -> None:
    """Write a ledger of numbered rows to the primary (recorded once COMMIT returns), read them back on
    every standby: rows missing, lag p50/p99/max in ms."""
    from haops.targets.postgresql.check import check as run_check

    with cluster(inventory, ask_become_pass) as (inv, pg, runner):
        report = run_check(inv, pg, runner, rows, rate, say)
    if as_json:
        out().print_json(json.dumps(plain(report) | {"ok": report.ok}))
    else:
        print_check(report)
    raise typer.Exit(0 if report.ok else 1)


def print_check(report: CheckReport) -> None:
    from rich.table import Table

    out().print(f"{report.acknowledged} of {report.rows} rows acknowledged by {report.primary} at {report.rate:g}/s "
                f"({report.failed_writes} failed writes) in {report.seconds} s")
    table = Table(title="read back on each standby")
    for column in ("standby", "present", "missing", "lag p50 ms", "lag p99 ms", "lag max ms"):
        table.add_column(column)
    for s in report.standbys:
        table.add_row(s.host, str(s.present), _missing(s.missing) if not s.error else s.error, _text(s.lag_p50_ms),
                      _text(s.lag_p99_ms), _text(s.lag_max_ms))
    out().print(table)
    if report.not_checked:
        out().print(f"[bold red]not checked:[/] {', '.join(report.not_checked)}: not running as a standby "
                    "(see `haops db status`)")


def _missing(numbers: tuple[int, ...]) -> str:
    if not numbers:
        return "0"
    shown = ", ".join(map(str, numbers[:10]))
    return f"{len(numbers)} ({shown}{', ...' if len(numbers) > 10 else ''})"


@app.command()
def drill(inventory: Path = InventoryPath, rows: int = Rows, rate: float = Rate,
          crash_after: int = typer.Option(0, "--crash-after", min=0, help="Crash after this many acknowledged rows (default: a third)."),
          yes: bool = typer.Option(False, "--yes", help="Outside a lab, crash the primary without asking."),
          ask_become_pass: bool = AskBecomePass, as_json: bool = JsonFlag, output: Path | None = typer.Option(None, "--output", "-o", help="Also write the JSON report here.")) -> None:
    """Crash the primary (kill -9 of its postmaster) under a steady write ledger, promote the most
    advanced standby, and report RTO (crash -> a write accepted) and RPO (acknowledged rows lost)."""
    from haops.session import running_lab
    from haops.targets.postgresql.check import drill as run_drill

    inv_checked = load_inventory(inventory)
    if running_lab(inv_checked) is None and not yes:
        typer.confirm("No running lab: this kills the primary's postmaster on real hosts. Go on?", abort=True)
    with cluster(inventory, ask_become_pass) as (inv, pg, runner):
        report = run_drill(inv, pg, runner, rows, rate, crash_after or max(1, rows // 3), say)
    data = plain(report) | {"rpo_rows": report.rpo_rows, "ok": report.ok}
    if output is not None:
        output.write_text(json.dumps(data, indent=2) + "\n")
    if as_json:
        out().print_json(json.dumps(data))
    else:
        print_drill(report)
    raise typer.Exit(0 if report.ok else 1)


def print_drill(report: DrillReport) -> None:
    mode = "synchronous" if report.synchronous else "asynchronous"
    rto = "no write accepted" if report.rto_s is None else f"{report.rto_s:.2f} s"
    out().print(f"kill -9 of {report.old_primary}'s postmaster after {report.acknowledged_before_crash} acknowledged rows; "
                f"{report.new_primary} promoted ({mode})")
    out().print(f"RTO (crash -> first acknowledged write on {report.new_primary}): {rto}"
                f"  (detected by a failed write after {_text(report.detect_s)} s; promotion took {_text(report.promote_s)} s more)")
    verdict = "as synchronous replication promises" if report.synchronous and not report.lost else (
        "DATA LOST despite synchronous mode" if report.synchronous else "measured; asynchronous mode promises nothing")
    out().print(f"RPO: {report.rpo_rows} of {report.acknowledged} acknowledged rows missing on {report.new_primary} "
                f"({verdict}){': ' + _missing(report.lost) if report.lost else ''}")
    lags = ", ".join(f"{s.host} p50 {_text(s.lag_p50_ms)} ms p99 {_text(s.lag_p99_ms)} ms" for s in report.lag_before_crash)
    out().print(f"lag before the crash: {lags or 'no standby'}; failed writes during the failover: {report.failed_writes}")
    print_promotion(report.promotion)
