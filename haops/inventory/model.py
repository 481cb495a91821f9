"""The validated inventory: frozen data, safe to put into any config file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

STICKY = ("none", "cookie", "source")
IPAddress = IPv4Address | IPv6Address


def bracketed(address: object) -> str:
    """An address as URLs, ss filters and rsync's user@host: an IPv6 one in brackets, [fd00::1]."""
    return f"[{address}]" if ":" in str(address) else str(address)


def endpoint(address: object, port: int) -> str:
    """address:port as configs and URLs write it: an IPv6 address in brackets, [fd00::1]:80."""
    return f"{bracketed(address)}:{port}"


@dataclass(frozen=True)
class LabSettings:
    name: str
    network: IPv4Network
    network6: IPv6Network | None = None
    # A second lab network the machine has no route to, reached only through a bastion host
    # (at `bastion` on `network`, and at the private network's first address).
    private_network: IPv4Network | None = None
    bastion: IPv4Address | None = None


@dataclass(frozen=True)
class VmSpec:
    """The VM a Vagrant run makes for a host: vCPUs, memory, extra disks (MiB each), extra
    network cards (an address each, on that address's /24), and the default gateway."""
    cpus: int = 1
    memory_mib: int = 512
    disks_mib: tuple[int, ...] = ()
    nics: tuple[IPv4Address, ...] = ()
    gateway: IPv4Address | None = None


@dataclass(frozen=True)
class Host:
    name: str
    address: IPAddress  # the host's first address: where SSH goes unless ssh_host says otherwise
    groups: tuple[str, ...] = ()
    address6: IPv6Address | None = None  # the IPv6 address of a dual-stack host
    interface: str = "eth0"
    ssh_user: str | None = None
    ssh_port: int | None = None
    ssh_host: str | None = None
    ssh_key: str | None = None
    ssh_known_hosts: str | None = None  # this host's own known_hosts file (a Vagrant VM's, recorded at first boot)
    init: str = "auto"
    weight: int = 1
    become: str = "none"  # "sudo": log in as ssh_user, run every command as root through sudo
    vm: VmSpec | None = None  # None: Vagrant's defaults (1 vCPU, 512 MiB, no extra disk)

    @property
    def through_sudo(self) -> bool:
        """Logged in to as ssh_user, every command run as root through sudo (`become: sudo`)."""
        return self.become == "sudo"

    @property
    def connect_to(self) -> str:
        """Where SSH goes: ssh_host when set (a VM's management address), else the address."""
        return self.ssh_host or str(self.address)

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        return (self.address, self.address6) if self.address6 else (self.address,)

    def address_in(self, version: int) -> IPAddress | None:
        """The host's address of IP version 4 or 6, if it has one."""
        return next((a for a in self.addresses if a.version == version), None)


@dataclass(frozen=True)
class Backend:
    host: str
    address: IPAddress  # the host's address in the family of the service's VIP
    port: int
    weight: int = 1
    backup: bool = False


@dataclass(frozen=True)
class Health:
    path: str | None = "/health"
    interval_ms: int = 2000
    timeout_ms: int = 1000
    fall: int = 3
    rise: int = 2


@dataclass(frozen=True)
class Timeouts:
    connect_ms: int = 5000
    client_ms: int = 30000
    server_ms: int = 30000


@dataclass(frozen=True)
class Stats:
    port: int
    user: str
    password: str
    uri: str = "/stats"


@dataclass(frozen=True)
class Service:
    name: str
    vip: IPAddress
    port: int
    balancer: str
    algorithm: str
    hosts: tuple[str, ...]
    backends: tuple[Backend, ...]
    health: Health | None = None
    sticky: str = "none"
    cookie: str = "SERVERID"
    hash_key: str | None = None
    retries: int = 2
    redispatch: bool = True
    timeouts: Timeouts = field(default_factory=Timeouts)
    maxconn: int = 4096
    stats: Stats | None = None
    # The balancer's own option blocks, keyed by block name: as written after parsing, checked
    # and with defaults after the balancer's review.
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    method: str = ""  # the balancer's own name for `algorithm`, filled in by its review

    @property
    def weighted(self) -> bool:
        return len({backend.weight for backend in self.backends}) > 1


@dataclass(frozen=True)
class Record:
    name: str
    addresses: tuple[IPAddress, ...]  # A and AAAA records
    ttl: int | None = None


@dataclass(frozen=True)
class Delegation:
    name: str
    servers: tuple[str, ...]


@dataclass(frozen=True)
class Zone:
    name: str
    servers: tuple[str, ...]
    records: tuple[Record, ...]
    delegations: tuple[Delegation, ...] = ()
    ttl: int = 300
    rrset_order: str = "cyclic"
    contact: str = "hostmaster"


@dataclass(frozen=True)
class DrbdNode:
    host: str
    node_id: int
    address: IPAddress
    disk: str


@dataclass(frozen=True)
class DrbdResource:
    name: str
    nodes: tuple[DrbdNode, ...]
    protocol: str = "C"
    port: int = 7789
    minor: int = 0
    meta_disk: str = "internal"
    secret: str | None = None
    after_sb_0pri: str = "discard-zero-changes"
    after_sb_1pri: str = "discard-secondary"
    after_sb_2pri: str = "disconnect"
    fencing: str = "resource-only"
    quorum: str = "off"
    allow_two_primaries: bool = False
    version: str = "9"  # "9", or "8.4": the in-tree module of stock kernels, with its own config syntax

    @property
    def device(self) -> str:
        return f"/dev/drbd{self.minor}"


@dataclass(frozen=True)
class VrrpInstance:
    name: str
    vip: IPv4Interface | IPv6Interface  # IPv6: VRRPv3
    router_id: int
    priorities: tuple[tuple[str, int], ...]
    advert_int_ms: int = 1000
    auth_pass: str | None = None
    track_process: str | None = None
    nopreempt: bool = False
    interface: str | None = None

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(host for host, _ in self.priorities)

    def priority(self, host: str) -> int:
        return dict(self.priorities)[host]


@dataclass(frozen=True)
class PostgresCluster:
    """One streaming-replication cluster: a primary, its standbys, the role they replicate as.

    `primary` is the primary apply builds; after `haops db promote` the inventory should say
    the new one (apply refuses to start a fenced host)."""

    primary: str
    standbys: tuple[str, ...]
    replication_password: str
    synchronous: bool = False
    port: int = 5432
    listen: str = "address"  # "address": localhost and the host's own address; "all": every address
    replication_role: str = "replicator"
    clients: tuple[IPv4Network, ...] = ()  # may connect to database postgres as the role (db check)

    @property
    def hosts(self) -> tuple[str, ...]:
        return (self.primary, *self.standbys)


@dataclass(frozen=True)
class Inventory:
    source: str
    hosts: dict[str, Host]
    services: dict[str, Service] = field(default_factory=dict)
    zones: dict[str, Zone] = field(default_factory=dict)
    drbd: dict[str, DrbdResource] = field(default_factory=dict)
    vrrp: dict[str, VrrpInstance] = field(default_factory=dict)
    postgresql: PostgresCluster | None = None
    lab: LabSettings | None = None
    responders: bool = False

    def group(self, name: str) -> tuple[str, ...]:
        return tuple(host.name for host in self.hosts.values() if name in host.groups)

    def groups(self) -> dict[str, tuple[str, ...]]:
        names = sorted({group for host in self.hosts.values() for group in host.groups})
        return {name: self.group(name) for name in names}
