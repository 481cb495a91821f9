"""`haops sync`: one source directory to many hosts with rsync, in parallel, proven converged."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from haops.cli.common import AskBecomePass, InventoryPath, JsonFlag, load_inventory, ssh_settings
from haops.cli.output import err, out
from haops.errors import UserError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from haops.inventory.model import Inventory
    from haops.replication.fanout import DestinationResult, PassReport, SyncContext
    from haops.replication.rsync import RsyncOptions
    from haops.replication.watch import Schedule

SHOWN_PER_HOST = 10
PHASES = {"manifest": "reading its manifest", "sync": "rsync", "verify": "checking the manifest",
          "done": "[green]converged[/]", "failed": "[bold red]failed[/]"}


def sync(
    source: str = typer.Argument(..., metavar="SOURCE_HOST:PATH", help="The directory whose contents are sent."),
    destination: str = typer.Argument(..., metavar="DEST_GROUP_OR_HOST:PATH",
                                      help="A group, a host, or a comma list; the source is left out of a group."),
    inventory: Path = InventoryPath,
    exclude: list[str] = typer.Option([], "--exclude", "-x", help="An rsync exclude pattern (repeatable)."),
    delete: bool = typer.Option(False, "--delete", help="Remove files the source does not have, after a preview."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --delete: do not ask after the preview."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would change; change nothing."),
    numeric_ids: bool = typer.Option(False, "--numeric-ids", help="Keep numeric uid/gid instead of mapping owners by name."),
    every: float | None = typer.Option(None, "--every", help="Continuous: a pass every SECONDS."),
    watch: bool = typer.Option(False, "--watch", help="Continuous: a pass after changes on the source (inotifywait)."),
    count: int | None = typer.Option(None, "--count", help="Continuous: stop after this many passes."),
    for_s: float | None = typer.Option(None, "--for", help="Continuous: stop after this many seconds."),
    debounce: float = typer.Option(1.0, "--debounce", help="--watch: quiet seconds that end a burst of changes."),
    max_wait: float = typer.Option(10.0, "--max-wait", help="--watch: a pass starts at most this long after a change."),
    bwlimit: int | None = typer.Option(None, "--bwlimit", help="Cap each destination's transfer at KiB per second."),
    io_timeout: int = typer.Option(30, "--io-timeout", help="rsync gives up on a destination silent this long."),
    trust_new_hosts: bool = typer.Option(False, "--trust-new-hosts", help="Record unknown host keys (never changed ones)."),
    ask_become_pass: bool = AskBecomePass,
    as_json: bool = JsonFlag,
) -> None:
    """Sync a directory from one host to many in parallel, deltas only, then prove each copy equal."""
    from haops.replication.rsync import RsyncOptions
    from haops.replication.watch import Schedule

    schedule = checked_schedule(Schedule(every, watch, count, for_s, debounce, max_wait), delete, yes, dry_run)
    if bwlimit is not None and bwlimit < 1:
        raise UserError("--bwlimit must be at least 1 KiB/s")
    options = RsyncOptions(tuple(exclude), delete, None, numeric_ids, dry_run, checked_timeout(io_timeout),
                           bwlimit_kib=bwlimit)
    ctx = context(inventory, source, destination, options, trust_new_hosts, ask_become_pass)
    try:
        ok = run_sync(ctx, schedule, yes, as_json)
    finally:
        ctx.connections.close()
    raise typer.Exit(0 if ok else 1)


def checked_timeout(seconds: int) -> int:
    if not 1 <= seconds <= 3600:
        raise UserError(f"--io-timeout must be 1..3600 seconds, got {seconds}")
    return seconds


def checked_schedule(schedule: Schedule, delete: bool, yes: bool, dry_run: bool) -> Schedule:
    continuous = schedule.watch or schedule.every_s is not None
    if schedule.watch and schedule.every_s is not None:
        raise UserError("choose one continuous mode: --every SECONDS or --watch")
    if not continuous and (schedule.count is not None or schedule.for_s is not None):
        raise UserError("--count and --for bound a continuous run; add --every SECONDS or --watch")
    if schedule.every_s is not None and not 0.5 <= schedule.every_s <= 86400:
        raise UserError(f"--every must be 0.5..86400 seconds, got {schedule.every_s}")
    if schedule.count is not None and schedule.count < 1:
        raise UserError("--count must be at least 1")
    if schedule.for_s is not None and schedule.for_s <= 0:
        raise UserError("--for must be a positive number of seconds")
    if not 0.05 <= schedule.debounce_s <= 60 or not schedule.debounce_s <= schedule.max_wait_s <= 600:
        raise UserError("--debounce must be 0.05..60 s and --max-wait between --debounce and 600 s")
    if continuous and delete and not yes:
        raise UserError("continuous --delete cannot stop to ask before each pass; add --yes")
    if continuous and dry_run:
        raise UserError("--dry-run is one pass; leave out --every/--watch")
    return schedule


def context(inventory: Path, source: str, destination: str, options: RsyncOptions, trust_new_hosts: bool,
            ask_become_pass: bool = False) -> SyncContext:
    from haops.replication.agent import load_keys
    from haops.replication.fanout import SyncContext
    from haops.replication.request import resolve
    from haops.transport import Connections

    inv = load_inventory(inventory)
    request = resolve(inv, source, destination, options)
    settings = ssh_settings(inv, trust_new_hosts, ask_become_pass)
    keys = load_keys(key_files(inv, request.destinations, settings.identity))
    return SyncContext(inv, request, Connections(inv.hosts, settings), settings, keys)


def key_files(inv: Inventory, destinations: tuple[str, ...], identity: Path | None) -> list[Path]:
    """The key haops itself would use for each destination: its own ssh_key, else the run's."""
    found: list[Path] = []
    for dest in destinations:
        own = inv.hosts[dest].ssh_key
        key = Path(own).expanduser() if own else identity
        if key is not None and key not in found:
            found.append(key)
    return found


def run_sync(ctx: SyncContext, schedule: Schedule, yes: bool, as_json: bool) -> bool:
    from haops.replication.fanout import sync_pass
    from haops.replication.watch import run_continuous
    from haops.transport import HostFailure

    try:
        if schedule.watch or schedule.every_s is not None:
            reports = run_continuous(ctx, schedule, lambda report: show(report, as_json, continuous=True),
                                     with_progress)
            return all(r.ok for r in reports)
        deletable = None
        if ctx.request.options.delete and not ctx.request.options.dry_run:
            deletable = confirmed_deletions(ctx, yes, as_json)
        with progress_for(ctx):
            report = sync_pass(ctx, deletable=deletable)  # only what the preview listed
        show(report, as_json, continuous=False)
        return report.ok
    except HostFailure as exc:
        err().print(f"[bold red]failed:[/] {exc}")
        return False


def with_progress(ctx: SyncContext) -> PassReport:
    from haops.replication.fanout import sync_pass

    with progress_for(ctx):
        return sync_pass(ctx)


def confirmed_deletions(ctx: SyncContext, yes: bool, as_json: bool) -> dict[str, tuple[str, ...]]:
    """The dry-run preview of --delete; the real run may remove only what it listed."""
    from haops.replication.fanout import preview_deletions

    with progress_for(ctx, "preview"):
        preview = preview_deletions(ctx)
    console = err() if as_json else out()
    total = 0
    for result in preview.results:
        if result.error:
            console.print(f"[bold red]{result.host}[/]: preview failed, nothing will be deleted there: {result.error}")
            continue
        total += len(result.deletions)
        console.print(f"[bold]{result.host}[/]: --delete would remove {len(result.deletions)} "
                      f"path{'' if len(result.deletions) == 1 else 's'} under {ctx.request.dest_path}")
        for path in result.deletions:
            console.print(f"  - {path}", markup=False)
    if total and not yes:
        if not sys.stdin.isatty():
            raise UserError(f"--delete would remove {total} paths (listed above); run again with --yes to remove them")
        if not typer.confirm(f"Remove these {total} paths?", default=False):
            raise UserError("nothing changed: the deletions were not confirmed")
    return {r.host: tuple(r.deletions) for r in preview.results if not r.error}


class ProgressView:
    """One bar per destination: its phase, and rsync's own percent done."""

    def __init__(self, progress: Progress, hosts: tuple[str, ...], title: str) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {h: progress.add_task(f"{title} {h}", total=100, phase="waiting")
                                         for h in hosts}

    def event(self, host: str, phase: str, percent: int | None) -> None:
        task = self.tasks.get(host)
        if task is None:
            return
        fields: dict[str, object] = {"phase": PHASES.get(phase, phase)}
        if percent is not None:
            fields["completed"] = percent
        if phase == "done":
            fields["completed"] = 100
        self.progress.update(task, **fields)  # type: ignore[arg-type]


class progress_for:
    """Rich progress on stderr for the passes run inside it."""

    def __init__(self, ctx: SyncContext, title: str = "sync") -> None:
        self.ctx, self.title = ctx, title

    def __enter__(self) -> ProgressView:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[phase]}"), console=err(), transient=not err().is_terminal)
        view = ProgressView(self.progress, self.ctx.request.destinations, self.title)
        self.previous = self.ctx.on_event
        self.ctx.on_event = view.event
        self.progress.start()
        return view

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        self.ctx.on_event = self.previous


def show(report: PassReport, as_json: bool, continuous: bool) -> None:
    from haops.replication.fanout import as_json as report_json

    if as_json:
        if continuous:
            print(json.dumps(report_json(report)), flush=True)
        else:
            out().print_json(json.dumps(report_json(report)))
        return
    out().print(report_table(report))
    for result in report.results:
        details(result)
    verdict = "[green]every destination converged[/]" if report.ok else "[bold red]not converged[/]"
    if report.dry_run:
        verdict = "dry run: nothing changed" if report.ok else "[bold red]dry run failed[/]"
    out().print(f"{report.source}:{report.source_path} ({report.source_files} entries, {size(report.source_size)}) "
                f"-> {len(report.results)} destinations in {report.seconds:.1f} s: {verdict}")


def report_table(report: PassReport) -> Table:
    from rich.table import Table

    table = Table(title=f"sync {report.started}" + (" (dry run)" if report.dry_run else ""))
    for column in ("destination", "result", "sent", "received", "total size", "sent/total", "changed",
                   "differed before", "fixed", "left", "time"):
        table.add_column(column, justify="left" if column in ("destination", "result") else "right")
    for r in report.results:
        stats = r.stats
        state = "[green]converged[/]" if r.converged else "[bold red]FAILED[/]" if not r.ok else (
            "dry run" if report.dry_run else "[bold red]NOT CONVERGED[/]")
        ratio = f"{100 * stats.bytes_sent / stats.total_size:.2f} %" if stats and stats.total_size else "-"
        before = "-" if r.before is None else str(len([d for d in r.before if r.delete or d.what != "extra"]))
        table.add_row(r.host, state, size(stats.bytes_sent) if stats else "-", size(stats.bytes_received) if stats else "-",
                      size(stats.total_size) if stats else "-", ratio, str(len(r.changes)), before,
                      str(len(r.fixed)) if r.after is not None else "-",
                      "-" if r.left is None else str(len(r.left)), f"{r.seconds:.1f} s")
    return table


def details(result: DestinationResult) -> None:
    if result.error:
        out().print(f"[bold red]{result.host}[/]: {result.error}")
    for label, items in (("left", result.left or []), ("fixed", result.fixed)):
        for d in items[:SHOWN_PER_HOST]:
            out().print(f"{result.host} {label}: {d}", markup=False)
        if len(items) > SHOWN_PER_HOST:
            out().print(f"{result.host} {label}: ... and {len(items) - SHOWN_PER_HOST} more (--json lists all)")
    for path in result.deletions:
        out().print(f"{result.host} deleted: {path}", markup=False)
    extra = [d.path for d in result.after or [] if d.what == "extra" and not result.delete]
    if extra:
        out().print(f"{result.host}: {len(extra)} paths only on the destination, kept (no --delete)")


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
