"""Where a lab keeps its disk: keys, ssh files, PIDs and each host's overlay upper dirs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

from haops.lab.commands import LabError
from haops.lab.topology import LabHost

STATE_ROOT_ENV = "HAOPS_LAB_ROOT"
# Not under /var/lib: overlayfs refuses an upper dir inside its lower dir (/etc, /var, /srv).
DEFAULT_STATE_ROOT = Path("/opt/haops-lab")
OVERLAID_DIRS = ("etc", "var", "srv")
SAFE_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-")


def default_state_root() -> Path:
    return Path(os.environ.get(STATE_ROOT_ENV) or DEFAULT_STATE_ROOT)


def check_state_root(root: Path) -> Path:
    root = root.absolute()
    if not set(str(root)) <= SAFE_PATH_CHARS:
        raise LabError(f"lab state root {root} may only use letters, digits, '/', '.', '_', '-' "
                       f"(it goes into overlay mount options)")
    for name in OVERLAID_DIRS:
        overlaid = Path("/", name)
        if root == overlaid or overlaid in root.parents or root in overlaid.parents:
            raise LabError(f"lab state root {root} cannot be inside or above {overlaid}: hosts "
                           f"overlay that directory and overlayfs refuses an upper dir inside its "
                           f"lower dir; use e.g. {DEFAULT_STATE_ROOT}")
    return root


@dataclass(frozen=True)
class HostPaths:
    root: Path

    def upper(self, name: str) -> Path:
        return self.root / "upper" / name

    def work(self, name: str) -> Path:
        return self.root / "work" / name

    @property
    def home(self) -> Path:
        """root's home in the host: its own, not the machine's /root and its dotfiles."""
        return self.root / "root"

    @property
    def init_pid(self) -> Path:
        return self.root / "init.pid"

    @property
    def supervisor_pid(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def console_log(self) -> Path:
        return self.root / "console.log"

    @property
    def link_state(self) -> Path:
        return self.root / "link.json"


@dataclass(frozen=True)
class LabPaths:
    root: Path  # the state root, shared by all labs
    name: str

    @property
    def lab_dir(self) -> Path:
        return self.root / self.name

    @property
    def record(self) -> Path:
        return self.lab_dir / "lab.json"

    @property
    def inventory(self) -> Path:
        return self.lab_dir / "inventory.yml"

    @property
    def ssh_config(self) -> Path:
        return self.lab_dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.lab_dir / "known_hosts"

    @property
    def identity(self) -> Path:
        return self.lab_dir / "id_ed25519"

    @property
    def netns_mount_marker(self) -> Path:
        return self.root / "made-run-netns-mount"

    def host(self, name: str) -> HostPaths:
        return HostPaths(self.lab_dir / "hosts" / name)


@dataclass(frozen=True)
class Private:
    """A second lab network the machine has no route to: its hosts are reached through `bastion`
    (a lab host on the lab network with a second cable here, at the network's first address)."""

    network: IPv4Network
    bastion: LabHost

    @property
    def bastion_leg(self) -> IPv4Address:
        """The bastion's address on the private network."""
        return self.network[1]


@dataclass(frozen=True)
class LabRecord:
    """What `up` built, so every later command knows the lab without the inventory."""

    name: str
    network: IPv4Network
    hosts: tuple[LabHost, ...]
    network6: IPv6Network | None = None
    private: Private | None = None

    def save(self, path: Path) -> None:
        data: dict[str, object] = {
            "name": self.name, "network": str(self.network),
            **({"network6": str(self.network6)} if self.network6 else {}),
            "hosts": [{"name": h.name, "address": str(h.address), "groups": list(h.groups),
                       **({"address6": str(h.address6)} if h.address6 else {})}
                      for h in self.hosts]}
        if self.private is not None:
            data["private"] = {"network": str(self.private.network), "bastion": self.private.bastion.name,
                               "bastion_address": str(self.private.bastion.address)}
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LabRecord:
        data = json.loads(path.read_text(encoding="utf-8"))
        hosts = tuple(LabHost(h["name"], IPv4Address(h["address"]), tuple(h["groups"]),
                              IPv6Address(h["address6"]) if h.get("address6") else None)
                      for h in data["hosts"])
        network6 = IPv6Network(data["network6"]) if data.get("network6") else None
        private = data.get("private")
        return cls(data["name"], IPv4Network(data["network"]), hosts, network6,
                   Private(IPv4Network(private["network"]),
                           LabHost(private["bastion"], IPv4Address(private["bastion_address"]), ("bastion",)))
                   if private else None)
