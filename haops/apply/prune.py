"""Leftovers: what haops made live on a host (its records in /var/lib/haops/live/) that the
inventory no longer asks for there, and their removal.

A leftover target is stopped or unloaded by its own retire hook (a daemon stopped, iptables'
jumps and HAOPS-* chains removed), its recorded files are moved into this run's backup folder
(never deleted outright), and its records go. A file a still-wanted target recorded but no
longer renders (a removed zone's file) is moved the same way. apply retires on its own the
targets that say so (`retire_with_apply`: iptables, whose jumps would keep steering traffic);
`haops prune` lists the rest and removes them on request.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from haops.apply.facts import files_record, parse_recorded, proven_record, recorded_script
from haops.inventory.model import Inventory
from haops.targets import get_target, target_names
from haops.targets.base import RenderContext, Target


@dataclass(frozen=True)
class Leftover:
    """`target` None: files a still-wanted target no longer renders; else a whole target the host no longer runs."""

    host: str
    name: str
    files: tuple[str, ...]
    whole: bool

    @property
    def what(self) -> str:
        return f"{self.name} (no longer on this host)" if self.whole else f"{self.name}: files it no longer renders"


def leftovers(inventory: Inventory, host: str, wanted: list[Target], recorded: dict[str, list[str]]) -> list[Leftover]:
    by_name = {t.name: t for t in wanted}
    found = []
    for name, files in sorted(recorded.items()):
        target = by_name.get(name)
        if target is None:
            found.append(Leftover(host, name, tuple(files), True))
            continue
        rendered = {f.path for f in target.render(inventory, host, RenderContext())}
        stale = tuple(f for f in files if f not in rendered)
        if stale:
            found.append(Leftover(host, name, stale, False))
    return found


def known_target(name: str) -> Target | None:
    return get_target(name) if name in target_names() else None


def retire_script(leftover: Leftover, init: str, backup: str) -> str:
    """Shell: stop or unload it, move its files into the backup folder, forget its records."""
    folder = shlex.quote(f"{backup}/pruned")
    lines = [f"mkdir -p {folder} || exit 1"]
    target = known_target(leftover.name)
    if leftover.whole and target is not None:
        lines.append(f"( {target.retire(init)} ) </dev/null || {{ echo 'could not stop {leftover.name}'; exit 3; }}")
    for path in leftover.files:
        quoted = shlex.quote(path)
        lines.append(f"if [ -e {quoted} ]; then mkdir -p {folder}$(dirname {quoted}) && mv -f {quoted} {folder}{quoted} || exit 4; fi")
    if leftover.whole:
        lines.append(f"rm -f {shlex.quote(proven_record(leftover.name))} {shlex.quote(files_record(leftover.name))}")
    else:
        record = shlex.quote(files_record(leftover.name))
        gone = " ".join(f"-e {shlex.quote(p)}" for p in leftover.files)
        lines.append(f"grep -vxF {gone} {record} > {record}.new; mv -f {record}.new {record}")
    return "\n".join(lines)


__all__ = ["Leftover", "leftovers", "recorded_script", "parse_recorded", "retire_script", "known_target"]
