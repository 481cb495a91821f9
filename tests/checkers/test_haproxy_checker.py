"""The HAProxy checker really runs: a broken file is refused with haproxy's own message."""

from __future__ import annotations

import dataclasses

import pytest

from haops import inventory
from haops.targets import get_target
from haops.targets.base import RenderContext
from haops.apply.validation import check_files

pytestmark = pytest.mark.checker


def test_haproxy_rejects_unknown_keyword() -> None:
    inv = inventory.load("inventories/example.yml")
    target = get_target("haproxy")
    [good] = target.render(inv, "lb1", RenderContext())
    bad = dataclasses.replace(good, text=good.text.replace("balance roundrobin", "balance no-such-algorithm"))
    result = check_files(target, inv, "lb1", [bad])
    assert result.status == "failed"
    assert "balance only supports" in result.output
    assert "/etc/haproxy/haproxy.cfg:" in result.output, "checker output names the host path, not the temp tree"


def test_stats_password_never_appears_in_checker_output() -> None:
    inv = inventory.load("inventories/example.yml")
    target = get_target("haproxy")
    [good] = target.render(inv, "lb1", RenderContext())
    bad = dataclasses.replace(good, text=good.text.replace("stats enable", "change-me-directive"))
    result = check_files(target, inv, "lb1", [bad])
    assert result.status == "failed"
    assert "change-me" not in result.output
    assert "********-directive" in result.output
