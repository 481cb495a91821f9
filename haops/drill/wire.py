"""The drill's wire watcher: VRRP adverts and ARP for the VIPs, as a client on the segment sees them.

Runs standalone (`python -I wire.py IFACE SECONDS VIP...`, stdlib only) inside a lab host's
network namespace, where an AF_PACKET socket sees every broadcast and link-local multicast
frame on the lab bridge: VRRP adverts go to 224.0.0.18 and gratuitous ARPs to ff:ff:ff:ff:ff:ff.
One JSON line per change, stamped on CLOCK_MONOTONIC as the frame arrives:
- {"kind": "vrrp_advert", "source", "vrid", "priority"} for the first advert of a (source, VRID)
  and whenever its priority changes (priority 0: the master is stepping down);
- {"kind": "garp", "vip", "mac"} for an ARP whose sender is a VIP and whose target is itself.
Stops by itself after SECONDS.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
IPPROTO_VRRP = 112


def vrrp_advert(frame: bytes) -> tuple[str, int, int] | None:
    """(source address, VRID, priority) of a VRRP advert in an Ethernet frame."""
    if len(frame) < 34 or int.from_bytes(frame[12:14], "big") != ETHERTYPE_IPV4 or frame[23] != IPPROTO_VRRP:
        return None
    header = 14 + (frame[14] & 0x0F) * 4
    if len(frame) < header + 3:
        return None
    return socket.inet_ntoa(frame[26:30]), frame[header + 1], frame[header + 2]


def gratuitous_arp(frame: bytes) -> tuple[str, str] | None:
    """(sender address, sender MAC) of an ARP frame announcing its own address."""
    if len(frame) < 42 or int.from_bytes(frame[12:14], "big") != ETHERTYPE_ARP:
        return None
    sender_mac, sender_ip, target_ip = frame[22:28], frame[28:32], frame[38:42]
    if sender_ip != target_ip:
        return None
    return socket.inet_ntoa(sender_ip), sender_mac.hex(":")


def emit(**fields: object) -> None:
    sys.stdout.write(json.dumps({"t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


def watch(interface: str, seconds: float, vips: set[str]) -> None:
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniffer.bind((interface, 0))
    priorities: dict[tuple[str, int], int] = {}
    emit(kind="ready")
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if not select.select([sniffer], [], [], min(left, 0.5))[0]:
            continue
        frame = sniffer.recv(2048)
        if (advert := vrrp_advert(frame)) is not None:
            source, vrid, priority = advert
            if priorities.get((source, vrid)) != priority:
                priorities[(source, vrid)] = priority
                emit(kind="vrrp_advert", source=source, vrid=vrid, priority=priority)
        elif (arp := gratuitous_arp(frame)) is not None and arp[0] in vips:
            emit(kind="garp", vip=arp[0], mac=arp[1])


if __name__ == "__main__":
    watch(sys.argv[1], min(float(sys.argv[2]), 900), set(sys.argv[3:]))
