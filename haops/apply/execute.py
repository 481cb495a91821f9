"""Carry out one host's plan over SSH: check on the host, install atomically, reload, prove, roll back.

Commands per host: the lock with the facts read under it (1, before this), the candidate
upload with its remote checks (1, remote_check), then per target with changes: install (1)
and activate + proof (1); last, the cleanup of the candidate and old backups (1). A no-op
stops after the first.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from haops.apply.facts import files_record, proven_record
from haops.apply.plan import ACTIVATE, RELOAD, START, HostPlan, TargetPlan, files_digest
from haops.apply.remote_check import CANDIDATE_PREFIX
from haops.inventory.model import Inventory
from haops.targets import all_targets
from haops.targets.base import NOTICE, REFUSAL_MARK, Refusal, RenderedFile
from haops.targets.daemon import Daemon
from haops.transport import HostFailure, Ran, open_connection, run

if TYPE_CHECKING:
    from fabric import Connection

    from haops.transport import SshSettings

BACKUP_ROOT = "/var/lib/haops/backup"
KEEP_BACKUPS = 10  # runs; their names sort by time
PROOF_SECONDS = 15
HANDOVER_WAIT_S = 5  # for a listener another daemon on the host is giving up
POLL_S = 0.05  # between proof attempts: a reload is usually proven within a few of them
# Shell: $now in centiseconds since boot, read by a builtin (no `date` process per try, and a
# bound to the hundredth of a second, not to the whole second `date +%s` gives)
NOW_CS = "read up _ < /proc/uptime; now=${up%.*}${up#*.}"
Step = Callable[[str], None]


@dataclass
class HostReport:
    host: str
    ok: bool = True
    changed: list[str] = field(default_factory=list)
    reloads: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    rolled_back: bool = False
    seconds: float = 0.0

    def fail(self, message: str) -> None:
        self.ok = False
        self.messages.append(message)


# --- install, activate, prove, roll back ---------------------------------------------------------------


def install_script(plan: TargetPlan, root: str, backup: str) -> str:
    """Back up each live file, then put the new one in place atomically: temp file, fsync, rename, fsync dir.

    Missing directories are made first with the usual umask (daemons that drop privileges must
    read them); then umask 077, so a temp copy or backup of a secret file is never readable by
    others, not even for a moment."""
    directories = sorted({shlex.quote(str(Path(f.file.path).parent)) for f in plan.changed})
    lines = ["set -e", f"mkdir -p {' '.join(directories)}", mark_unproven(plan), "umask 077"]
    for file_plan in plan.changed:
        file = file_plan.file
        path, directory = shlex.quote(file.path), shlex.quote(str(Path(file.path).parent))
        temp = shlex.quote(f"{Path(file.path).parent}/.{Path(file.path).name}.haops-new")
        saved = shlex.quote(backup + file.path)
        lines += [
            f"if [ -f {path} ]; then mkdir -p \"$(dirname {saved})\"; cp -p {path} {saved}; fi",
            f"install -m {file.mode:o} -o root -g root {shlex.quote(root + file.path)} {temp}",
            f"sync {temp}",
            f"mv -f {temp} {path}",
            f"sync {directory}",
        ]
    return "\n".join(lines)


def restore_script(plan: TargetPlan, backup: str) -> str:
    """Put every changed file back as it was (or remove it if it is new); stop at the first error."""
    lines = ["set -e"]
    for file_plan in plan.changed:
        path = shlex.quote(file_plan.file.path)
        saved = shlex.quote(backup + file_plan.file.path)
        temp = shlex.quote(f"{Path(file_plan.file.path).parent}/.{Path(file_plan.file.path).name}.haops-old")
        if file_plan.before is None:
            lines.append(f"rm -f {path}")
        else:
            lines.append(f"cp -p {saved} {temp}")
            lines.append(f"mv -f {temp} {path}")
    return "\n".join(lines)


def poll(condition: str, refused: str | None = None, seconds: int = PROOF_SECONDS) -> str:
    """Shell: retry `condition` every POLL_S until it holds (exit 0), `refused` holds (exit 5), or
    `seconds` of wall time pass (exit 1)."""
    give_up = f"if {refused}; then exit 5; fi; " if refused else ""
    return (f"{NOW_CS}; deadline=$((now + {seconds * 100})); "
            f"until {condition}; do {give_up}{NOW_CS}; [ \"$now\" -ge \"$deadline\" ] && exit 1; sleep {POLL_S}; done")


def take_mark(refusal: Refusal) -> str:
    """Shell: where the daemon's own account stands, for `refusal.test` to read after activating."""
    return f"{REFUSAL_MARK}=$( {{ {refusal.mark}; }} 2>/dev/null )"


def handover_wait(daemon: Daemon, listeners: list[tuple[str, int]], daemons: list[str]) -> list[str]:
    """Shell: a bounded wait until no other of the host's daemons (programs named in `daemons`)
    holds an address and port this one is to listen on. A service moved from one balancer to
    another on this host is still held for a moment by the one that gave it up (its old workers
    close their listeners as they leave); binding it then fails. A stranger on the port is not
    waited for, and past the wait the activation goes ahead: its refusal says why."""
    if not listeners:
        return []
    tests = " && ".join(daemon.port_not_being_handed_over(port, address, daemons) for address, port in listeners)
    return [f"( {poll(tests, seconds=HANDOVER_WAIT_S)} ) || true"]


def daemon_programs() -> list[str]:
    """The process names of every daemon haops runs: the ones a handover can come from."""
    return sorted({target.daemon.process for target in all_targets() if target.daemon})


def activate_script(plan: TargetPlan, init: str, inventory: Inventory, host: str) -> str:
    target = plan.target
    live = plan.action == RELOAD
    proof = target.proof(inventory, host, plan.rendered, plan.live_generation if live else None)
    refusal = target.refused()
    return "\n".join([
        *(handover_wait(target.daemon, target.listeners(inventory, host), daemon_programs()) if target.daemon else []),
        *([take_mark(refusal)] if refusal else []),
        f"( {target.activate(init, live, plan.rendered)} ) </dev/null || {{ echo 'activation command failed'; exit 3; }}",
        f"( {poll(proof, refusal.test if refusal else None)} ); proven=$?",
        "[ $proven = 5 ] && { echo 'the daemon refused the new configuration'; exit 5; }",
        f"[ $proven = 0 ] || {{ echo 'the new configuration did not become live within {PROOF_SECONDS}s'; exit 4; }}",
        record_proven(plan),
    ])


def write_record(target: str, digest: str) -> str:
    """Shell: the host's record of what is live for `target`, replaced atomically."""
    record = shlex.quote(proven_record(target))
    return f"mkdir -p {shlex.quote(str(Path(proven_record(target)).parent))} && echo {digest} > {record}.new && mv -f {record}.new {record}"


def mark_unproven(plan: TargetPlan) -> str:
    """Before new files go in: a run that dies before proving them leaves this mark, so the next
    run activates them even though they already match."""
    return write_record(plan.target.name, "unproven")


def record_proven(plan: TargetPlan) -> str:
    """Shell: remember what is now live, so an activation lost to a crash is made up next run.
    The config is live whether or not the record can be written, so that is only a warning."""
    return (f"{{ {write_record(plan.target.name, files_digest(plan.rendered))} && {write_files_record(plan)}; }} "
            "|| echo 'warning: could not record the proven state' >&2")


def write_files_record(plan: TargetPlan) -> str:
    """Shell: the paths this target made live, so `haops prune` knows them once the inventory forgets them."""
    record = shlex.quote(files_record(plan.target.name))
    paths = "".join(f"{f.path}\n" for f in plan.rendered)
    return f"printf %s {shlex.quote(paths)} > {record}.new && mv -f {record}.new {record}"


def restore_record(plan: TargetPlan) -> str:
    """Shell: after a rollback the record says again what it said before this run."""
    if plan.proven_before is None:
        return f"rm -f {shlex.quote(proven_record(plan.target.name))} {shlex.quote(files_record(plan.target.name))}"
    return write_record(plan.target.name, plan.proven_before)


def roll_back(connection: Connection, plan: TargetPlan, init: str, backup: str) -> Ran:
    """Old files back, then the state before: reloaded if it ran, stopped if it did not."""
    target = plan.target
    restore = f"{restore_script(plan, backup)}\n{restore_record(plan)}"
    stop = target.stop(init)
    if stop is None:
        earlier = files_there_before(plan)
        reactivate = target.activate(init, True, earlier) if earlier else "true"
        return run(connection, f"{restore}\n( {reactivate} ) </dev/null")
    if plan.live_generation is None:
        return run(connection, f"{restore}\n( {stop} ) </dev/null; true")
    return run(connection, f"{restore}\n( {target.activate(init, True, plan.rendered)} ) </dev/null\n{poll(target.probe())}")


def files_there_before(plan: TargetPlan) -> list[RenderedFile]:
    """The target's files that existed before this run: a rollback makes only those live again
    (a file the run added is gone again, and activating it would fail)."""
    added = {f.file.path for f in plan.changed if f.before is None}
    return [f for f in plan.rendered if f.path not in added]


def rolled_back(connection: Connection, plan: TargetPlan, context: ExecuteContext) -> str:
    """Roll back and say how that went, even when the connection is the thing that failed."""
    try:
        undone = roll_back(connection, plan, context.init, context.backup)
    except HostFailure as exc:
        return f"rollback could not run ({exc}): STATE UNKNOWN, check {context.host} by hand"
    if undone.code != 0:
        return f"rollback ALSO FAILED: {(undone.stdout + undone.stderr).strip()}"
    return "old config restored" + (" and live again" if plan.live_generation is not None else ", daemon left stopped as before")


def make_live(connection: Connection, plan: TargetPlan, context: ExecuteContext, report: HostReport) -> bool:
    """Install and activate one target; on any failure restore the old files and report. True when ok."""
    try:
        failure = install_and_activate(connection, plan, context, report)
    except HostFailure as exc:
        failure = str(exc)
    if failure is None:
        if plan.action in (RELOAD, START, ACTIVATE):
            report.reloads.append(plan.label)
        return True
    context.step(f"{plan.target.name}: rolling back")
    report.fail(f"{plan.target.name}: {plan.action} failed ({failure}); {rolled_back(connection, plan, context)}")
    report.rolled_back = True
    return False


def install_and_activate(connection: Connection, plan: TargetPlan, context: ExecuteContext, report: HostReport) -> str | None:
    """None when the target is live with its new files; else why not."""
    if plan.changed:
        context.step(f"{plan.target.name}: installing {len(plan.changed)} file(s)")
        installed = run(connection, install_script(plan, context.root, context.backup))
        if installed.code != 0:
            return f"install: {(installed.stderr or installed.stdout).strip()}"
        report.changed += [f.file.path for f in plan.changed]
    hook = plan.target.hook
    if hook is not None:
        hook.before(connection, context.backup)
    context.step(f"{plan.target.name}: {plan.action}")
    activated = run(connection, activate_script(plan, context.init, context.inventory, context.host))
    if hook is not None:
        reconnect = lambda: open_connection(context.inventory.hosts[context.host], context.settings)  # noqa: E731
        refusal = hook.after(connection, context.backup, activated.code == 0, reconnect)
        if refusal is not None:
            return refusal
    if activated.code != 0:
        return (activated.stdout + activated.stderr).strip()
    report.messages += notices(plan.target.name, activated.stdout)
    return None


def notices(target: str, output: str) -> list[str]:
    """What an activation said the host could not make live, for the report."""
    return [f"{target}: {line.removeprefix(NOTICE).strip()}" for line in output.splitlines() if line.startswith(NOTICE)]


@dataclass(frozen=True)
class ExecuteContext:
    inventory: Inventory
    host: str
    init: str
    root: str
    backup: str
    settings: SshSettings
    step: Step


def execute_plan(connection: Connection, plan: HostPlan, context: ExecuteContext, report: HostReport,
                 whole_host: bool = True) -> None:
    """Targets go live in order. After a failure the later ones on this host are left untouched,
    and with `whole_host` those this run already made live are rolled back too, newest first,
    so the host is never left half new."""
    done: list[TargetPlan] = []
    pending = list(plan.activations)
    while pending:
        target_plan = pending.pop(0)
        if make_live(connection, target_plan, context, report):
            done.append(target_plan)
            continue
        if pending:
            report.messages.append(f"not touched after the failure: {', '.join(t.target.name for t in pending)}")
        if whole_host:
            roll_back_host(connection, done, context, report)
        elif done:
            report.messages.append(f"left live (--no-host-rollback): {', '.join(t.target.name for t in done)}")
        return


def roll_back_host(connection: Connection, done: list[TargetPlan], context: ExecuteContext, report: HostReport) -> None:
    for target_plan in reversed(done):
        context.step(f"{target_plan.target.name}: rolling back with the host")
        report.messages.append(f"{target_plan.target.name}: rolled back with the host: {rolled_back(connection, target_plan, context)}")
        report.reloads = [r for r in report.reloads if not r.startswith(f"{target_plan.target.name}:")]


def cleanup(connection: Connection, root: str | None) -> None:
    """Remove the candidate tree, and all but the newest backups (they may hold old secrets)."""
    remove = f"rm -rf {shlex.quote(root)}; " if root and root.startswith(CANDIDATE_PREFIX) else ""
    prune = f"ls -1d {BACKUP_ROOT}/*/ 2>/dev/null | sort | head -n -{KEEP_BACKUPS} | xargs -r rm -rf"
    try:
        run(connection, remove + prune)
    except HostFailure:
        pass


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"

