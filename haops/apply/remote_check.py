"""The real checkers on the host: every file of the changed targets in a temporary tree there,
checked whole before anything live is touched."""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from haops.apply.plan import TargetPlan
from haops.inventory.model import Inventory
from haops.secrets import mask
from haops.targets.base import Check
from haops.transport import HostFailure, put_text, run

if TYPE_CHECKING:
    from fabric import Connection

CANDIDATE_PREFIX = "/tmp/haops-candidate."
Step = Callable[[str], None]


def upload_candidate(connection: Connection, plans: list[TargetPlan], inventory: Inventory, host: str) -> str:
    """A temporary tree on the host holding every file (and scratch file) of the targets to check."""
    root = run(connection, f"mktemp -d {CANDIDATE_PREFIX}XXXXXX").stdout.strip()
    if not root.startswith(CANDIDATE_PREFIX):
        raise HostFailure(f"could not make a temporary directory on {host}")
    files = [f for p in plans for f in [*p.rendered, *p.target.scratch_files(inventory, host)]]
    directories = sorted({str(Path(root + f.path).parent) for f in files})
    run(connection, f"mkdir -p {' '.join(shlex.quote(d) for d in directories)}")
    for file in files:
        put_text(connection, file.text, root + file.path)
    return root


def remote_checks(inventory: Inventory, host: str, plans: list[TargetPlan], root: str) -> list[Check]:
    checks = []
    for plan in plans:
        checks += [c for c in plan.target.checks(inventory, host, Path(root)) if not c.local_only]
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
            words = base64.b64decode(encoded[0]).decode("utf-8", "replace").replace(root, "").strip() if encoded else ""
            label = checks[int(index)].label
            failures.append(f"{label}: {words}" if words else f"{label} (exit {code}, no output)")
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
