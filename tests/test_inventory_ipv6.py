"""IPv6 in the inventory: dual-stack hosts, IPv6 VIPs, AAAA records, VRRPv3, and what is refused."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest

from haops import inventory
from haops.errors import InventoryError
from haops.inventory.model import endpoint
from haops.targets.keepalived import vrrp_version

pytestmark = pytest.mark.unit

DUAL = """\
hosts:
  lb1:  {address: 10.213.0.11, address6: "fd00:213:0:7::11", groups: [lb]}
  lb2:  {address: 10.213.0.12, address6: "fd00:213:0:7::12", groups: [lb]}
  web1: {address: 10.213.0.21, address6: "fd00:213:0:7::21", groups: [web]}
  web2: {address: 10.213.0.22, groups: [web]}
  v6:   {address: "fd00:213:0:7::31", groups: [dns]}
"""


def parse(extra: str = "") -> inventory.Inventory:
    return inventory.parse(DUAL + textwrap.dedent(extra), "inv.yml")


def problems(extra: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        parse(extra)
    return [str(p) for p in caught.value.problems]


def host_problems(lines: str) -> list[str]:
    """Problems of DUAL with more hosts (lines indented as under `hosts:`)."""
    with pytest.raises(InventoryError) as caught:
        inventory.parse(DUAL + lines, "inv.yml")
    return [str(p) for p in caught.value.problems]


def test_dual_stack_and_ipv6_only_hosts() -> None:
    inv = parse()
    lb1, web2, v6 = inv.hosts["lb1"], inv.hosts["web2"], inv.hosts["v6"]
    assert lb1.addresses == (IPv4Address("10.213.0.11"), IPv6Address("fd00:213:0:7::11"))
    assert lb1.address_in(6) == IPv6Address("fd00:213:0:7::11") and web2.address_in(6) is None
    assert v6.address == IPv6Address("fd00:213:0:7::31") and v6.address_in(4) is None
    assert v6.connect_to == "fd00:213:0:7::31"


def test_backends_take_the_address_of_the_vips_family() -> None:
    inv = parse("""
        services:
          www:  {vip: 10.213.0.100, port: 80, balancer: haproxy, backends: [web1, web2], backend_port: 8080}
          www6: {vip: "fd00:213:0:7::100", port: 80, balancer: haproxy, backends: [web1], backend_port: 8080}
    """)
    assert [str(b.address) for b in inv.services["www"].backends] == ["10.213.0.21", "10.213.0.22"]
    assert [str(b.address) for b in inv.services["www6"].backends] == ["fd00:213:0:7::21"]
    assert inv.services["www6"].vip == IPv6Address("fd00:213:0:7::100")


def test_a_backend_without_an_address_in_the_vips_family_is_refused() -> None:
    found = problems("""
        services:
          www6: {vip: "fd00:213:0:7::100", port: 80, balancer: haproxy, backends: {group: web, port: 8080}}
    """)
    assert any("services.www6.backends" in p and "web2 has no IPv6 address" in p for p in found), found


def test_address6_must_be_ipv6_and_not_beside_an_ipv6_address() -> None:
    found = host_problems("  bad1: {address: 10.213.0.41, address6: 10.213.0.42}\n"
                          "  bad2: {address: 'fd00:213:0:7::41', address6: 'fd00:213:0:7::42'}\n")
    assert any("hosts.bad1.address6" in p and "must be an IPv6 address" in p for p in found), found
    assert any("hosts.bad2.address6" in p and "IPv6 already" in p for p in found), found


def test_an_ipv6_address_used_twice_is_refused() -> None:
    found = host_problems("  web3: {address: 10.213.0.23, address6: 'fd00:213:0:7::21'}\n")
    assert any("hosts.web3.address6" in p and "already the address of web1" in p for p in found), found


def test_zone_records_mix_a_and_aaaa() -> None:
    inv = parse("""
        zones:
          example.test:
            servers: [v6]
            records:
              www: [10.213.0.21, "fd00:213:0:7::21"]
    """)
    [record] = inv.zones["example.test"].records
    assert {a.version for a in record.addresses} == {4, 6}


def test_vrrp_for_an_ipv6_vip_runs_vrrp3_and_shares_router_ids_across_families() -> None:
    inv = parse("""
        vrrp:
          www:  {vip: 10.213.0.100/24, router_id: 51, hosts: [lb1, lb2]}
          www6: {vip: "fd00:213:0:7::100/64", router_id: 51, hosts: [lb1, lb2]}
          bare: {vip: "fd00:213:0:7::101", router_id: 52, hosts: [lb1, lb2]}
    """)
    assert vrrp_version(inv.vrrp["www"]) == 2 and vrrp_version(inv.vrrp["www6"]) == 3
    assert str(inv.vrrp["bare"].vip) == "fd00:213:0:7::101/128"


def test_an_ipv4_and_an_ipv6_vip_cannot_share_an_instance() -> None:
    found = problems("""
        vrrp:
          www: {vip: [10.213.0.100/24, "fd00:213:0:7::100/64"], router_id: 51, hosts: [lb1, lb2]}
    """)
    assert any("vrrp.www.vip:" in p and "cannot share a VRRP instance" in p for p in found), found


def test_ipv6_router_ids_are_unique_among_ipv6_instances() -> None:
    found = problems("""
        vrrp:
          a: {vip: "fd00:213:0:7::100/64", router_id: 51, hosts: [lb1, lb2]}
          b: {vip: "fd00:213:0:7::101/64", router_id: 51, hosts: [lb1, lb2]}
    """)
    assert any("vrrp.b.router_id" in p and "already used by vrrp.a" in p for p in found), found


def test_auth_pass_is_refused_on_an_ipv6_instance() -> None:
    found = problems("""
        vrrp:
          www6: {vip: "fd00:213:0:7::100/64", router_id: 51, hosts: [lb1, lb2], auth_pass: s3cret}
    """)
    assert any("vrrp.www6.auth_pass" in p and "VRRPv3" in p for p in found), found


@pytest.mark.parametrize("value", ["fd00:213:0:7::1;", "fd00::1 ", "fd00:213::/48x", "[fd00::1]", "fe80::1%eth0"])
def test_ipv6_values_that_could_inject_are_refused(value: str) -> None:
    found = host_problems(f"  bad: {{address: 10.213.0.41, address6: '{value}'}}\n")
    assert any("hosts.bad.address6" in p for p in found), found


def test_lab_network6_lies_in_the_labs_ula_prefix() -> None:
    inv = inventory.parse("lab: {name: ha6, network: 10.213.50.0/24, network6: 'fd00:213:0:50::/64'}\n" + DUAL)
    assert inv.lab is not None and inv.lab.network6 == IPv6Network("fd00:213:0:50::/64")
    with pytest.raises(InventoryError) as caught:
        inventory.parse("lab: {network6: 'fd00::/64'}\n" + DUAL)
    assert "inside fd00:213::/48" in str(caught.value)


def test_endpoint_brackets_ipv6_only() -> None:
    assert endpoint(IPv4Address("10.0.0.1"), 80) == "10.0.0.1:80"
    assert endpoint(IPv6Address("fd00::1"), 80) == "[fd00::1]:80"
