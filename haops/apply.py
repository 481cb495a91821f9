"""apply: every host's plan from its facts, then checked, installed, reloaded and proven.

Hosts run in parallel (bounded), optionally in rolling batches (--serial) that stop
once more than --max-fail hosts failed. One host's failure never stops the others in
its batch. A lock on each host keeps two applies apart.
"""

from __future__ import annotations

import difflib
import getpass
import os
import shlex
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from haops.activation import activator
from haops.execute import BACKUP_ROOT, ExecuteContext, HostReport, check_on_host, cleanup, execute_plan, new_run_id
from haops.facts import HostFacts, fact_script, parse_facts
from haops.model import Inventory
from haops.plan import UNCHANGED, HostPlan, TargetPlan, plan_host
from haops.targets import all_targets, get_target
from haops.targets.base import RenderContext, RenderedFile, Target
from haops.transport import HostFailure, SshSettings, open_connection, run
from haops.validation import check_files, mask

if TYPE_CHECKING:
    from fabric import Connection

LOCK = "/run/lock/haops-apply.lock"
HOLDER = "/run/lock/haops-apply.holder"
Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class ApplyOptions:
    check: bool = False
    diff: bool = False
    concurrency: int = 16
    serial: int = 0
    max_fail: int = 0
    trust_new_hosts: bool = False


@dataclass
class HostOutcome:
    report: HostReport
    plan: HostPlan | None = None
    diffs: list[str] | None = None


def targets_by_host(inventory: Inventory) -> dict[str, list[Target]]:
    hosts: dict[str, list[Target]] = {name: [] for name in inventory.hosts}
    for target in all_targets():
        for host in target.hosts(inventory):
            hosts[host].append(target)
    return {host: targets for host, targets in hosts.items() if targets}


def render_host(inventory: Inventory, host: str, targets: list[Target], live: dict[str, str]) -> dict[str, list[RenderedFile]]:
    context = RenderContext(live=live)
    return {t.name: t.render(inventory, host, context) for t in targets}


def daemon_targets(targets: list[Target]) -> set[str]:
    return {t.name for t in targets if activator(t.name).daemon is not None}


# --- the per-host lock ------------------------------------------------------------------------


class HostLock:
    """flock held by a process that lives as long as our SSH channel: if haops dies, the channel
    closes, `cat` sees end of input, and the lock frees itself. Stale locks cannot outlive us."""

    def __init__(self, connection: Connection, host: str) -> None:
        self.connection, self.host, self.channel = connection, host, None

    def __enter__(self) -> HostLock:
        holder = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} since {time.strftime('%H:%M:%S')}"
        inner = f'echo "$1" > {HOLDER}; echo LOCKED; cat >/dev/null'
        command = f"mkdir -p /run/lock && exec flock -n {LOCK} sh -c {shlex.quote(inner)} lock {shlex.quote(holder)}"
        transport = self.connection.client.get_transport()
        self.channel = transport.open_session()
        self.channel.settimeout(15)
        self.channel.exec_command(command)
        answer = b""
        while b"LOCKED" not in answer:
            chunk = self.channel.recv(64)
            if not chunk:
                who = run(self.connection, f"cat {HOLDER} 2>/dev/null").stdout.strip() or "another apply"
                raise HostFailure(f"locked: another apply is running on {self.host} ({who}); try again when it ends")
            answer += chunk
        return self

    def __exit__(self, *exc: object) -> None:
        if self.channel is not None:
            self.channel.shutdown_write()
            self.channel.close()


# --- one host --------------------------------------------------------------------------------------


def read_facts(connection: Connection, inventory: Inventory, host: str, targets: list[Target]) -> tuple[HostFacts, dict[str, list[RenderedFile]]]:
    first = render_host(inventory, host, targets, {})
    paths = [f.path for files in first.values() for f in files]
    text_paths = [f.path for t in targets if t.reads_live_files for f in first[t.name]]
    ran = run(connection, fact_script(paths, text_paths, [t.name for t in targets]))
    if ran.code != 0:
        raise HostFailure(f"reading facts failed: {ran.stderr.strip()}")
    facts = parse_facts(ran.stdout)
    rendered = render_host(inventory, host, targets, facts.texts) if text_paths else first
    return facts, rendered


def diffs_for(connection: Connection, plan: HostPlan) -> list[str]:
    """Unified diffs of the changed files, secrets masked on both sides."""
    diffs = []
    for target in plan.targets:
        for file_plan in target.changed:
            file = file_plan.file
            old = run(connection, f"cat {shlex.quote(file.path)} 2>/dev/null").stdout if file_plan.before else ""
            new_text, old_text = mask_pair(file, old)
            lines = difflib.unified_diff(old_text.splitlines(True), new_text.splitlines(True), f"{plan.host}:{file.path} (live)", f"{plan.host}:{file.path} (new)")
            diffs.append("".join(lines))
    return diffs


def mask_pair(file: RenderedFile, old: str) -> tuple[str, str]:
    """Mask secrets in the new text, and whatever stands at the same place in the old text.

    A secret line that changed still shows as changed, without either value."""
    new = mask(file.text, file.secrets)
    raw_by_prefix = {}
    for raw, masked in zip(file.text.splitlines(), new.splitlines()):
        if "********" in masked:
            raw_by_prefix[masked[: masked.index("********")]] = raw
    old_lines = []
    for line in old.splitlines(True):
        prefix = next((p for p in raw_by_prefix if p and line.startswith(p)), None)
        if prefix is None:
            old_lines.append(mask(line, file.secrets))
        else:
            same = line.rstrip("\n") == raw_by_prefix[prefix]
            old_lines.append(prefix + ("********" if same else "******** (old value)") + "\n")
    return new, "".join(old_lines)


def check_here(inventory: Inventory, host: str, plans: list[TargetPlan]) -> None:
    """The changed targets through their checkers on this machine: what they refuse is never uploaded.
    A checker missing here is no reason to stop; the host runs it next."""
    refusals = []
    for plan in plans:
        result = check_files(get_target(plan.target), inventory, host, plan.rendered)
        if result.status == "failed":
            refusals.append(result.output)
    if refusals:
        raise HostFailure("checker refused the new config here; nothing was uploaded:\n" + "\n".join(refusals))


def apply_host(inventory: Inventory, host: str, targets: list[Target], options: ApplyOptions,
               settings: SshSettings, run_id: str, progress: Progress) -> HostOutcome:
    started = time.monotonic()
    report = HostReport(host)
    outcome = HostOutcome(report)

    def step(text: str) -> None:
        progress(host, text)

    connection = None
    root = None
    try:
        step("connecting")
        connection = open_connection(inventory.hosts[host], settings)
        with HostLock(connection, host):
            step("reading facts")
            facts, rendered = read_facts(connection, inventory, host, targets)
            plan = plan_host(host, rendered, facts, daemon_targets(targets))
            outcome.plan = plan
            if options.diff:
                outcome.diffs = diffs_for(connection, plan)
            to_check = [t for t in plan.targets if t.changed]
            if to_check:
                step("checking here")
                check_here(inventory, host, to_check)
                root = check_on_host(connection, inventory, host, to_check, step)
            if options.check:
                report.changed = [f.file.path for t in plan.targets for f in t.changed]
                report.reloads = [f"{t.target}:{t.action}" for t in plan.activations]
            elif not plan.is_noop:
                context = ExecuteContext(inventory, host, plan.init, root or "", f"{BACKUP_ROOT}/{run_id}", settings, step)
                execute_plan(connection, plan, context, report)
    except HostFailure as exc:
        report.fail(str(exc))
    finally:
        if connection is not None:
            cleanup(connection, root)
            connection.close()
        report.seconds = time.monotonic() - started
        step("done" if report.ok else "failed")
    return outcome


# --- all hosts ---------------------------------------------------------------------------------------


def batches(hosts: list[str], serial: int) -> list[list[str]]:
    if serial <= 0:
        return [hosts]
    return [hosts[i : i + serial] for i in range(0, len(hosts), serial)]


def apply(inventory: Inventory, hosts: list[str], options: ApplyOptions, settings: SshSettings, progress: Progress) -> list[HostOutcome]:
    by_host = targets_by_host(inventory)
    run_id = new_run_id()
    outcomes: list[HostOutcome] = []
    failed = 0
    for batch in batches([h for h in hosts if h in by_host], options.serial):
        if options.serial and failed > options.max_fail:
            outcomes += [skipped(host, f"not started: more than {options.max_fail} host(s) failed in earlier batches") for host in batch]
            continue
        with ThreadPoolExecutor(max_workers=max(1, options.concurrency)) as pool:
            results = list(pool.map(lambda host: apply_host(inventory, host, by_host[host], options, settings, run_id, progress), batch))
        failed += sum(not r.report.ok for r in results)
        outcomes += results
    return outcomes


def skipped(host: str, why: str) -> HostOutcome:
    report = HostReport(host)
    report.fail(why)
    return HostOutcome(report)


def unchanged_files(outcome: HostOutcome) -> int:
    if outcome.plan is None:
        return 0
    return sum(1 for t in outcome.plan.targets for f in t.files if f.action == UNCHANGED)
