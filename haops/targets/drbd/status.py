"""DRBD 9 state as the kernel reports it: parsers of `drbdsetup events2` and `drbdadm status`
output, and of the kernel log lines that say why a connection is StandAlone.

Both parsers give the same model, one `ResourceState` per resource:
  resource     role, suspended
  device       per volume: disk state, open, quorum, client (intentionally diskless)
  connection   per peer: connection state, the peer's role
  peer device  per peer and volume: replication state, peer disk, sync done %, out of sync KiB,
               resync rate (dbdt1, MiB/s) and eta (s)

`drbdsetup events2` prints one event per line, `<event> <object> key:value ...`; `exists` and
`create` lines describe an object, `change` lines update it, `destroy` removes it, `exists -`
ends the initial state. A stream is folded in order, so a `--now` snapshot and a live capture
parse the same way. `call helper ... helper:split-brain` is the kernel calling the split-brain
handler; events2 has no split-brain state of its own, only the StandAlone connection DRBD
leaves behind. Why a connection is StandAlone is in the kernel log:
"Split-Brain detected but unresolved, dropping connection!" (drbd/drbd_receiver.c), later
undone by a "conn( ... -> Connected )" transition. /proc/drbd shows only the version in DRBD 9.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

CONNECTED = "Connected"
STANDALONE = "StandAlone"
UP_TO_DATE = "UpToDate"
PRIMARY = "Primary"
SYNCING = ("SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT", "StartingSyncS", "StartingSyncT",
           "WFBitMapS", "WFBitMapT", "WFSyncUUID")
VERIFYING = ("VerifyS", "VerifyT")
# Disk states that only a node which has been in sync (or forced primary) can reach.
HISTORY_DISKS = ("UpToDate", "Outdated", "Consistent")


@dataclass(frozen=True)
class PeerDevice:
    volume: int
    replication: str = "Off"
    peer_disk: str = "DUnknown"
    done: float | None = None
    out_of_sync_kib: int | None = None
    rate_mib_s: float | None = None
    eta_s: int | None = None
    peer_client: bool = False


@dataclass(frozen=True)
class Connection:
    peer: str
    state: str = CONNECTED
    role: str = "Unknown"
    peer_node_id: int | None = None
    volumes: tuple[PeerDevice, ...] = ()
    split_brain_helper: bool = False  # events2 saw the kernel call the split-brain handler

    @property
    def syncing(self) -> bool:
        return any(v.replication in SYNCING for v in self.volumes)

    @property
    def verifying(self) -> bool:
        return any(v.replication in VERIFYING for v in self.volumes)

    @property
    def out_of_sync_kib(self) -> int:
        return sum(v.out_of_sync_kib or 0 for v in self.volumes)


@dataclass(frozen=True)
class Device:
    volume: int
    disk: str = "Diskless"
    minor: int | None = None
    client: bool = False
    open: bool = False
    quorum: bool | None = None


@dataclass(frozen=True)
class ResourceState:
    name: str
    role: str = "Unknown"
    suspended: bool = False
    devices: tuple[Device, ...] = ()
    connections: tuple[Connection, ...] = ()

    def connection(self, peer: str) -> Connection | None:
        return next((c for c in self.connections if c.peer == peer), None)

    @property
    def disks(self) -> tuple[str, ...]:
        return tuple(d.disk for d in self.devices)

    @property
    def up_to_date(self) -> bool:
        return bool(self.devices) and all(d.disk == UP_TO_DATE for d in self.devices)

    @property
    def open(self) -> bool:
        return any(d.open for d in self.devices)


# --- key:value tokens ------------------------------------------------------------------------------

def fields(tokens: Iterable[str]) -> dict[str, str]:
    """`key:value` tokens; a value may hold colons itself (local:ipv4:10.0.0.1:7789)."""
    found: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition(":")
        if sep:
            found[key] = value
    return found


def yes(value: str | None) -> bool:
    return value == "yes"


def number(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def decimal(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def joined_lines(text: str) -> list[str]:
    """Lines, with indented continuation lines joined to the one before: drbdsetup never indents
    an event, but documentation breaks long ones "for readability"."""
    lines: list[str] = []
    for raw in text.splitlines():
        if raw[:1].isspace() and lines and raw.strip():
            lines[-1] += " " + raw.strip()
        elif raw.strip():
            lines.append(raw.strip())
    return lines


# --- events2 ---------------------------------------------------------------------------------------

EVENTS = ("exists", "create", "change", "destroy", "call", "response")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\S+ ")


@dataclass
class _Fold:
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    devices: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)
    connections: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)
    peer_devices: dict[tuple[str, int, int], dict[str, str]] = field(default_factory=dict)
    split_brain_calls: set[tuple[str, int]] = field(default_factory=set)

    def table(self, kind: str, values: dict[str, str]) -> tuple[dict[Any, dict[str, str]], Any] | None:
        name = values.get("name", "")
        peer, volume = number(values.get("peer-node-id")), number(values.get("volume"))
        if kind == "resource":
            return self.resources, name
        if kind == "device" and volume is not None:
            return self.devices, (name, volume)
        if kind == "connection" and peer is not None:
            return self.connections, (name, peer)
        if kind == "peer-device" and peer is not None and volume is not None:
            return self.peer_devices, (name, peer, volume)
        return None

    def apply(self, event: str, kind: str, values: dict[str, str]) -> None:
        if event == "call" and kind == "helper":
            if values.get("helper") == "split-brain" and number(values.get("peer-node-id")) is not None:
                self.split_brain_calls.add((values.get("name", ""), number(values.get("peer-node-id")) or 0))
            return
        where = self.table(kind, values)
        if where is None:
            return
        table, key = where
        if event == "destroy":
            table.pop(key, None)
        else:
            table.setdefault(key, {}).update(values)


def parse_events2(text: str) -> list[ResourceState]:
    """Every resource in a `drbdsetup events2 [--now] [--statistics] [--timestamps]` stream, as
    the stream leaves it."""
    fold = _Fold()
    for line in joined_lines(text):
        line = TIMESTAMP.sub("", line)
        event, _, rest = line.partition(" ")
        kind, _, tokens = rest.partition(" ")
        if event in EVENTS and kind != "-":
            fold.apply(event, kind, fields(tokens.split()))
    return [_resource_from_fold(fold, name, values) for name, values in fold.resources.items()]


def _resource_from_fold(fold: _Fold, name: str, values: dict[str, str]) -> ResourceState:
    devices = tuple(_device(volume, d) for (res, volume), d in sorted(fold.devices.items()) if res == name)
    connections = tuple(
        _connection(c, tuple(_peer_device(vol, p) for (res, peer, vol), p in sorted(fold.peer_devices.items())
                             if res == name and peer == node_id), (name, node_id) in fold.split_brain_calls)
        for (res, node_id), c in sorted(fold.connections.items()) if res == name)
    return ResourceState(name, values.get("role", "Unknown"), yes(values.get("suspended")), devices, connections)


def _device(volume: int, values: dict[str, str]) -> Device:
    quorum = values.get("quorum")
    return Device(volume, values.get("disk", "Diskless"), number(values.get("minor")), yes(values.get("client")),
                  yes(values.get("open")), None if quorum is None else quorum == "yes")


def _connection(values: dict[str, str], volumes: tuple[PeerDevice, ...], split_brain: bool) -> Connection:
    peer = values.get("conn-name") or f"node-id {values.get('peer-node-id')}"
    return Connection(peer, values.get("connection", "Unknown"), values.get("role", "Unknown"),
                      number(values.get("peer-node-id")), volumes, split_brain)


def _peer_device(volume: int, values: dict[str, str]) -> PeerDevice:
    return PeerDevice(volume, values.get("replication", "Off"), values.get("peer-disk", "DUnknown"),
                      decimal(values.get("done")), number(values.get("out-of-sync")), decimal(values.get("dbdt1")),
                      number(values.get("eta")), yes(values.get("peer-client")))


# --- drbdadm status --------------------------------------------------------------------------------

RESOURCE_KEYS = {"role", "suspended", "node-id", "write-ordering"}
DEVICE_KEYS = {"disk", "client", "open", "quorum", "minor", "size", "backing_dev"}
CONNECTION_KEYS = {"connection", "role", "congested", "node-id", "ap-in-flight", "rs-in-flight", "local", "peer"}


@dataclass
class _Block:
    name: str
    values: dict[str, str] = field(default_factory=dict)
    volumes: dict[int, dict[str, str]] = field(default_factory=dict)


def parse_drbdadm_status(text: str) -> list[ResourceState]:
    """Every resource in `drbdadm status` (or `drbdsetup status [--verbose] [--statistics]`) output.

    A name at the margin starts a resource, an indented name a peer; `volume:N` starts a volume
    of the one being read. `status` prints `connection:` only when it is not Connected and a
    single volume without `volume:0`, so those are the defaults."""
    resources: list[tuple[_Block, list[_Block]]] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        tokens = raw.split()
        indent = len(raw) - len(raw.lstrip())
        if ":" not in tokens[0] and indent == 0:
            resources.append((_Block(tokens[0]), []))
            tokens = tokens[1:]
        elif ":" not in tokens[0] and resources:
            resources[-1][1].append(_Block(tokens[0]))
            tokens = tokens[1:]
        if resources:
            _read_into(resources[-1], fields(tokens))
    return [_resource_from_blocks(resource, peers) for resource, peers in resources]


def _read_into(resource: tuple[_Block, list[_Block]], values: dict[str, str]) -> None:
    own, peers = resource
    block = peers[-1] if peers else own
    own_keys = CONNECTION_KEYS if peers else RESOURCE_KEYS
    volume = number(values.pop("volume", None))
    if volume is not None:
        block.volumes.setdefault(volume, {})
        block.values["_volume"] = str(volume)
    current = number(block.values.get("_volume")) or 0
    for key, value in values.items():
        if key in own_keys:
            block.values[key] = value
        else:
            block.volumes.setdefault(current, {})[key] = value


def _resource_from_blocks(own: _Block, peers: list[_Block]) -> ResourceState:
    devices = tuple(_device(v, values) for v, values in sorted(own.volumes.items()))
    connections = tuple(_status_connection(peer) for peer in peers)
    return ResourceState(own.name, own.values.get("role", "Unknown"), yes(own.values.get("suspended")), devices,
                         connections)


def _status_connection(peer: _Block) -> Connection:
    state = peer.values.get("connection", CONNECTED)
    volumes = []
    for volume, values in sorted(peer.volumes.items()):
        if "disk" in values and "peer-disk" not in values:  # older drbdsetup says disk: for the peer's
            values = {**values, "peer-disk": values["disk"]}
        if state == CONNECTED:
            values = {"replication": "Established", **values}
        volumes.append(_peer_device(volume, values))
    if state == CONNECTED and not volumes:
        volumes.append(PeerDevice(0, "Established", "DUnknown"))
    return Connection(peer.name, state, peer.values.get("role", "Unknown"), number(peer.values.get("node-id")),
                      tuple(volumes))


# --- the kernel log --------------------------------------------------------------------------------

KERNEL_LINE = re.compile(r"drbd (?:/unregistered/)?(?P<resource>[^\s/:]+)(?:/(?P<volume>\d+) drbd\d+)?"
                         r"(?: (?P<peer>[^\s:]+))?: (?P<message>.*)$")
UNRESOLVED = ("Split-Brain detected but unresolved", "Split-Brain detected during attach but unresolved")
VERIFY_FOUND = re.compile(r"Online verify found (\d+) (\d+)k blocks out of sync")


@dataclass(frozen=True)
class KernelLog:
    """What the kernel log says about a resource's connections, newest word last."""

    split_brain: frozenset[tuple[str, str]] = frozenset()  # (resource, peer) still split since DRBD said so
    verify_found_kib: tuple[tuple[tuple[str, str], int], ...] = ()


def parse_kernel_log(text: str) -> KernelLog:
    split: dict[tuple[str, str], bool] = {}
    found: dict[tuple[str, str], int] = {}
    for line in text.splitlines():
        match = KERNEL_LINE.search(line)
        if not match or not match["peer"]:
            continue
        key, message = (match["resource"], match["peer"]), match["message"]
        if message.startswith(UNRESOLVED):
            split[key] = True
        elif "-> Connected )" in message or "Split-Brain detected, manually solved" in message:
            split[key] = False
        verified = VERIFY_FOUND.search(message)
        if verified:
            found[key] = found.get(key, 0) + int(verified[1]) * int(verified[2])
    return KernelLog(frozenset(k for k, v in split.items() if v), tuple(found.items()))


def with_kernel_log(state: ResourceState, log: KernelLog) -> ResourceState:
    """The state, with each StandAlone connection marked split brain where the kernel said so."""
    connections = tuple(replace(c, split_brain_helper=c.split_brain_helper or (state.name, c.peer) in log.split_brain)
                        for c in state.connections)
    return replace(state, connections=connections)


def split_brain(connection: Connection) -> bool:
    """DRBD dropped this connection for split brain and it has not reconnected since."""
    return connection.state != CONNECTED and connection.split_brain_helper
