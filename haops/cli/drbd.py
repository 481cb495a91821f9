"""`haops drbd init|up|promote|demote|status|verify|resolve-split-brain`: the DRBD lifecycle.

Each command reads every node's facts, asks haops.targets.drbd.lifecycle for the plan (or its
refusal), prints it, and runs it unless --check. Exit codes: 0 done, 1 a host cannot run DRBD
(no module, no drbd-utils, unreachable) or a step failed, 2 refused or a mistake in the request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from haops.cli.common import AskBecomePass, InventoryPath, JsonFlag, load_inventory, ssh_settings
from haops.cli.output import err, out
from haops.errors import UserError
from haops.targets.drbd.lifecycle import StepFailed

if TYPE_CHECKING:
    from haops.inventory.model import DrbdResource, Inventory
    from haops.targets.drbd.facts import NodeFacts
    from haops.targets.drbd.lifecycle import Facts, Step
    from haops.targets.drbd.remote import Gathered
    from haops.transport import Connections

app = typer.Typer(help="The DRBD lifecycle: init, up, promote, demote, status, verify, resolve a split brain.",
                  no_args_is_help=True)
CheckFlag = typer.Option(False, "--check", help="Read the hosts and print the plan; change nothing.")
ResourceArg = typer.Argument(..., metavar="RESOURCE", help="The DRBD resource (a key of the inventory's drbd section).")
VERIFY_TIMEOUT_S = 3600.0
RESYNC_WAIT_S = 30.0


def resource_named(inv: Inventory, name: str) -> DrbdResource:
    if name not in inv.drbd:
        known = ", ".join(inv.drbd) or "none"
        raise UserError(f"no DRBD resource {name!r} in the inventory (resources: {known})")
    return inv.drbd[name]


def connect(inv: Inventory, ask_become_pass: bool) -> Connections:
    from haops.transport import Connections

    return Connections(inv.hosts, ssh_settings(inv, ask_become_pass=ask_become_pass))


def read(resource: DrbdResource, connections: Connections, inspect_disk: bool = False) -> Gathered:
    from haops.targets.drbd.remote import gather

    with err().status(f"reading {resource.name} on {', '.join(n.host for n in resource.nodes)}"):
        return gather(resource, connections, inspect_disk)


def lifecycle(inventory: Path, name: str, check: bool, plan: Callable[[DrbdResource, Facts], list[Step]],
              ask_become_pass: bool, inspect_disk: bool = False, before: Callable[[DrbdResource, Facts], None] | None = None,
              after: Callable[[DrbdResource, Connections], None] | None = None) -> None:
    """Facts -> plan (or refusal) -> printed -> run unless --check -> the resource's status after."""
    from haops.targets.drbd.lifecycle import require_ready

    inv = load_inventory(inventory)
    resource = resource_named(inv, name)
    connections = connect(inv, ask_become_pass)
    try:
        found = read(resource, connections, inspect_disk)
        require_ready(resource, found.facts, found.unreachable)
        steps = plan(resource, found.facts)
        print_plan(resource, steps, check)
        if check or not steps:
            return
        if before is not None:
            before(resource, found.facts)
        execute(resource, steps, connections)
        if after is not None:
            after(resource, connections)
        show_status(resource, connections)
    finally:
        connections.close()


def print_plan(resource: DrbdResource, steps: list[Step], check: bool) -> None:
    from haops.targets.drbd.lifecycle import describe

    if not steps:
        out().print(f"{resource.name}: nothing to do")
        return
    out().print(f"{resource.name}: {'plan (--check: nothing runs)' if check else 'plan'}")
    for line in describe(steps):
        out().print(f"  {line}", markup=False)


def execute(resource: DrbdResource, steps: list[Step], connections: Connections) -> None:
    from haops.targets.drbd.remote import run_steps

    with err().status("running") as spinner:
        results = run_steps(steps, resource, connections, lambda s: spinner.update(f"{s.host}: {s.script}"))
    for result in results:
        mark = "[green]ok[/]" if result.code == 0 else f"[bold red]failed (exit {result.code})[/]"
        err().print(f"{result.step.host}: {result.step.script} {mark}")
    last = results[-1]
    if last.code != 0:
        err().print(last.output, markup=False, highlight=False)
        raise StepFailed(f"{last.step.host}: `{last.step.script}` failed; the steps after it did not run")


def show_status(resource: DrbdResource, connections: Connections) -> None:
    from haops.targets.drbd.report import ResourceView, table

    found = read(resource, connections)
    out().print(table(ResourceView(resource, found.facts, found.unreachable)))


@app.command()
def init(name: str = ResourceArg, inventory: Path = InventoryPath,
         initial_primary: str | None = typer.Option(None, "--initial-primary", help="The node whose disk the initial "
                                                    "full sync copies to every other node. Never chosen for you."),
         force: bool = typer.Option(False, "--force", help="Overwrite a disk that holds a filesystem or fresh DRBD "
                                    "metadata. Never overrides the refusal of a second initial sync."),
         check: bool = CheckFlag, ask_become_pass: bool = AskBecomePass) -> None:
    """create-md on every node (after looking for data and metadata), up, and the initial sync from --initial-primary."""
    from haops.targets.drbd.lifecycle import init_plan

    lifecycle(inventory, name, check, lambda r, f: init_plan(r, f, initial_primary, force), ask_become_pass, inspect_disk=True)
    if initial_primary is None and not check:
        err().print(f"no initial sync started: every disk stays Inconsistent until you choose the node whose data "
                    f"wins: `haops drbd init {name} --initial-primary HOST`")


@app.command()
def up(name: str = ResourceArg, inventory: Path = InventoryPath, check: bool = CheckFlag,
       ask_become_pass: bool = AskBecomePass) -> None:
    """drbdadm up on every node where the resource is not up yet."""
    from haops.targets.drbd.lifecycle import up_plan

    lifecycle(inventory, name, check, up_plan, ask_become_pass)


@app.command()
def promote(name: str = ResourceArg, host: str = typer.Argument(..., help="The node to make Primary."),
            inventory: Path = InventoryPath, check: bool = CheckFlag, ask_become_pass: bool = AskBecomePass) -> None:
    """Make HOST Primary; refused unless its disk is UpToDate and no other node is Primary."""
    from haops.targets.drbd.lifecycle import promote_plan

    lifecycle(inventory, name, check, lambda r, f: promote_plan(r, f, host), ask_become_pass)


@app.command()
def demote(name: str = ResourceArg, host: str | None = typer.Argument(None, help="The node to make Secondary "
                                                                           "[default: every Primary]."),
           inventory: Path = InventoryPath, check: bool = CheckFlag, ask_become_pass: bool = AskBecomePass) -> None:
    """Make HOST (or every Primary) Secondary; refused while its device is open."""
    from haops.targets.drbd.lifecycle import demote_plan

    lifecycle(inventory, name, check, lambda r, f: demote_plan(r, f, host), ask_become_pass)


@app.command()
def status(names: list[str] = typer.Argument(None, help="Resources [default: all]."),
           inventory: Path = InventoryPath, ask_become_pass: bool = AskBecomePass, as_json: bool = JsonFlag) -> None:
    """Role, connection, disk, sync progress and rate, and split brain, from every node (read only)."""
    from haops.targets.drbd.report import ResourceView, table
    from haops.targets.drbd.report import as_json as report_json

    inv = load_inventory(inventory)
    resources = [resource_named(inv, n) for n in names] if names else list(inv.drbd.values())
    if not resources:
        raise UserError("the inventory has no drbd section: no resources to show")
    connections = connect(inv, ask_become_pass)
    try:
        views = []
        for resource in resources:
            found = read(resource, connections)
            views.append(ResourceView(resource, found.facts, found.unreachable))
    finally:
        connections.close()
    if as_json:
        out().print_json(json.dumps(report_json(views)))
    else:
        for view in views:
            out().print(table(view))
            for problem in view.problems:
                err().print(f"[bold red]problem:[/] {problem}", highlight=False)
    raise typer.Exit(1 if any(v.problems for v in views) else 0)


@app.command()
def verify(name: str = ResourceArg, inventory: Path = InventoryPath,
           host: str | None = typer.Option(None, "--host", help="The node that verifies against its peers "
                                           "[default: the first node]."),
           timeout: float = typer.Option(VERIFY_TIMEOUT_S, "--timeout", help="Give up waiting after this many seconds."),
           check: bool = CheckFlag, ask_become_pass: bool = AskBecomePass) -> None:
    """Online verify: compare every block with each peer, then report what is out of sync."""
    from haops.targets.drbd.lifecycle import verify_plan

    inv = load_inventory(inventory)
    resource = resource_named(inv, name)
    connections = connect(inv, ask_become_pass)
    try:
        found = read(resource, connections)
        from haops.targets.drbd.lifecycle import require_ready

        require_ready(resource, found.facts, found.unreachable)
        steps = verify_plan(resource, found.facts, host)
        print_plan(resource, steps, check)
        if check:
            return
        execute(resource, steps, connections)
        report_verify(resource, steps[0].host, connections, timeout)
    finally:
        connections.close()


def report_verify(resource: DrbdResource, source: str, connections: Connections, timeout: float) -> None:
    from haops.targets.drbd.facts import fact_script, parse_node_facts
    from haops.targets.drbd.remote import wait_for

    disk = next(n.disk for n in resource.nodes if n.host == source)
    latest: dict[str, NodeFacts] = {}

    def done() -> bool:
        latest["facts"] = parse_node_facts(source, connections.runner(source)(fact_script(resource, disk, False)).stdout, resource)
        state = latest["facts"].state
        return state is None or not any(c.verifying for c in state.connections)

    with err().status(f"verifying {resource.name} from {source}"):
        finished = wait_for(done, timeout, interval=2.0)
    facts = latest["facts"]
    if not finished:
        raise StepFailed(f"verify of {resource.name} still running after {timeout:.0f} s; see `haops drbd status`")
    found = dict(facts.kernel_log.verify_found_kib)
    bad = False
    for c in facts.state.connections if facts.state else ():
        kib = found.get((resource.name, c.peer), c.out_of_sync_kib)
        bad = bad or kib > 0
        out().print(f"{source} vs {c.peer}: {kib} KiB out of sync" + (
            " (DRBD does not resync by itself: disconnect and connect that peer to resync)" if kib else ""))
    raise typer.Exit(1 if bad else 0)


@app.command("resolve-split-brain")
def resolve_split_brain(name: str = ResourceArg, inventory: Path = InventoryPath,
                        victim: str = typer.Option(..., "--victim", help="The node whose changes since the split "
                                                   "are thrown away."),
                        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
                        check: bool = CheckFlag, ask_become_pass: bool = AskBecomePass) -> None:
    """Show what each side changed, then discard the victim's changes (the documented DRBD 9 recovery)."""
    from haops.targets.drbd.lifecycle import resolve_plan

    def confirm(resource: DrbdResource, facts: Facts) -> None:
        if not yes and not typer.confirm(f"discard {victim}'s changes to {resource.name}?", err=True):
            raise typer.Exit(1)

    def plan(resource: DrbdResource, facts: Facts) -> list[Step]:
        view, steps = resolve_plan(resource, facts, victim)
        out().print(f"split brain in {resource.name}:")
        for line in view.evidence:
            out().print(f"  {line}")
        out().print(f"  {victim} (the victim) loses its changes since the split: {view.victim_changes_kib} KiB out of sync")
        out().print(f"  {', '.join(view.survivors)} keep theirs, copied to {victim}: {view.survivor_changes_kib} KiB")
        return steps

    def reconnected(resource: DrbdResource, connections: Connections) -> None:
        wait_until_connected(resource, victim, connections)

    lifecycle(inventory, name, check, plan, ask_become_pass, before=confirm, after=reconnected)


def wait_until_connected(resource: DrbdResource, victim: str, connections: Connections) -> None:
    """After --discard-my-data the victim reconnects and becomes SyncTarget; wait (bounded) to see it."""
    from haops.targets.drbd.facts import fact_script, parse_node_facts
    from haops.targets.drbd.remote import wait_for
    from haops.targets.drbd.status import CONNECTED

    disk = next(n.disk for n in resource.nodes if n.host == victim)

    def connected() -> bool:
        state = parse_node_facts(victim, connections.runner(victim)(fact_script(resource, disk, False)).stdout, resource).state
        return state is not None and all(c.state == CONNECTED for c in state.connections)

    with err().status(f"waiting for {victim} to reconnect"):
        if not wait_for(connected, RESYNC_WAIT_S):
            err().print(f"{victim} has not reconnected to every peer within {RESYNC_WAIT_S:.0f} s; see the status below")
