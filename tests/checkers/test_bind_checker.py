"""The BIND checkers really run: broken zone files and configs are refused with BIND's own words."""

from __future__ import annotations

import dataclasses

import pytest

from haops import inventory
from haops.targets import get_target
from haops.targets.base import RenderContext, RenderedFile
from haops.apply.validation import check_files
from tests.conftest import GOLDEN

pytestmark = pytest.mark.checker
CASE = GOLDEN / "bind" / "two-servers-delegation" / "inventory.yml"


def _rendered(host: str) -> tuple[inventory.Inventory, dict[str, RenderedFile]]:
    inv = inventory.load(CASE)
    files = get_target("bind").render(inv, host, RenderContext())
    return inv, {file.path: file for file in files}


def _broken(files: dict[str, RenderedFile], path: str, old: str, new: str) -> list[RenderedFile]:
    assert old in files[path].text
    broken = dataclasses.replace(files[path], text=files[path].text.replace(old, new))
    return [broken if file.path == path else file for file in files.values()]


def test_bad_address_in_zone_file_is_refused_by_both_checkers() -> None:
    inv, files = _rendered("dns2")
    bad = _broken(files, "/etc/bind/haops/db.app.example.test", "api IN A 10.213.0.51", "api IN A 10.213.0.5.1")
    result = check_files(get_target("bind"), inv, "dns2", bad)
    assert result.status == "failed"
    assert "named-checkzone app.example.test: dns_rdata_fromtext: /etc/bind/haops/db.app.example.test:" in result.output
    assert "bad dotted quad" in result.output
    # named-checkconf -z chrooted into the candidate tree loaded the same broken file.
    assert "named-checkconf -z:" in result.output
    assert "zone app.example.test/IN: not loaded due to errors" in result.output


def test_unknown_option_in_named_conf_is_refused() -> None:
    inv, files = _rendered("dns1")
    bad = _broken(files, "/etc/bind/named.conf", "recursion no;", "recursion sometimes;")
    result = check_files(get_target("bind"), inv, "dns1", bad)
    assert result.status == "failed"
    assert "/etc/bind/named.conf:" in result.output, "checker output names the host path, not the temp tree"
    assert "'sometimes'" in result.output


def test_underscore_host_name_fails_check_names() -> None:
    inv, files = _rendered("dns1")
    bad = _broken(files, "/etc/bind/haops/db.example.test", "www IN A 10.213.0.21", "w_w IN A 10.213.0.21")
    result = check_files(get_target("bind"), inv, "dns1", bad)
    assert result.status == "failed"
    assert "bad owner name (check-names)" in result.output
