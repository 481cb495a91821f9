"""Load an inventory file into the validated model, or fail with every problem listed."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path as FilePath
from typing import Any

from haops.inventory import values
from haops.errors import UserError
from haops.inventory.model import (
    BALANCERS,
    STICKY,
    Backend,
    Delegation,
    DrbdNode,
    DrbdResource,
    Health,
    Host,
    Inventory,
    LabSettings,
    Record,
    Service,
    Stats,
    Timeouts,
    VrrpInstance,
    Zone,
)
from haops.inventory.reader import MISSING, Reader
from haops.inventory.source import LocatedDocument, Path, load_located

TOP_KEYS = ("lab", "vars", "groups", "hosts", "services", "zones", "drbd", "vrrp", "responders")
HOST_VARS = ("interface", "ssh_user", "ssh_port", "ssh_host", "ssh_key", "init", "weight")
HOST_VAR_CHECKS = {
    "interface": values.interface,
    "ssh_user": values.user,
    "ssh_port": values.port,
    "ssh_host": values.ssh_host,
    "ssh_key": values.local_path,
    "init": values.one_of("auto", "systemd", "none"),
    "weight": values.weight,
}
SERVICE_KEYS = (
    "vip", "port", "balancer", "algorithm", "hosts", "backends", "backend_port", "health",
    "sticky", "cookie", "hash_key", "retries", "redispatch", "timeouts", "maxconn", "stats",
    "lvs", "nginx", "manager",
)


def load(path: str | FilePath) -> Inventory:
    """Read and validate the inventory at `path`."""
    file = FilePath(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"inventory not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read inventory {file}: {exc}") from None
    return parse(text, str(file))


def parse(text: str, filename: str = "<inventory>") -> Inventory:
    """Validate inventory YAML text; raise InventoryError listing every problem."""
    document = load_located(text, filename)
    return _InventoryParser(document).parse()


class _InventoryParser:
    def __init__(self, document: LocatedDocument) -> None:
        self.document = document
        self.r = Reader(document)
        self.hosts: dict[str, Host] = {}

    def parse(self) -> Inventory:
        top = self.r.mapping(self.document.data, (), TOP_KEYS, required=("hosts",))
        lab = self._lab(top.get("lab"))
        self.hosts = self._hosts(top)
        self.r.raise_if_any()
        inventory = Inventory(
            source=self.document.filename,
            hosts=self.hosts,
            services=self._each(top, "services", self._service),
            zones=self._zones(top.get("zones")),
            drbd=self._each(top, "drbd", self._drbd),
            vrrp=self._each(top, "vrrp", self._vrrp),
            lab=lab,
            responders=self.r.field(top, (), "responders", values.boolean, False),
        )
        self.r.raise_if_any()
        self._cross_checks(inventory)
        self.r.raise_if_any()
        return inventory

    def _each(self, top: dict[str, Any], key: str, build: Any) -> dict[str, Any]:
        section = self.r.mapping(top.get(key), (key,), _keys(top.get(key)))
        result = {}
        for name, body in section.items():
            path = (key, name)
            if self.r.check(name, path, values.name) is not None:
                result[name] = build(name, body, path)
        return {name: item for name, item in result.items() if item is not None}

    # --- lab, groups and hosts -------------------------------------------------

    def _lab(self, raw: Any) -> LabSettings | None:
        if raw is None:
            return None
        data = self.r.mapping(raw, ("lab",), ("name", "network"))
        name = self.r.field(data, ("lab",), "name", values.lab_name, "haops")
        network = self.r.field(data, ("lab",), "network", _lab_network, None)
        return LabSettings(name, network or _lab_network("10.213.0.0/24"))

    def _hosts(self, top: dict[str, Any]) -> dict[str, Host]:
        common = self._vars(top.get("vars"), ("vars",))
        group_vars, group_members = self._groups(top.get("groups"))
        raw_hosts = top.get("hosts")
        if not isinstance(raw_hosts, dict) or not raw_hosts:
            self.r.problem(("hosts",), "must map host names to their settings, e.g. 'lb1: {address: 10.213.0.11}'")
            return {}
        hosts = {}
        for name, body in raw_hosts.items():
            path = ("hosts", name)
            if self.r.check(name, path, values.hostname) is None:
                continue
            host = self._host(name, body, path, common, group_vars, group_members)
            if host is not None:
                hosts[name] = host
        for group, members in group_members.items():
            for index, member in enumerate(members):
                if member not in raw_hosts:
                    self.r.problem(("groups", group, "hosts", index), f"unknown host {member!r}; hosts: {', '.join(raw_hosts)}")
        self._unique_addresses(hosts)
        return hosts

    def _host(self, name: str, body: Any, path: Path, common: dict[str, Any],
              group_vars: dict[str, dict[str, Any]], group_members: dict[str, list[str]]) -> Host | None:
        if isinstance(body, str):
            body = {"address": body}
        data = self.r.mapping(body, path, ("address", "groups", "vars"), required=("address",))
        address = self.r.field(data, path, "address", values.ipv4, None)
        groups = [self.r.check(g, path + ("groups", i), values.name) for i, g in enumerate(self.r.sequence(data.get("groups"), path + ("groups",)))]
        groups += [group for group, members in group_members.items() if name in members]
        merged = dict(common)
        for group in sorted(set(filter(None, groups))):
            merged.update(group_vars.get(group, {}))
        merged.update(self._vars(data.get("vars"), path + ("vars",)))
        if address is None:
            return None
        return Host(name=name, address=address, groups=tuple(dict.fromkeys(filter(None, groups))), **merged)

    def _vars(self, raw: Any, path: Path) -> dict[str, Any]:
        data = self.r.mapping(raw, path, HOST_VARS)
        checked = {key: self.r.check(value, path + (key,), HOST_VAR_CHECKS[key]) for key, value in data.items()}
        return {key: value for key, value in checked.items() if value is not None}

    def _groups(self, raw: Any) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
        section = self.r.mapping(raw, ("groups",), raw.keys() if isinstance(raw, dict) else ())
        group_vars: dict[str, dict[str, Any]] = {}
        members: dict[str, list[str]] = {}
        for group, body in section.items():
            path = ("groups", group)
            if self.r.check(group, path, values.name) is None:
                continue
            data = self.r.mapping(body, path, ("hosts", "vars"))
            group_vars[group] = self._vars(data.get("vars"), path + ("vars",))
            members[group] = [str(h) for h in self.r.sequence(data.get("hosts"), path + ("hosts",))]
        return group_vars, members

    def _unique_addresses(self, hosts: dict[str, Host]) -> None:
        seen: dict[IPv4Address, str] = {}
        for host in hosts.values():
            if host.address in seen:
                self.r.problem(("hosts", host.name, "address"), f"{host.address} is already the address of {seen[host.address]}")
            seen[host.address] = host.name

    # --- selections of hosts -----------------------------------------------------

    def _select(self, raw: Any, path: Path, default_group: str | None = None) -> tuple[str, ...]:
        """A group name, {group: NAME}, or a list of host names -> host names."""
        if raw is None and default_group is not None:
            raw = default_group
        if isinstance(raw, dict):
            raw = self.r.mapping(raw, path, ("group",), required=("group",)).get("group")
        if isinstance(raw, str):
            members = tuple(h.name for h in self.hosts.values() if raw in h.groups)
            if not members:
                self.r.problem(path, f"group {raw!r} has no hosts; groups: {', '.join(_all_groups(self.hosts)) or 'none'}")
            return members
        names = []
        for index, item in enumerate(self.r.sequence(raw, path)):
            if self._known_host(item, path + (index,)):
                names.append(item)
        if raw is not None and isinstance(raw, list) and not raw:
            self.r.problem(path, "must name at least one host")
        if len(set(names)) != len(names):
            self.r.problem(path, "names a host twice")
        return tuple(names)

    def _known_host(self, name: Any, path: Path) -> bool:
        if isinstance(name, str) and name in self.hosts:
            return True
        self.r.problem(path, f"unknown host {name!r}; hosts: {', '.join(self.hosts)}")
        return False

    # --- services ----------------------------------------------------------------

    def _service(self, name: str, body: Any, path: Path) -> Service | None:
        data = self.r.mapping(body, path, SERVICE_KEYS, required=("vip", "port", "balancer", "backends"))
        f = self.r.field
        balancer = f(data, path, "balancer", values.one_of(*BALANCERS), None)
        port = f(data, path, "port", values.port, None)
        backend_port = f(data, path, "backend_port", values.port, port)
        lvs = self.r.mapping(data.get("lvs"), path + ("lvs",), ("mode", "persistence"))
        nginx = self.r.mapping(data.get("nginx"), path + ("nginx",), ("plus", "next_upstream"))
        manager = self.r.mapping(data.get("manager"), path + ("manager",), ("allow",))
        service = Service(
            name=name,
            vip=f(data, path, "vip", values.ipv4, None),
            port=port,
            balancer=balancer,
            algorithm=f(data, path, "algorithm", _algorithm_text, "roundrobin"),
            hosts=self._select(data.get("hosts"), path + ("hosts",), default_group="lb"),
            backends=self._backends(data.get("backends"), path + ("backends",), backend_port),
            health=self._health(data.get("health"), path + ("health",)),
            sticky=f(data, path, "sticky", values.one_of(*STICKY), "none"),
            cookie=f(data, path, "cookie", values.cookie, "SERVERID"),
            hash_key=f(data, path, "hash_key", _hash_key, None),
            retries=f(data, path, "retries", values.integer(0, 10), 2),
            redispatch=f(data, path, "redispatch", values.boolean, True),
            timeouts=self._timeouts(data.get("timeouts"), path + ("timeouts",)),
            maxconn=f(data, path, "maxconn", values.integer(1, 1_000_000), 4096),
            stats=self._stats(data.get("stats"), path + ("stats",)),
            lvs_mode=f(lvs, path + ("lvs",), "mode", values.one_of("nat", "dr"), "nat"),
            persistence_s=f(lvs, path + ("lvs",), "persistence", _seconds, None),
            nginx_plus=f(nginx, path + ("nginx",), "plus", values.boolean, False),
            next_upstream=tuple(f(nginx, path + ("nginx",), "next_upstream", _next_upstream, ["error", "timeout"]) or ()),
            manager_allow=tuple(self.r.check(manager.get("allow", ["127.0.0.1/32"]), path + ("manager", "allow"), _networks) or ()),
        )
        if balancer is None or port is None or service.vip is None:
            return None
        from haops.targets import review_service

        service, problems = review_service(service)
        for subpath, message in problems:
            self.r.problem(path + subpath, message)
        return service

    def _backends(self, raw: Any, path: Path, default_port: int | None) -> tuple[Backend, ...]:
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
        backends = [self._backend(item, item_path, default_port) for item, item_path in zip(items, item_paths)]
        chosen = tuple(b for b in backends if b is not None)
        targets = [(b.address, b.port) for b in chosen]
        if len(set(targets)) != len(targets):
            self.r.problem(path, "lists the same backend address and port twice")
        return chosen

    def _backend(self, raw: Any, path: Path, default_port: int | None) -> Backend | None:
        if isinstance(raw, str):
            raw = {"host": raw}
        data = self.r.mapping(raw, path, ("host", "port", "weight", "backup"), required=("host",))
        if not self._known_host(data.get("host"), path + ("host",)):
            return None
        host = self.hosts[data["host"]]
        port = self.r.field(data, path, "port", values.port, default_port)
        weight = self.r.field(data, path, "weight", values.weight, host.weight)
        backup = self.r.field(data, path, "backup", values.boolean, False)
        if port is None or weight is None:
            return None
        return Backend(host.name, host.address, port, weight, bool(backup))

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

    # --- DNS -----------------------------------------------------------------------

    def _zones(self, raw: Any) -> dict[str, Zone]:
        section = self.r.mapping(raw, ("zones",), raw.keys() if isinstance(raw, dict) else ())
        zones = {}
        for name, body in section.items():
            path = ("zones", name)
            zone_name = self.r.check(name, path, values.zone_name)
            if zone_name is not None:
                zones[zone_name] = self._zone(zone_name, body, path)
        return zones

    def _zone(self, name: str, body: Any, path: Path) -> Zone:
        data = self.r.mapping(body, path, ("servers", "records", "delegate", "ttl", "rrset_order", "contact"), required=("servers",))
        records = []
        for record_name, addresses in self.r.mapping(data.get("records"), path + ("records",), _keys(data.get("records"))).items():
            rpath = path + ("records", record_name)
            label = self.r.check(record_name, rpath, values.record_name)
            record = self._record(label, addresses, rpath)
            if record is not None:
                records.append(record)
        delegations = []
        for sub, servers in self.r.mapping(data.get("delegate"), path + ("delegate",), _keys(data.get("delegate"))).items():
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
            ttl=self.r.field(data, path, "ttl", _seconds, 300),
            rrset_order=self.r.field(data, path, "rrset_order", values.one_of("cyclic", "random", "fixed"), "cyclic"),
            contact=self.r.field(data, path, "contact", values.record_name, "hostmaster"),
        )
        from haops.targets.bind import review_zone

        for subpath, message in review_zone(zone):
            self.r.problem(path + subpath, message)
        return zone

    def _record(self, label: str | None, raw: Any, path: Path) -> Record | None:
        ttl = None
        if isinstance(raw, dict):
            data = self.r.mapping(raw, path, ("addresses", "ttl"), required=("addresses",))
            ttl = self.r.field(data, path, "ttl", _seconds, None)
            raw, path = data.get("addresses"), path + ("addresses",)
        items = raw if isinstance(raw, list) else [raw]
        addresses = [self.r.check(item, path + ((i,) if isinstance(raw, list) else ()), values.ipv4) for i, item in enumerate(items)]
        if not items:
            self.r.problem(path, "must list at least one address")
        if label is None or None in addresses:
            return None
        return Record(label, tuple(addresses), ttl)

    # --- DRBD and VRRP ---------------------------------------------------------------

    def _drbd(self, name: str, body: Any, path: Path) -> DrbdResource | None:
        keys = ("nodes", "disk", "protocol", "port", "minor", "meta_disk", "secret", "after_sb_0pri",
                "after_sb_1pri", "after_sb_2pri", "fencing", "quorum", "allow_two_primaries")
        data = self.r.mapping(body, path, keys, required=("nodes", "disk"))
        f = self.r.field
        disk = f(data, path, "disk", values.device, None)
        nodes = self._select(data.get("nodes"), path + ("nodes",))
        optional = {key: f(data, path, key, check, MISSING) for key, check in _DRBD_CHECKS.items() if key in data}
        if disk is None or None in optional.values() or len(nodes) < 2:
            if nodes and len(nodes) < 2:
                self.r.problem(path + ("nodes",), "a DRBD resource needs at least two nodes")
            return None
        resource = DrbdResource(
            name=name,
            nodes=tuple(DrbdNode(host, i, self.hosts[host].address, disk) for i, host in enumerate(nodes)),
            **optional,
        )
        from haops.targets.drbd import review_resource

        for subpath, message in review_resource(resource):
            self.r.problem(path + subpath, message)
        return resource

    def _vrrp(self, name: str, body: Any, path: Path) -> VrrpInstance | None:
        keys = ("vip", "router_id", "hosts", "advert_int", "auth_pass", "track_process", "nopreempt", "interface")
        data = self.r.mapping(body, path, keys, required=("vip", "router_id", "hosts"))
        f = self.r.field
        instance = VrrpInstance(
            name=name,
            vip=f(data, path, "vip", _vip_interface, None),
            router_id=f(data, path, "router_id", values.integer(1, 255), None),
            priorities=self._priorities(data.get("hosts"), path + ("hosts",)),
            advert_int_ms=f(data, path, "advert_int", _advert_int, 1000),
            auth_pass=f(data, path, "auth_pass", _auth_pass, None),
            track_process=f(data, path, "track_process", values.one_of("haproxy", "nginx", "apache2", "named"), None),
            nopreempt=f(data, path, "nopreempt", values.boolean, False),
            interface=f(data, path, "interface", values.interface, None),
        )
        if instance.vip is None or instance.router_id is None or len(instance.priorities) < 2:
            return None
        from haops.targets.keepalived import review_vrrp

        for subpath, message in review_vrrp(instance):
            self.r.problem(path + subpath, message)
        return instance

    def _priorities(self, raw: Any, path: Path) -> tuple[tuple[str, int], ...]:
        """{lb1: 150, lb2: 100}, or a list / group where earlier hosts get higher priority."""
        if isinstance(raw, dict) and "group" not in raw:
            pairs = []
            for host, priority in raw.items():
                if self._known_host(host, path + (host,)):
                    checked = self.r.check(priority, path + (host,), values.integer(1, 254))
                    if checked is not None:
                        pairs.append((host, checked))
        else:
            hosts = self._select(raw, path)
            if len(hosts) > 15:
                self.r.problem(path, "more than 15 hosts: give each its priority as a mapping, e.g. {lb1: 150, lb2: 140}")
            pairs = [(host, max(1, 150 - 10 * i)) for i, host in enumerate(hosts)]
        if len(pairs) < 2:
            self.r.problem(path, "a VRRP instance needs at least two hosts")
        if len({p for _, p in pairs}) != len(pairs):
            self.r.problem(path, "priorities must differ, or the election is decided by address alone")
        return tuple(sorted(pairs, key=lambda pair: -pair[1]))

    # --- across sections -------------------------------------------------------------

    def _cross_checks(self, inventory: Inventory) -> None:
        router_ids: dict[int, str] = {}
        for name, instance in inventory.vrrp.items():
            if instance.router_id in router_ids:
                self.r.problem(("vrrp", name, "router_id"), f"{instance.router_id} is already used by vrrp.{router_ids[instance.router_id]}; each instance on a network needs its own")
            router_ids[instance.router_id] = name
        listeners: dict[tuple[str, IPv4Address, int], str] = {}
        for name, service in inventory.services.items():
            for host in service.hosts:
                key = (host, service.vip, service.port)
                if key in listeners:
                    self.r.problem(("services", name, "port"), f"{service.vip}:{service.port} on {host} is already served by services.{listeners[key]}")
                listeners[key] = name


def _keys(raw: Any) -> Any:
    return raw.keys() if isinstance(raw, dict) else ()


def _all_groups(hosts: dict[str, Host]) -> list[str]:
    return sorted({group for host in hosts.values() for group in host.groups})


def _lab_network(value: Any) -> Any:
    network = values.ipv4_network(value)
    if not network.subnet_of(values.ipv4_network("10.213.0.0/16")) or not 17 <= network.prefixlen <= 29:
        raise ValueError(f"must be a network inside 10.213.0.0/16 (the lab's own range), /17 to /29, got {value!r}")
    return network


def _algorithm_text(value: Any) -> str:
    return values.matching(re.compile(r"^[a-z][a-z_-]{1,20}$"), "an algorithm name such as roundrobin")(value)


def _hash_key(value: Any) -> str:
    text = values.matching(re.compile(r"^(uri|source|(cookie|header|arg):[A-Za-z][A-Za-z0-9_-]{0,63})$"),
                           "uri, source, cookie:NAME, header:NAME or arg:NAME")(value)
    if text.startswith(("cookie:", "arg:")) and "-" in text:
        raise ValueError(f"cookie and query argument names may not contain '-' (nginx variables cannot name them), got {value!r}")
    return text


def _seconds(value: Any) -> int:
    milliseconds = values.duration_ms(value)
    if milliseconds % 1000:
        raise ValueError(f"must be whole seconds, got {value!r}")
    return milliseconds // 1000


def _advert_int(value: Any) -> int:
    milliseconds = values.duration_ms(value)
    if milliseconds % 10 or milliseconds > 255_000:
        raise ValueError(f"must be a multiple of 10ms up to 255s (VRRPv3 centiseconds), got {value!r}")
    return milliseconds


def _auth_pass(value: Any) -> str:
    text = values.secret(value)
    if len(text) > 8:
        raise ValueError("must be at most 8 characters: VRRP PASS authentication keeps only the first 8")
    return text


def _vip_interface(value: Any) -> IPv4Interface:
    if isinstance(value, str) and "/" not in value:
        value = f"{value}/32"
    text = values.matching(re.compile(r"^[0-9./]{9,18}$"), "an IPv4 address with optional prefix, e.g. 10.213.0.100/24")(value)
    try:
        return IPv4Interface(text)
    except ValueError:
        raise ValueError(f"must be an IPv4 address with optional prefix, e.g. 10.213.0.100/24, got {value!r}") from None


def _next_upstream(value: Any) -> list[str]:
    allowed = ("error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504", "http_403", "http_404", "http_429", "non_idempotent", "off")
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a list of: {', '.join(allowed)}")
    return [values.one_of(*allowed)(item) for item in value]


def _networks(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [values.ipv4_network(item) for item in items]


_DRBD_CHECKS: dict[str, Any] = {
    "protocol": values.one_of("A", "B", "C"),
    "port": values.port,
    "minor": values.integer(0, 1_048_575),
    "meta_disk": lambda v: v if v == "internal" else values.device(v),
    "secret": values.secret,
    "after_sb_0pri": values.one_of("disconnect", "discard-younger-primary", "discard-older-primary", "discard-zero-changes", "discard-least-changes"),
    "after_sb_1pri": values.one_of("disconnect", "consensus", "violently-as0p", "discard-secondary", "call-pri-lost-after-sb"),
    "after_sb_2pri": values.one_of("disconnect", "violently-as0p", "call-pri-lost-after-sb"),
    "fencing": values.one_of("dont-care", "resource-only", "resource-and-stonith"),
    "quorum": values.one_of("off", "majority", "all"),
    "allow_two_primaries": values.boolean,
}
