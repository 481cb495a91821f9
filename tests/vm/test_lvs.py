"""LVS for real, on a director VM whose kernel has ip_vs, in both forms haops writes:

- loaded by haops apply (`ipvsadm -R`): NAT round robin, DR round robin, and NAT with
  persistence (sticky source), on a director with no health checks and no VRRP;
- loaded by keepalived (`virtual_server` blocks): inventories/vm.yml itself, where the NAT
  service is weighted 2:1 and health-checked, with HAProxy and nginx beside it.

Traffic goes from this machine to the VMs' isolated networks only, one new TCP connection per
request, counted by the X-Backend header each real server's responder sets; `haops verify`
must reach the same verdict."""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from typing import Any

import pytest

from tests.vm.conftest import VmCluster

pytestmark = pytest.mark.vm

CLIENT_VIP = "10.213.21.10"   # the director's own address on the client network (NAT services)
DR_VIP = "10.213.22.100"      # a second address of the director on the real servers' network
DR_PORT = 8080                # DR cannot change the port: the real servers' responder port
REAL_SERVERS = ("real1", "real2")
FAILED = "(failed)"


def requests_by_backend(vip: str, port: int, count: int) -> Counter[str]:
    """`count` requests, each on a new TCP connection, tallied by the backend that answered."""
    seen: Counter[str] = Counter()
    for _ in range(count):
        connection = http.client.HTTPConnection(vip, port, timeout=5)
        try:
            connection.request("GET", "/", headers={"Connection": "close"})
            seen[connection.getresponse().getheader("X-Backend") or FAILED] += 1
        except OSError:
            seen[FAILED] += 1
        finally:
            connection.close()
    return seen


def ipvs_table(vms: VmCluster) -> str:
    return vms.sh("director", "ipvsadm -S -n")


def services(**entries: dict[str, Any]) -> dict[str, Any]:
    """LVS services on the director, backed by both real servers' responders."""
    return {name: {"hosts": ["director"], "balancer": "lvs", "backends": {"group": "real", "port": DR_PORT}, **spec}
            for name, spec in entries.items()}


def director_device(vms: VmCluster, address: str) -> str:
    return vms.sh("director", f"ip -o -4 addr show | awk '$4 ~ /^{address}\\//{{print $2}}'").strip()


@pytest.fixture
def ipvsadm_form(vms: VmCluster) -> VmCluster:
    """The director's table loaded by apply: whatever an earlier test made live that this
    inventory does not ask for (keepalived, HAProxy, nginx) pruned first, so keepalived takes
    its virtual servers with it; the DR VIP is the director's own second address."""
    inventory = vms.variant("ipvsadm-form", services(
        rr={"vip": CLIENT_VIP, "port": 91, "algorithm": "roundrobin", "lvs": {"mode": "nat"}},
        dr={"vip": DR_VIP, "port": DR_PORT, "algorithm": "roundrobin", "lvs": {"mode": "dr"}},
        sticky={"vip": CLIENT_VIP, "port": 92, "algorithm": "roundrobin", "sticky": "source",
                "lvs": {"mode": "nat", "persistence": "60s"}},
    ))
    device = director_device(vms, "10.213.22.10")
    vms.sh("director", f"ip addr replace {DR_VIP}/32 dev {device}")
    vms.haops("prune", "-i", str(inventory), "--yes")
    vms.haops("apply", "-i", str(inventory))
    vms.current = inventory
    return vms


@pytest.fixture
def keepalived_form(vms: VmCluster) -> VmCluster:
    """inventories/vm.yml as it is: keepalived loads the table (the NAT service has health
    checks). A table apply loaded is cleared first, as docs/lvs.md says to when moving a
    director to keepalived; the DR VIP goes."""
    vms.sh("director", f"pidof keepalived >/dev/null || ipvsadm -C; ip addr del {DR_VIP}/32 dev "
                       f"$(ip -o addr show | awk '$4 == \"{DR_VIP}/32\" {{print $2}}') 2>/dev/null; true")
    vms.haops("apply", "-i", str(vms.vm_inventory))
    vms.current = vms.vm_inventory
    return vms


def verified(vms: VmCluster, *flags: str) -> dict[str, dict[str, Any]]:
    """`haops verify --from local --json` of the current inventory, by (check, subject)."""
    assert vms.current is not None
    ran = vms.haops("verify", "-i", str(vms.current), "--from", "local", "--json", *flags, check=False)
    results = json.loads(ran.stdout)
    return {f"{r['check']} {r['subject']}": r for r in results}


def test_nat_round_robin_loaded_by_apply_splits_exactly(ipvsadm_form: VmCluster) -> None:
    table = ipvs_table(ipvsadm_form)
    assert f"-A -t {CLIENT_VIP}:91 -s rr" in table and f"-r 10.213.22.21:{DR_PORT} -m" in table, table
    assert requests_by_backend(CLIENT_VIP, 91, 12) == Counter(real1=6, real2=6)
    assert verified(ipvsadm_form)["split rr"]["status"] == "pass"


def test_direct_routing_real_servers_answer_from_the_vip_on_lo(ipvsadm_form: VmCluster) -> None:
    table = ipvs_table(ipvsadm_form)
    assert f"-a -t {DR_VIP}:{DR_PORT} -r 10.213.22.21:{DR_PORT} -g" in table, table
    for host in REAL_SERVERS:
        assert f"{DR_VIP}/32" in ipvsadm_form.sh(host, "ip -o -4 addr show dev lo")
        assert ipvsadm_form.sh(host, "sysctl -n net.ipv4.conf.all.arp_ignore").strip() == "1"
    assert requests_by_backend(DR_VIP, DR_PORT, 12) == Counter(real1=6, real2=6)
    assert "Route" in ipvsadm_form.sh("director", f"ipvsadm -L -n -t {DR_VIP}:{DR_PORT}")  # the DR forwarding method
    assert verified(ipvsadm_form)["split dr"]["status"] == "pass"


def test_persistence_holds_a_client_to_one_real_server(ipvsadm_form: VmCluster) -> None:
    assert f"-A -t {CLIENT_VIP}:92 -s rr -p 60" in ipvs_table(ipvsadm_form)
    seen = requests_by_backend(CLIENT_VIP, 92, 12)
    assert len(seen) == 1 and sum(seen.values()) == 12 and FAILED not in seen, seen
    [home] = seen
    entries = ipvsadm_form.sh("director", "ipvsadm -L -n -c").splitlines()
    # the persistence template: this machine's address with port 0, to the VIP's port, on `home`
    templates = [e for e in entries if "10.213.21.1:0 " in e and f"{CLIENT_VIP}:92 " in e]
    assert len(templates) == 1 and templates[0].split()[-1].startswith(home_address(home)), entries
    assert verified(ipvsadm_form)["affinity sticky"]["status"] == "pass"


def home_address(host: str) -> str:
    return {"real1": "10.213.22.21:", "real2": "10.213.22.22:"}[host]


def test_a_reapply_of_the_table_changes_nothing(ipvsadm_form: VmCluster) -> None:
    before = ipvs_table(ipvsadm_form)
    ran = ipvsadm_form.haops("apply", "-i", str(ipvsadm_form.current), "--json")  # the fixture applied it once
    changed = {outcome["host"]: outcome["changed"] for outcome in json.loads(ran.stdout) if outcome["changed"]}
    assert not changed, ran.stdout
    assert ipvs_table(ipvsadm_form) == before


def test_keepalived_weighted_split_and_a_dead_real_server_leaving_the_table(keepalived_form: VmCluster) -> None:
    table = ipvs_table(keepalived_form)
    assert f"-A -t {CLIENT_VIP}:90 -s wrr" in table and f"-r 10.213.22.21:{DR_PORT} -m -w 2" in table, table
    assert requests_by_backend(CLIENT_VIP, 90, 12) == Counter(real1=8, real2=4)
    keepalived_form.sh("real2", "nginx -c /etc/haops/responder/nginx.conf -s stop")
    try:
        assert gone_from_table(keepalived_form, "10.213.22.22", timeout_s=20), ipvs_table(keepalived_form)
        assert requests_by_backend(CLIENT_VIP, 90, 9) == Counter(real1=9)
    finally:
        keepalived_form.sh("real2", "pidof -x nginx >/dev/null && [ -e /run/haops-responder.pid ] "
                                    "|| nginx -c /etc/haops/responder/nginx.conf")
    assert back_in_table(keepalived_form, "10.213.22.22", timeout_s=20), ipvs_table(keepalived_form)


def gone_from_table(vms: VmCluster, real_server: str, timeout_s: float) -> bool:
    return wait_for(lambda: f"-r {real_server}:{DR_PORT}" not in table_of_port(vms, 90), timeout_s)


def back_in_table(vms: VmCluster, real_server: str, timeout_s: float) -> bool:
    return wait_for(lambda: f"-r {real_server}:{DR_PORT}" in table_of_port(vms, 90), timeout_s)


def table_of_port(vms: VmCluster, port: int) -> str:
    lines = ipvs_table(vms).splitlines()
    return "\n".join(line for line in lines if f":{port} " in line)


def wait_for(condition: Any, timeout_s: float) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def test_the_example_balancers_through_sudo_with_systemd(keepalived_form: VmCluster) -> None:
    """HAProxy (cookie) and nginx on the director, installed by root through the vagrant
    user's sudo and run by systemd; verify's faults stop a real server and watch both move."""
    vms = keepalived_form
    assert vms.sh("director", "systemctl is-active haproxy nginx keepalived").split() == ["active"] * 3
    owners = vms.sh("director", "stat -c '%U:%G %a' /etc/haproxy/haproxy.cfg /etc/nginx/nginx.conf").split("\n")
    assert all(line.startswith("root:root") for line in owners if line), owners
    assert requests_by_backend(CLIENT_VIP, 81, 6) == Counter(real1=3, real2=3)
    results = verified(vms, "--faults")
    failed = {name: r["observed"] for name, r in results.items() if r["status"] == "fail"}
    assert not failed, failed
    assert results["sticky cookie www"]["status"] == "pass"
