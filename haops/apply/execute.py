"""Carry out one host's plan over SSH: check on the host, install atomically, reload, prove, roll back.

Round trips per host: facts (1, before this), the candidate upload (SFTP), the remote
checks (1), then per target with changes: install (1) and activate + proof (1).
"""

from __future__ import annotations

import base64
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from haops.activation import activator, poll
from haops.inventory.model import Inventory
from haops.apply.plan import ACTIVATE, RELOAD, START, HostPlan, TargetPlan
from haops.targets import get_target
from haops.targets.base import Check
from haops.transport import HostFailure, Ran, open_connection, put_text, run
from haops.secrets import mask

if TYPE_CHECKING:
    from fabric import Connection

    from haops.transport import SshSettings

BACKUP_ROOT = "/var/lib/haops/backup"
KEEP_BACKUPS = 10  # runs; their names sort by time
REVERT_SECONDS = 30
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


# --- remote checks ------------------------------------------------------------------------------


def upload_candidate(connection: Connection, plans: list[TargetPlan], inventory: Inventory, host: str) -> str:
    """A temporary tree on the host holding every file (and scratch file) of the targets to check."""
    root = run(connection, "mktemp -d /tmp/haops-candidate.XXXXXX").stdout.strip()
    if not root.startswith("/tmp/haops-candidate."):
        raise HostFailure(f"could not make a temporary directory on {host}")
    files = [f for p in plans for f in [*p.rendered, *get_target(p.target).scratch_files(inventory, host)]]
    directories = sorted({str(Path(root + f.path).parent) for f in files})
    run(connection, f"mkdir -p {' '.join(shlex.quote(d) for d in directories)}")
    for file in files:
        put_text(connection, file.text, root + file.path)
    return root


def remote_checks(inventory: Inventory, host: str, plans: list[TargetPlan], root: str) -> list[Check]:
    checks = []
    for plan in plans:
        checks += [c for c in get_target(plan.target).checks(inventory, host, Path(root)) if not c.local_only]
    return checks


def check_script(checks: list[Check]) -> str:
    lines = []
    for index, check in enumerate(checks):
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in check.env)
        command = f"env {env} {shlex.join(check.argv)}" if env else shlex.join(check.argv)
        lines.append(f'out=$({command} 2>&1); echo "C {index} $? $(printf %s "$out" | base64 -w0)"')
    return "\n".join(lines + ["true"])


def parse_check_output(output: str, checks: list[Check], root: str) -> list[str]:
    """The failed checks, each with the checker's own words (temp paths shown as host paths)."""
    failures = []
    for line in output.splitlines():
        tag, _, rest = line.partition(" ")
        if tag != "C":
            continue
        index, code, *encoded = rest.split(" ")
        if code != "0":
            words = base64.b64decode(encoded[0]).decode("utf-8", "replace") if encoded else ""
            failures.append(f"{checks[int(index)].label}: {words.replace(root, '').strip()}")
    if len([line for line in output.splitlines() if line.startswith("C ")]) != len(checks):
        failures.append("the checks did not all run; the connection may have dropped")
    return failures


def check_on_host(connection: Connection, inventory: Inventory, host: str, plans: list[TargetPlan], step: Step) -> str:
    """Upload the candidate tree and run the real checkers there; return its path."""
    step("uploading candidate")
    root = upload_candidate(connection, plans, inventory, host)
    checks = remote_checks(inventory, host, plans, root)
    step(f"checking on host ({len(checks)} checks)")
    ran = run(connection, check_script(checks))
    failures = parse_check_output(ran.stdout, checks, root)
    if failures:
        secrets = [s for p in plans for f in p.rendered for s in f.secrets]
        raise HostFailure("checker refused the new config; live files untouched:\n" + mask("\n".join(failures), secrets))
    return root


# --- install, activate, prove, roll back ---------------------------------------------------------------


def install_script(plan: TargetPlan, root: str, backup: str) -> str:
    """Back up each live file, then put the new one in place atomically: temp file, fsync, rename, fsync dir.

    Missing directories are made first with the usual umask (daemons that drop privileges must
    read them); then umask 077, so a temp copy or backup of a secret file is never readable by
    others, not even for a moment."""
    directories = sorted({shlex.quote(str(Path(f.file.path).parent)) for f in plan.changed})
    lines = ["set -e", f"mkdir -p {' '.join(directories)}", "umask 077"]
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


def activate_script(plan: TargetPlan, init: str, inventory: Inventory, host: str) -> str:
    spec = activator(plan.target)
    live = plan.action == RELOAD
    proof = spec.proof(inventory, host, plan.rendered, plan.live_generation if live else None)
    return "\n".join([
        f"( {spec.activate(init, live, plan.rendered)} ) </dev/null || {{ echo 'activation command failed'; exit 3; }}",
        f"( {poll(proof)} ) || {{ echo 'the new configuration did not become live'; exit 4; }}",
    ])


def revert_pid(backup: str) -> str:
    return f"/run/haops-iptables-revert.{Path(backup).name}.pid"


def arm_iptables_revert(connection: Connection, backup: str) -> None:
    """If the new rules cut us off, the host puts the old nat table back by itself."""
    saved = shlex.quote(f"{backup}/iptables.nat")
    script = "\n".join([
        f"mkdir -p {shlex.quote(backup)} && iptables-save -t nat > {saved} || exit 1",
        f"setsid sh -c 'sleep {REVERT_SECONDS}; iptables-restore -w -T nat < {saved}' </dev/null >/dev/null 2>&1 &",
        f"echo $! > {revert_pid(backup)}",
    ])
    if run(connection, script).code != 0:
        raise HostFailure("could not arm the iptables revert; nothing changed")


def disarm_iptables_revert(connection: Connection, backup: str) -> bool:
    pid = revert_pid(backup)
    return run(connection, f'kill "$(cat {pid})" && rm -f {pid}').code == 0


def confirm_iptables(settings: SshSettings, inventory: Inventory, host: str, backup: str) -> bool:
    """A brand-new SSH connection proves the rules did not cut SSH; then the revert is disarmed."""
    try:
        fresh = open_connection(inventory.hosts[host], settings)
    except HostFailure:
        return False
    try:
        return disarm_iptables_revert(fresh, backup)
    finally:
        fresh.close()


def roll_back(connection: Connection, plan: TargetPlan, init: str, backup: str) -> Ran:
    """Old files back, then the state before: reloaded if it ran, stopped if it did not."""
    spec = activator(plan.target)
    restore = restore_script(plan, backup)
    if spec.daemon is None:
        return run(connection, f"{restore}\n( {spec.activate(init, True, plan.rendered)} ) </dev/null")
    if plan.live_generation is None:
        return run(connection, f"{restore}\n( {spec.daemon.stop_command(init)} ) </dev/null; true")
    return run(connection, f"{restore}\n( {spec.activate(init, True, plan.rendered)} ) </dev/null\n{poll(spec.probe())}")


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
            report.reloads.append(f"{plan.target}:{plan.action}")
        return True
    context.step(f"{plan.target}: rolling back")
    report.fail(f"{plan.target}: {plan.action} failed ({failure}); {rolled_back(connection, plan, context)}")
    report.rolled_back = True
    return False


def install_and_activate(connection: Connection, plan: TargetPlan, context: ExecuteContext, report: HostReport) -> str | None:
    """None when the target is live with its new files; else why not."""
    if plan.changed:
        context.step(f"{plan.target}: installing {len(plan.changed)} file(s)")
        installed = run(connection, install_script(plan, context.root, context.backup))
        if installed.code != 0:
            return f"install: {(installed.stderr or installed.stdout).strip()}"
        report.changed += [f.file.path for f in plan.changed]
    if plan.target == "iptables":
        arm_iptables_revert(connection, context.backup)
    context.step(f"{plan.target}: {plan.action}")
    activated = run(connection, activate_script(plan, context.init, context.inventory, context.host))
    if plan.target == "iptables":
        if activated.code != 0:
            disarm_iptables_revert(connection, context.backup)
        elif not confirm_iptables(context.settings, context.inventory, context.host, context.backup):
            return "a new SSH connection failed after the rules changed; the host reverts them by itself"
    if activated.code != 0:
        return (activated.stdout + activated.stderr).strip()
    return None


@dataclass(frozen=True)
class ExecuteContext:
    inventory: Inventory
    host: str
    init: str
    root: str
    backup: str
    settings: SshSettings
    step: Step


def execute_plan(connection: Connection, plan: HostPlan, context: ExecuteContext, report: HostReport) -> None:
    """Targets go live in order; after a failure the later ones on this host are left untouched."""
    pending = list(plan.activations)
    while pending:
        target_plan = pending.pop(0)
        if not make_live(connection, target_plan, context, report):
            if pending:
                report.messages.append(f"not touched after the failure: {', '.join(t.target for t in pending)}")
            return


def cleanup(connection: Connection, root: str | None) -> None:
    """Remove the candidate tree, and all but the newest backups (they may hold old secrets)."""
    remove = f"rm -rf {shlex.quote(root)}; " if root and root.startswith("/tmp/haops-candidate.") else ""
    prune = f"ls -1d {BACKUP_ROOT}/*/ 2>/dev/null | sort | head -n -{KEEP_BACKUPS} | xargs -r rm -rf"
    try:
        run(connection, remove + prune)
    except HostFailure:
        pass


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"

