"""Rendered files must equal tests/golden/<target>/<case>/expected/<host>/<path>.

A case is a folder holding inventory.yml; every host the target configures has its files
under expected/. Run `pytest tests/test_golden.py --update-golden` after an intended change
and review the diff.
"""

from __future__ import annotations

import difflib
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from haops import inventory
from haops.inventory.model import Inventory
from haops.targets import all_targets, get_target
from haops.targets.base import RenderContext, RenderedFile
from tests.conftest import GOLDEN, ROOT

pytestmark = pytest.mark.golden
GOLDEN_DAY = date(2026, 1, 2)
CASES = sorted(path.parent for path in GOLDEN.glob("*/*/inventory.yml"))
INVENTORIES = ROOT / "inventories"
REORDERED_CASES = [
    INVENTORIES / "example.yml",
    INVENTORIES / "vagrant.yml",
    *(GOLDEN / case / "inventory.yml" for case in (
        "apache/byrequests-sticky-hcheck",
        "bind/record-ttl-apex",
        "bind/roundrobin-one-server",
        "bind/two-servers-delegation",
        "iptables/weighted-3-1-2",
        "keepalived/nopreempt-subsecond",
        "lvs/sh-dr-persistence",
        "nginx/plus-least-time",
    )),
]


def rendered_tree(case: Path) -> dict[str, str]:
    target = get_target(case.parent.name)
    inv = inventory.load(case / "inventory.yml")
    tree = {}
    for host in target.hosts(inv):
        for file in target.render(inv, host, RenderContext(today=GOLDEN_DAY)):
            tree[f"{host}{file.path}"] = file.text
    return tree


def expected_tree(case: Path) -> dict[str, str]:
    expected = case / "expected"
    return {str(p.relative_to(expected)): p.read_text() for p in sorted(expected.rglob("*")) if p.is_file()}


def write_expected(case: Path, tree: dict[str, str]) -> None:
    expected = case / "expected"
    for old in sorted(expected.rglob("*"), reverse=True) if expected.exists() else []:
        old.unlink() if old.is_file() else old.rmdir()
    for relative, text in tree.items():
        (expected / relative).parent.mkdir(parents=True, exist_ok=True)
        (expected / relative).write_text(text)


def test_every_target_has_golden_cases() -> None:
    from haops.targets import BUILT_IN as TARGET_NAMES

    covered = {case.parent.name for case in CASES}
    assert covered == set(TARGET_NAMES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.parent.name}/{c.name}")
def test_rendering_matches_golden(case: Path, update_golden: bool) -> None:
    actual = rendered_tree(case)
    assert actual, f"{case}: the target renders nothing for this inventory"
    if update_golden:
        write_expected(case, actual)
    expected = expected_tree(case)
    assert sorted(actual) == sorted(expected), "the set of rendered files changed"
    for name, text in actual.items():
        if text != expected[name]:
            diff = difflib.unified_diff(expected[name].splitlines(True), text.splitlines(True), f"golden/{name}", f"rendered/{name}")
            pytest.fail("".join(diff))


def rendered_everything(inv: Inventory) -> dict[str, RenderedFile]:
    """Every file of every target on every host, keyed by target, host and path."""
    context = RenderContext(today=GOLDEN_DAY)
    return {f"{target.name}:{host}{file.path}": file
            for target in all_targets() for host in target.hosts(inv) for file in target.render(inv, host, context)}


@pytest.mark.parametrize("name", ["example.yml", "vagrant.yml"])
def test_a_renamed_copy_elsewhere_renders_the_same_files(name: str, tmp_path: Path) -> None:
    original = INVENTORIES / name
    copy = tmp_path / "elsewhere" / f"renamed-{name}"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    expected = rendered_everything(inventory.load(original))
    assert expected
    assert rendered_everything(inventory.load(copy)) == expected


def reversed_mapping(data: dict[str, Any]) -> dict[str, Any]:
    return dict(reversed(data.items()))


def reversed_addresses(record: Any) -> Any:
    if isinstance(record, list):
        return record[::-1]
    if isinstance(record, dict) and isinstance(record.get("addresses"), list):
        return {**record, "addresses": record["addresses"][::-1]}
    return record


def reordered_zone(zone: dict[str, Any]) -> dict[str, Any]:
    zone = dict(zone)
    if zone.get("records"):
        zone["records"] = reversed_mapping({name: reversed_addresses(body) for name, body in zone["records"].items()})
    if zone.get("delegate"):
        zone["delegate"] = reversed_mapping(zone["delegate"])
    return zone


def reordered(data: dict[str, Any]) -> dict[str, Any]:
    """The same desired state with every mapping whose order means nothing reversed.

    Host and backend order is left alone: a group follows the order of the hosts mapping,
    and that order gives VRRP priorities, DRBD node ids and the zone's primary server.
    """
    data = reversed_mapping(data)
    for section in ("services", "vrrp", "drbd"):
        if data.get(section):
            data[section] = reversed_mapping(data[section])
    if data.get("zones"):
        data["zones"] = reversed_mapping({name: reordered_zone(body) for name, body in data["zones"].items()})
    return data


@pytest.mark.parametrize("path", REORDERED_CASES, ids=lambda p: str(p.relative_to(ROOT)))
def test_reordered_keys_render_the_same_files(path: Path) -> None:
    text = yaml.safe_dump(reordered(yaml.safe_load(path.read_text())), sort_keys=False)
    assert rendered_everything(inventory.parse(text, str(path))) == rendered_everything(inventory.load(path))
