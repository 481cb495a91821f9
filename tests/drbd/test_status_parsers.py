"""The DRBD parsers on recorded real output (tests/data/drbd/README.md says where each came from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from haops.targets.drbd.status import (
    CONNECTED,
    parse_drbdadm_status,
    parse_events2,
    parse_kernel_log,
    split_brain,
    with_kernel_log,
)

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent.parent / "data" / "drbd"


def sample(name: str) -> str:
    return (DATA / name).read_text()


# --- events2 ---------------------------------------------------------------------------------------

def test_events2_now_connected_two_volumes() -> None:
    [r0] = parse_events2(sample("events2-now-connected.txt"))
    assert (r0.name, r0.role, r0.disks) == ("r0", "Secondary", ("UpToDate", "UpToDate"))
    [peer] = r0.connections
    assert (peer.peer, peer.state, peer.role, peer.peer_node_id) == ("remote-host", CONNECTED, "Secondary", 1)
    assert [(v.volume, v.replication, v.peer_disk) for v in peer.volumes] == [
        (0, "Established", "UpToDate"), (1, "Established", "UpToDate")]
    assert not split_brain(peer) and r0.up_to_date


def test_events2_statistics_lines_broken_for_readability_still_parse() -> None:
    [r0] = parse_events2(sample("events2-now-statistics-connected.txt"))
    [peer] = r0.connections
    assert peer.state == CONNECTED and peer.role == "Secondary"
    assert [v.out_of_sync_kib for v in peer.volumes] == [0, 0]
    assert [d.minor for d in r0.devices] == [7, 8]


def test_events2_syncing_gives_percentage_rate_eta_and_out_of_sync() -> None:
    """drbd-utils' own test stream: created StandAlone and Diskless, then attached and syncing."""
    [res] = parse_events2(sample("events2-statistics-syncing.txt"))
    assert res.disks == ("UpToDate",)
    [peer] = res.connections
    [volume] = peer.volumes
    assert (peer.peer, peer.state, volume.replication, volume.peer_disk) == ("some-peer", CONNECTED, "SyncSource", "Inconsistent")
    assert (volume.done, volume.rate_mib_s, volume.eta_s, volume.out_of_sync_kib) == (37.5, 0.24, 10, 2500)
    assert peer.syncing


def test_events2_diskless_client_reads_from_its_peer() -> None:
    [res] = parse_events2(sample("events2-diskless.txt"))
    assert res.disks == ("Diskless",) and not res.up_to_date
    [peer] = res.connections
    assert (peer.state, peer.volumes[0].replication, peer.volumes[0].peer_disk) == (CONNECTED, "Established", "UpToDate")


def test_events2_split_brain_is_a_standalone_connection_the_kernel_log_explains() -> None:
    """The UG9 snapshot, then its live `change connection ... StandAlone` line: events2 itself has
    no split-brain state (LINBIT/linstor-server#75), so the StandAlone alone is not called one."""
    stream = sample("events2-now-connected.txt") + sample("events2-standalone-changes.txt").splitlines()[0] + "\n"
    [r0] = parse_events2(stream)
    [peer] = r0.connections
    assert peer.state == "StandAlone" and not split_brain(peer)
    log = "kernel: drbd r0/0 drbd7 remote-host: Split-Brain detected but unresolved, dropping connection!\n"
    [marked] = with_kernel_log(r0, parse_kernel_log(log)).connections
    assert split_brain(marked)


def test_events2_reconnect_after_standalone_is_not_split_brain() -> None:
    stream = sample("events2-now-connected.txt") + sample("events2-standalone-changes.txt")
    [r0] = parse_events2(stream)
    assert r0.connections[0].state == "Connecting" and not split_brain(r0.connections[0])


def test_events2_helper_calls_other_than_split_brain_mark_nothing() -> None:
    [res] = parse_events2(sample("events2-helper.txt"))
    assert not res.connections[0].split_brain_helper


def test_events2_split_brain_helper_call_marks_the_connection() -> None:
    """The helper line of drbd-utils' test with the handler name the kernel passes on split brain
    (drbd/drbd_receiver.c: drbd_maybe_khelper(device, connection, "split-brain"))."""
    helper = sample("events2-helper.txt").replace("helper:before-resync-target", "helper:split-brain")
    [res] = parse_events2(helper)
    assert res.connections[0].state == "StandAlone" and split_brain(res.connections[0])


def test_events2_destroy_removes_and_timestamps_are_ignored() -> None:
    stream = ("2026-09-01T10:00:00.000000+00:00 exists resource name:r0 role:Primary suspended:no\n"
              "2026-09-01T10:00:00.000000+00:00 exists -\n")
    assert [r.role for r in parse_events2(stream)] == ["Primary"]
    assert parse_events2("exists resource name:r0 role:Primary\ndestroy resource name:r0\n") == []


# --- drbdadm status --------------------------------------------------------------------------------

def test_status_connected_with_one_peer_connecting() -> None:
    [home] = parse_drbdadm_status(sample("drbdadm-status-connected.txt"))
    assert (home.name, home.role, home.disks) == ("home", "Secondary", ("UpToDate",))
    assert [(c.peer, c.state, c.role) for c in home.connections] == [
        ("nina", CONNECTED, "Secondary"), ("nino", CONNECTED, "Secondary"), ("nono", "Connecting", "Unknown")]
    assert home.connections[0].volumes[0].peer_disk == "UpToDate"


def test_status_verbose_statistics_with_broken_lines() -> None:
    [home] = parse_drbdadm_status(sample("drbdsetup-status-verbose-connected.txt"))
    assert home.devices[0].minor == 0 and home.up_to_date
    assert [(c.peer, c.state, c.peer_node_id) for c in home.connections] == [
        ("nina", CONNECTED, 0), ("nino", CONNECTED, 2), ("nono", "Connecting", 3)]
    assert home.connections[0].volumes[0].out_of_sync_kib == 0


def test_status_syncing_source_and_target() -> None:
    [source] = parse_drbdadm_status(sample("drbdadm-status-syncsource.txt"))
    syncing = source.connection("m13c23")
    assert syncing is not None and syncing.syncing and syncing.volumes[0].done == 72.42
    assert source.connection("m11c12").volumes[0].peer_disk == "Diskless"  # type: ignore[union-attr]
    [target] = parse_drbdadm_status(sample("drbdadm-status-synctarget.txt"))
    assert target.disks == ("Inconsistent",)
    assert target.connection("m10c17").volumes[0].replication == "SyncTarget"  # type: ignore[union-attr]


def test_status_split_brain_both_sides_standalone() -> None:
    [secondary] = parse_drbdadm_status(sample("drbdadm-status-split-brain-secondary.txt"))
    [primary] = parse_drbdadm_status(sample("drbdadm-status-split-brain-primary.txt"))
    assert (secondary.role, primary.role) == ("Secondary", "Primary")
    assert secondary.connection("server2").state == primary.connection("server1").state == "StandAlone"  # type: ignore[union-attr]


def test_status_three_nodes_standalone_to_one_connected_to_the_diskless_primary() -> None:
    [res] = parse_drbdadm_status(sample("drbdadm-status-split-brain-three-nodes.txt"))
    assert res.disks == ("Outdated",) and res.devices[0].quorum is False
    assert [(c.peer, c.state) for c in res.connections] == [("m11c12", CONNECTED), ("m14c6", "StandAlone")]


def test_status_diskless_primary() -> None:
    [res] = parse_drbdadm_status(sample("drbdadm-status-diskless.txt"))
    assert (res.role, res.disks) == ("Primary", ("Diskless",))
    assert res.connections[0].volumes[0].peer_disk == "UpToDate"


# --- kernel log ------------------------------------------------------------------------------------

def test_kernel_log_split_brain_until_reconnected() -> None:
    log = parse_kernel_log(sample("kernel-split-brain.txt"))
    assert log.split_brain == {("vm-57da08a3-2938-4769-8959-3a11616d6ef9", "os-hv-am-3")}
    reconnected = parse_kernel_log(sample("kernel-reconnected.txt"))
    assert reconnected.split_brain == frozenset()


def test_kernel_log_a_later_connect_clears_the_split_brain() -> None:
    later = ("drbd vm-57da08a3-2938-4769-8959-3a11616d6ef9 os-hv-am-3: conn( Connecting -> Connected ) "
             "peer( Unknown -> Secondary )\n")
    assert parse_kernel_log(sample("kernel-split-brain.txt") + later).split_brain == frozenset()


def test_kernel_log_online_verify_result() -> None:
    """The message format of drbd/drbd_sender.c: "Online verify found %lu %lluk blocks out of sync!"."""
    line = "drbd r0/0 drbd0 store2: Online verify found 3 4k blocks out of sync!\n"
    assert dict(parse_kernel_log(line).verify_found_kib) == {("r0", "store2"): 12}
