"""State checks through pytest-testinfra's Host API, over the same SSH settings as apply."""

from __future__ import annotations

import getpass
import hashlib
import shlex
from functools import partial
from typing import TYPE_CHECKING

from haops.apply.run import render_with_live
from haops.inventory.model import Inventory, endpoint
from haops.targets import targets_by_host
from haops.targets.base import Target
from haops.targets.daemon import Daemon
from haops.transport import USER_KNOWN_HOSTS, SshSettings, route
from haops.verify.result import CheckResult, timed, verdict

if TYPE_CHECKING:
    from testinfra.host import Host



def testinfra_host(inventory: Inventory, name: str, settings: SshSettings) -> Host:
    """testinfra's ssh backend with strict host keys (its paramiko backend accepts unknown keys)."""
    import testinfra

    host = inventory.hosts[name]
    # ssh reads the same config file as haops' own connections, so aliases and ProxyJump agree.
    to = route(host, settings)
    user = to.user or settings.forced_user or getpass.getuser()
    known = " ".join(str(p) for p in (settings.known_hosts or (*to.known_hosts, USER_KNOWN_HOSTS)))
    extra = f"-o StrictHostKeyChecking=yes -o BatchMode=yes -o UserKnownHostsFile={shlex.quote(known)} -o GlobalKnownHostsFile=/dev/null"
    identity = host.ssh_key or (str(settings.identity) if settings.identity else None)
    config = str(settings.ssh_config) if settings.ssh_config is not None and settings.ssh_config.is_file() else None
    return testinfra.get_host(f"ssh://{user}@{to.alias}:{to.port}", ssh_extra_args=extra, ssh_identity_file=identity,
                              ssh_config=config, controlpersist=0, timeout=settings.connect_timeout_s,
                              sudo=host.through_sudo)


def host_checks(inventory: Inventory, name: str, targets: list[Target], settings: SshSettings) -> list[CheckResult]:
    host = testinfra_host(inventory, name, settings)
    results = []
    for target in targets:
        results.append(timed("config", f"{name} {target.name}", partial(config_matches, inventory, name, target, host)))
        daemon = target.daemon
        if daemon is not None:
            results.append(timed("running", f"{name} {daemon.name}", partial(running, host, target.probe())))
            for address, port in target.listeners(inventory, name):
                where = f"tcp://{endpoint(address, port)}"
                results.append(timed("listening", f"{name} {where}", partial(listening, host, daemon, address, port)))
        for check in target.state_checks(inventory, name):
            results.append(timed(check.check, check.subject, partial(check.probe, host)))
    return results


def config_matches(inventory: Inventory, name: str, target: Target, host: Host) -> tuple[str, str, str]:
    def live_texts(paths: list[str]) -> dict[str, str]:
        return {path: host.file(path).content_string if host.file(path).exists else "" for path in paths}

    files = render_with_live(inventory, name, [target], live_texts)[target]
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


def listening(host: Host, daemon: Daemon, address: str, port: int) -> tuple[str, str, str]:
    """Its own processes hold the port: a squatter on it does not count."""
    listens = host.run(f"ss -ltnH 'sport = :{port}' | grep -q .").rc == 0
    ours = host.run(daemon.holds_port(port, address)).rc == 0
    observed = f"{daemon.process} listens" if ours else ("another process listens" if listens else "nothing listens")
    return f"{daemon.process} listens", observed, verdict(ours)


def state_checks(inventory: Inventory, settings: SshSettings, hosts: list[str]) -> list[CheckResult]:
    from concurrent.futures import ThreadPoolExecutor

    by_host = targets_by_host(inventory, hosts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        batches = pool.map(lambda item: host_checks(inventory, item[0], item[1], settings), by_host.items())
    return [result for batch in batches for result in batch]
