"""drbdadm really checks each node's view: misplaced options and missing nodes are refused."""

from __future__ import annotations

import dataclasses

import pytest

from haops import inventory
from haops.targets import get_target
from haops.targets.base import RenderContext, RenderedFile
from haops.apply.validation import check_files
from tests.conftest import GOLDEN

pytestmark = pytest.mark.checker
CASE = GOLDEN / "drbd" / "two-node-protocol-c" / "inventory.yml"
SECRET = "Dr8d-Sh4red.2026"


def _rendered(host: str) -> tuple[inventory.Inventory, RenderedFile]:
    inv = inventory.load(CASE)
    [file] = get_target("drbd").render(inv, host, RenderContext())
    return inv, file


def _broken(file: RenderedFile, old: str, new: str) -> RenderedFile:
    assert old in file.text
    return dataclasses.replace(file, text=file.text.replace(old, new))


def test_fencing_in_disk_section_is_refused() -> None:
    """DRBD 8.4 kept fencing in `disk`; drbd-utils 9 only accepts it in `net`."""
    inv, file = _rendered("store1")
    moved = file.text.replace("        fencing resource-only;\n", "").replace("    options {", "    disk {\n        fencing resource-only;\n    }\n    options {")
    result = check_files(get_target("drbd"), inv, "store1", [dataclasses.replace(file, text=moved)])
    assert result.status == "failed"
    assert "/etc/drbd.d/r0.res:" in result.output, "checker output names the host path, not the temp tree"
    assert "Parse error" in result.output
    assert "but got 'fencing'" in result.output


def test_check_runs_as_the_node_itself() -> None:
    """With __DRBD_NODE__=store2, a file without an `on store2` section defines nothing for it."""
    inv, file = _rendered("store2")
    bad = _broken(file, "on store2 {", "on other2 {")
    result = check_files(get_target("drbd"), inv, "store2", [bad])
    assert result.status == "failed"
    assert "PRETENDING that I am >>store2<<" in result.output
    assert "There is no 'on' section for hostname 'store2'" in result.output


def test_shared_secret_is_masked_in_checker_output() -> None:
    inv, file = _rendered("store1")
    bad = _broken(file, f'shared-secret "{SECRET}";', f"shared-secret {SECRET} {SECRET};")
    result = check_files(get_target("drbd"), inv, "store1", [bad])
    assert result.status == "failed"
    assert SECRET not in result.output
    assert "********" in result.output
