"""BIND: one self-contained named.conf per name server, one zone file per zone it serves.

Every server of a zone is a master loading the same zone file, so no zone transfer is
needed. The SOA serial changes only when the zone's content changes (see next_serial).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from haops.inventory.model import Inventory, IPAddress, Record, Zone
from haops.render import render_template
from haops.targets.base import (
    Check,
    ProblemAt,
    RemoteHost,
    RenderContext,
    RenderedFile,
    StateCheck,
    Target,
    Verdict,
    under,
)
from haops.targets.daemon import Daemon
from haops.verify.probes import parse_serial, soa_serial
from haops.verify.result import verdict

CONFIG = "/etc/bind/named.conf"
ZONE_DIR = "/etc/bind/haops"
WORKING_DIR = "/var/cache/bind"
MAX_SERIAL = 2**32 - 1
# The serial sits alone on its line in the SOA record, as the template writes it.
SERIAL_LINE = re.compile(r"^(?P<indent>[ \t]+)(?P<serial>\d{1,10})(?P<rest> ; serial\b.*)$", re.MULTILINE)


def zone_path(zone: Zone) -> str:
    return f"{ZONE_DIR}/db.{zone.name}"


def server_name(host: str, zone: Zone) -> str:
    """The name-server name of an inventory host inside `zone`: '<host>.<zone>.'."""
    return f"{host}.{zone.name}."


# --- review ---------------------------------------------------------------------------


def review_zone(zone: Zone) -> list[ProblemAt]:
    """Refuse zones that named would reject, or serve differently from what was asked."""
    return [*_option_problems(zone), *_delegation_problems(zone), *(p for r in zone.records for p in _record_problems(zone, r))]


def _option_problems(zone: Zone) -> list[ProblemAt]:
    problems: list[ProblemAt] = []
    if zone.rrset_order == "fixed":
        problems.append((("rrset_order",), "Debian's BIND 9.18 is built without 'fixed' order: named-checkconf says "
                         "\"order 'fixed' was disabled at compilation time\" and named answers in another order; "
                         "use cyclic (rotate on every answer) or random"))
    if zone.contact == "@":
        problems.append((("contact",), "the contact is the mailbox part of hostmaster@zone, e.g. 'hostmaster'; '@' is not a mailbox"))
    return problems


def _delegation_problems(zone: Zone) -> list[ProblemAt]:
    return [(("delegate", "@"), "the zone apex cannot be delegated; delegate a name below it, e.g. 'app'")
            for delegation in zone.delegations if delegation.name == "@"]


def _record_problems(zone: Zone, record: Record) -> list[ProblemAt]:
    where = ("records", record.name)
    problems: list[ProblemAt] = []
    if record.name in set(zone.servers) | {host for d in zone.delegations for host in d.servers}:
        problems.append((where, f"{record.name}.{zone.name} is the name of a name server; haops writes its A record "
                         "from the inventory address, so rename this record"))
    if "_" in record.name:
        problems.append((where, f"{record.name!r}: an A record name must be a host name (letters, digits, '-'); "
                         "named refuses '_' there (check-names)"))
    hidden = _cut_above(record.name, {d.name for d in zone.delegations})
    if hidden is not None:
        problems.append((where, f"{record.name}.{zone.name} lies inside the delegation of {hidden}.{zone.name}, so "
                         "this zone may not answer for it; put the record in the delegated zone instead"))
    return problems


def _cut_above(name: str, cuts: set[str]) -> str | None:
    """The delegated name at or above record `name`, if any."""
    labels = name.split(".")
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in cuts:
            return candidate
    return None


# --- serial -----------------------------------------------------------------------------


def serial_in(zone_text: str) -> int | None:
    """The SOA serial of a zone file haops wrote, or None when the text is not one."""
    match = SERIAL_LINE.search(zone_text)
    if match is None:
        return None
    serial = int(match.group("serial"))
    return serial if 0 < serial < MAX_SERIAL else None


def without_serial(zone_text: str) -> str:
    return SERIAL_LINE.sub(r"\g<indent>SERIAL\g<rest>", zone_text, count=1)


def next_serial(today: date, new_body: str, live_text: str | None) -> int:
    """YYYYMMDDnn that changes only when the zone content changes.

    Same content as the live file (apart from its serial): keep the live serial.
    Changed content: the larger of today's first serial and the live serial + 1, so more
    than 99 changes a day just keep counting. No readable live file: today's first serial.
    """
    first_today = int(today.strftime("%Y%m%d")) * 100 + 1
    live_serial = serial_in(live_text) if live_text is not None else None
    if live_serial is None:
        return first_today
    if without_serial(new_body) == without_serial(live_text or ""):
        return live_serial
    return max(first_today, live_serial + 1)


# --- zone data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Delegated:
    name: str
    name_servers: tuple[str, ...]


def name_server_addresses(inventory: Inventory, zone: Zone) -> dict[str, tuple[IPAddress, ...]]:
    """'<host>.<zone>.' -> its addresses (A, then AAAA glue), by name, for the zone's own servers and every delegated server."""
    hosts = set(zone.servers) | {host for d in zone.delegations for host in d.servers}
    return {server_name(host, zone): in_order(inventory.hosts[host].addresses) for host in sorted(hosts)}


def in_order(addresses: tuple[IPAddress, ...]) -> tuple[IPAddress, ...]:
    """IPv4 (A) before IPv6 (AAAA), each by value."""
    return tuple(sorted(addresses, key=lambda address: (address.version, address)))


def record_type(address: IPAddress) -> str:
    return "AAAA" if address.version == 6 else "A"


def records(zone: Zone) -> list[Record]:
    """The zone's records in one order whatever the inventory's: '@' first, then by name, addresses by value."""
    ordered = sorted(zone.records, key=lambda r: (r.name != "@", r.name))
    return [dataclasses.replace(r, addresses=in_order(r.addresses)) for r in ordered]


def delegations(zone: Zone) -> list[Delegated]:
    ordered = sorted(zone.delegations, key=lambda d: d.name)
    return [Delegated(d.name, tuple(server_name(h, zone) for h in d.servers)) for d in ordered]


def render_zone(inventory: Inventory, zone: Zone, context: RenderContext) -> RenderedFile:
    path = zone_path(zone)
    body = _zone_text(inventory, zone, serial=0)
    serial = next_serial(context.today, body, context.live.get(path))
    return RenderedFile(path, _zone_text(inventory, zone, serial))


def _zone_text(inventory: Inventory, zone: Zone, serial: int) -> str:
    return render_template(
        "bind/zone.db.j2",
        zone=zone,
        serial=serial,
        primary=server_name(zone.servers[0], zone),
        name_servers=[server_name(host, zone) for host in zone.servers],
        records=records(zone),
        addresses=name_server_addresses(inventory, zone),
        delegations=delegations(zone),
        record_type=record_type,
    )


# --- named.conf -------------------------------------------------------------------------


def rrset_orders(zones: list[Zone]) -> list[tuple[str | None, str]]:
    """(name pattern or None for every name, order); deepest zones first, as the first match wins."""
    orders = {zone.rrset_order for zone in zones}
    if len(orders) == 1:
        return [(None, orders.pop())]
    deepest_first = sorted(zones, key=lambda z: (-z.name.count("."), z.name))
    return [(pattern, z.rrset_order) for z in deepest_first for pattern in (z.name, f"*.{z.name}")]


def zones_on(inventory: Inventory, host: str) -> list[Zone]:
    return sorted((zone for zone in inventory.zones.values() if host in zone.servers), key=lambda z: z.name)


DAEMON = Daemon(name="named", unit="named", process="named", pidfile="/run/named/named.pid",
                prepare="mkdir -p /run/named && chown bind:bind /run/named",
                start="named -u bind", reload="rndc reload")


def serves_serials(inventory: Inventory, host: str, files: list[RenderedFile]) -> list[str]:
    """Shell tests: the server answers each zone's SOA with the serial just written."""
    address = str(inventory.hosts[host].address)
    tests = []
    for file in files:
        serial = serial_in(file.text)
        if serial is not None and file.path.startswith(f"{ZONE_DIR}/db."):
            zone = file.path.removeprefix(f"{ZONE_DIR}/db.")
            tests.append(f"[ \"$({soa_serial(address, zone)} | cut -d' ' -f3)\" = {serial} ]")
    return tests


def served_serials(inventory: Inventory, host: str, remote: RemoteHost) -> Verdict:
    address = str(inventory.hosts[host].address)
    pairs = []
    for zone in zones_on(inventory, host):
        written = serial_in(remote.file(zone_path(zone)).content_string)
        pairs.append((zone.name, written, parse_serial(remote.run(soa_serial(address, zone.name)).stdout)))
    ok = all(written is not None and written == served for _, written, served in pairs)
    observed = " ".join(f"{zone}: file {written}, served {served}" for zone, written, served in pairs)
    return "named serves the serial in its zone file", observed, verdict(ok)


class BindTarget(Target):
    name = "bind"
    daemon = DAEMON
    reads_live_files = True  # a zone keeps its serial while its content is unchanged

    def review(self, inventory: Inventory) -> list[ProblemAt]:
        return [(("zones", zone.name, *path), message) for zone in inventory.zones.values() for path, message in review_zone(zone)]

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        return [(str(address), 53) for address in inventory.hosts[host].addresses]

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        """rndc reload is asynchronous: live means the new serials are served."""
        return " && ".join(f"( {test} )" for test in [self.probe(), *serves_serials(inventory, host, files)])

    def state_checks(self, inventory: Inventory, host: str) -> list[StateCheck]:
        return [StateCheck("zone serial", host, lambda remote: served_serials(inventory, host, remote))]

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        wanted = {host for zone in inventory.zones.values() for host in zone.servers}
        return tuple(name for name in inventory.hosts if name in wanted)

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        zones = zones_on(inventory, host)
        config = render_template(
            "bind/named.conf.j2",
            address=inventory.hosts[host].address_in(4),
            address6=inventory.hosts[host].address_in(6),
            working_dir=WORKING_DIR,
            rrset_orders=rrset_orders(zones),
            zones=zones,
            zone_path=zone_path,
        )
        return [RenderedFile(CONFIG, config), *(render_zone(inventory, zone, context) for zone in zones)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        zone_checks = [
            Check("named-checkzone", ("named-checkzone", "-k", "fail", "-i", "local", zone.name, under(root, zone_path(zone))),
                  f"named-checkzone {zone.name}")
            for zone in zones_on(inventory, host)
        ]
        return [*zone_checks, self._config_check(root)]

    @staticmethod
    def _config_check(root: Path) -> Check:
        # -t chroots into the candidate tree so the zone paths resolve there; named-checkconf
        # also changes into `directory`, which a fresh tree lacks, so create it first.
        script = 'mkdir -p "$1$2" && exec named-checkconf -z -t "$1" "$3"'
        argv = ("sh", "-c", script, "named-checkconf", str(root), WORKING_DIR, CONFIG)
        return Check("named-checkconf", argv, "named-checkconf -z")


TARGET = BindTarget()
