"""The lifecycle as data: node facts in (built from recorded real output), steps or a refusal out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from haops.inventory.model import DrbdResource
from haops.targets.drbd.facts import NodeFacts
from haops.targets.drbd.lifecycle import (
    NotReady,
    Refused,
    demote_plan,
    init_plan,
    promote_plan,
    resolve_plan,
    up_plan,
    verify_plan,
)
from haops.targets.drbd.status import PeerDevice, parse_drbdadm_status, parse_events2
from tests.drbd.conftest import DATA, MISSING, node

pytestmark = pytest.mark.unit


def scripts(steps: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(s.host, s.script) for s in steps]


def fresh() -> dict[str, NodeFacts]:
    return {h: node(h, dump_md="dump-md-empty.txt", blkid="blkid-empty.txt") for h in ("server1", "server2")}


def with_state(facts: NodeFacts, status_file: str, kernel: str = "") -> NodeFacts:
    from haops.targets.drbd.status import parse_kernel_log, with_kernel_log

    [state] = parse_drbdadm_status((DATA / status_file).read_text())
    return dataclasses.replace(facts, state=with_kernel_log(state, parse_kernel_log(kernel)))


# --- readiness -------------------------------------------------------------------------------------

def test_no_module_is_not_ready_naming_each_host_and_what_is_missing(mydrbd: DrbdResource) -> None:
    facts = {"server1": node("server1", module=MISSING), "server2": node("server2", utils=False, module=MISSING)}
    with pytest.raises(NotReady) as refused:
        up_plan(mydrbd, facts)
    text = str(refused.value)
    assert refused.value.exit_code == 1
    assert "server1: no DRBD kernel module: modprobe: FATAL: Module drbd not found" in text
    assert "server2: drbd-utils is not installed" in text and "Nothing was changed" in text
    assert len(text.splitlines()) < 10


def test_a_drbd_8_module_is_not_enough(mydrbd: DrbdResource) -> None:
    facts = {h: node(h, module="K loadable 8.4.11") for h in ("server1", "server2")}
    with pytest.raises(NotReady, match="module is 8.4.11 .*install the DRBD 9 module"):
        up_plan(mydrbd, facts)


def test_resource_file_not_written_yet(mydrbd: DrbdResource) -> None:
    facts = {h: node(h, configured=False) for h in ("server1", "server2")}
    with pytest.raises(NotReady, match="run `haops apply` first"):
        init_plan(mydrbd, facts, None, False)


# --- init ------------------------------------------------------------------------------------------

def test_init_on_empty_disks_creates_metadata_brings_up_and_syncs_from_the_chosen_node(mydrbd: DrbdResource) -> None:
    steps = init_plan(mydrbd, fresh(), "server2", False)
    assert scripts(steps) == [
        ("server1", "drbdadm create-md mydrbd"), ("server2", "drbdadm create-md mydrbd"),
        ("server1", "drbdadm up mydrbd"), ("server2", "drbdadm up mydrbd"),
        ("server2", "drbdadm primary --force mydrbd")]


def test_init_without_initial_primary_starts_no_sync(mydrbd: DrbdResource) -> None:
    assert not any("primary" in s.script for s in init_plan(mydrbd, fresh(), None, False))


def test_initial_primary_must_be_a_node(mydrbd: DrbdResource) -> None:
    with pytest.raises(Refused, match="--initial-primary web1: not a node of DRBD resource mydrbd"):
        init_plan(mydrbd, fresh(), "web1", False)


def test_existing_filesystem_is_refused_saying_what_was_found(mydrbd: DrbdResource) -> None:
    facts = fresh() | {"server1": node("server1", dump_md="dump-md-ext4.txt", blkid="blkid-ext4.txt")}
    with pytest.raises(Refused) as refused:
        init_plan(mydrbd, facts, "server1", False)
    assert "server1: a ext4 filesystem labelled 'webdata' on /dev/vdb" in str(refused.value)
    assert "--force" in str(refused.value) and refused.value.exit_code == 2


def test_existing_metadata_is_refused_then_overwritten_with_force(mydrbd: DrbdResource) -> None:
    facts = fresh() | {"server2": node("server2", dump_md="dump-md-created.txt", blkid="blkid-drbd.txt")}
    with pytest.raises(Refused, match=r"server2: valid DRBD metadata on /dev/vdb \(current UUID 0000000000000004; "
                                      r"fresh, never synced\)"):
        init_plan(mydrbd, facts, None, False)
    steps = init_plan(mydrbd, facts, None, True)
    assert ("server2", "drbdadm create-md --force mydrbd") in scripts(steps)
    assert ("server1", "drbdadm create-md mydrbd") in scripts(steps)


def test_second_forced_initial_sync_is_refused_even_with_force(mydrbd: DrbdResource) -> None:
    facts = fresh() | {"server1": node("server1", dump_md="dump-md-synced.txt", blkid="blkid-drbd.txt")}
    for force in (False, True):
        with pytest.raises(Refused) as refused:
            init_plan(mydrbd, facts, "server2", force)
        text = str(refused.value)
        assert "refusing a second forced initial sync of mydrbd" in text
        assert "server1's metadata has generation identifiers (current UUID 5A7C1E2B3D4F6A81)" in text
        assert "haops drbd promote mydrbd server2" in text


def test_initial_sync_refused_when_a_node_is_up_with_up_to_date_data(mydrbd: DrbdResource) -> None:
    up = dataclasses.replace(fresh()["server1"], state=parse_events2((DATA / "events2-now-connected.txt").read_text())[0])
    with pytest.raises(Refused, match="server1 is up with disk UpToDate/UpToDate"):
        init_plan(mydrbd, fresh() | {"server1": up}, "server1", False)
    with pytest.raises(Refused, match="already up there"):
        init_plan(mydrbd, fresh() | {"server1": up}, None, True)


def test_missing_backing_disk_is_refused(mydrbd: DrbdResource) -> None:
    facts = fresh() | {"server2": node("server2", block=False, dump_md="dump-md-empty.txt", blkid="blkid-empty.txt")}
    with pytest.raises(Refused, match="server2: /dev/vdb is not a block device"):
        init_plan(mydrbd, facts, None, True)


# --- up, promote, demote ---------------------------------------------------------------------------

def test_up_skips_nodes_already_up(mydrbd: DrbdResource) -> None:
    facts = fresh() | {"server1": with_state(fresh()["server1"], "drbdadm-status-split-brain-secondary.txt")}
    assert scripts(up_plan(mydrbd, facts)) == [("server2", "drbdadm up mydrbd")]


def test_promote_refuses_inconsistent_disk_and_a_second_primary(mydrbd: DrbdResource) -> None:
    syncing = with_state(fresh()["server1"], "drbdadm-status-synctarget.txt")
    with pytest.raises(Refused, match="server1's disk is Inconsistent, not UpToDate"):
        promote_plan(mydrbd, fresh() | {"server1": syncing}, "server1")
    facts = {"server1": with_state(fresh()["server1"], "drbdadm-status-split-brain-secondary.txt"),
             "server2": with_state(fresh()["server2"], "drbdadm-status-split-brain-primary.txt")}
    with pytest.raises(Refused, match="server2 is Primary for mydrbd.*haops drbd demote mydrbd server2"):
        promote_plan(mydrbd, facts, "server1")
    assert promote_plan(mydrbd, facts, "server2") == []


def test_promote_an_up_to_date_secondary(mydrbd: DrbdResource) -> None:
    facts = fresh() | {"server1": with_state(fresh()["server1"], "drbdadm-status-split-brain-secondary.txt")}
    assert scripts(promote_plan(mydrbd, facts, "server1")) == [("server1", "drbdadm primary mydrbd")]


def test_demote_every_primary_but_not_an_open_device(mydrbd: DrbdResource) -> None:
    primary = with_state(fresh()["server2"], "drbdadm-status-split-brain-primary.txt")
    facts = fresh() | {"server2": primary}
    assert scripts(demote_plan(mydrbd, facts, None)) == [("server2", "drbdadm secondary mydrbd")]
    assert primary.state is not None
    opened = dataclasses.replace(primary, state=dataclasses.replace(
        primary.state, devices=tuple(dataclasses.replace(d, open=True) for d in primary.state.devices)))
    with pytest.raises(Refused, match="device is open"):
        demote_plan(mydrbd, facts | {"server2": opened}, "server2")


# --- split brain -----------------------------------------------------------------------------------

SPLIT = "drbd mydrbd/0 drbd0 {peer}: Split-Brain detected but unresolved, dropping connection!\n"


def split_brain_facts(kernel: bool = True) -> dict[str, NodeFacts]:
    return {"server1": with_state(fresh()["server1"], "drbdadm-status-split-brain-secondary.txt",
                                  SPLIT.format(peer="server2") if kernel else ""),
            "server2": with_state(fresh()["server2"], "drbdadm-status-split-brain-primary.txt",
                                  SPLIT.format(peer="server1") if kernel else "")}


def test_resolve_split_brain_documented_recovery(mydrbd: DrbdResource) -> None:
    view, steps = resolve_plan(mydrbd, split_brain_facts(), "server1")
    assert view.survivors == ("server2",)
    assert any("DRBD reported split brain" in e for e in view.evidence)
    assert scripts(steps) == [
        ("server1", "drbdadm disconnect mydrbd"), ("server1", "drbdadm secondary mydrbd"),
        ("server1", "drbdadm connect --discard-my-data mydrbd"),
        ("server2", "drbdadm disconnect mydrbd:server1"), ("server2", "drbdadm connect mydrbd:server1")]


def apart_and_out_of_sync(inconsistent: str | None = None) -> dict[str, NodeFacts]:
    """Both nodes StandAlone with blocks the other lacks (server1 76 KiB, server2 100 KiB), no
    kernel log of the split; `inconsistent`: that node's disk is Inconsistent, as a resync target's."""
    facts = split_brain_facts(kernel=False)
    for host, kib in (("server1", 76), ("server2", 100)):
        state = facts[host].state
        assert state is not None
        # `drbdadm status` shows no volume of a StandAlone peer; events2 --statistics gives its bitmap count
        connection = dataclasses.replace(state.connections[0], volumes=(PeerDevice(0, out_of_sync_kib=kib),))
        devices = tuple(dataclasses.replace(d, disk="Inconsistent") for d in state.devices) if host == inconsistent else state.devices
        facts[host] = dataclasses.replace(facts[host], state=dataclasses.replace(state, connections=(connection,), devices=devices))
    return facts


def test_resolve_reports_how_much_each_side_changed(mydrbd: DrbdResource) -> None:
    view, _ = resolve_plan(mydrbd, apart_and_out_of_sync(), "server2")
    assert (view.victim_changes_kib, view.survivor_changes_kib) == (100, 76)
    assert "both wrote while apart" in view.evidence[0]


def test_an_interrupted_resync_is_not_taken_for_a_split_brain(mydrbd: DrbdResource) -> None:
    # server2 was the SyncTarget when the link went: Inconsistent, its bitmap still to fetch
    with pytest.raises(Refused, match="no split brain between server2"):
        resolve_plan(mydrbd, apart_and_out_of_sync(inconsistent="server2"), "server2")


def test_resolve_refused_without_split_brain(mydrbd: DrbdResource) -> None:
    with pytest.raises(Refused, match="no split brain between server1 and its peers \\(server2 StandAlone\\)"):
        resolve_plan(mydrbd, split_brain_facts(kernel=False), "server1")


def test_resolve_victim_must_be_a_node(mydrbd: DrbdResource) -> None:
    with pytest.raises(Refused, match="--victim server3: not a node"):
        resolve_plan(mydrbd, split_brain_facts(), "server3")


def test_survivor_already_connecting_is_left_alone(mydrbd: DrbdResource) -> None:
    facts = split_brain_facts()
    survivor = facts["server2"].state
    assert survivor is not None
    connecting = dataclasses.replace(survivor, connections=(dataclasses.replace(survivor.connections[0], state="Connecting"),))
    _, steps = resolve_plan(mydrbd, facts | {"server2": dataclasses.replace(facts["server2"], state=connecting)}, "server1")
    assert [s.host for s in steps] == ["server1"] * 3


# --- verify ----------------------------------------------------------------------------------------

def test_verify_needs_connected_peers(mydrbd: DrbdResource, tmp_path: Path) -> None:
    with pytest.raises(Refused, match="online verify needs every connection of server1 Connected"):
        verify_plan(mydrbd, split_brain_facts(), None)
    connected = with_state(fresh()["server1"], "drbdadm-status-connected.txt")
    state = connected.state
    assert state is not None
    one_peer = dataclasses.replace(connected, state=dataclasses.replace(state, connections=state.connections[:1]))
    assert scripts(verify_plan(mydrbd, fresh() | {"server1": one_peer}, None)) == [("server1", "drbdadm verify mydrbd")]


def test_drbdadm_status_is_read_when_events2_fails() -> None:
    from haops.targets.drbd.facts import parse_node_facts

    text = "\n".join(["K loaded version: 9.2.12 (api:2/proto:86-122)", "U 1", "C 1", "B 1",
                      *[f"A {line}" for line in (DATA / "drbdadm-status-syncsource.txt").read_text().splitlines()]])
    state = parse_node_facts("server1", text).state
    assert state is not None and state.connection("m13c23").syncing  # type: ignore[union-attr]


def test_the_fact_script_is_valid_posix_sh(mydrbd: DrbdResource) -> None:
    import subprocess

    from haops.targets.drbd.facts import fact_script

    for inspect in (False, True):
        script = fact_script(mydrbd, "/dev/vdb", inspect)
        assert subprocess.run(["sh", "-n", "-c", script], capture_output=True, timeout=10).returncode == 0
