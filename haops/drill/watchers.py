"""Background watchers: processes whose output lines become timeline events, stamped on arrival.

Every watcher is a child process this drill started, bounded in time by its own argument or
killed by PID when the drill ends. Lines are stamped with time.monotonic() when they arrive,
unless the line carries its own monotonic stamp (the wire watcher does).
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO
from pathlib import Path

from haops.drill import record
from haops.drill.record import Event

LineParser = Callable[[float, str], list[Event]]
WIRE_SCRIPT = Path(__file__).with_name("wire.py")


@dataclass
class Watcher:
    name: str
    argv: Sequence[str]
    parse: LineParser
    events: list[Event] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen[str] | None = None
    reader: threading.Thread | None = None
    errors: IO[str] | None = None

    def start(self) -> None:
        self.errors = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(list(self.argv), stdout=subprocess.PIPE, stderr=self.errors,
                                        stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.reader = threading.Thread(target=self._read, name=f"watch-{self.name}", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            arrived = time.monotonic()
            self.ready.set()
            self.events.extend(self.parse(arrived, line))
        self.ready.set()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=3)
        if self.reader is not None:
            self.reader.join(timeout=3)
        self.note_failure()

    def note_failure(self) -> None:
        """A watcher that died on its own (not stopped by us) says so in the record: its silence is not the cluster's."""
        if self.process is None or self.errors is None:
            return
        self.errors.seek(0)
        errors = self.errors.read().strip()
        self.errors.close()
        if self.process.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL, 124):
            self.events.append(Event(time.monotonic(), record.NOTE, "",
                                     f"watcher {self.name} failed (exit {self.process.returncode}): {errors[-200:]}"))


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


def wire_watcher(netns: str, interface: str, seconds: float, vips: Sequence[str], hosts_by_address: dict[str, str],
                 python: str) -> Watcher:
    """VRRP adverts and gratuitous ARPs as a client on the segment sees them."""

    def parse(arrived: float, line: str) -> list[Event]:
        data = json.loads(line)
        t = float(data.get("t", arrived))
        if data["kind"] == "vrrp_advert":
            source = hosts_by_address.get(data["source"], data["source"])
            return [Event(t, record.VRRP_ADVERT, source, f"VRID {data['vrid']} priority {data['priority']}")]
        if data["kind"] == "garp":
            return [Event(t, record.GARP, "", f"{data['vip']} is-at {data['mac']}")]
        return []

    argv = in_netns(netns, [python, "-I", str(WIRE_SCRIPT), interface, f"{seconds:.1f}", *vips])
    return Watcher("wire", argv, parse)


ADDRESS_LINE = re.compile(r"^(?P<deleted>Deleted )?\d+: (?P<dev>\S+)\s+inet (?P<address>[\d.]+)/")


def vip_watcher(netns: str, host: str, vips: Sequence[str], seconds: float) -> Watcher:
    """The VIP appearing on and leaving one host: `ip monitor address` in its namespace, stamped as
    each change arrives. A crashed lab host boots into a new namespace while the monitor still
    holds the old one, so the monitor is restarted after a fresh listing every RELIST_S seconds
    (a change seen only by a listing is late by up to that)."""
    held: dict[str, bool] = {}
    listed: set[str] = set()

    def change(arrived: float, address: str, present: bool, where: str) -> list[Event]:
        if held.get(address, False) == present:
            return []
        held[address] = present
        return [Event(arrived, record.VIP_ADDED if present else record.VIP_REMOVED, host, f"{address} {where}")]

    def parse(arrived: float, line: str) -> list[Event]:
        if line.startswith(LISTING_START):
            listed.clear()
            return []
        if line.startswith(LISTING_END):
            return [e for vip in vips if vip not in listed for e in change(arrived, vip, False, "gone")]
        match = ADDRESS_LINE.match(line)
        if not match or match["address"] not in vips:
            return []
        listed.add(match["address"])
        return change(arrived, match["address"], not match["deleted"], f"on {match['dev']}")

    ns = shlex.quote(netns)
    loop = (f"end=$(( $(date +%s) + {int(seconds)} )); while [ $(date +%s) -lt $end ]; do "
            f"echo {LISTING_START}; ip -n {ns} -o -4 addr show 2>/dev/null; echo {LISTING_END}; "
            f"timeout {RELIST_S} ip -n {ns} monitor address 2>/dev/null; done")
    watcher = Watcher(f"vip-{host}", ["sh", "-c", loop], parse)
    watcher.ready.set()
    return watcher


RELIST_S = 0.5
LISTING_START, LISTING_END = "haops-listing-start", "haops-listing-end"
NEIGH_LINE = re.compile(r"^(?P<address>[\d.]+) dev \S+ lladdr (?P<mac>[0-9a-f:]+)")


def neighbour_watcher(netns: str, client: str, vips: Sequence[str], seconds: float) -> Watcher:
    """The client's ARP entry for the VIP pointing at a new MAC."""
    last: dict[str, str] = {}

    def parse(arrived: float, line: str) -> list[Event]:
        match = NEIGH_LINE.match(line)
        if not match or match["address"] not in vips or last.get(match["address"]) == match["mac"]:
            return []
        known, last[match["address"]] = match["address"] in last, match["mac"]
        if not known:
            return []
        return [Event(arrived, record.NEIGH, client, f"{match['address']} lladdr {match['mac']}")]

    ns = shlex.quote(netns)
    watcher = Watcher(f"neigh-{client}", ["sh", "-c", f"ip -n {ns} neigh show; exec timeout {int(seconds)} ip -n {ns} monitor neigh"],
                      parse)
    watcher.ready.set()
    return watcher


def start_all(watchers: Sequence[Watcher], ready_s: float = 5) -> None:
    for watcher in watchers:
        watcher.start()
    deadline = time.monotonic() + ready_s
    for watcher in watchers:
        watcher.ready.wait(max(0.0, deadline - time.monotonic()))


def stop_all(watchers: Sequence[Watcher]) -> list[Event]:
    for watcher in watchers:
        watcher.stop()
    return [event for watcher in watchers for event in watcher.events]


def health_watcher(argv: Sequence[str], balancer_host: str) -> Watcher:
    """A balancer's own view of its backends: DETECT when it takes one out, NOTE when it is back."""
    states: dict[str, str] = {}

    def parse(arrived: float, line: str) -> list[Event]:
        backend, _, state = line.strip().partition(" ")
        if not state or states.get(backend) == state:
            return []
        before, states[backend] = states.get(backend), state
        if before is None:
            return []
        if state in ("DOWN", "MAINT"):
            return [Event(arrived, record.DETECT, balancer_host, f"health check: {backend} {state}")]
        if state == "UP":
            return [Event(arrived, record.NOTE, balancer_host, f"health check: {backend} UP again")]
        return []

    return Watcher(f"health-{balancer_host}", list(argv), parse)
