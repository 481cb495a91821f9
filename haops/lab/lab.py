"""The Lab: build, inspect, break and tear down a cluster of namespace hosts."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from haops.lab import host as lab_host
from haops.lab import keys, link, network
from haops.lab.commands import LabError, ip_batch, require_root_and_tools
from haops.lab.link import LinkState
from haops.lab.naming import (
    DEFAULT_LAB_NAME,
    bridge_name,
    check_host_name,
    check_lab_name,
    mac_address,
    netns_name,
    netns_prefix,
    private_bridge_name,
    private_veth_name,
    veth_name,
)
from haops.lab.network import DEFAULT_NETWORK
from haops.lab.processes import ProcessRecord
from haops.lab.ssh import (
    known_hosts_text,
    run_ssh,
    ssh_config_text,
    ssh_works,
    wait_for_sshd,
)
from haops.lab.state import (
    HostPaths,
    LabPaths,
    LabRecord,
    Private,
    check_state_root,
    default_state_root,
)
from haops.inventory.model import Host
from haops.lab.topology import LabHost, default_hosts, inventory_yaml

if TYPE_CHECKING:
    from fabric import Connection

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["Lab", "LabError", "LabHostStatus"]


@dataclass(frozen=True)
class LabHostStatus:
    name: str
    address: IPv4Address
    up: bool
    ssh: bool


class Lab:
    """One named lab. Every kernel object and file it makes is keyed on its name."""

    def __init__(self, name: str = DEFAULT_LAB_NAME, network: IPv4Network = DEFAULT_NETWORK,
                 state_root: Path | None = None, network6: IPv6Network | None = None,
                 private: Private | None = None) -> None:
        self.name = check_lab_name(name)
        self.network = _check_network(network)
        self.network6 = _check_network6(network6) if network6 else None
        self.paths = LabPaths(check_state_root(state_root or default_state_root()), self.name)
        self.private = private
        if private is not None:
            _check_private(private, self.network)

    @classmethod
    def existing(cls, name: str = DEFAULT_LAB_NAME, state_root: Path | None = None) -> Lab:
        """The lab `up` built under this name; a clean error if there is none."""
        paths = LabPaths(check_state_root(state_root or default_state_root()), check_lab_name(name))
        if not paths.record.exists():
            raise LabError(f"no lab named {name!r} is up (no {paths.record}); run `haops lab up`")
        record = LabRecord.load(paths.record)
        return cls(name, record.network, paths.root, record.network6, record.private)

    # --- files other code uses ---------------------------------------------------

    @property
    def ssh_config(self) -> Path:
        return self.paths.ssh_config

    @property
    def known_hosts(self) -> Path:
        return self.paths.known_hosts

    @property
    def identity(self) -> Path:
        return self.paths.identity

    @property
    def inventory_path(self) -> Path:
        return self.paths.inventory

    @property
    def bridge(self) -> str:
        return bridge_name(self.name)

    @property
    def hosts(self) -> tuple[LabHost, ...]:
        if not self.paths.record.exists():
            return ()
        return LabRecord.load(self.paths.record).hosts

    def network_of(self, address: IPv4Address | IPv6Address) -> IPv4Network:
        """The lab network a host address is on: the lab network, or the private one."""
        if self.private is not None and address in self.private.network:
            return self.private.network
        return self.network

    def behind_bastion(self, host: LabHost) -> bool:
        return self.network_of(host.address) != self.network

    def host(self, name: str) -> LabHost:
        for candidate in self.hosts:
            if candidate.name == name:
                return candidate
        known = ", ".join(h.name for h in self.hosts) or "none"
        raise LabError(f"lab {self.name!r} has no host {name!r}; hosts: {known}")

    def netns(self, host: str) -> str:
        return netns_name(self.name, host)

    def veth(self, host: str) -> str:
        return veth_name(self.name, host)

    def init_process(self, host: str) -> ProcessRecord | None:
        """The host's PID-namespace init as the machine sees it, if it is running."""
        return lab_host.running_init(self.paths.host(self.host(host).name))

    # --- up and down ---------------------------------------------------------------

    def up(self, hosts: Sequence[LabHost] | None = None, inventory_text: str | None = None) -> None:
        """Build the lab (idempotent: a running lab with the same hosts is left as it is)."""
        require_root_and_tools()
        wanted = tuple(hosts) if hosts is not None else default_hosts(self.network)
        if self.private is not None and self.private.bastion not in wanted:
            wanted += (self.private.bastion,)
        self._check_hosts(wanted)
        self._check_matches_running(wanted)
        network.install_safety_route()  # before anything else is created
        network.check_network_is_free(self.network, self.bridge)
        if self.network6 is not None:
            if not network.machine_has_ipv6():
                raise LabError("this lab has an IPv6 network, but IPv6 is disabled on this machine "
                               "(sysctl net.ipv6.conf.all.disable_ipv6)")
            network.check_network_is_free(self.network6, self.bridge)
        self._write_files(wanted, inventory_text)
        if not network.netns_dir_is_mounted():
            self.paths.netns_mount_marker.touch()
        gateway6 = network.gateway_interface6(self.network6) if self.network6 else None
        network.ensure_bridge(self.bridge, mac_address(self.name), network.gateway_interface(self.network), gateway6)
        if self.private is not None:
            network.ensure_bridge(private_bridge_name(self.name), mac_address(self.name, "-pb"), None)
        stopped = [h for h in wanted if lab_host.running_init(self.paths.host(h.name)) is None]
        _for_each(stopped, self._boot)

    def down(self) -> None:
        """Remove everything the lab made except the safety route; safe to run twice."""
        require_root_and_tools()
        host_dirs = sorted((self.paths.lab_dir / "hosts").glob("*"))
        _for_each(host_dirs, lambda d: _power_off(HostPaths(d)))
        veths = [p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(netns_prefix(self.name))]
        ip_batch([f"link del {v}" for v in veths] +
                 [f"netns del {n}" for n in network.netns_names(netns_prefix(self.name))])
        network.delete_bridge(self.bridge)
        network.delete_bridge(private_bridge_name(self.name))
        network.release_netns_dir(self.paths.netns_mount_marker)
        self._remove_state_dir()

    # --- looking at it -------------------------------------------------------------

    def status(self) -> list[LabHostStatus]:
        def one(h: LabHost) -> LabHostStatus:  # ssh as a user would: through the bastion for hosts behind it
            up = lab_host.running_init(self.paths.host(h.name)) is not None
            return LabHostStatus(h.name, h.address, up, up and ssh_works(self.ssh_config, h.name))

        return _for_each(self.hosts, one)

    def exec(self, host: str, argv: Sequence[str], timeout: float = 60,
             capture: bool = True, forward_stdin: bool = False) -> subprocess.CompletedProcess[str]:
        """Run argv on the host over SSH (strict host keys); the exit code is the remote one."""
        return run_ssh(self.ssh_config, self.host(host).name, argv, timeout, capture, forward_stdin)

    def connection(self, host: str) -> Connection:
        """A Fabric connection to the host that refuses unknown host keys."""
        from haops.session import lab_settings
        from haops.transport import connect

        target = self.host(host)
        return connect(Host(target.name, target.address), lab_settings(self))

    # --- faults --------------------------------------------------------------------

    def crash(self, host: str) -> None:
        """Power off: every process dies, the cable is pulled; the disk is kept."""
        name = self.host(host).name
        _power_off(self.paths.host(name))
        self._unplug(name)

    def boot(self, host: str) -> None:
        """Power on after a crash: fresh /run, /tmp and network stack; only sshd runs."""
        target = self.host(host)
        if lab_host.running_init(self.paths.host(target.name)) is not None:
            raise LabError(f"host {target.name} is already running; crash it first")
        self._boot(target)

    def cut(self, host: str) -> None:
        self._change_link(host, cut=True)

    def heal(self, host: str) -> None:
        self._change_link(host, cut=False)

    def delay(self, host: str, ms: int) -> None:
        if not 0 <= ms <= 60_000:
            raise LabError(f"delay must be 0..60000 ms, got {ms}")
        self._change_link(host, delay_ms=ms)

    def loss(self, host: str, pct: float) -> None:
        if not 0 <= pct <= 100:
            raise LabError(f"loss must be 0..100 percent, got {pct}")
        self._change_link(host, loss_pct=pct)

    def link_state(self, host: str) -> LinkState:
        path = self.paths.host(self.host(host).name).link_state
        return LinkState(**json.loads(path.read_text())) if path.exists() else LinkState()

    # --- internals -----------------------------------------------------------------

    def _change_link(self, host: str, **changes: object) -> None:
        name = self.host(host).name
        state = LinkState(**{**asdict(self.link_state(name)), **changes})
        self.paths.host(name).link_state.write_text(json.dumps(asdict(state)) + "\n")
        link.apply(self.paths.host(name), self.netns(name), self.veth(name), state)

    def _check_hosts(self, hosts: Sequence[LabHost]) -> None:
        if not hosts:
            raise LabError("a lab needs at least one host")
        seen: dict[IPv4Address | IPv6Address, str] = {}
        for h in hosts:
            check_host_name(h.name)
            network.check_host_address(h.name, h.address, self.network_of(h.address))
            if h.address6 is not None:
                network.check_host_address6(h.name, h.address6, self.network6)
            addresses: list[IPv4Address | IPv6Address] = [h.address, *([h.address6] if h.address6 else [])]
            for address in addresses:
                if address in seen:
                    raise LabError(f"hosts {seen[address]} and {h.name} share the address {address}")
                seen[address] = h.name
        if len({h.name for h in hosts}) != len(hosts):
            raise LabError("host names must be unique")

    def _check_matches_running(self, hosts: Sequence[LabHost]) -> None:
        if not self.paths.record.exists():
            return
        running = LabRecord.load(self.paths.record)
        if running.network != self.network or running.network6 != self.network6 or set(running.hosts) != set(hosts):
            raise LabError(f"lab {self.name!r} is already up with other hosts or network "
                           f"({running.network}); run `haops lab down --name {self.name}` first")

    def _write_files(self, hosts: Sequence[LabHost], inventory_text: str | None) -> None:
        self.paths.lab_dir.mkdir(parents=True, exist_ok=True)
        LabRecord(self.name, self.network, tuple(hosts), self.network6, self.private).save(self.paths.record)
        client_key = keys.ensure(self.identity, f"haops-lab-{self.name}")
        host_keys = {h: self._prepare_host_disk(h, hosts, client_key) for h in hosts}
        self.known_hosts.write_text(known_hosts_text(host_keys))
        self.ssh_config.write_text(ssh_config_text(hosts, self.identity, self.known_hosts, self.name, self._jumps(hosts)))
        self.inventory_path.write_text(inventory_yaml(self.name, self.network, tuple(hosts), inventory_text,
                                                      self.network6, self.private))

    def _prepare_host_disk(self, target: LabHost, hosts: Sequence[LabHost], client_key: str) -> str:
        paths = self.paths.host(target.name)
        if not paths.root.exists():
            etc_hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            etc_hosts += "".join(f"{h.address}\t{h.name}\n" for h in hosts)
            etc_hosts += "".join(f"{h.address6}\t{h.name}\n" for h in hosts if h.address6)
            lab_host.prepare_disk(paths, {
                "/etc/hostname": (f"{target.name}\n", 0o644),
                "/etc/hosts": (etc_hosts, 0o644),
                lab_host.SSHD_CONFIG: (lab_host.SSHD_CONFIG_TEXT, 0o644),
                lab_host.AUTHORIZED_KEYS: (f"{client_key}\n", 0o644),
            })
        return keys.ensure(paths.root / "upper" / lab_host.HOST_KEY.lstrip("/"), f"root@{target.name}")

    def _boot(self, target: LabHost) -> None:
        paths = self.paths.host(target.name)
        netns, veth = self.netns(target.name), self.veth(target.name)
        self._unplug(target.name)  # leftovers of an unclean stop
        on = self.network_of(target.address)
        bridge = self.bridge if on == self.network else private_bridge_name(self.name)
        address = IPv4Interface(f"{target.address}/{on.prefixlen}")
        address6 = IPv6Interface(f"{target.address6}/{self.network6.prefixlen}") if target.address6 and self.network6 else None
        network.plug(netns, veth, mac_address(self.name, target.name), bridge, address, address6)
        if self.private is not None and target == self.private.bastion:
            leg = IPv4Interface(f"{self.private.bastion_leg}/{self.private.network.prefixlen}")
            network.plug_second(netns, private_veth_name(self.name, target.name),
                                mac_address(self.name, f"{target.name}.p"), private_bridge_name(self.name), leg)
        lab_host.record_processes(paths, lab_host.power_on(paths, target.name, netns, self.paths.root))
        if not wait_for_sshd(target.address, netns=netns if on != self.network else None):
            log = paths.console_log.read_text(errors="replace")[-2000:] if paths.console_log.exists() else ""
            raise LabError(f"host {target.name}: sshd did not answer on {target.address}:22\n{log}")
        link.apply(paths, netns, veth, self.link_state(target.name))

    def _unplug(self, name: str) -> None:
        if self.private is not None and name == self.private.bastion.name:
            network.delete_link(private_veth_name(self.name, name))
        network.unplug(self.netns(name), self.veth(name))

    def _jumps(self, hosts: Sequence[LabHost]) -> dict[str, str]:
        """host -> the bastion that is the only way to it."""
        if self.private is None:
            return {}
        return {h.name: self.private.bastion.name for h in hosts if self.behind_bastion(h)}

    def _remove_state_dir(self) -> None:
        lab_dir = self.paths.lab_dir
        if not lab_dir.exists():
            return
        with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
            busy = [line.split()[4] for line in mountinfo if line.split()[4].startswith(str(lab_dir))]
        if busy:
            raise LabError(f"lab {self.name!r}: still mounted under {lab_dir}: {', '.join(busy)}")
        shutil.rmtree(lab_dir)


def _power_off(paths: HostPaths) -> None:
    link.stop_delayer(paths)
    lab_host.power_off(paths)


def _check_private(private: Private, lab_network: IPv4Network) -> None:
    network.check_private_network(private.network, lab_network)
    network.check_host_address(private.bastion.name, private.bastion.address, lab_network)


def _check_network(value: IPv4Network) -> IPv4Network:
    return network.check_lab_network(IPv4Network(value))


def _check_network6(value: IPv6Network) -> IPv6Network:
    return network.check_lab_network6(IPv6Network(value))


def _for_each(items: Sequence[T], action: Callable[[T], R]) -> list[R]:
    """Run `action` on every item concurrently; one error naming every item that failed."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        futures = [pool.submit(action, item) for item in items]
    failures = [(item, f.exception()) for item, f in zip(items, futures) if f.exception()]
    if failures:
        raise LabError("\n".join(f"{_label(item)}: {error}" for item, error in failures))
    return [f.result() for f in futures]


def _label(item: object) -> str:
    return getattr(item, "name", str(item))
