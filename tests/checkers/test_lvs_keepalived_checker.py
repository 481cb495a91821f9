"""The LVS and keepalived checkers really run and refuse broken files with their own messages."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator

import pytest

from haops import inventory
from haops.targets import get_target, lvs
from haops.targets.base import RenderContext
from haops.apply.validation import check_files
from tests.conftest import GOLDEN

pytestmark = pytest.mark.checker


def golden(target: str, case: str) -> inventory.Inventory:
    return inventory.load(GOLDEN / target / case / "inventory.yml")


def test_lvs_parse_back_refuses_a_malformed_rules_file() -> None:
    inv = golden("lvs", "wrr-nat-http")
    target = get_target("lvs")
    [good] = target.render(inv, "lb1", RenderContext())
    bad = dataclasses.replace(good, text=good.text.replace("-s wrr", "-s fastest"))
    result = check_files(target, inv, "lb1", [bad])
    assert result.status == "failed"
    assert "ipvsadm rules parse-back" in result.output
    assert "unknown scheduler 'fastest'" in result.output
    assert "/etc/haops/lvs.rules" in result.output


def test_lvs_runs_keepalived_on_its_virtual_server_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    inv = golden("lvs", "sh-dr-persistence")
    target = get_target("lvs")
    files = target.render(inv, "lb1", RenderContext())
    real_blocks = lvs.virtual_server_blocks
    monkeypatch.setattr(lvs, "virtual_server_blocks", lambda i, h: real_blocks(i, h).replace("lb_algo sh", "lb_algo fastest"))
    result = check_files(target, inv, "lb1", files)
    assert result.status == "failed"
    assert "keepalived -t (virtual_server blocks)" in result.output
    assert "Invalid lvs_scheduler 'fastest'" in result.output


def test_keepalived_rejects_unknown_keyword_and_masks_the_password() -> None:
    inv = golden("keepalived", "vrrp-pair-auth")
    target = get_target("keepalived")
    [good] = target.render(inv, "lb1", RenderContext())
    bad = dataclasses.replace(good, text=good.text.replace("priority 150", "prioritty 150").replace("auth_type PASS", "s3cret PASS"))
    result = check_files(target, inv, "lb1", [bad])
    assert result.status == "failed"
    assert "Unknown keyword 'prioritty'" in result.output
    assert "/etc/keepalived/keepalived.conf: Line" in result.output, "names the host path, not the temp tree"
    assert "s3cret" not in result.output
    assert "Unknown keyword '********'" in result.output


def test_keepalived_fails_on_vrrp2_fractional_advert() -> None:
    """Only a warning in keepalived's log, yet -t exits non-zero: the check is strict."""
    inv = golden("keepalived", "vrrp-pair-auth")
    target = get_target("keepalived")
    [good] = target.render(inv, "lb1", RenderContext())
    bad = dataclasses.replace(good, text=good.text.replace("advert_int 1\n", "advert_int 1.5\n"))
    result = check_files(target, inv, "lb1", [bad])
    assert result.status == "failed"
    assert "advertisement interval 1.500000s must be an integer" in result.output


ABSENT_INTERFACE = """
hosts:
  lb1: {address: 10.213.0.11, vars: {interface: nosuch0}}
  lb2: {address: 10.213.0.12, vars: {interface: nosuch0}}
vrrp:
  www: {vip: 10.213.0.100/24, router_id: 51, hosts: {lb1: 150, lb2: 100}}
"""


def test_absent_interface_is_checked_with_dynamic_interfaces_and_says_so() -> None:
    inv = inventory.parse(ABSENT_INTERFACE)
    result = check_files(get_target("keepalived"), inv, "lb1", get_target("keepalived").render(inv, "lb1", RenderContext()))
    assert result.status == "ok", result.output
    assert "interfaces absent here: nosuch0; checked with dynamic_interfaces" in result.output


@pytest.fixture
def scratch_interface() -> Iterator[str]:
    """A veth pair on this machine for the length of one test (VRRP refuses loopback)."""
    name = "hk-check0"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", "hk-check1"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=True)


def test_where_the_interface_exists_the_real_config_is_checked_strictly(scratch_interface: str) -> None:
    """What the target host's check does: no dynamic_interfaces, so keepalived's own rules apply."""
    inv = inventory.parse(ABSENT_INTERFACE.replace("nosuch0", scratch_interface))
    target = get_target("keepalived")
    [good] = target.render(inv, "lb1", RenderContext())
    assert check_files(target, inv, "lb1", [good]).status == "ok"
    bad = dataclasses.replace(good, text=good.text.replace("virtual_router_id 51", "virtual_router_id 300"))
    result = check_files(target, inv, "lb1", [bad])
    assert result.status == "failed" and "dynamic_interfaces" not in result.output
