"""What the watchers make of the lines and frames they see, on samples written out by hand."""

from __future__ import annotations

import socket

import pytest

from haops.drill import record, wire
from haops.drill.probe import classify_os_error, parse_head
from haops.drill.watchers import LISTING_END, LISTING_START, health_watcher, neighbour_watcher, vip_watcher

pytestmark = pytest.mark.unit
VIP = "10.213.0.100"


def feed(watcher_parse, lines: list[str]) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return [(e.kind, e.host, e.detail) for i, line in enumerate(lines) for e in watcher_parse(float(i), line)]


def test_vip_watcher_reports_changes_only_and_a_listing_without_the_vip_as_removal() -> None:
    watcher = vip_watcher("ns", "lb1", [VIP], 10)
    seen = feed(watcher.parse, [
        LISTING_START, f"2: eth0    inet {VIP}/24 scope global secondary eth0", LISTING_END,
        f"2: eth0    inet {VIP}/24 scope global secondary eth0",  # the monitor repeats it: no change
        LISTING_START, "2: eth0    inet 10.213.0.11/24 scope global eth0", LISTING_END,  # a new namespace, no VIP
        f"2: eth0    inet {VIP}/24 scope global secondary eth0",
        f"Deleted 2: eth0    inet {VIP}/24 scope global secondary eth0",
    ])
    assert [kind for kind, _, _ in seen] == [record.VIP_ADDED, record.VIP_REMOVED, record.VIP_ADDED, record.VIP_REMOVED]


def test_neighbour_watcher_reports_a_new_mac_only_after_the_first_one_is_known() -> None:
    watcher = neighbour_watcher("ns", "client1", [VIP], 10)
    seen = feed(watcher.parse, [f"{VIP} dev eth0 lladdr 02:00:00:00:00:01 REACHABLE",
                                f"{VIP} dev eth0 lladdr 02:00:00:00:00:01 STALE",
                                "10.213.0.21 dev eth0 lladdr 02:00:00:00:00:09 REACHABLE",
                                f"{VIP} dev eth0 lladdr 02:00:00:00:00:02 REACHABLE"])
    assert seen == [(record.NEIGH, "client1", f"{VIP} lladdr 02:00:00:00:00:02")]


def test_health_watcher_detects_down_and_maint_after_the_first_view() -> None:
    watcher = health_watcher(["true"], "lb1")
    seen = feed(watcher.parse, ["web1 UP", "web2 UP", "--", "web1 UP 1/2", "web1 DOWN", "web2 MAINT", "web1 UP"])
    assert seen == [(record.DETECT, "lb1", "health check: web1 DOWN"), (record.DETECT, "lb1", "health check: web2 MAINT"),
                    (record.NOTE, "lb1", "health check: web1 UP again")]


def ethernet(ethertype: int, payload: bytes) -> bytes:
    return b"\x01\x00\x5e\x00\x00\x12" + b"\x02\x00\x00\x00\x00\x0b" + ethertype.to_bytes(2, "big") + payload


def test_wire_reads_vrrp_adverts_and_gratuitous_arps() -> None:
    ip_header = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 255, 112, 0, 0]) + socket.inet_aton("10.213.0.12") + socket.inet_aton("224.0.0.18")
    advert = bytes([0x31, 51, 100, 1, 0, 100, 0, 0]) + socket.inet_aton(VIP)  # v3 advert, VRID 51, priority 100
    assert wire.vrrp_advert(ethernet(0x0800, ip_header + advert)) == ("10.213.0.12", 51, 100)
    arp_head = bytes([0, 1, 8, 0, 6, 4, 0, 1])
    mac = bytes.fromhex("02586ff46d47")
    garp = arp_head + mac + socket.inet_aton(VIP) + b"\x00" * 6 + socket.inet_aton(VIP)
    assert wire.gratuitous_arp(ethernet(0x0806, garp)) == (VIP, "02:58:6f:f4:6d:47")
    question = arp_head + mac + socket.inet_aton("10.213.0.41") + b"\x00" * 6 + socket.inet_aton(VIP)
    assert wire.gratuitous_arp(ethernet(0x0806, question)) is None
    assert wire.vrrp_advert(ethernet(0x0806, garp)) is None


def test_probe_reads_status_and_backend_and_names_socket_errors() -> None:
    assert parse_head(b"HTTP/1.1 200 OK\r\nX-Backend: web2\r\nContent-Length: 5\r\n\r\n") == (200, "web2")
    assert parse_head(b"SSH-2.0-OpenSSH\r\n\r\n") == (0, "")
    assert classify_os_error(ConnectionRefusedError()) == record.REFUSED
    assert classify_os_error(ConnectionResetError()) == record.RESET
    assert classify_os_error(OSError(113, "No route to host")) == record.UNREACHABLE
