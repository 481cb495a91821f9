"""How each target's files go live on a host, and how haops proves they did.

An activator is data: shell snippets the apply stage runs over SSH.
  probe       exit 0 when the target is live at all (daemon running, rules loaded)
  generation  prints what a taking reload changes (worker PIDs); '' when not used
  activate    start, reload or load, for this init system
  proof       exit 0 once the *new* configuration is live; polled until a deadline
A reload's exit code is never taken as proof: nginx -s reload exits 0 when the reload
fails, rndc reload is asynchronous, and a USR2 to HAProxy is fire-and-forget.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from haops.inventory.model import Inventory
from haops.services import DAEMONS, Daemon
from haops.targets.base import RenderedFile

PROOF_SECONDS = 15
ALWAYS = "true"


@dataclass(frozen=True)
class Activator:
    target: str
    daemon: Daemon | None = None

    def probe(self) -> str:
        return self.daemon.running() if self.daemon else ALWAYS

    def generation(self) -> str:
        return self.daemon.generation() if self.daemon else "echo"

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        """(address, port) the target listens on once live; proofs and verify both check them."""
        return []

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        assert self.daemon is not None
        return self.daemon.reload_command(init) if live else self.daemon.start_command(init)

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        """Running, and when it was running before, its workers replaced."""
        checks = [self.probe()]
        if before is not None:
            checks.append(f'[ "$({self.generation()})" != {shlex.quote(before)} ]')
        return " && ".join(f"( {check} )" for check in checks)


class ListeningDaemon(Activator):
    """A daemon whose proof also needs its ports listening."""

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        ports = sorted({port for _, port in self.listeners(inventory, host)})
        listening = [f"ss -ltnH 'sport = :{port}' | grep -q ." for port in ports]
        return " && ".join([super().proof(inventory, host, files, before), *listening])

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        services = [s for s in inventory.services.values() if s.balancer == self.target and host in s.hosts]
        return [(str(s.vip), s.port) for s in services] + [("0.0.0.0", s.stats.port) for s in services if s.stats]


class Responder(ListeningDaemon):
    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        from haops.targets.responder import ports_on

        return [(str(inventory.hosts[host].address), port) for port in ports_on(inventory, host)]


class Named(Activator):
    """Proof: the server answers each zone's SOA with the serial just written (rndc reload is asynchronous)."""

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        return [(str(inventory.hosts[host].address), 53)]

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        from haops.targets.bind import serial_in

        address = inventory.hosts[host].address
        checks = [self.probe()]
        for file in files:
            serial = serial_in(file.text)
            zone = file.path.rsplit("/db.", 1)[-1]
            if serial is not None and "/db." in file.path:
                checks.append(f"[ \"$(dig +short +time=1 +tries=1 @{address} {shlex.quote(zone)} SOA | cut -d' ' -f3)\" = {serial} ]")
        return " && ".join(f"( {check} )" for check in checks)


class Keepalived(Activator):
    """Proof: keepalived's own state dump (SIGUSR1) lists each instance with its priority and address."""

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        assert self.daemon is not None
        expected = []
        for instance in inventory.vrrp.values():
            if host in instance.hosts:
                expected += [f"VRRP Instance = {instance.name}", f"Priority = {instance.priority(host)}", str(instance.vip)]
        greps = " && ".join(f"grep -qF {shlex.quote(line)} /tmp/keepalived.data" for line in expected) or ALWAYS
        dump = f"rm -f /tmp/keepalived.data; kill -USR1 {self.daemon.master_pid()}; sleep 0.2; [ -s /tmp/keepalived.data ]"
        return f"( {self.probe()} ) && {dump} && {greps}"


class Sysctl(Activator):
    """Probe and proof alike: the kernel holds every value, so a hand-changed setting is put back."""

    def probe(self) -> str:
        from haops.targets.sysctl import CONFIG

        return (f"[ -f {CONFIG} ] && grep -v '^#' {CONFIG} | while IFS='= ' read -r key value; do "
                '[ -z "$key" ] || [ "$(sysctl -n "$key")" = "$value" ] || exit 1; done')

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        return " && ".join(f"sysctl -q -p {shlex.quote(f.path)}" for f in files) or ALWAYS

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        from haops.targets.sysctl import settings_for

        return " && ".join(f'[ "$(sysctl -n {key})" = {value} ]' for key, value, _ in settings_for(inventory, host)) or ALWAYS


class Iptables(Activator):
    """One iptables-restore --noflush of haops' own chains, then the jumps into them, each only if missing.

    Chains named HAOPS-* in the nat table are haops'. One the file no longer declares (its
    service was removed) is unreferenced once the hook chains are refilled, and is deleted."""

    def probe(self) -> str:
        return "iptables -w -t nat -S HAOPS-PREROUTING >/dev/null 2>&1"

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        from haops.targets.iptables import CONFIG, HOOKS, TABLE

        # `iptables -C` exits 1 when the rule is missing; anything else (4 under the xtables
        # lock, 2 for a bad rule) is an error and must not be read as "absent".
        hooks = [
            f"iptables -w -t {TABLE} -C {builtin} -j {chain} 2>/dev/null; c=$?; "
            f"if [ $c = 1 ]; then iptables -w -t {TABLE} -A {builtin} -j {chain}; elif [ $c != 0 ]; then exit $c; fi"
            for builtin, chain in HOOKS
        ]
        stale = (f"for c in $(iptables-save -t {TABLE} | sed -n 's/^:\\(HAOPS-[^ ]*\\) .*/\\1/p'); do "
                 f"grep -q \"^:$c \" {CONFIG} || {{ iptables -w -t {TABLE} -F $c && iptables -w -t {TABLE} -X $c; }} || exit 1; done")
        return " && ".join([f"iptables-restore -w --noflush {CONFIG}", *(f"( {h} )" for h in hooks), f"( {stale} )"])

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        from haops.targets.iptables import HOOKS, TABLE

        wanted = sum(1 for f in files for line in f.text.splitlines() if line.startswith("-A "))
        rules = f"[ \"$(iptables-save -t {TABLE} | grep -c '^-A HAOPS-')\" = {wanted} ]"
        hooks = [f"[ \"$(iptables-save -t {TABLE} | grep -cx -- '-A {builtin} -j {chain}')\" = 1 ]" for builtin, chain in HOOKS]
        return " && ".join([rules, *hooks])


class Drbd(Activator):
    """`drbdadm adjust` where the kernel has DRBD; elsewhere the files are written and that is said."""

    def probe(self) -> str:
        return ALWAYS

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        names = " ".join(shlex.quote(f.path.rsplit("/", 1)[-1].removesuffix(".res")) for f in files)
        return f'if [ -e /proc/drbd ]; then drbdadm adjust {names}; else echo "no DRBD kernel module: resource files written, not activated"; fi'

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        return ALWAYS


class ManagedByKeepalived(Activator):
    """The ipvsadm rules file is for hosts without keepalived; here keepalived's virtual_server blocks drive IPVS."""

    def probe(self) -> str:
        return ALWAYS

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        return ALWAYS

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        return ALWAYS


ACTIVATORS: dict[str, Activator] = {
    "sysctl": Sysctl("sysctl"),
    "iptables": Iptables("iptables"),
    "lvs": ManagedByKeepalived("lvs"),
    "drbd": Drbd("drbd"),
    "responder": Responder("responder", DAEMONS["haops-responder"]),
    "haproxy": ListeningDaemon("haproxy", DAEMONS["haproxy"]),
    "nginx": ListeningDaemon("nginx", DAEMONS["nginx"]),
    "apache": ListeningDaemon("apache", DAEMONS["apache2"]),
    "bind": Named("bind", DAEMONS["named"]),
    "keepalived": Keepalived("keepalived", DAEMONS["keepalived"]),
}


def activator(target: str) -> Activator:
    return ACTIVATORS[target]


def poll(condition: str, seconds: int = PROOF_SECONDS) -> str:
    """Shell: retry `condition` every 0.2 s until it holds (exit 0) or `seconds` of wall time pass (exit 1)."""
    return (f"deadline=$(($(date +%s) + {seconds})); "
            f"until {condition}; do [ $(date +%s) -ge $deadline ] && exit 1; sleep 0.2; done")
