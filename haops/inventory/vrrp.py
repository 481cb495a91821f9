"""The vrrp section: floating addresses, the hosts that may hold them, and their priorities."""

from __future__ import annotations

import re
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from typing import Any

from haops.inventory import values
from haops.inventory.model import VrrpInstance
from haops.inventory.section import Section
from haops.inventory.source import Path


class VrrpReader(Section):
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
            track_process=f(data, path, "track_process", values.process_name, None),
            nopreempt=f(data, path, "nopreempt", values.boolean, False),
            interface=f(data, path, "interface", values.interface, None),
        )
        if instance.vip is None or instance.router_id is None or len(instance.priorities) < 2:
            return None
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


VIP_TEXT = "an IPv4 or IPv6 address with optional prefix, e.g. 10.213.0.100/24 or 'fd00:213::100/64'"


def _vip_interface(value: Any) -> IPv4Interface | IPv6Interface:
    if isinstance(value, list):
        families = {":" in str(item) for item in value}
        if len(families) > 1:
            raise ValueError("an IPv4 and an IPv6 VIP cannot share a VRRP instance: IPv4 VRRP and VRRPv3 over IPv6 "
                             "advertise separately; give the IPv6 VIP an instance of its own (e.g. www6)")
        raise ValueError(f"must be one address ({VIP_TEXT}): one VIP per instance")
    if isinstance(value, str) and "/" not in value:
        value = f"{value}/{128 if ':' in value else 32}"
    text = values.matching(re.compile(r"^[0-9A-Fa-f.:/]{9,43}$"), VIP_TEXT)(value)
    try:
        return ip_interface(text)
    except ValueError:
        raise ValueError(f"must be {VIP_TEXT}, got {value!r}") from None
