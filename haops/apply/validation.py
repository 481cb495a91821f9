"""Prove rendered files valid with each daemon's own checker, on a temporary tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from haops.inventory.model import Inventory
from haops.secrets import mask
from haops.targets.base import Check, RenderContext, RenderedFile, Target

CHECK_TIMEOUT_S = 60


@dataclass(frozen=True)
class CheckerOutcome:
    host: str
    target: str
    status: str  # "ok", "failed" or "skipped"
    checks: tuple[str, ...]
    output: str
    seconds: float


def write_tree(root: Path, files: Iterable[RenderedFile]) -> None:
    """Lay files out under `root` at their host paths."""
    for file in files:
        destination = root / file.path.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(file.text, encoding="utf-8")
        destination.chmod(file.mode)


def run_check(check: Check, root: Path) -> tuple[bool, str]:
    env = {**os.environ, **dict(check.env)}
    try:
        done = subprocess.run(list(check.argv), capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, env=env, cwd=root)
    except subprocess.TimeoutExpired:
        return False, f"{check.label}: no answer within {CHECK_TIMEOUT_S}s"
    output = (done.stdout + done.stderr).replace(str(root), "")
    return done.returncode == 0, output.strip()


def check_files(target: Target, inventory: Inventory, host: str, files: list[RenderedFile]) -> CheckerOutcome:
    """Write `files` to a fresh temporary tree and run the target's checkers on it."""
    started = time.monotonic()
    secrets = [secret for file in files for secret in file.secrets]
    with tempfile.TemporaryDirectory(prefix="haops-check-") as tmp:
        root = Path(tmp)
        write_tree(root, [*files, *target.scratch_files(inventory, host)])
        checks = target.checks(inventory, host, root)
        missing = sorted({check.tool for check in checks if shutil.which(check.tool) is None})
        if missing:
            note = f"not installed here: {', '.join(missing)}"
            return CheckerOutcome(host, target.name, "skipped", tuple(c.label for c in checks), note, time.monotonic() - started)
        outputs, passed = [], True
        for check in checks:
            ok, output = run_check(check, root)
            passed = passed and ok
            if output:
                outputs.append(f"{check.label}: {output}")
    status = "ok" if passed else "failed"
    labels = tuple(check.label for check in checks)
    return CheckerOutcome(host, target.name, status, labels, mask("\n".join(outputs), secrets), time.monotonic() - started)


def check_host(target: Target, inventory: Inventory, host: str, context: RenderContext) -> CheckerOutcome:
    return check_files(target, inventory, host, target.render(inventory, host, context))


def validate(inventory: Inventory, targets: list[Target], hosts: Iterable[str] | None = None,
             context: RenderContext | None = None) -> list[CheckerOutcome]:
    """Render and check every (host, target) pair, in parallel; results in a stable order."""
    context = context or RenderContext()
    from haops.targets import targets_by_host

    pairs = [(t, h) for h, on_host in targets_by_host(inventory, hosts, targets).items() for t in on_host]
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 1) * 2)) as pool:
        results = list(pool.map(lambda pair: check_host(pair[0], inventory, pair[1], context), pairs))
    return sorted(results, key=lambda r: (r.host, r.target))
