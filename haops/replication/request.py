"""What `haops sync` was asked: SOURCE_HOST:PATH and DEST_GROUP_OR_HOST:PATH, resolved
against the inventory. Pure code."""

from __future__ import annotations

from dataclasses import dataclass

from haops.errors import UserError
from haops.inventory.model import Inventory
from haops.replication.rsync import RsyncOptions

LINE_BREAKERS = ("\0", "\n", "\r")  # rsync reads paths and patterns line by line


@dataclass(frozen=True)
class SyncRequest:
    source: str
    source_path: str
    destinations: tuple[str, ...]
    dest_path: str
    options: RsyncOptions


def split_endpoint(text: str, role: str) -> tuple[str, str]:
    name, colon, path = text.partition(":")
    if not colon or not name or not path:
        raise UserError(f"{role} must be HOST:PATH (for the destination also GROUP:PATH), got {text!r}")
    return name, check_path(path, role)


def check_path(path: str, role: str) -> str:
    if not path.startswith("/"):
        raise UserError(f"{role} path must be absolute, got {path!r}")
    if any(c in path for c in LINE_BREAKERS):
        raise UserError(f"{role} path may not contain NUL or line breaks")
    parts = path.split("/")
    if path.rstrip("/") == "" or ".." in parts or "." in parts:
        raise UserError(f"{role} path {path!r} is not a directory haops will sync (/, or a path with . or ..)")
    return path.rstrip("/")


def check_excludes(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        if not pattern or any(c in pattern for c in LINE_BREAKERS):
            raise UserError(f"--exclude pattern {pattern!r} is empty or has a line break")
        if pattern[:2] in ("+ ", "- ", "P ", "R ", "H ", "S ") or pattern.startswith("!") or "***" in pattern:
            raise UserError(f"--exclude {pattern!r}: rsync filter-rule prefixes, '!' and '***' are not supported "
                            f"(the convergence proof applies the same pattern to its manifests)")
    return patterns


def destinations(inventory: Inventory, name: str, source: str) -> tuple[str, ...]:
    """A host, a group, or a comma list of both; the source itself is left out of a group."""
    found: list[str] = []
    for part in name.split(","):
        if part in inventory.hosts:
            members: tuple[str, ...] = (part,)
        elif inventory.group(part):
            members = tuple(h for h in inventory.group(part) if h != source)
        else:
            known = ", ".join(sorted(inventory.hosts) + sorted(inventory.groups()))
            raise UserError(f"no host or group named {part!r} in the inventory; known: {known}")
        found += [m for m in members if m not in found]
    if source in found:
        raise UserError(f"{source} is the source; it cannot also be a destination")
    if not found:
        raise UserError(f"{name!r} has no hosts other than the source")
    return tuple(found)


def resolve(inventory: Inventory, source_text: str, dest_text: str, options: RsyncOptions) -> SyncRequest:
    source, source_path = split_endpoint(source_text, "SOURCE")
    if source not in inventory.hosts:
        raise UserError(f"the source {source!r} is not a host in the inventory; hosts: {', '.join(sorted(inventory.hosts))}")
    dest_name, dest_path = split_endpoint(dest_text, "DESTINATION")
    check_excludes(options.excludes)
    return SyncRequest(source, source_path, destinations(inventory, dest_name, source), dest_path, options)
