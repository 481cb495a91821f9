"""The postgresql section: one streaming-replication cluster, its primary, standbys and role."""

from __future__ import annotations

import re
from typing import Any

from haops.inventory import values
from haops.inventory.model import PostgresCluster
from haops.inventory.section import Section
from haops.inventory.source import Path

# An SQL identifier that needs no quoting anywhere: pg_hba, conninfo, CREATE ROLE.
ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
role_name = values.matching(ROLE, "a role name: lowercase letters, digits and '_', not starting with a digit")
KEYS = ("primary", "standbys", "synchronous", "port", "listen", "replication_role", "replication_password", "clients")


class PostgresReader(Section):
    def _postgresql(self, raw: Any) -> PostgresCluster | None:
        if raw is None:
            return None
        path: Path = ("postgresql",)
        data = self.r.mapping(raw, path, KEYS, required=("primary", "standbys", "replication_password"))
        f = self.r.field
        primary = data.get("primary")
        primary_known = "primary" in data and self._known_host(primary, path + ("primary",))
        standbys = self._select(data.get("standbys"), path + ("standbys",)) if "standbys" in data else ()
        password = f(data, path, "replication_password", values.secret, None)
        optional = {key: f(data, path, key, check, None) for key, check in _CHECKS.items() if key in data}
        if primary_known and primary in standbys:
            self.r.problem(path + ("standbys",), f"{primary} is the primary; a host is either the primary or a standby")
        if optional.get("synchronous") and not standbys:
            self.r.problem(path + ("synchronous",), "synchronous needs at least one standby, or every commit waits forever")
        if not primary_known or not standbys or password is None or None in optional.values() or primary in standbys:
            return None
        if "clients" in optional:
            optional["clients"] = tuple(optional["clients"])
        return PostgresCluster(primary=str(primary), standbys=standbys, replication_password=password, **optional)


_CHECKS: dict[str, Any] = {
    "synchronous": values.boolean,
    "port": values.port,
    "listen": values.one_of("address", "all"),
    "replication_role": role_name,
    "clients": values.ipv4_networks,
}
