"""The real checkers on the host: every file of the changed targets in a temporary tree there,
checked whole before anything live is touched."""

from __future__ import annotations

import base64
import secrets
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from haops.apply.plan import TargetPlan
from haops.inventory.model import Inventory
from haops.secrets import mask
from haops.targets.base import Check, RenderedFile
from haops.transport import HostFailure, run

if TYPE_CHECKING:
    from fabric import Connection

CANDIDATE_PREFIX = "/tmp/haops-candidate."
Step = Callable[[str], None]


def candidate_root() -> str:
    """A fresh name for the candidate tree; `mkdir` refuses it if it exists, as mktemp would."""
    return CANDIDATE_PREFIX + secrets.token_hex(8)


def upload_script(root: str, files: list[RenderedFile]) -> tuple[str, bytes]:
    """Shell that makes the candidate tree (mode 700) and fills it from stdin, and that stdin.
    The texts travel on stdin, never on a command line (`ps` would show their secrets)."""
    directories = sorted({str(Path(root + f.path).parent) for f in files})
    lines = ["set -e", "umask 077", f"mkdir {shlex.quote(root)}", f"mkdir -p {' '.join(shlex.quote(d) for d in directories)}"]
    data = [f.text.encode("utf-8") for f in files]
    lines += [f"head -c {len(d)} > {shlex.quote(root + f.path)}" for f, d in zip(files, data, strict=True)]
    return "\n".join(lines), b"".join(data)


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
    """Upload the candidate tree and run the real checkers there, in one command; return its path."""
    root = candidate_root()
    files = [f for p in plans for f in [*p.rendered, *p.target.scratch_files(inventory, host)]]
    checks = remote_checks(inventory, host, plans, root)
    upload, texts = upload_script(root, files)
    step("uploading candidate")  # and checking it there, in the same command
    ran = run(connection, f"( {upload} ) || {{ echo 'upload failed' >&2; exit 9; }}\n{check_script(checks)}", stdin=texts)
    if ran.code == 9:
        raise HostFailure(f"could not upload the candidate files to {root} on {host}: {ran.stderr.strip()}")
    failures = parse_check_output(ran.stdout, checks, root)
    if failures:
        secrets = [s for p in plans for f in p.rendered for s in f.secrets]
        raise HostFailure("checker refused the new config; live files untouched:\n" + mask("\n".join(failures), secrets))
    return root
