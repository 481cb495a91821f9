"""The live-state readers on output captured from the real daemons (tests/data/keepalived, haproxy,
apache), the VRRP judgement as hand-written data, and apply's answer probe against loopback."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

import pytest
import yaml

from haops import inventory
from haops.apply.vips import answer, remote_answer_script, routable
from haops.inventory.model import Inventory, VrrpInstance
from haops.status import ClusterStatus, VipView, as_json
from haops.targets import apache, haproxy, keepalived
from haops.targets.base import DOWN, MAINT, UNKNOWN, UP, BackendState, VrrpNode

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
DUMPS = DATA / "keepalived"


def dump(name: str) -> str:
    return (DUMPS / f"{name}.data").read_text()


def two_instances() -> Inventory:
    """The inventory the two-instance dumps were captured with."""
    text = (ROOT / "inventories" / "example.yml").read_text().replace("10.213.0.", "10.213.30.")
    text += ("  api:\n    vip: 10.213.30.101/24\n    router_id: 52\n    hosts: {lb1: 100, lb2: 150}\n"
             "    advert_int: 500ms\n    track_process: nginx\n")
    return inventory.parse(text)


# --- keepalived's state dump ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("one-instance-lb1", {"www": ("MASTER", 150, ("10.213.30.100/24",))}),
    ("one-instance-lb2", {"www": ("BACKUP", 100, ("10.213.30.100/24",))}),
    ("two-instances-lb1", {"www": ("MASTER", 150, ("10.213.30.100/24",)), "api": ("BACKUP", 100, ("10.213.30.101/24",))}),
    ("two-instances-lb2", {"www": ("BACKUP", 100, ("10.213.30.100/24",)), "api": ("MASTER", 150, ("10.213.30.101/24",))}),
    ("fault-lb1", {"www": ("FAULT", 150, ("10.213.30.100/24",)), "api": ("BACKUP", 100, ("10.213.30.101/24",))}),
])
def test_dump_parses_per_instance(name: str, expected: dict[str, tuple[str, int, tuple[str, ...]]]) -> None:
    parsed = keepalived.parse_dump(dump(name))
    assert {n: (i.state, i.priority, i.vips) for n, i in parsed.items()} == expected
    assert all(i.effective_priority == i.priority for i in parsed.values()), "no tracking weights in these"


def test_the_password_never_leaves_the_parser() -> None:
    text = dump("one-instance-lb1")
    assert "Password = s3cret" in text, "the capture holds it, as keepalived writes it"
    assert "s3cret" not in repr(keepalived.parse_dump(text))


def section_of(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", keepalived.topology_section(str(path))], capture_output=True, text=True, check=True)


@pytest.mark.parametrize("name", ["one-instance-lb1", "two-instances-lb2", "fault-lb1"])
def test_the_section_read_off_the_host_parses_alike_without_the_password(name: str) -> None:
    section = section_of(DUMPS / f"{name}.data").stdout
    assert "Password" not in section and section.startswith(keepalived.TOPOLOGY)
    assert keepalived.parse_dump(section) == keepalived.parse_dump(dump(name))


def test_a_dump_read_while_keepalived_writes_it_is_refused() -> None:
    text = dump("two-instances-lb1")
    cut = text[: text.index(" VRRP Instance = www") + 200]
    with pytest.raises(keepalived.IncompleteDump):
        keepalived.parse_dump(cut)


def test_a_dump_without_vrrp_instances_has_none() -> None:
    text = dump("one-instance-lb1")
    start, end = text.index(keepalived.TOPOLOGY), text.index("------< VRRP Sockpool >------")
    assert keepalived.parse_dump(text[:start] + text[end:]) == {}


def test_nodes_say_who_holds_the_vip_and_which_instance_is_missing() -> None:
    inv = two_instances()
    section = section_of(DUMPS / "one-instance-lb1.data").stdout
    addresses = ("lo               UNKNOWN        127.0.0.1/8 \n"
                 "eth0@if7         UP             10.213.30.11/24 10.213.30.100/24 \n")
    nodes = keepalived.nodes_from(inv, "lb1", f"{section}{keepalived.ADDRESSES}\n{addresses}")
    assert nodes == [
        VrrpNode("api", "lb1", None, holds_vip=False, error="keepalived runs no such instance"),
        VrrpNode("www", "lb1", "MASTER", 150, 150, holds_vip=True),
    ]


def run_sh(script: str) -> int:
    return subprocess.run(["sh", "-c", script], capture_output=True).returncode


@pytest.mark.parametrize(("host", "captured", "listed"), [
    ("lb1", "two-instances-lb1", True),
    ("lb2", "two-instances-lb2", True),
    ("lb1", "fault-lb1", True),  # FAULT is a running state: who is MASTER is decided after apply
    ("lb2", "two-instances-lb1", False),  # lb1's priorities, not lb2's
    ("lb1", "one-instance-lb1", False),  # instance api missing
])
def test_the_proof_checks_each_instance_in_a_real_dump(host: str, captured: str, listed: bool) -> None:
    instances = keepalived.instances_on(two_instances(), host)
    assert (run_sh(keepalived.dump_lists(instances, str(DUMPS / f"{captured}.data"))) == 0) is listed


def test_the_proof_refuses_an_address_keepalived_does_not_have(tmp_path: Path) -> None:
    moved = tmp_path / "dump"
    moved.write_text(dump("two-instances-lb1").replace("     10.213.30.101/24 dev", "     10.213.30.102/24 dev"))
    assert run_sh(keepalived.dump_lists(keepalived.instances_on(two_instances(), "lb1"), str(moved))) != 0


def test_the_proof_refuses_an_extra_instance(tmp_path: Path) -> None:
    """An instance removed from the config but still running means the reload did not take."""
    instances = keepalived.instances_on(two_instances(), "lb1")
    only_www = [i for i in instances if i.instance.name == "www"]
    assert run_sh(keepalived.dump_lists(only_www, str(DUMPS / "two-instances-lb1.data"))) != 0
    assert run_sh(keepalived.dump_lists(only_www, str(DUMPS / "one-instance-lb1.data"))) == 0


def test_held_addresses_of_ip_brief() -> None:
    text = "lo               UNKNOWN        127.0.0.1/8 \neth0@if6         UP             10.213.30.12/24 10.213.30.101/24 \n"
    assert keepalived.held_addresses(text) == {"127.0.0.1", "10.213.30.12", "10.213.30.101"}


# --- the VRRP judgement ------------------------------------------------------------------------------


def node(text: str) -> VrrpNode:
    host, state, priority, holds, *why = text.split()
    if state == "?":
        return VrrpNode("www", host, None, error=" ".join([holds, *why]).strip("- "))
    return VrrpNode("www", host, state, int(priority), int(priority), holds == "holds")


def vrrp_cases() -> list[Any]:
    loaded = yaml.safe_load((DATA / "status" / "vip_problem.yml").read_text())
    return [pytest.param(case, id=case["name"]) for case in loaded]


@pytest.mark.parametrize("case", vrrp_cases())
def test_vip_problem(case: dict[str, Any]) -> None:
    instance = VrrpInstance("www", IPv4Interface("10.213.0.100/24"), 51, (("lb1", 150), ("lb2", 100)),
                            nopreempt=case.get("nopreempt", False))
    view = VipView(instance, tuple(node(n) for n in case["nodes"]))
    if case["problem"] is None:
        assert view.problem is None
        assert view.holder == next(n.host for n in view.nodes if n.state == "MASTER")
    else:
        assert view.problem is not None and view.holder is None
        for words in case["problem"]:
            assert words in view.problem


# --- HAProxy's runtime API ----------------------------------------------------------------------------


def test_show_stat_captured_with_a_dead_backend() -> None:
    stats = haproxy.parse_show_stat((DATA / "haproxy" / "show-stat-web2-down.csv").read_text())
    service = inventory.load(ROOT / "inventories" / "example.yml").services["www"]
    states = haproxy.backend_states(service, "lb1", stats)
    assert [(s.backend, s.state) for s in states] == [("web1", UP), ("web2", DOWN), ("web3", UP)]
    assert states[1].detail == "DOWN, check L4CON, Connection refused"
    assert states[0].detail == "UP, check L7OK 200"


@pytest.mark.parametrize(("status", "state"), [
    ("UP", UP), ("UP 1/2", UP), ("no check", UP), ("DOWN", DOWN), ("DOWN 1/2", DOWN),
    ("MAINT", MAINT), ("MAINT (via www/web1)", MAINT), ("DRAIN", MAINT), ("NOLB", MAINT), ("", UNKNOWN),
])
def test_haproxy_server_states(status: str, state: str) -> None:
    assert haproxy.server_state({"status": status})[0] == state


def test_show_stat_that_is_not_csv_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown command"):
        haproxy.parse_show_stat("Unknown command. Please enter one of the following commands only :\n")


# --- Apache's balancer-manager ----------------------------------------------------------------------


def test_balancer_manager_captured_with_a_failed_health_check() -> None:
    statuses = apache.parse_manager((DATA / "apache" / "balancer-manager-web2-down.xml").read_text())
    assert statuses == {"http://10.213.30.21:8080": "Init Ok", "http://10.213.30.22:8080": "Init HcFl",
                        "http://10.213.30.23:8080": "Init Ok"}


@pytest.mark.parametrize(("status", "state"), [
    ("Init Ok", UP), ("Init HcFl", DOWN), ("Init Err", DOWN), ("Init Dis", MAINT), ("Init Stop", MAINT), ("Init Drn Ok", UP),
])
def test_apache_member_states(status: str, state: str) -> None:
    assert apache.member_state(status) == state


def test_apache_manager_limited_away_from_loopback_is_not_exposed() -> None:
    text = (ROOT / "inventories" / "example.yml").read_text().replace("    cookie: ROUTEID\n", "    cookie: ROUTEID\n    manager: {allow: [10.0.0.0/8]}\n")
    service = inventory.parse(text).services["app"]
    [state] = apache.manager_states(service, "lb1", lambda script: pytest.fail("nothing to run"))
    assert state.state == "not exposed" and "manager.allow" in state.detail


# --- the status as a whole ----------------------------------------------------------------------------


def test_status_problems_and_json() -> None:
    instance = VrrpInstance("www", IPv4Interface("10.213.0.100/24"), 51, (("lb1", 150), ("lb2", 100)))
    split = VipView(instance, (node("lb1 MASTER 150 holds"), node("lb2 MASTER 100 holds")))
    found = ClusterStatus([split], [BackendState("www", "lb1", "web2", DOWN, "L4CON"), BackendState("www", "lb1", "web1", UP)])
    assert found.problems == [split.problem, "www on lb1: web2 DOWN (L4CON)"]
    data = as_json(found)
    assert data["ok"] is False and data["vips"][0]["holder"] is None
    assert [n["host"] for n in data["vips"][0]["nodes"]] == ["lb1", "lb2"] and "instance" not in data["vips"][0]["nodes"][0]


# --- apply's answer probe, against loopback -----------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def tcp_only() -> Iterator[int]:
    """Accepts, says something that is not HTTP, closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.sendall(b"SSH-2.0-not-http\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()


def test_answer_http(http_server: int) -> None:
    assert answer("127.0.0.1", http_server, http=True).said.startswith("HTTP ")
    assert answer("127.0.0.1", http_server, http=False).said == "TCP"


def test_answer_not_http(tcp_only: int) -> None:
    said = answer("127.0.0.1", tcp_only, http=True)
    assert not said.ok and "no HTTP answer" in said.said


def test_answer_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    said = answer("127.0.0.1", port, http=False)
    assert not said.ok and "ConnectionRefused" in said.said


def test_an_ipv6_vip_is_asked_in_its_own_family_and_in_brackets() -> None:
    assert routable("::1"), "an IPv6 address looks its route up over IPv6, not as an IPv4 name"
    script = remote_answer_script("fd00:213:0:50::100", 80)
    assert "http://[fd00:213:0:50::100]:80/" in script
