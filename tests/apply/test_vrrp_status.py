"""VRRP and backend state on the lab, made for real: a fresh VIP that answers as soon as apply
returns, a split brain, balancers down on both nodes, a dead backend, and `haops status`."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from haops.apply import vips
from haops.session import settings_for
from haops.status import ClusterStatus, read_status
from haops.targets.daemon import PLAIN
from haops.targets.haproxy import DAEMON as HAPROXY
from haops.targets.responder import DAEMON as RESPONDER
from haops.transport import Connections
from tests.apply.conftest import Cluster
from tests.apply.test_apply import all_ok, run_apply
from tests.test_cli import run as cli

pytestmark = pytest.mark.lab
SPLIT_RULE = "INPUT -p 112 -m comment --comment haops-test-split-brain -j DROP"  # 112: VRRP
STATE_WAIT_S = 15




def status_of(cluster: Cluster) -> ClusterStatus:
    inv = cluster.inventory
    connections = Connections(inv.hosts, settings_for(inv))
    try:
        return read_status(inv, connections)
    finally:
        connections.close()


def wait_for_status(cluster: Cluster, wanted: Callable[[ClusterStatus], bool], what: str) -> ClusterStatus:
    """Read the status until `wanted` holds, at most STATE_WAIT_S."""
    deadline = time.monotonic() + STATE_WAIT_S
    while True:
        found = status_of(cluster)
        if wanted(found):
            return found
        assert time.monotonic() < deadline, f"not within {STATE_WAIT_S}s: {what}; last: {found.problems}"
        time.sleep(0.5)


def states(found: ClusterStatus, instance: str = "www") -> dict[str, str | None]:
    view = next(v for v in found.vips if v.instance.name == instance)
    return {n.host: n.state for n in view.nodes}


def backend(found: ClusterStatus, service: str, host: str, name: str) -> str:
    return next(b.state for b in found.backends if (b.service, b.host, b.backend) == (service, host, name))


def vip_messages(outcomes: dict[str, Any]) -> dict[str, list[str]]:
    return {h: [m for m in o.report.messages if m.startswith("VIP ")] for h, o in outcomes.items()}


# --- apply waits for the VIP ---------------------------------------------------------------------------


def test_apply_on_a_bare_lab_returns_with_the_vip_answering(bare: Cluster) -> None:
    """What `haops apply && curl` met before: the first requests failed while nobody held the VIP."""
    outcomes = run_apply(bare)
    vip = str(bare.inventory.vrrp["www"].vip.ip)
    with socket.create_connection((vip, 83), timeout=1):
        pass
    connection = http.client.HTTPConnection(vip, 80, timeout=2)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        assert (response.status, response.read().decode().strip()) in {(200, "web1"), (200, "web2"), (200, "web3")}
    finally:
        connection.close()
    assert all_ok(outcomes), [o.report.messages for o in outcomes.values()]
    [message] = vip_messages(outcomes)["lb1"]
    assert message.startswith(f"VIP {vip} (www) held by lb1 after ")
    assert message.endswith("answers: 80 HTTP 200, 81 HTTP 200, 82 HTTP 200, 83 TCP")
    print(f"\nVIP wait on a bare lab: {message}")


def test_vip_wait_is_skipped_without_vrrp_hosts_and_in_check_mode(applied: Cluster) -> None:
    assert vip_messages(run_apply(applied, hosts=["web1", "dns1"])) == {"web1": [], "dns1": []}
    assert vip_messages(run_apply(applied, check=True))["lb1"] == []
    limited = vip_messages(run_apply(applied, hosts=["lb2"]))["lb2"]
    assert len(limited) == 1 and "held by lb1" in limited[0], "lb2's instance is checked on lb1 too"


# --- faults made for real --------------------------------------------------------------------------------


@pytest.fixture
def split_brain(applied: Cluster) -> Iterator[Cluster]:
    """lb2 drops every VRRP advert, so it stops hearing lb1 and becomes MASTER too."""
    applied.sh("lb2", f"iptables -w -I {SPLIT_RULE}")
    try:
        wait_for_status(applied, lambda s: states(s) == {"lb1": "MASTER", "lb2": "MASTER"}, "lb2 MASTER beside lb1")
        yield applied
    finally:
        applied.sh("lb2", f"while iptables -w -C {SPLIT_RULE} 2>/dev/null; do iptables -w -D {SPLIT_RULE}; done")


def test_split_brain_fails_status_and_apply_naming_both_hosts(split_brain: Cluster, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = cli(capsys, "status", "-i", str(split_brain.path), "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False
    [problem] = [p for p in data["problems"] if p.startswith("www:")]
    assert problem.startswith("www: split brain, 2 MASTERs: lb1, lb2;") and "held by lb1, lb2" in problem
    code, out, err = cli(capsys, "status", "-i", str(split_brain.path))
    assert code == 1 and "split brain, 2 MASTERs: lb1, lb2" in err

    monkeypatch.setattr(vips, "VIP_WAIT_S", 3.0)
    outcomes = run_apply(split_brain, hosts=["lb1", "lb2"])
    for host in ("lb1", "lb2"):
        assert not outcomes[host].report.ok
        assert any("not settled" in m and "split brain, 2 MASTERs: lb1, lb2" in m for m in outcomes[host].report.messages)


@pytest.fixture
def balancers_down(applied: Cluster) -> Iterator[Cluster]:
    """HAProxy killed on both balancers: the track script puts www in FAULT on both."""
    for host in ("lb1", "lb2"):
        applied.sh(host, HAPROXY.stop_command(PLAIN))
    yield applied
    assert all_ok(run_apply(applied, hosts=["lb1", "lb2"])), "apply starts HAProxy again and waits for the VIP"


def test_no_master_when_both_nodes_fault(balancers_down: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    found = wait_for_status(balancers_down, lambda s: states(s) == {"lb1": "FAULT", "lb2": "FAULT"}, "www FAULT on both")
    [problem] = [p for p in found.problems if p.startswith("www:")]
    assert problem.startswith("www: no MASTER: lb1 FAULT (priority 150), lb2 FAULT (priority 100);")
    assert problem.endswith("held by nobody")
    code, _, err = cli(capsys, "status", "-i", str(balancers_down.path))
    assert code == 1 and "www: no MASTER" in err


# --- haops status on a healthy cluster, then with a dead backend ----------------------------------------


def test_status_lists_both_nodes_and_every_backend(applied: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "status", "-i", str(applied.path), "--json")
    data = json.loads(out)
    assert code == 0 and data["problems"] == [], data["problems"]
    [www] = data["vips"]
    assert www["holder"] == "lb1" and www["vip"] == "10.213.10.100/24"
    assert [(n["host"], n["state"], n["priority"], n["holds_vip"]) for n in www["nodes"]] == [
        ("lb1", "MASTER", 150, True), ("lb2", "BACKUP", 100, False)]
    seen = {(b["service"], b["host"], b["backend"]): b["state"] for b in data["backends"]}
    for host in ("lb1", "lb2"):
        assert [seen[("www", host, web)] for web in ("web1", "web2", "web3")] == ["UP"] * 3
        assert seen[("api", host, "*")] == "passive checks only"
        assert seen[("nth", host, "*")] == "no health checks"
    assert [seen[("app", "lb1", web)] for web in ("web1", "web2", "web3")] == ["UP"] * 3
    assert seen[("app", "lb2", "*")] == "not exposed", "Apache listens only on the VIP, which lb2 does not hold"

    code, out, _ = cli(capsys, "status", "-i", str(applied.path))
    assert code == 0
    lb1_row = next(line for line in out.splitlines() if " lb1 " in line and "MASTER" in line)
    assert "150" in lb1_row and "yes" in lb1_row
    lb2_row = next(line for line in out.splitlines() if " lb2 " in line and "BACKUP" in line)
    assert "100" in lb2_row and "no" in lb2_row


@pytest.fixture
def dead_backend(applied: Cluster) -> Iterator[Cluster]:
    """web2's responder killed by its PID; apply starts it again afterwards."""
    applied.sh("web2", f"kill $(cat {RESPONDER.pidfile})")
    yield applied
    assert all_ok(run_apply(applied, hosts=["web2"]))


def test_a_killed_backend_shows_down_in_status(dead_backend: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    """HAProxy marks it down after fall x inter (2 x 500ms), Apache after hcfails x hcinterval (2 x 1s)."""
    def down_everywhere(found: ClusterStatus) -> bool:
        views = [backend(found, "www", "lb1", "web2"), backend(found, "www", "lb2", "web2"), backend(found, "app", "lb1", "web2")]
        return views == ["DOWN"] * 3

    found = wait_for_status(dead_backend, down_everywhere, "web2 DOWN in HAProxy on both nodes and in Apache on lb1")
    assert backend(found, "www", "lb1", "web1") == "UP" and backend(found, "www", "lb1", "web3") == "UP"
    code, out, err = cli(capsys, "status", "-i", str(dead_backend.path))
    assert code == 1
    assert "problem: www on lb1: web2 DOWN (DOWN, check L4CON" in err
    assert "problem: app on lb1: web2 DOWN" in err
