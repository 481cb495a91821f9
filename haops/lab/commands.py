"""Running the machine's tools: argv lists only, failures as clean errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from haops.errors import UserError

# tool -> Debian package that provides it
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "tc": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
}


class LabError(UserError):
    """The machine refused a lab operation: no root, a missing tool, a failed command."""


def require_root_and_tools() -> None:
    """Fail early, naming what is missing, rather than half-way through `up`."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates namespaces, interfaces and mounts)")
    missing = [f"{tool} (Debian package {package})" for tool, package in REQUIRED_TOOLS.items()
               if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}")]
    if missing:
        raise LabError("the lab needs these tools: " + ", ".join(missing))


def run(argv: Sequence[str], stdin: str | None = None, check: bool = True,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `argv`; on failure raise LabError quoting the command and its stderr."""
    try:
        result = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                                timeout=timeout, check=False)
    except FileNotFoundError:
        raise LabError(f"command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"command timed out after {timeout} s: {' '.join(argv)}") from None
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise LabError(f"command failed ({result.returncode}): {' '.join(argv)}\n{detail}")
    return result


def ip_batch(lines: Sequence[str], netns: str | None = None, force: bool = False) -> None:
    """Run many `ip` commands in one process (`ip -batch -`), optionally inside `netns`."""
    if not lines:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + (["-force"] if force else []) + ["-batch", "-"]
    run(argv, stdin="\n".join(lines) + "\n", check=not force)
