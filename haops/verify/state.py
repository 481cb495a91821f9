"""State checks through pytest-testinfra's Host API, over the same SSH settings as apply."""

from __future__ import annotations

import getpass
import hashlib
from typing import TYPE_CHECKING

from haops.activation import activator
from haops.inventory.model import Inventory
from haops.targets import all_targets
from haops.targets.base import RenderContext, Target
from haops.transport import USER_KNOWN_HOSTS, SshSettings
from haops.verify.result import SKIP, CheckResult, timed, verdict

if TYPE_CHECKING:
    from testinfra.host import Host



def testinfra_host(inventory: Inventory, name: str, settings: SshSettings) -> Host:
    """testinfra's ssh backend with strict host keys (its paramiko backend accepts unknown keys)."""
    import testinfra

    host = inventory.hosts[name]
    user = host.ssh_user or settings.forced_user or getpass.getuser()
    port = f":{host.ssh_port}" if host.ssh_port else ""
    known = " ".join(str(p) for p in (settings.known_hosts or (USER_KNOWN_HOSTS,)))
    extra = f"-o StrictHostKeyChecking=yes -o BatchMode=yes -o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/dev/null"
    identity = host.ssh_key or (str(settings.identity) if settings.identity else None)
    return testinfra.get_host(f"ssh://{user}@{host.connect_to}{port}", ssh_extra_args=extra, ssh_identity_file=identity,
                              controlpersist=0, timeout=settings.connect_timeout_s)


def host_checks(inventory: Inventory, name: str, targets: list[Target], settings: SshSettings) -> list[CheckResult]:
    host = testinfra_host(inventory, name, settings)
    results = []
    for target in targets:
        results.append(timed("config", f"{name} {target.name}", lambda t=target: config_matches(inventory, name, t, host)))
        spec = activator(target.name)
        if spec.daemon is not None:
            results.append(timed("running", f"{name} {spec.daemon.name}", lambda s=spec: running(host, s.probe())))
        for address, port in spec.listeners(inventory, name):
            where = f"tcp://{address}:{port}"
            results.append(timed("listening", f"{name} {where}", lambda w=where: listening(host, w)))
        if target.name == "iptables":
            results.append(timed("iptables chains", name, lambda: iptables_chains_once(inventory, name, host)))
        if target.name == "bind":
            results.append(timed("zone serial", name, lambda: served_serials(inventory, name, host)))
        if target.name == "drbd":
            results.append(timed("DRBD state", name, lambda: drbd_state(inventory, name, host)))
    return results


def config_matches(inventory: Inventory, name: str, target: Target, host: Host) -> tuple[str, str, str]:
    live = {}
    if target.reads_live_files:
        for file in target.render(inventory, name, RenderContext()):
            remote = host.file(file.path)
            live[file.path] = remote.content_string if remote.exists else ""
    files = target.render(inventory, name, RenderContext(live=live))
    wrong = []
    for file in files:
        remote = host.file(file.path)
        if not remote.exists or remote.sha256sum != hashlib.sha256(file.text.encode()).hexdigest():
            wrong.append(file.path)
    observed = "all match" if not wrong else "differs: " + ", ".join(wrong)
    return f"{len(files)} file(s) as rendered", observed, verdict(not wrong)


def running(host: Host, probe: str) -> tuple[str, str, str]:
    ok = host.run(probe).rc == 0
    return "running", "running" if ok else "not running", verdict(ok)


def listening(host: Host, spec: str) -> tuple[str, str, str]:
    ok = host.socket(spec).is_listening
    return "listening", "listening" if ok else "nothing listens", verdict(ok)


def iptables_chains_once(inventory: Inventory, name: str, host: Host) -> tuple[str, str, str]:
    from haops.targets.iptables import HOOKS

    rules = host.iptables.rules("nat")
    chains = [rule for rule in rules if rule.startswith("-N HAOPS-")]
    hooks = {chain: rules.count(f"-A {builtin} -j {chain}") for builtin, chain in HOOKS}
    ours = [rule for rule in rules if rule.startswith("-A HAOPS-")]
    repeated = len(ours) - len(set(ours))
    ok = all(count == 1 for count in hooks.values()) and not repeated and bool(chains)
    observed = f"{len(chains)} chains, {len(ours)} rules ({repeated} repeated), jumps " + "/".join(str(c) for c in hooks.values())
    return "every haops rule and jump exactly once", observed, verdict(ok)


def served_serials(inventory: Inventory, name: str, host: Host) -> tuple[str, str, str]:
    from haops.targets.bind import serial_in, zone_path
    from haops.verify.probes import parse_serial, soa_serial

    address = str(inventory.hosts[name].address)
    pairs = []
    for zone in inventory.zones.values():
        if name in zone.servers:
            written = serial_in(host.file(zone_path(zone)).content_string)
            pairs.append((zone.name, written, parse_serial(host.run(soa_serial(address, zone.name)).stdout)))
    ok = all(written is not None and written == served for _, written, served in pairs)
    observed = " ".join(f"{zone}: file {written}, served {served}" for zone, written, served in pairs)
    return "named serves the serial in its zone file", observed, verdict(ok)


def drbd_state(inventory: Inventory, name: str, host: Host) -> tuple[str, str, str]:
    if not host.file("/proc/drbd").exists:
        return "resources connected and up to date", "no DRBD kernel module on this host", SKIP
    status = host.run("drbdadm status all")
    # `drbdadm status` names a connection state only when it is not Connected.
    ok = status.rc == 0 and "connection:" not in status.stdout and "UpToDate" in status.stdout
    return "resources connected and up to date", status.stdout.strip().replace("\n", " ")[:200], verdict(ok)


def state_checks(inventory: Inventory, settings: SshSettings, hosts: list[str]) -> list[CheckResult]:
    from concurrent.futures import ThreadPoolExecutor

    by_host: dict[str, list[Target]] = {}
    for target in all_targets():
        for name in target.hosts(inventory):
            if name in hosts:
                by_host.setdefault(name, []).append(target)
    with ThreadPoolExecutor(max_workers=4) as pool:
        batches = pool.map(lambda item: host_checks(inventory, item[0], item[1], settings), by_host.items())
    return [result for batch in batches for result in batch]

