"""What every section reader shares: the problem collector, the hosts, and selecting hosts."""

from __future__ import annotations

from typing import Any

from haops.inventory import values
from haops.inventory.model import Host
from haops.inventory.reader import Reader
from haops.inventory.source import Path


class Section:
    """Base of the section readers; InventoryParser combines them over one Reader."""

    r: Reader
    hosts: dict[str, Host]
    # Key paths of the model (names normalised) -> the paths as written, to locate a review's problems.
    written: dict[Path, Path]

    def as_written(self, path: Path) -> Path:
        for length in range(len(path), 0, -1):
            if path[:length] in self.written:
                return self.written[path[:length]] + path[length:]
        return path

    def _each(self, top: dict[str, Any], key: str, build: Any) -> dict[str, Any]:
        section = self.r.mapping(top.get(key), (key,), keys_of(top.get(key)))
        result = {}
        for name, body in section.items():
            path = (key, name)
            if self.r.check(name, path, values.name) is not None:
                result[name] = build(name, body, path)
        return {name: item for name, item in result.items() if item is not None}

    def _select(self, raw: Any, path: Path, default_group: str | None = None) -> tuple[str, ...]:
        """A group name, {group: NAME}, or a list of host names -> host names."""
        if raw is None and default_group is not None:
            raw = default_group
        if isinstance(raw, dict):
            raw = self.r.mapping(raw, path, ("group",), required=("group",)).get("group")
        if isinstance(raw, str):
            members = tuple(h.name for h in self.hosts.values() if raw in h.groups)
            if not members:
                self.r.problem(path, f"group {raw!r} has no hosts; groups: {', '.join(all_groups(self.hosts)) or 'none'}")
            return members
        names = []
        for index, item in enumerate(self.r.sequence(raw, path)):
            if self._known_host(item, path + (index,)):
                names.append(item)
        if raw is not None and isinstance(raw, list) and not raw:
            self.r.problem(path, "must name at least one host")
        if len(set(names)) != len(names):
            self.r.problem(path, "names a host twice")
        return tuple(names)

    def _known_host(self, name: Any, path: Path) -> bool:
        if isinstance(name, str) and name in self.hosts:
            return True
        self.r.problem(path, f"unknown host {name!r}; hosts: {', '.join(self.hosts)}")
        return False


def keys_of(raw: Any) -> Any:
    return raw.keys() if isinstance(raw, dict) else ()


def all_groups(hosts: dict[str, Host]) -> list[str]:
    return sorted({group for host in hosts.values() for group in host.groups})
