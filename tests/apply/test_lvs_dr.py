"""LVS direct routing on real SSH hosts: the real servers' side, which every lab namespace has of
its own (lo and net.ipv4.conf.*). The director side needs ip_vs, which the lab's kernel lacks:
there apply writes lvs.rules, says it could not load it, and does not fail.

One lab (halvs, 10.213.52.0/24) for the module; the steps build on each other in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network

import pytest

from haops.apply.run import ApplyOptions, HostOutcome, apply
from haops.lab import Lab
from haops.session import settings_for
from haops.targets.lvs.dr import ADDED
from tests.apply.conftest import Cluster, built_lab

pytestmark = pytest.mark.lab

LAB = "halvs"
NETWORK = IPv4Network("10.213.52.0/24")
WWW, API, ADMIN = "10.213.52.100/32", "10.213.52.101/32", "10.213.52.200/32"
REAL_SERVERS = ("web1", "web2")
INVENTORY = f"""\
lab: {{name: {LAB}, network: {NETWORK}}}
hosts:
  lb1:  {{address: 10.213.52.11, groups: [lb]}}
  web1: {{address: 10.213.52.21, groups: [web]}}
  web2: {{address: 10.213.52.22, groups: [web]}}
services:
  www:
    vip: 10.213.52.100
    port: 80
    balancer: lvs
    lvs: {{mode: dr}}
    backends: {{group: web}}
  api:
    vip: 10.213.52.101
    port: 81
    balancer: lvs
    lvs: {{mode: dr}}
    backends: {{group: web}}
responders: true   # the real servers keep a target of their own when DR goes
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from built_lab(tmp_path_factory.mktemp("lvs") / "lvs.yml", INVENTORY, Lab(LAB, NETWORK))


def apply_all(cluster: Cluster) -> dict[str, HostOutcome]:
    inv = cluster.inventory
    outcomes = apply(inv, list(inv.hosts), ApplyOptions(), settings_for(inv), lambda host, step: None)
    failed = {o.report.host: o.report.messages for o in outcomes if not o.report.ok}
    assert failed == {}, failed
    return {o.report.host: o for o in outcomes}


def on_lo(cluster: Cluster, host: str) -> set[str]:
    return {line.split()[3] for line in cluster.sh(host, "ip -o addr show dev lo").splitlines()}


def test_dr_real_servers_hold_the_vips_on_lo_and_ignore_arp_for_them(lab: Cluster) -> None:
    outcomes = apply_all(lab)
    for host in REAL_SERVERS:
        assert {WWW, API} <= on_lo(lab, host), host
        assert lab.sh(host, "sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce").split() == ["1", "2"]
        assert sorted(lab.sh(host, f"cat {ADDED}").split()) == [WWW, API]
    assert WWW not in on_lo(lab, "lb1")
    assert any("lvs: no ip_vs kernel module: /etc/haops/lvs.rules written, not loaded" in m
               for m in outcomes["lb1"].report.messages), outcomes["lb1"].report.messages
    assert "-A -t 10.213.52.100:80 -s rr" in lab.sh("lb1", "cat /etc/haops/lvs.rules")


def test_a_second_apply_changes_nothing(lab: Cluster) -> None:
    outcomes = apply_all(lab)
    assert {h: (o.report.changed, o.report.reloads) for h, o in outcomes.items()} == {h: ([], []) for h in outcomes}
    assert not any("ip_vs" in m for m in outcomes["lb1"].report.messages)


def test_a_vip_taken_off_by_hand_comes_back_and_an_address_haops_did_not_add_stays(lab: Cluster) -> None:
    lab.sh("web1", f"ip addr del {WWW} dev lo && ip addr add {ADMIN} dev lo")
    outcomes = apply_all(lab)
    assert outcomes["web1"].report.reloads == ["lvs-dr:activate"]
    assert {WWW, API, ADMIN} <= on_lo(lab, "web1")
    assert ADMIN not in lab.sh("web1", f"cat {ADDED}")


def test_a_vip_no_longer_dr_leaves_lo_and_the_other_stays(lab: Cluster) -> None:
    lab.rewrite("    port: 81\n    balancer: lvs\n    lvs: {mode: dr}", "    port: 81\n    balancer: lvs\n    lvs: {mode: nat}")
    apply_all(lab)
    for host in REAL_SERVERS:
        assert WWW in on_lo(lab, host) and API not in on_lo(lab, host), host
        assert lab.sh(host, f"cat {ADDED}").split() == [WWW]
    assert ADMIN in on_lo(lab, "web1")


def test_when_no_dr_service_is_left_the_target_retires_with_apply(lab: Cluster) -> None:
    lab.rewrite("    port: 80\n    balancer: lvs\n    lvs: {mode: dr}", "    port: 80\n    balancer: lvs\n    lvs: {mode: nat}")
    outcomes = apply_all(lab)
    for host in REAL_SERVERS:
        assert "lvs-dr:retired" in outcomes[host].report.reloads, outcomes[host].report
        assert not {WWW, API} & on_lo(lab, host), host
        assert lab.sh(host, f"[ -e {ADDED} ] && echo left || echo gone").strip() == "gone"
    assert ADMIN in on_lo(lab, "web1")
