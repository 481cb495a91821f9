"""Secrets never printed, logged or diffed: every masking haops does lives here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from haops.targets.base import RenderedFile

MASK = "********"
# Model fields that hold a secret, masked in `inventory show`.
SECRET_FIELDS = frozenset({"password", "auth_pass", "secret", "replication_password"})


def mask(text: str, secrets: Iterable[str]) -> str:
    """Every known secret value in `text` replaced, longest first (one secret may contain another)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask_line(line: str, secrets: tuple[str, ...], patterns: tuple[str, ...]) -> str:
    """Known secret values, and whatever stands where a secret-bearing directive keeps its value."""
    line = mask(line, secrets)
    for pattern in patterns:
        match = re.search(pattern, line)
        if match:
            line = line[: match.start(1)] + MASK + line[match.end(1):]
    return line


def mask_pair(file: RenderedFile, old: str, patterns: tuple[str, ...] = ()) -> tuple[str, str]:
    """Both sides of a diff with secrets masked. The live file may hold values haops never rendered
    (an old password), so secret-bearing directives are masked by pattern, not by value; a secret
    line that changed still shows as changed, without either value."""
    new_lines = set(file.text.splitlines())
    new = "".join(mask_line(line, file.secrets, patterns) for line in file.text.splitlines(True))
    old_masked = []
    for line in old.splitlines(True):
        masked = mask_line(line, file.secrets, patterns)
        if masked != line and line.rstrip("\n") not in new_lines:
            masked = masked.rstrip("\n") + " (old value)\n"
        old_masked.append(masked)
    return new, "".join(old_masked)
