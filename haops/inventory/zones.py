"""The zones section: name servers, round-robin records and delegations."""

from __future__ import annotations

from typing import Any

from haops.inventory import values
from haops.inventory.model import Delegation, Record, Zone
from haops.inventory.section import Section, keys_of
from haops.inventory.source import Path


class ZoneReader(Section):
    def _zones(self, raw: Any) -> dict[str, Zone]:
        section = self.r.mapping(raw, ("zones",), raw.keys() if isinstance(raw, dict) else ())
        zones = {}
        for name, body in section.items():
            path = ("zones", name)
            zone_name = self.r.check(name, path, values.zone_name)
            if zone_name is not None:
                self.written[("zones", zone_name)] = path
                zones[zone_name] = self._zone(zone_name, body, path)
        return zones

    def _zone(self, name: str, body: Any, path: Path) -> Zone:
        data = self.r.mapping(body, path, ("servers", "records", "delegate", "ttl", "rrset_order", "contact"), required=("servers",))
        records = []
        for record_name, addresses in self.r.mapping(data.get("records"), path + ("records",), keys_of(data.get("records"))).items():
            rpath = path + ("records", record_name)
            label = self.r.check(record_name, rpath, values.record_name)
            self.written[("zones", name, "records", label)] = rpath
            record = self._record(label, addresses, rpath)
            if record is not None:
                records.append(record)
        delegations = []
        for sub, servers in self.r.mapping(data.get("delegate"), path + ("delegate",), keys_of(data.get("delegate"))).items():
            dpath = path + ("delegate", sub)
            label = self.r.check(sub, dpath, values.record_name)
            chosen = self._select(servers, dpath)
            if label is not None:
                delegations.append(Delegation(label, chosen))
        zone = Zone(
            name=name,
            servers=self._select(data.get("servers"), path + ("servers",)),
            records=tuple(records),
            delegations=tuple(delegations),
            ttl=self.r.field(data, path, "ttl", values.seconds, 300),
            rrset_order=self.r.field(data, path, "rrset_order", values.one_of("cyclic", "random", "fixed"), "cyclic"),
            contact=self.r.field(data, path, "contact", values.record_name, "hostmaster"),
        )
        return zone
    def _record(self, label: str | None, raw: Any, path: Path) -> Record | None:
        ttl = None
        if isinstance(raw, dict):
            data = self.r.mapping(raw, path, ("addresses", "ttl"), required=("addresses",))
            ttl = self.r.field(data, path, "ttl", values.seconds, None)
            raw, path = data.get("addresses"), path + ("addresses",)
        items = raw if isinstance(raw, list) else [raw]
        addresses = [self.r.check(item, path + ((i,) if isinstance(raw, list) else ()), values.ip_address) for i, item in enumerate(items)]
        if not items:
            self.r.problem(path, "must list at least one address")
        if label is None or None in addresses:
            return None
        return Record(label, tuple(addresses), ttl)
