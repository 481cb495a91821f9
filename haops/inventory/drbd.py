"""The drbd section: replicated block devices, their nodes, disks and split-brain policies."""

from __future__ import annotations

from typing import Any

from haops.inventory import values
from haops.inventory.model import DrbdNode, DrbdResource
from haops.inventory.reader import MISSING
from haops.inventory.section import Section
from haops.inventory.source import Path


class DrbdReader(Section):
    def _drbd(self, name: str, body: Any, path: Path) -> DrbdResource | None:
        keys = ("nodes", "disk", "protocol", "port", "minor", "meta_disk", "secret", "after_sb_0pri",
                "after_sb_1pri", "after_sb_2pri", "fencing", "quorum", "allow_two_primaries", "version")
        data = self.r.mapping(body, path, keys, required=("nodes", "disk"))
        f = self.r.field
        disk = f(data, path, "disk", values.device, None)
        nodes = self._select(data.get("nodes"), path + ("nodes",))
        optional = {key: f(data, path, key, check, MISSING) for key, check in _DRBD_CHECKS.items() if key in data}
        if disk is None or None in optional.values() or len(nodes) < 2:
            if nodes and len(nodes) < 2:
                self.r.problem(path + ("nodes",), "a DRBD resource needs at least two nodes")
            return None
        resource = DrbdResource(
            name=name,
            nodes=tuple(DrbdNode(host, i, self.hosts[host].address, disk) for i, host in enumerate(nodes)),
            **optional,
        )
        return resource


_DRBD_CHECKS: dict[str, Any] = {
    "protocol": values.one_of("A", "B", "C"),
    "port": values.port,
    "minor": values.integer(0, 1_048_575),
    "meta_disk": lambda v: v if v == "internal" else values.device(v),
    "secret": values.secret,
    "after_sb_0pri": values.one_of("disconnect", "discard-younger-primary", "discard-older-primary", "discard-zero-changes", "discard-least-changes"),
    "after_sb_1pri": values.one_of("disconnect", "consensus", "violently-as0p", "discard-secondary", "call-pri-lost-after-sb"),
    "after_sb_2pri": values.one_of("disconnect", "violently-as0p", "call-pri-lost-after-sb"),
    "fencing": values.one_of("dont-care", "resource-only", "resource-and-stonith"),
    "quorum": values.one_of("off", "majority", "all"),
    "allow_two_primaries": values.boolean,
    "version": values.drbd_version,
}
