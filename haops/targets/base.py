"""The interface every technology module implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import ClassVar

from haops.model import Inventory

ProblemAt = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class RenderedFile:
    """One file as it must exist on a host. `secrets` are masked wherever text is shown."""

    path: str
    text: str
    mode: int = 0o644
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    """A real checker run against a candidate tree; `tool` must be on PATH."""

    tool: str
    argv: tuple[str, ...]
    label: str
    env: tuple[tuple[str, str], ...] = ()
    local_only: bool = False  # needs haops itself, so it cannot run on a target host


@dataclass(frozen=True)
class RenderContext:
    """What rendering may depend on besides the inventory: the date, and live files."""

    today: date = field(default_factory=date.today)
    live: Mapping[str, str] = field(default_factory=dict)


class Target:
    """One technology: which hosts it configures, their files, and how to check them."""

    name: ClassVar[str]
    service: ClassVar[str | None]
    summary: ClassVar[str]
    reads_live_files: ClassVar[bool] = False  # rendering depends on the host's current files
    # Regexes whose first group is a secret, for text haops did not render (a live file's old
    # values): masked in diffs whatever they were.
    secret_lines: ClassVar[tuple[str, ...]] = ()

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        raise NotImplementedError

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        raise NotImplementedError

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        """Checker commands for the files rendered under `root` (a candidate tree)."""
        raise NotImplementedError

    def scratch_files(self, inventory: Inventory, host: str) -> list[RenderedFile]:
        """Files the checks need in the candidate tree that are never installed."""
        return []


class BalancerTarget(Target):
    """A target that runs on the hosts of the services whose balancer it is."""

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        return hosts_running(inventory, self.name)


def under(root: Path, path: str) -> str:
    """The place of an absolute host path inside a candidate tree."""
    return str(root / path.lstrip("/"))


def services_on(inventory: Inventory, balancer: str, host: str) -> list:
    """By name, so reordering the inventory's services does not change the file."""
    return sorted((s for s in inventory.services.values() if s.balancer == balancer and host in s.hosts), key=lambda s: s.name)


def hosts_running(inventory: Inventory, balancer: str) -> tuple[str, ...]:
    wanted = {h for s in inventory.services.values() if s.balancer == balancer for h in s.hosts}
    return tuple(name for name in inventory.hosts if name in wanted)
