"""The plan: what apply will do on each host, as data. --check prints it and stops.

Facts in, plan out, no I/O: a file whose hash differs is uploaded; a target with changed
files is checked on the host, then reloaded (or started when it is not running); a
target whose files are unchanged and which is live is left alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from haops.apply.facts import HostFacts, TargetState
from haops.targets.base import RenderedFile, Target

CREATE, UPDATE, UNCHANGED = "create", "update", "unchanged"
RELOAD, START, ACTIVATE, NOTHING = "reload", "start", "activate", "nothing"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FilePlan:
    file: RenderedFile
    before: str | None
    mode_before: int | None = None

    @property
    def action(self) -> str:
        if self.before is None:
            return CREATE
        same = self.before == sha256(self.file.text) and self.mode_before in (None, self.file.mode)
        return UNCHANGED if same else UPDATE


@dataclass(frozen=True)
class TargetPlan:
    target: Target
    files: tuple[FilePlan, ...]
    action: str
    live_generation: str | None  # the generation to see replaced; None when not live before
    pending: bool = False  # files already in place, but never made live (an earlier run died)
    proven_before: str | None = None  # the host's record of what was proven live, as the run found it

    @property
    def changed(self) -> tuple[FilePlan, ...]:
        return tuple(f for f in self.files if f.action != UNCHANGED)

    @property
    def label(self) -> str:
        return f"{self.target.name}:{self.action}" + (" (pending from an earlier run)" if self.pending else "")

    @property
    def rendered(self) -> list[RenderedFile]:
        return [f.file for f in self.files]


@dataclass(frozen=True)
class HostPlan:
    host: str
    init: str
    targets: tuple[TargetPlan, ...]

    @property
    def changed_files(self) -> int:
        return sum(len(t.changed) for t in self.targets)

    @property
    def activations(self) -> tuple[TargetPlan, ...]:
        return tuple(t for t in self.targets if t.action != NOTHING)

    @property
    def is_noop(self) -> bool:
        return not self.changed_files and not self.activations


def files_digest(files: list[RenderedFile]) -> str:
    """One digest of a target's files (paths, contents and modes), recorded when they are proven live."""
    return sha256("".join(f"{f.path} {f.mode:o} {sha256(f.text)}\n" for f in sorted(files, key=lambda f: f.path)))


def target_action(has_daemon: bool, changed: bool, state: TargetState | None) -> str:
    live = bool(state and state.live)
    if has_daemon:
        if not live:
            return START
        return RELOAD if changed else NOTHING
    return ACTIVATE if changed or not live else NOTHING


def plan_host(host: str, rendered: dict[Target, list[RenderedFile]], facts: HostFacts, init: str = "auto") -> HostPlan:
    """`rendered` maps each target on the host to its files, in activation order. `init` is the
    inventory's word for the host; 'auto' takes what the facts detected."""
    targets = []
    for target, files in rendered.items():
        file_plans = tuple(FilePlan(f, facts.hashes.get(f.path), facts.modes.get(f.path)) for f in files)
        state = facts.targets.get(target.name)
        changed = any(f.action != UNCHANGED for f in file_plans)
        proven = facts.proven.get(target.name)
        pending = not changed and proven is not None and proven != files_digest(files)
        action = target_action(target.daemon is not None, changed or pending, state)
        generation = state.generation if state and state.live else None
        targets.append(TargetPlan(target, file_plans, action, generation, pending and action != NOTHING, proven))
    return HostPlan(host, facts.init if init == "auto" else init, tuple(targets))
