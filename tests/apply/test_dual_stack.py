"""The dual-stack example (inventories/dual-stack.yml) in a lab of its own, over both families:
apply settles the IPv4 and the IPv6 VIP, verify measures every split over IPv4 and IPv6 and the
A and AAAA rotation, the IPv6 lab range has its safety route, and the IPv6 VIP fails over (VRRPv3).

One lab (ha6, 10.213.50.0/24 and fd00:213:0:50::/64) for the module, applied once; the failover
test puts the cluster back as it found it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

import pytest

from haops.apply.run import ApplyOptions, apply
from haops.cli import main
from haops.lab import Lab
from haops.session import settings_for
from haops.verify.result import PASS
from tests.apply.conftest import ROOT, Cluster
from tests.lab.conftest import lab_pid_namespaces, leftovers

pytestmark = pytest.mark.lab

LAB = "ha6"
NETWORK = IPv4Network("10.213.50.0/24")
NETWORK6 = IPv6Network("fd00:213:0:50::/64")
VIP6 = "fd00:213:0:50::100"


def dual_stack_in(lab: str, network: IPv4Network, network6: IPv6Network) -> str:
    """The dual-stack example moved to a lab of its own name, /24 and /64."""
    text = (ROOT / "inventories" / "dual-stack.yml").read_text()
    prefix = str(network.network_address).rsplit(".", 1)[0] + "."
    prefix6 = str(network6.network_address).removesuffix("::") + "::"
    return (text.replace("10.213.0.", prefix).replace("fd00:213::", prefix6)
            .replace("name: haops", f"name: {lab}").replace("network: 10.213.0.0/24", f"network: {network}"))


@dataclass
class Applied:
    cluster: Cluster
    messages: dict[str, list[str]]  # apply's report per host
    seconds: float


@pytest.fixture(scope="module")
def dual(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    path = tmp_path_factory.mktemp("dual") / "dual-stack.yml"
    path.write_text(dual_stack_in(LAB, NETWORK, NETWORK6))
    cluster = Cluster(Lab(LAB, NETWORK, network6=NETWORK6), path)
    try:
        cluster.build()
        yield Applied(cluster, *apply_all(cluster))
    finally:
        cluster.namespaces.update(lab_pid_namespaces(cluster.lab).values())
        cluster.lab.down()
    assert leftovers(cluster.lab.name, cluster.lab.paths.lab_dir, cluster.namespaces) == []


def apply_all(cluster: Cluster) -> tuple[dict[str, list[str]], float]:
    inv = cluster.inventory
    started = time.monotonic()
    outcomes = apply(inv, list(inv.hosts), ApplyOptions(), settings_for(inv), lambda host, step: None)
    seconds = time.monotonic() - started
    failed = {o.report.host: o.report.messages for o in outcomes if not o.report.ok}
    assert failed == {}, failed
    return {o.report.host: o.report.messages for o in outcomes}, seconds


def holders(cluster: Cluster, address: str) -> list[str]:
    return [h for h in ("lb1", "lb2") if f" {address}/" in cluster.sh(h, "ip -br addr")]


def test_apply_settles_the_ipv4_and_the_ipv6_vip_and_both_answer(dual: Applied) -> None:
    said = " | ".join(m for messages in dual.messages.values() for m in messages)
    assert "VIP 10.213.50.100 (www) held by lb1" in said, said
    assert f"VIP {VIP6} (www6) held by lb1" in said, said
    assert "answers: 80 HTTP 200, 81 HTTP 200, 82 HTTP 200, 83 TCP" in said, said
    assert holders(dual.cluster, VIP6) == ["lb1"] and holders(dual.cluster, "10.213.50.100") == ["lb1"]
    # The IPv6 instance runs VRRPv3, the IPv4 one VRRPv2 (with its auth), side by side.
    config = dual.cluster.sh("lb1", "cat /etc/keepalived/keepalived.conf")
    assert config.count("version 3") == 1 and config.count("version 2") == 1
    # A second apply changes nothing and reloads nothing, over both families.
    inv = dual.cluster.inventory
    again = apply(inv, list(inv.hosts), ApplyOptions(), settings_for(inv), lambda host, step: None)
    assert [(o.report.host, o.report.changed, o.report.reloads) for o in again if o.report.changed or o.report.reloads] == []


def test_status_reads_both_vips_and_the_backends_of_both_families(dual: Applied, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["status", "-i", str(dual.cluster.path), "--json"])
    found = json.loads(capsys.readouterr().out)
    assert exit_.value.code == 0 and found["problems"] == [], found["problems"]
    assert {(v["instance"], v["vip"], v["holder"]) for v in found["vips"]} == {
        ("www", "10.213.50.100/24", "lb1"), ("www6", f"{VIP6}/64", "lb1")}


def test_verify_measures_splits_and_dns_rotation_over_both_families(dual: Applied, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["verify", "-i", str(dual.cluster.path), "--json"])
    results = json.loads(capsys.readouterr().out)
    with capsys.disabled():
        for r in results:
            print(f"{r['status']:5} {r['check']:18} {r['subject']:45} {r['observed']}")
    failed = [r for r in results if r["status"] != PASS]
    assert exit_.value.code == 0 and failed == [], failed
    measured = {(r["check"], r["subject"]): r for r in results}
    for service in ("www", "www6", "api6", "app6", "nth", "nth6"):
        assert ("split", service) in measured, sorted(measured)
    for service in ("www", "www6", "api6", "app6"):
        assert ("dead backend", service) in measured, sorted(measured)
    nth6 = measured[("split", "nth6")]
    counts = dict(part.split("=") for part in nth6["observed"].split())
    assert int(counts["web1"]) == 2 * int(counts["web2"]) == 2 * int(counts["web3"]) > 0, nth6  # weights 2:1:1
    assert ("DNS round robin", "www.example.test @dns1") in measured
    assert ("DNS round robin", "www.example.test AAAA @fd00:213:0:50::31") in measured
    assert ("DNS round robin", "lb.example.test @dns1") not in measured  # one address per family: nothing rotates


def test_the_ipv6_lab_range_never_routes_out_of_the_machine(dual: Applied) -> None:
    routes = subprocess.run(["ip", "-6", "route", "show", "table", "main"], capture_output=True, text=True, check=True).stdout
    assert "unreachable fd00:213::/48" in routes
    # A lab address of no running lab meets the unreachable route; the running lab's own /64 is more specific.
    elsewhere = subprocess.run(["ip", "-6", "route", "get", "fd00:213:0:51::1"], capture_output=True, text=True)
    assert elsewhere.returncode != 0 or "unreachable" in elsewhere.stdout
    assert "dev ha6-br" in subprocess.run(["ip", "-6", "route", "get", VIP6], capture_output=True, text=True, check=True).stdout
    # Lab hosts have no IPv6 route beyond their own link.
    assert "default" not in dual.cluster.sh("client1", "ip -6 route show")


def test_the_ipv6_vip_fails_over_to_the_backup_and_back(dual: Applied) -> None:
    cluster = dual.cluster
    url = f"http://[{VIP6}]:80/"
    probe = f"curl -g -s -m 2 -o /dev/null -w '%{{http_code}}' {url}"
    cluster.lab.crash("lb1")
    started = time.monotonic()
    try:
        while holders_alive(cluster) != ["lb2"] and time.monotonic() - started < 10:
            time.sleep(0.1)
        takeover = time.monotonic() - started
        assert holders_alive(cluster) == ["lb2"], f"{VIP6} not taken over within 10 s"
        assert cluster.sh("client1", probe) == "200"
        print(f"IPv6 VIP takeover after a crash: {takeover:.2f} s (VRRPv3, advert_int 1 s)")
    finally:
        cluster.lab.boot("lb1")
        apply_all(cluster)  # the crashed host is fresh after boot: make it whole again
    assert holders(cluster, VIP6) == ["lb1"]  # preempt: it takes the VIP back


def holders_alive(cluster: Cluster) -> list[str]:
    return [h for h in ("lb2",) if f" {VIP6}/" in cluster.sh(h, "ip -br addr")]
