"""Every drbdadm command a DRBD plan runs is one the real drbdadm accepts for the rendered
resource, as that node: `drbdadm --dry-run` prints the drbdsetup/drbdmeta calls it would make."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from haops import inventory
from haops.targets import get_target
from haops.targets.base import RenderContext
from haops.targets.drbd.lifecycle import Step, init_plan, resolve_plan, verify_plan
from haops.targets.drbd.status import parse_drbdadm_status, parse_kernel_log, with_kernel_log
from tests.conftest import GOLDEN
from tests.drbd.conftest import DATA, node

pytestmark = pytest.mark.checker
CASE = GOLDEN / "drbd" / "two-node-protocol-c" / "inventory.yml"


def dry_run(step: Step, tmp_path: Path) -> str:
    inv = inventory.load(CASE)
    [file] = get_target("drbd").render(inv, step.host, RenderContext())
    config = tmp_path / f"{step.host}.res"
    config.write_text(file.text)
    argv = ["drbdadm", "--dry-run", "-c", str(config), *step.argv[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={**os.environ, "__DRBD_NODE__": step.host})
    assert done.returncode == 0, f"{step.script} as {step.host}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_init_steps_are_valid_drbdadm(tmp_path: Path) -> None:
    resource = inventory.load(CASE).drbd["r0"]
    facts = {"store1": node("store1", dump_md="dump-md-created.txt", blkid="blkid-drbd.txt"),
             "store2": node("store2", dump_md="dump-md-empty.txt", blkid="blkid-empty.txt")}
    calls = [dry_run(step, tmp_path) for step in init_plan(resource, facts, "store2", True)]
    assert calls[0].strip() == "drbdmeta 0 v09 /dev/vdb internal create-md 1 --force"
    assert calls[1].strip() == "drbdmeta 0 v09 /dev/vdb internal create-md 1"
    assert "drbdsetup attach 0 /dev/vdb /dev/vdb internal" in calls[2] and "drbdsetup connect r0 1" in calls[2]
    assert calls[4].strip() == "drbdsetup primary r0 --force"


def test_split_brain_recovery_steps_are_valid_drbdadm(tmp_path: Path) -> None:
    resource = inventory.load(CASE).drbd["r0"]
    facts = {}
    for host, peer, role in (("store1", "store2", "secondary"), ("store2", "store1", "primary")):
        [state] = parse_drbdadm_status((DATA / f"drbdadm-status-split-brain-{role}.txt").read_text())
        state = dataclasses.replace(state, name="r0", connections=tuple(
            dataclasses.replace(c, peer=peer) for c in state.connections))  # the sample's names, made this resource's
        log = parse_kernel_log(f"drbd r0/0 drbd0 {peer}: Split-Brain detected but unresolved, dropping connection!")
        facts[host] = dataclasses.replace(node(host), state=with_kernel_log(state, log))
    _, steps = resolve_plan(resource, facts, "store2")
    calls = [dry_run(step, tmp_path).strip() for step in steps]
    assert calls == ["drbdsetup disconnect r0 0", "drbdsetup secondary r0", "drbdsetup connect r0 0 --discard-my-data",
                     "drbdsetup disconnect r0 1", "drbdsetup connect r0 1"]


def test_verify_step_is_valid_drbdadm(tmp_path: Path) -> None:
    resource = inventory.load(CASE).drbd["r0"]
    [state] = parse_drbdadm_status((DATA / "drbdadm-status-connected.txt").read_text())
    connected = dataclasses.replace(node("store1"), state=dataclasses.replace(state, connections=state.connections[:1]))
    [step] = verify_plan(resource, {"store1": connected, "store2": node("store2")}, None)
    assert dry_run(step, tmp_path).strip() == "drbdsetup verify r0 1 0"
