"""`haops apply`: push the rendered configuration to every host and make it live."""

from __future__ import annotations

import fnmatch
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from haops.cli.common import AskBecomePass, InventoryPath, JsonFlag, load_inventory, ssh_settings
from haops.cli.output import err, out
from haops.errors import UserError
from haops.inventory.model import Inventory

if TYPE_CHECKING:
    # Imported only for the type checker: the CLI loads apply and Rich lazily, to start fast.
    from collections.abc import Sequence

    from rich.live import Live
    from rich.table import Table

    from haops.apply.run import HostOutcome


def apply(
    inventory: Path = InventoryPath,
    limit: str = typer.Option("", "--limit", "-l", help="Only these hosts: comma-separated host globs or group names (lb*,web1,dns)."),
    check: bool = typer.Option(False, "--check", help="Plan and run every checker, locally and on the hosts; change nothing."),
    diff: bool = typer.Option(False, "--diff", help="Show a unified diff of each changed file (secrets masked)."),
    serial: int = typer.Option(0, "--serial", min=0, help="Rolling batches of N hosts (0: all at once)."),
    max_fail: int = typer.Option(0, "--max-fail", min=0, help="With --serial: stop starting batches once more hosts than this failed."),
    concurrency: int = typer.Option(16, "--concurrency", min=1, max=256, help="Hosts worked on at once."),
    trust_new_hosts: bool = typer.Option(False, "--trust-new-hosts", help="Record unknown host keys (never changed ones) instead of refusing."),
    host_rollback: bool = typer.Option(True, "--host-rollback/--no-host-rollback",
                                       help="On a failure, also roll back what this run already made live on that host "
                                            "(--no-host-rollback: only the failed target)."),
    ask_become_pass: bool = AskBecomePass,
    as_json: bool = JsonFlag,
) -> None:
    """Render, check on each host, install atomically, reload gracefully, prove it, roll back on failure."""
    from haops.apply.run import ApplyOptions
    from haops.apply.run import apply as run_apply

    inv = load_inventory(inventory)
    hosts = select_hosts(inv, limit)
    if max_fail and not serial:
        err().print("note: --max-fail only counts between --serial batches; all hosts run at once here")
    options = ApplyOptions(check, diff, concurrency, serial, max_fail, trust_new_hosts, host_rollback)
    settings = ssh_settings(inv, trust_new_hosts, ask_become_pass)
    with LiveSteps(hosts, enabled=not as_json) as steps:
        outcomes = run_apply(inv, hosts, options, settings, steps.update)
    if as_json:
        out().print_json(json.dumps([outcome_json(o) for o in outcomes]))
    else:
        print_outcomes(outcomes, check, diff)
    raise typer.Exit(0 if all(o.report.ok for o in outcomes) else 1)


def select_hosts(inv: Inventory, limit: str) -> list[str]:
    """Hosts named by --limit globs or group names; a pattern that matches nothing is a mistake."""
    if not limit:
        return list(inv.hosts)
    patterns = [p.strip() for p in limit.split(",") if p.strip()]
    groups = inv.groups()

    def matches(host: str, pattern: str) -> bool:
        return fnmatch.fnmatchcase(host, pattern) or host in groups.get(pattern, ())

    idle = [p for p in patterns if not any(matches(h, p) for h in inv.hosts)]
    if idle or not patterns:
        raise UserError(f"--limit {', '.join(idle) or repr(limit)} matches no host; hosts: {', '.join(inv.hosts)}; "
                        f"groups: {', '.join(groups)}")
    return [h for h in inv.hosts if any(matches(h, p) for p in patterns)]


class LiveSteps:
    """A live view of what each host is doing."""

    def __init__(self, hosts: list[str], enabled: bool) -> None:
        self.steps = {host: "waiting" for host in hosts}
        self.enabled = enabled
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __enter__(self) -> LiveSteps:
        if self.enabled and err().is_terminal:  # a pipe or a file would show none of it
            from rich.live import Live

            self.live = Live(self.table(), console=err(), refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def update(self, host: str, step: str) -> None:
        with self.lock:
            self.steps[host] = step
            if self.live is not None:
                self.live.update(self.table())

    def table(self) -> Table:
        from rich.table import Table

        table = Table(title="haops apply", show_header=False, box=None)
        for host, step in self.steps.items():
            table.add_row(host, step)
        return table


def outcome_json(outcome: HostOutcome) -> dict[str, Any]:
    r = outcome.report
    data: dict[str, Any] = {"host": r.host, "ok": r.ok, "changed": r.changed, "reloads": r.reloads,
            "rolled_back": r.rolled_back, "messages": r.messages, "seconds": round(r.seconds, 3)}
    if outcome.diffs is not None:
        data["diffs"] = outcome.diffs
    return data


def print_outcomes(outcomes: Sequence[HostOutcome], check: bool, diff: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    if diff:
        for outcome in outcomes:
            for text in outcome.diffs or []:
                out().print(text, markup=False, highlight=False)
    title = "haops apply --check (nothing was changed)" if check else "haops apply"
    table = Table(title=title)
    for column in ("host", "changed files", "reloads", "result", "seconds"):
        table.add_column(column, justify="right" if column in ("changed files", "seconds") else "left")
    for outcome in outcomes:
        r = outcome.report
        result = Text("ok", "green") if r.ok else Text("failed, rolled back" if r.rolled_back else "failed", "bold red")
        table.add_row(r.host, str(len(r.changed)), ", ".join(r.reloads) or "-", result, f"{r.seconds:.2f}")
    out().print(table)
    for outcome in outcomes:
        if check and outcome.plan is not None:
            for target in outcome.plan.targets:
                for file_plan in target.changed:
                    out().print(f"  {outcome.report.host}: {file_plan.action} {file_plan.file.path}", markup=False)
        for message in outcome.report.messages:
            # Checker output quotes paths in brackets, which Rich would read as markup.
            err().print(Text(f"{outcome.report.host}: ", "bold red" if not outcome.report.ok else ""), Text(message), sep="")
    changed = sum(len(o.report.changed) for o in outcomes)
    reloads = sum(len(o.report.reloads) for o in outcomes)
    failed = sum(not o.report.ok for o in outcomes)
    out().print(f"{len(outcomes)} hosts: {changed} changed files, {reloads} reloads, {failed} failed")
