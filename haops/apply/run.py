"""apply: every host's plan from its facts, then checked, installed, reloaded and proven.

Hosts run in parallel (bounded), optionally in rolling batches (--serial) that stop
once more than --max-fail hosts failed. One host's failure never stops the others in
its batch. A lock on each host keeps two applies apart.
"""

from __future__ import annotations

import difflib
import shlex
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from haops.apply.execute import BACKUP_ROOT, ExecuteContext, HostReport, cleanup, execute_plan, new_run_id
from haops.apply.facts import HostFacts, fact_script, parse_facts
from haops.apply.lock import HostLock
from haops.inventory.model import Inventory
from haops.apply.plan import HostPlan, TargetPlan, plan_host
from haops.apply.prune import known_target, leftovers, retire_script
from haops.apply.remote_check import check_on_host
from haops.targets import targets_by_host
from haops.targets.base import RenderContext, RenderedFile, Target
from haops.apply.vips import wait_for_vips
from haops.transport import Connections, HostFailure, SshSettings, preload, run
from haops.apply.validation import check_files
from haops.secrets import mask_pair

if TYPE_CHECKING:
    from fabric import Connection

Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class ApplyOptions:
    check: bool = False
    diff: bool = False
    concurrency: int = 16
    serial: int = 0
    max_fail: int = 0
    trust_new_hosts: bool = False
    host_rollback: bool = True  # a failure rolls back every target this run made live on the host


@dataclass
class HostOutcome:
    report: HostReport
    plan: HostPlan | None = None
    diffs: list[str] | None = None


def render_host(inventory: Inventory, host: str, targets: list[Target], live: Mapping[str, str]) -> dict[Target, list[RenderedFile]]:
    context = RenderContext(live=live)
    return {t: t.render(inventory, host, context) for t in targets}


def live_paths(rendered: dict[Target, list[RenderedFile]]) -> list[str]:
    """The files whose current text rendering needs (a zone keeps its serial while unchanged)."""
    return [f.path for target, files in rendered.items() if target.reads_live_files for f in files]


def render_with_live(inventory: Inventory, host: str, targets: list[Target],
                     read_texts: Callable[[list[str]], Mapping[str, str]]) -> dict[Target, list[RenderedFile]]:
    """Render; when some target depends on the live files, read them and render again."""
    first = render_host(inventory, host, targets, {})
    paths = live_paths(first)
    return render_host(inventory, host, targets, read_texts(paths)) if paths else first


# --- one host --------------------------------------------------------------------------------------


def facts_under_lock(lock: HostLock, inventory: Inventory, host: str, targets: list[Target],
                     first: dict[Target, list[RenderedFile]]) -> tuple[HostFacts, dict[Target, list[RenderedFile]]]:
    """The facts the lock's channel read under the lock, and the files rendered against them."""
    if lock.then_code != 0:
        raise HostFailure(f"reading facts failed (exit {lock.then_code})")
    facts = parse_facts(lock.output)
    if live_paths(first):
        return facts, render_host(inventory, host, targets, facts.texts)
    return facts, first


def facts_script(first: dict[Target, list[RenderedFile]], targets: list[Target]) -> str:
    return fact_script([f.path for files in first.values() for f in files], live_paths(first), targets)


def diffs_for(connection: Connection, plan: HostPlan) -> list[str]:
    """Unified diffs of the changed files, secrets masked on both sides."""
    diffs = []
    for target in plan.targets:
        for file_plan in target.changed:
            file = file_plan.file
            old = run(connection, f"cat {shlex.quote(file.path)} 2>/dev/null").stdout if file_plan.before else ""
            new_text, old_text = mask_pair(file, old, target.target.secret_lines)
            lines = difflib.unified_diff(old_text.splitlines(True), new_text.splitlines(True), f"{plan.host}:{file.path} (live)", f"{plan.host}:{file.path} (new)")
            diffs.append("".join(lines))
    return diffs


def check_here(inventory: Inventory, host: str, plans: list[TargetPlan]) -> None:
    """The changed targets through their checkers on this machine: what they refuse is never uploaded.
    A checker missing here is no reason to stop; the host runs it next."""
    refusals = []
    for plan in plans:
        result = check_files(plan.target, inventory, host, plan.rendered)
        if result.status == "failed":
            refusals.append(result.output)
    if refusals:
        raise HostFailure("checker refused the new config here; nothing was uploaded:\n" + "\n".join(refusals))


def apply_host(inventory: Inventory, host: str, targets: list[Target], options: ApplyOptions,
               connections: Connections, run_id: str, progress: Progress) -> HostOutcome:
    started = time.monotonic()
    report = HostReport(host)
    outcome = HostOutcome(report)

    def step(text: str) -> None:
        progress(host, text)

    connection = None
    root = None
    touched = False  # anything that leaves a backup or a candidate tree to clean up
    try:
        step("connecting")
        connection = connections.get(host)  # first: every host's handshake runs while others render
        first = render_host(inventory, host, targets, {})
        step("locking, reading facts")
        with HostLock(connection, host, facts_script(first, targets)) as lock:
            facts, rendered = facts_under_lock(lock, inventory, host, targets, first)
            plan = plan_host(host, rendered, facts, inventory.hosts[host].init)
            outcome.plan = plan
            if options.diff:
                outcome.diffs = diffs_for(connection, plan)
            to_check = [t for t in plan.targets if t.changed]
            if to_check:
                step("checking here")
                check_here(inventory, host, to_check)
                touched = True
                root = check_on_host(connection, inventory, host, to_check, step)
            if options.check:
                report.changed = [f.file.path for t in plan.targets for f in t.changed]
                report.reloads = [t.label for t in plan.activations]
            elif not plan.is_noop:
                touched = True
                context = ExecuteContext(inventory, host, plan.init, root or "", f"{BACKUP_ROOT}/{run_id}", connections.settings, step)
                execute_plan(connection, plan, context, report, options.host_rollback)
            if report.ok:
                retire_leftovers(connection, inventory, host, targets, facts, plan.init, f"{BACKUP_ROOT}/{run_id}", options.check, report)
    except HostFailure as exc:
        report.fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - one host's surprise must not lose the others' results
        report.fail(f"internal error on this host, please report it: {exc!r}")
    finally:
        if connection is not None and touched:  # a no-op leaves nothing behind to clean
            cleanup(connection, root)
            if not report.ok:
                connections.drop(host)  # it may be the thing that broke
        report.seconds = time.monotonic() - started
        step("done" if report.ok else "failed")
    return outcome


def retire_leftovers(connection: Connection, inventory: Inventory, host: str, targets: list[Target], facts: HostFacts,
                     init: str, backup: str, check: bool, report: HostReport) -> None:
    """Targets this host no longer runs: those that keep steering traffic are retired now (or, with
    --check, planned); the rest are named, for `haops prune`."""
    found = [item for item in leftovers(inventory, host, targets, facts.recorded) if item.whole]
    for item in found:
        target = known_target(item.name)
        if target is None or not target.retire_with_apply:
            report.messages.append(f"left over from an earlier inventory: {item.name}; `haops prune` removes it")
        elif check:
            report.reloads.append(f"{item.name}:retire")
        else:
            done = run(connection, retire_script(item, init, backup))
            if done.code != 0:
                report.fail(f"{item.name}: could not remove what it left: {(done.stdout + done.stderr).strip()}")
            else:
                report.reloads.append(f"{item.name}:retired")


# --- all hosts ---------------------------------------------------------------------------------------


def batches(hosts: list[str], serial: int) -> list[list[str]]:
    if serial <= 0:
        return [hosts]
    return [hosts[i : i + serial] for i in range(0, len(hosts), serial)]


def apply(inventory: Inventory, hosts: list[str], options: ApplyOptions, settings: SshSettings, progress: Progress) -> list[HostOutcome]:
    """Every batch's hosts in parallel; then, unless --check, the batch's VIPs settled (vips.py)."""
    preload()
    by_host = targets_by_host(inventory)
    run_id = new_run_id()
    outcomes = [HostOutcome(HostReport(h, messages=["nothing for haops to manage on this host"])) for h in hosts if h not in by_host]
    failed: set[str] = set()
    connections = Connections(inventory.hosts, settings)
    try:
        for batch in batches([h for h in hosts if h in by_host], options.serial):
            if options.serial and len(failed) > options.max_fail:
                outcomes += [skipped(host, f"not started: more than {options.max_fail} host(s) failed in earlier batches") for host in batch]
                continue
            with ThreadPoolExecutor(max_workers=max(1, options.concurrency)) as pool:
                results = list(pool.map(lambda host: apply_host(inventory, host, by_host[host], options, connections, run_id, progress), batch))
            failed |= {r.report.host for r in results if not r.report.ok}
            if not options.check:
                wait_for_vips(inventory, results, failed, connections, progress)
                failed |= {r.report.host for r in results if not r.report.ok}
            outcomes += results
    finally:
        connections.close()
    return outcomes


def skipped(host: str, why: str) -> HostOutcome:
    report = HostReport(host)
    report.fail(why)
    return HostOutcome(report)

