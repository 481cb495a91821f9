"""drbdadm-84 (drbd-utils' DRBD 8.4 parser) really checks an 8.4 resource file, without the
kernel module: it refuses DRBD 9 keywords and misplaced options, and the DRBD 9 drbdadm
refuses the 8.4 file in turn, so neither version's file passes the other's checker."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from haops import inventory
from haops.apply.validation import check_files
from haops.inventory.model import Inventory
from haops.targets import get_target
from haops.targets.base import RenderContext, RenderedFile
from haops.targets.drbd.lifecycle import Step, init_plan, resolve_plan
from tests.conftest import GOLDEN
from tests.drbd.conftest import node

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


# --- the plans' commands, as drbdadm-84 --dry-run takes them ---------------------------------------

def dry_run(step: Step, tmp_path: Path) -> str:
    """What drbdadm-84 would run for `step` as that node: the drbdsetup-84 and drbdmeta calls."""
    _, file = rendered(CASE_84, step.host)
    config = tmp_path / f"{step.host}.res"
    config.write_text(file.text)
    argv = [step.argv[0], "--dry-run", "-c", str(config), *step.argv[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={**os.environ, "__DRBD_NODE__": step.host})
    assert done.returncode == 0, f"{step.script} as {step.host}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_init_steps_are_valid_drbdadm_84_and_write_v08_metadata(tmp_path: Path) -> None:
    resource = inventory.load(CASE_84).drbd["r0"]
    facts = {h: node(h, "K loaded version: 8.4.11 (api:1/proto:86-101)", dump_md="dump-md-v08-empty.txt",
                     blkid="blkid-empty.txt", resource=resource) for h in ("store1", "store2")}
    calls = [dry_run(step, tmp_path) for step in init_plan(resource, facts, "store2", False)]
    assert calls[0].strip() == "drbdmeta 3 v08 /dev/vdb internal create-md"
    assert "drbdsetup-84 attach 3 /dev/vdb /dev/vdb internal --fencing=resource-only" in calls[2]
    assert "drbdsetup-84 connect r0 ipv4:10.213.0.51:7789 ipv4:10.213.0.52:7789 --protocol=C" in calls[2]
    assert calls[4].strip() == "/lib/drbd/drbdsetup-84 primary 3 --force"


def test_split_brain_recovery_steps_are_valid_drbdadm_84(tmp_path: Path) -> None:
    resource = inventory.load(CASE_84).drbd["r0"]
    log = "block drbd3: Split-Brain detected but unresolved, dropping connection!"
    status = "r0 role:Secondary\n  disk:UpToDate\n  peer connection:StandAlone\n"
    facts = {h: node(h, "K loaded version: 8.4.11 (api:1/proto:86-101)", status=status, kernel=log, resource=resource)
             for h in ("store1", "store2")}
    _, steps = resolve_plan(resource, facts, "store2")
    calls = [dry_run(step, tmp_path).strip() for step in steps]
    connect = "/lib/drbd/drbdsetup-84 connect r0 ipv4:10.213.0.5{} ipv4:10.213.0.5{}"
    # both StandAlone: no disconnect (drbdsetup-84 refuses one, "unknown connection", on the VMs)
    assert len(calls) == 3 and not any(" disconnect " in call for call in calls), calls
    assert calls[0] == "/lib/drbd/drbdsetup-84 secondary 3"
    assert calls[1].startswith(connect.format("2:7789", "1:7789")) and calls[1].endswith(" --discard-my-data")
    assert calls[2].startswith(connect.format("1:7789", "2:7789")) and "--discard-my-data" not in calls[2]


def test_drbdadm_84_refuses_a_per_peer_connection(tmp_path: Path) -> None:
    """Why an 8.4 survivor resets `r0`, not `r0:store2` as a DRBD 9 survivor does."""
    step = Step("store1", ("/lib/drbd/drbdadm-84", "disconnect", "r0:store2"), "")
    with pytest.raises(AssertionError, match="'r0:store2' not defined in your config"):
        dry_run(step, tmp_path)
