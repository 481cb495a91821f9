"""DRBD 8.4 resources at run time: facts read with drbd-utils' 8.4 tools, the one connection
named after the peer, v08 metadata, the 8.4 kernel log, and the plans' commands."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from haops import inventory
from haops.inventory.model import DrbdResource
from haops.targets.drbd.facts import NodeFacts, fact_script
from haops.targets.drbd.lifecycle import NotReady, init_plan, resolve_plan
from haops.targets.drbd.status import CONNECTED, STANDALONE, split_brain
from tests.drbd.conftest import DATA, node

pytestmark = pytest.mark.unit
LOADED_84 = "K loaded version: 8.4.11 (api:1/proto:86-101)"
PAIR_84 = """\
hosts:
  node51: {{address: 192.168.72.51}}
  node52: {{address: 192.168.72.52}}
drbd:
  {name}:
    nodes: [node51, node52]
    disk: /dev/sdb
    version: "8.4"
    minor: {minor}
"""
# drbdsetup-84 prints a connection that is not Connected as "peer connection:STATE" and no role
# (user/v84/drbdsetup.c, connection_status); no recorded 8.4 sample of it was found.
STANDALONE_84 = "r0 role:Secondary\n  disk:UpToDate\n  peer connection:StandAlone\n"


def pair(tmp_path: Path, name: str = "r0", minor: int = 1) -> DrbdResource:
    path = tmp_path / "inventory.yml"
    path.write_text(PAIR_84.format(name=name, minor=minor))
    return inventory.load(path).drbd[name]


def sample(name: str) -> str:
    return (DATA / name).read_text()


def test_status_names_the_one_connection_after_the_peer_host(tmp_path: Path) -> None:
    """drbdadm status of an 8.4.11 module (LINBIT/drbd#97) says `peer`; the facts say node52."""
    facts = node("node51", LOADED_84, status=sample("drbdadm-status-84-connected.txt"), resource=pair(tmp_path))
    assert facts.state is not None
    [connection] = facts.state.connections
    assert (connection.peer, connection.state, connection.role) == ("node52", CONNECTED, "Secondary")
    assert facts.state.role == "Primary" and facts.state.up_to_date
    assert [v.peer_disk for v in connection.volumes] == ["UpToDate"]


def test_events2_connection_is_named_after_the_peer_host(tmp_path: Path) -> None:
    """The DRBD 9 guide's events2 sample with the two tokens drbdsetup-84 prints instead
    (event_key in user/v84/drbdsetup.c: conn-name:peer, peer-node-id faked to 0)."""
    events = sample("events2-now-connected.txt").replace("conn-name:remote-host", "conn-name:peer").replace(
        "peer-node-id:1", "peer-node-id:0")
    assert "conn-name:peer" in events
    facts = node("node52", LOADED_84, events2=events, resource=pair(tmp_path))
    assert facts.state is not None
    assert [c.peer for c in facts.state.connections] == ["node51"]


def test_kernel_log_split_brain_is_found_on_the_device_line(tmp_path: Path) -> None:
    """8.4 logs split brain as `block drbd6: ...` (ganeti/ganeti#846), naming neither resource nor peer."""
    resource = pair(tmp_path, "resource6", 6)
    facts = node("node51", LOADED_84, status=STANDALONE_84.replace("r0", "resource6"),
                 kernel=sample("kernel-84-split-brain.txt"), resource=resource)
    assert facts.state is not None
    [connection] = facts.state.connections
    assert (connection.peer, connection.state) == ("node52", STANDALONE)
    assert split_brain(connection)


def test_kernel_log_of_another_minor_is_not_this_resources_split_brain(tmp_path: Path) -> None:
    facts = node("node51", LOADED_84, status=STANDALONE_84.replace("r0", "resource6"),
                 kernel=sample("kernel-84-split-brain.txt"), resource=pair(tmp_path, "resource6", 7))
    assert facts.state is not None and not split_brain(facts.state.connections[0])


def test_a_later_connected_transition_ends_the_split_brain(tmp_path: Path) -> None:
    """The sample, plus the line DRBD 8.4 logs on reconnecting (drbd_state.c: "conn( %s -> %s )")."""
    log = sample("kernel-84-split-brain.txt") + "drbd resource6: conn( WFReportParams -> Connected )\n"
    facts = node("node51", LOADED_84, status=STANDALONE_84.replace("r0", "resource6"), kernel=log,
                 resource=pair(tmp_path, "resource6", 6))
    assert facts.state is not None and not split_brain(facts.state.connections[0])


def test_v08_metadata_just_created_is_fresh(tmp_path: Path) -> None:
    """drbdmeta v08 dump-md after create-md, recorded on a loop device (tests/data/drbd/README.md)."""
    meta = node("node51", LOADED_84, dump_md="dump-md-v08-created.txt", resource=pair(tmp_path)).metadata
    assert meta is not None
    assert (meta.valid, meta.current_uuid, meta.history, meta.has_history) == (True, 0x4, (), False)


def test_v08_metadata_with_a_generated_uuid_has_history(tmp_path: Path) -> None:
    """The recorded dump with its current UUID changed to one a sync would have generated."""
    dump = tmp_path / "dump.txt"
    dump.write_text(sample("dump-md-v08-created.txt").replace("0x0000000000000004;", "0x9E4DEF0B06A6DA9D;", 1))
    meta = node("node51", LOADED_84, dump_md=str(dump), resource=pair(tmp_path)).metadata
    assert meta is not None and meta.current_uuid == 0x9E4DEF0B06A6DA9D and meta.has_history


def test_v08_no_metadata(tmp_path: Path) -> None:
    meta = node("node51", LOADED_84, dump_md="dump-md-v08-empty.txt", resource=pair(tmp_path)).metadata
    assert meta is not None and not meta.valid


def test_fact_script_reads_with_the_84_tools_and_both_log_prefixes(tmp_path: Path) -> None:
    script = fact_script(pair(tmp_path), "/dev/sdb", True)
    assert "/lib/drbd/drbdadm-84 dump r0 " in script and "/lib/drbd/drbdadm-84 dump-md r0 " in script
    assert "/lib/drbd/drbdsetup-84 events2 --now --statistics r0 " in script
    assert "/lib/drbd/drbdadm-84 status r0 " in script
    assert "grep -F -e 'drbd r0: ' -e 'block drbd1: '" in script
    assert " drbdadm " not in script and " drbdsetup " not in script


def fresh(resource: DrbdResource, module: str = LOADED_84) -> dict[str, NodeFacts]:
    return {h: node(h, module, dump_md="dump-md-v08-empty.txt", blkid="blkid-empty.txt", resource=resource)
            for h in ("node51", "node52")}


def test_init_runs_drbdadm_84(tmp_path: Path) -> None:
    steps = init_plan(pair(tmp_path), fresh(pair(tmp_path)), "node51", False)
    assert [(s.host, s.script) for s in steps] == [
        ("node51", "/lib/drbd/drbdadm-84 create-md r0"), ("node52", "/lib/drbd/drbdadm-84 create-md r0"),
        ("node51", "/lib/drbd/drbdadm-84 up r0"), ("node52", "/lib/drbd/drbdadm-84 up r0"),
        ("node51", "/lib/drbd/drbdadm-84 primary --force r0")]


def test_an_84_resource_on_a_drbd9_module_is_not_ready(tmp_path: Path) -> None:
    with pytest.raises(NotReady, match=r"module is 9\.2\.12 \(loaded\), and r0 is an 8\.4 resource.*set its version to 9"):
        init_plan(pair(tmp_path), fresh(pair(tmp_path), "K loaded version: 9.2.12 (api:2/proto:86-122)"), None, False)


def test_a_drbd9_resource_on_an_84_module_is_told_about_the_version_option(tmp_path: Path) -> None:
    nine = dataclasses.replace(pair(tmp_path), version="9")
    with pytest.raises(NotReady, match='module is 8.4.11 .*set version: "8.4"'):
        init_plan(nine, fresh(nine), None, False)


def test_resolve_on_84_only_connects_what_is_standalone(tmp_path: Path) -> None:
    """8.4 has one connection per resource (drbdadm-84 refuses `disconnect r0:node51`), and
    drbdsetup-84 refuses to disconnect a StandAlone one ("unknown connection", exit 10, seen on
    the VMs): the victim goes Secondary and connects discarding its data, the survivor connects."""
    resource = pair(tmp_path, "resource6", 6)
    log = sample("kernel-84-split-brain.txt")
    facts = {h: node(h, LOADED_84, status=STANDALONE_84.replace("r0", "resource6"), kernel=log, resource=resource)
             for h in ("node51", "node52")}
    _, steps = resolve_plan(resource, facts, "node52")
    assert [(s.host, s.script) for s in steps] == [
        ("node52", "/lib/drbd/drbdadm-84 secondary resource6"),
        ("node52", "/lib/drbd/drbdadm-84 connect --discard-my-data resource6"),
        ("node51", "/lib/drbd/drbdadm-84 connect resource6")]
