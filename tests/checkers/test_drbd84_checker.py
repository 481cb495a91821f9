"""drbdadm-84 (drbd-utils' DRBD 8.4 parser) really checks an 8.4 resource file, without the
kernel module: it refuses DRBD 9 keywords and misplaced options, and the DRBD 9 drbdadm
refuses the 8.4 file in turn, so neither version's file passes the other's checker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from haops import inventory
from haops.apply.validation import check_files
from haops.inventory.model import Inventory
from haops.targets import get_target
from haops.targets.base import RenderContext, RenderedFile
from tests.conftest import GOLDEN

pytestmark = pytest.mark.checker
CASE_84 = GOLDEN / "drbd" / "two-node-84" / "inventory.yml"
CASE_9 = GOLDEN / "drbd" / "two-node-protocol-c" / "inventory.yml"
SECRET = "Dr8d-Sh4red.2026"


def rendered(case: Path, host: str) -> tuple[Inventory, RenderedFile]:
    inv = inventory.load(case)
    [file] = get_target("drbd").render(inv, host, RenderContext())
    return inv, file


def checked(inv: Inventory, host: str, file: RenderedFile, old: str = "", new: str = "") -> tuple[str, str]:
    if old:
        assert old in file.text
        file = dataclasses.replace(file, text=file.text.replace(old, new))
    result = check_files(get_target("drbd"), inv, host, [file])
    return result.status, result.output


def test_the_84_file_passes_drbdadm_84() -> None:
    inv, file = rendered(CASE_84, "store1")
    status, output = checked(inv, "store1", file)
    assert status == "ok", output
    assert output.startswith("drbdadm-84 dump r0 (as store1):")


def test_fencing_in_net_is_refused_by_drbdadm_84() -> None:
    """The DRBD 9 placement, in an 8.4 file."""
    inv, file = rendered(CASE_84, "store1")
    moved = file.text.replace("    disk {\n        fencing resource-only;\n    }\n", "").replace(
        "protocol C;", "protocol C;\n        fencing resource-only;")
    status, output = checked(inv, "store1", dataclasses.replace(file, text=moved))
    assert status == "failed"
    assert "/etc/drbd.d/r0.res:" in output and "Parse error" in output and "but got 'fencing'" in output


@pytest.mark.parametrize(("old", "new", "refused"), [
    ("        meta-disk internal;\n    }\n    on store2", "        meta-disk internal;\n        node-id 0;\n    }\n    on store2", "but got 'node-id'"),
    ("    disk {", "    options {\n        quorum majority;\n    }\n    disk {", "but got 'quorum'"),
    ("    disk {", "    connection-mesh {\n        hosts store1 store2;\n    }\n    disk {", "but got 'connection-mesh'"),
])
def test_drbd9_keywords_are_refused_by_drbdadm_84(old: str, new: str, refused: str) -> None:
    inv, file = rendered(CASE_84, "store1")
    status, output = checked(inv, "store1", file, old, new)
    assert status == "failed"
    assert refused in output


def test_the_drbd9_file_is_refused_by_drbdadm_84() -> None:
    """The DRBD 9 golden file, checked as if its resource were 8.4."""
    inv_84, _ = rendered(CASE_84, "store1")
    _, file_9 = rendered(CASE_9, "store1")
    status, output = checked(inv_84, "store1", file_9)
    assert status == "failed"
    assert "drbdadm-84 dump r0" in output and "but got 'node-id'" in output


def test_the_84_file_is_refused_by_the_drbd9_drbdadm() -> None:
    """drbd-utils 9 reads 8.4-style `on` sections, but not fencing in `disk`."""
    inv_9, _ = rendered(CASE_9, "store1")
    _, file_84 = rendered(CASE_84, "store1")
    status, output = checked(inv_9, "store1", file_84)
    assert status == "failed"
    assert output.startswith("drbdadm dump r0") and "but got 'fencing'" in output


def test_check_runs_as_the_node_itself() -> None:
    inv, file = rendered(CASE_84, "store2")
    status, output = checked(inv, "store2", file, "on store2 {", "on other2 {")
    assert status == "failed"
    assert "PRETENDING that I am >>store2<<" in output
    assert "'r0' not defined in your config (for this host)" in output


def test_shared_secret_is_masked_in_checker_output() -> None:
    inv, file = rendered(CASE_84, "store1")
    status, output = checked(inv, "store1", file, f'shared-secret "{SECRET}";', f"shared-secret {SECRET} {SECRET};")
    assert status == "failed"
    assert SECRET not in output and "********" in output
