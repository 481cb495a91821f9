"""The inventory loader: the model it builds, and the errors users get."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address

import pytest

from haops import inventory
from haops.errors import InventoryError, UserError

pytestmark = pytest.mark.unit

BASE = """\
hosts:
  lb1:  {address: 10.213.0.11, groups: [lb]}
  lb2:  {address: 10.213.0.12, groups: [lb]}
  web1: {address: 10.213.0.21, groups: [web]}
  web2: {address: 10.213.0.22, groups: [web], vars: {weight: 3}}
"""


def parse(extra: str = "") -> inventory.Inventory:
    return inventory.parse(BASE + textwrap.dedent(extra), "inv.yml")


def problems(extra: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        parse(extra)
    return [str(p) for p in caught.value.problems]


def test_example_inventory_loads() -> None:
    inv = inventory.load("inventories/example.yml")
    assert set(inv.group("lb")) == {"lb1", "lb2"}
    www = inv.services["www"]
    assert [b.host for b in www.backends] == ["web1", "web2", "web3"]
    assert www.health is not None and www.health.interval_ms == 500
    assert inv.vrrp["www"].priority("lb1") == 150


def test_backends_from_group_take_port_and_host_weight() -> None:
    inv = parse("""
        services:
          www: {vip: 10.213.0.100, port: 80, balancer: haproxy, backends: {group: web, port: 8080}}
    """)
    assert [(b.host, b.address, b.port, b.weight) for b in inv.services["www"].backends] == [
        ("web1", IPv4Address("10.213.0.21"), 8080, 1),
        ("web2", IPv4Address("10.213.0.22"), 8080, 3),
    ]
    assert inv.services["www"].hosts == ("lb1", "lb2")


def test_group_vars_apply_and_host_vars_win() -> None:
    inv = inventory.parse(textwrap.dedent("""
        vars: {ssh_user: admin}
        groups:
          web: {vars: {weight: 5, interface: ens3}}
        hosts:
          web1: {address: 10.213.0.21, groups: [web]}
          web2: {address: 10.213.0.22, groups: [web], vars: {weight: 2}}
    """))
    assert (inv.hosts["web1"].weight, inv.hosts["web1"].interface, inv.hosts["web1"].ssh_user) == (5, "ens3", "admin")
    assert inv.hosts["web2"].weight == 2


def test_algorithm_aliases_become_the_balancers_own_names() -> None:
    inv = parse("""
        services:
          www: {vip: 10.213.0.100, port: 80, balancer: haproxy, algorithm: leastconn, backends: [web1, web2]}
    """)
    assert inv.services["www"].algorithm == "leastconn"


def test_error_names_file_line_key_and_allowed_values() -> None:
    [message] = problems("""
        services:
          www:
            vip: 10.213.0.100
            port: 80
            balancer: haproxy
            algorithm: fastest
            backends: [web1]
    """)
    assert message.startswith("inv.yml:12: services.www.algorithm:")
    assert "roundrobin" in message and "leastconn" in message


def test_every_problem_is_reported_at_once() -> None:
    found = problems("""
        services:
          www: {vip: 10.213.0.300, port: 99999, balancer: haproxy, backends: [web9]}
    """)
    assert len(found) == 3
    assert any("services.www.vip" in p and "IPv4" in p for p in found)
    assert any("services.www.port" in p and "65535" in p for p in found)
    assert any("services.www.backends[0].host" in p and "unknown host 'web9'" in p for p in found)


def test_unknown_key_suggests_the_close_one() -> None:
    [message] = problems("""
        services:
          www: {vip: 10.213.0.100, port: 80, balancer: haproxy, backends: [web1], stiky: cookie}
    """)
    assert "unknown key 'stiky'" in message and "did you mean 'sticky'" in message


def test_duplicate_keys_are_refused_not_silently_overwritten() -> None:
    with pytest.raises(InventoryError, match="duplicate key 'lb1'"):
        inventory.parse("hosts:\n  lb1: {address: 10.213.0.11}\n  lb1: {address: 10.213.0.12}\n")


def test_duplicate_address_is_refused() -> None:
    with pytest.raises(InventoryError, match="already the address of lb1"):
        inventory.parse("hosts:\n  lb1: {address: 10.213.0.11}\n  lb2: {address: 10.213.0.11}\n")


def test_yaml_syntax_error_gives_the_line() -> None:
    with pytest.raises(InventoryError) as caught:
        inventory.parse("hosts:\n  lb1: {address: 10.213.0.11\n  lb2: x\n", "bad.yml")
    assert str(caught.value.problems[0]).startswith("bad.yml:")
    assert "YAML syntax" in str(caught.value)


def test_yaml_booleans_are_not_taken_for_text() -> None:
    [message] = problems("""
        services:
          www: {vip: 10.213.0.100, port: 80, balancer: haproxy, backends: [web1], cookie: yes}
    """)
    assert "true/false" in message


def test_missing_inventory_file_is_a_user_error() -> None:
    with pytest.raises(UserError, match="inventory not found"):
        inventory.load("/nonexistent/inventory.yml")


def test_lab_network_must_stay_inside_the_lab_range() -> None:
    with pytest.raises(InventoryError, match="inside 10.213.0.0/16"):
        inventory.parse("lab: {network: 192.168.1.0/24}\n" + BASE)


def test_vrrp_needs_distinct_priorities_and_short_password() -> None:
    found = problems("""
        vrrp:
          www: {vip: 10.213.0.100/24, router_id: 51, hosts: {lb1: 100, lb2: 100}, auth_pass: muchtoolong}
    """)
    assert any("priorities must differ" in p for p in found)
    assert any("at most 8 characters" in p for p in found)


def test_two_services_cannot_share_an_address_and_port_on_a_host() -> None:
    found = problems("""
        services:
          a: {vip: 10.213.0.100, port: 80, balancer: haproxy, backends: [web1]}
          b: {vip: 10.213.0.100, port: 80, balancer: haproxy, backends: [web2]}
    """)
    assert any("already served by services.a" in p for p in found)


def test_anchor_bombs_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
    with pytest.raises(InventoryError, match="too large"):
        inventory.parse(bomb + BASE)


def test_a_service_with_only_backup_backends_is_refused() -> None:
    found = problems("""
        services:
          www: {vip: 10.213.0.100, port: 80, balancer: haproxy, backends: [{host: web1, backup: true}]}
    """)
    assert any("services.www.backends" in p and "every backend is a backup" in p for p in found)


def test_device_paths_cannot_climb_out_of_dev() -> None:
    found = problems("""
        drbd:
          r0: {nodes: [lb1, lb2], disk: /dev/../etc/shadow}
    """)
    assert any("drbd.r0.disk" in p for p in found)


def test_long_vrrp_host_lists_need_explicit_priorities() -> None:
    hosts = "".join(f"  h{i}: {{address: 10.213.0.{100 + i}, groups: [many]}}\n" for i in range(16))
    with pytest.raises(InventoryError, match="more than 15 hosts"):
        inventory.parse("hosts:\n" + hosts + "vrrp:\n  v: {vip: 10.213.0.250/24, router_id: 9, hosts: many}\n")
