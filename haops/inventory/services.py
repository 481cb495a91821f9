"""The services section: what is balanced, where, to which backends, and how."""

from __future__ import annotations

import re
from typing import Any

from haops.inventory import values
from haops.inventory.model import STICKY, Backend, Health, Service, Stats, Timeouts
from haops.inventory.section import Section
from haops.inventory.source import Path

SERVICE_KEYS = (
    "vip", "port", "balancer", "algorithm", "hosts", "backends", "backend_port", "health",
    "sticky", "cookie", "hash_key", "retries", "redispatch", "timeouts", "maxconn", "stats",
)


class ServiceReader(Section):
    def _service(self, name: str, body: Any, path: Path) -> Service | None:
        """A service as written. Keys beyond the common ones that hold a mapping are option
        blocks for one balancer (`lvs: {mode: dr}`); that balancer's review reads them."""
        blocks = {k: v for k, v in body.items() if k not in SERVICE_KEYS and isinstance(v, dict)} if isinstance(body, dict) else {}
        data = self.r.mapping(body, path, [*SERVICE_KEYS, *blocks], required=("vip", "port", "balancer", "backends"))
        f = self.r.field
        balancer = f(data, path, "balancer", values.name, None)
        port = f(data, path, "port", values.port, None)
        backend_port = f(data, path, "backend_port", values.port, port)
        vip = f(data, path, "vip", values.ip_address, None)
        service = Service(
            name=name,
            vip=vip,
            port=port,
            balancer=balancer,
            algorithm=f(data, path, "algorithm", _algorithm_text, "roundrobin"),
            hosts=self._select(data.get("hosts"), path + ("hosts",), default_group="lb"),
            backends=self._backends(data.get("backends"), path + ("backends",), backend_port, vip.version if vip else 4),
            health=self._health(data.get("health"), path + ("health",)),
            sticky=f(data, path, "sticky", values.one_of(*STICKY), "none"),
            cookie=f(data, path, "cookie", values.cookie, "SERVERID"),
            hash_key=f(data, path, "hash_key", _hash_key, None),
            retries=f(data, path, "retries", values.integer(0, 10), 2),
            redispatch=f(data, path, "redispatch", values.boolean, True),
            timeouts=self._timeouts(data.get("timeouts"), path + ("timeouts",)),
            maxconn=f(data, path, "maxconn", values.integer(1, 1_000_000), 4096),
            stats=self._stats(data.get("stats"), path + ("stats",)),
            options=blocks,
        )
        if balancer is None or port is None or service.vip is None:
            return None
        if service.backends and all(b.backup for b in service.backends):
            self.r.problem(path + ("backends",), "every backend is a backup: nothing would serve until one fails; mark at least one active")
        return service

    def _backends(self, raw: Any, path: Path, default_port: int | None, version: int) -> tuple[Backend, ...]:
        """The backends, each at its host's address in the VIP's family (`version`)."""
        if isinstance(raw, (str, dict)) and not (isinstance(raw, dict) and "host" in raw):
            data = {"group": raw} if isinstance(raw, str) else self.r.mapping(raw, path, ("group", "port", "weight"), required=("group",))
            port = self.r.field(data, path, "port", values.port, default_port)
            weight = self.r.field(data, path, "weight", values.weight, None)
            names = self._select({"group": data.get("group")}, path + ("group",))
            items: list[Any] = [{"host": n, "port": port, **({"weight": weight} if weight else {})} for n in names]
            item_paths = [path] * len(items)
        else:
            items = self.r.sequence(raw, path)
            item_paths = [path + (i,) for i in range(len(items))]
            if not items:
                self.r.problem(path, "must list at least one backend")
        backends = [self._backend(item, item_path, default_port, version) for item, item_path in zip(items, item_paths)]
        chosen = tuple(b for b in backends if b is not None)
        targets = [(b.address, b.port) for b in chosen]
        if len(set(targets)) != len(targets):
            self.r.problem(path, "lists the same backend address and port twice")
        return chosen

    def _backend(self, raw: Any, path: Path, default_port: int | None, version: int) -> Backend | None:
        if isinstance(raw, str):
            raw = {"host": raw}
        data = self.r.mapping(raw, path, ("host", "port", "weight", "backup"), required=("host",))
        if not self._known_host(data.get("host"), path + ("host",)):
            return None
        host = self.hosts[data["host"]]
        port = self.r.field(data, path, "port", values.port, default_port)
        weight = self.r.field(data, path, "weight", values.weight, host.weight)
        backup = self.r.field(data, path, "backup", values.boolean, False)
        address = host.address_in(version)
        if address is None:
            self.r.problem(path + ("host",), f"host {host.name} has no IPv{version} address, and the VIP is IPv{version}; "
                           f"give it {'address6' if version == 6 else 'an IPv4 address'} or use an IPv{version} host")
            return None
        if port is None or weight is None:
            return None
        return Backend(host.name, address, port, weight, bool(backup))

    def _health(self, raw: Any, path: Path) -> Health | None:
        if raw is None or raw is False:
            return None
        if raw is True:
            return Health()
        data = self.r.mapping(raw, path, ("type", "path", "interval", "timeout", "fall", "rise"))
        kind = self.r.field(data, path, "type", values.one_of("http", "tcp"), "http")
        return Health(
            path=self.r.field(data, path, "path", values.http_path, "/health") if kind == "http" else None,
            interval_ms=self.r.field(data, path, "interval", values.duration_ms, 2000),
            timeout_ms=self.r.field(data, path, "timeout", values.duration_ms, 1000),
            fall=self.r.field(data, path, "fall", values.integer(1, 100), 3),
            rise=self.r.field(data, path, "rise", values.integer(1, 100), 2),
        )

    def _timeouts(self, raw: Any, path: Path) -> Timeouts:
        data = self.r.mapping(raw, path, ("connect", "client", "server"))
        return Timeouts(
            connect_ms=self.r.field(data, path, "connect", values.duration_ms, 5000),
            client_ms=self.r.field(data, path, "client", values.duration_ms, 30000),
            server_ms=self.r.field(data, path, "server", values.duration_ms, 30000),
        )

    def _stats(self, raw: Any, path: Path) -> Stats | None:
        if raw is None:
            return None
        data = self.r.mapping(raw, path, ("port", "user", "password", "uri"), required=("port", "user", "password"))
        return Stats(
            port=self.r.field(data, path, "port", values.port, 8404),
            user=self.r.field(data, path, "user", values.user, "admin"),
            password=self.r.field(data, path, "password", values.secret, ""),
            uri=self.r.field(data, path, "uri", values.http_path, "/stats"),
        )


def _algorithm_text(value: Any) -> str:
    return values.matching(re.compile(r"^[a-z][a-z_-]{1,20}$"), "an algorithm name such as roundrobin")(value)


def _hash_key(value: Any) -> str:
    text = values.matching(re.compile(r"^(uri|source|(cookie|header|arg):[A-Za-z][A-Za-z0-9_-]{0,63})$"),
                           "uri, source, cookie:NAME, header:NAME or arg:NAME")(value)
    if text.startswith(("cookie:", "arg:")) and "-" in text:
        raise ValueError(f"cookie and query argument names may not contain '-' (nginx variables cannot name them), got {value!r}")
    return text
