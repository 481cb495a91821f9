"""The drbd command group as a user meets it without hosts, and the status report on recorded states."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from rich.console import Console

from haops.inventory.model import DrbdResource
from haops.targets.drbd.report import ResourceView, as_json, table
from haops.targets.drbd.status import parse_drbdadm_status, parse_events2, parse_kernel_log, with_kernel_log
from tests.drbd.conftest import DATA, MISSING, node
from tests.test_cli import run

pytestmark = pytest.mark.unit
GOLDEN = "tests/golden/drbd/two-node-protocol-c/inventory.yml"


def test_drbd_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "drbd", "--help")
    assert code == 0
    for command in ("init", "up", "promote", "demote", "status", "verify", "resolve-split-brain"):
        assert command in out


@pytest.mark.parametrize("args, message", [
    (("drbd", "init", "nope", "-i", GOLDEN), "no DRBD resource 'nope' in the inventory (resources: r0)"),
    (("drbd", "status", "-i", "inventories/example.yml"), "the inventory has no drbd section"),
    (("drbd", "resolve-split-brain", "r0", "-i", GOLDEN), "Missing option '--victim'"),
])
def test_mistakes_exit_2_without_touching_a_host(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and message in out + err and "Traceback" not in out + err


def rendered(view: ResourceView) -> str:
    console = Console(file=io.StringIO(), width=200)
    console.print(table(view))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_split_brain_in_the_table_and_the_json(mydrbd: DrbdResource) -> None:
    facts = {}
    for host, peer, role in (("server1", "server2", "secondary"), ("server2", "server1", "primary")):
        [state] = parse_drbdadm_status((DATA / f"drbdadm-status-split-brain-{role}.txt").read_text())
        log = parse_kernel_log(f"drbd mydrbd/0 drbd0 {peer}: Split-Brain detected but unresolved, dropping connection!")
        facts[host] = dataclasses.replace(node(host), state=with_kernel_log(state, log))
    view = ResourceView(mydrbd, facts, {})
    assert "split brain" in rendered(view)
    assert any("split brain with server2" in p for p in view.problems)
    data = as_json([view])
    assert data["ok"] is False
    assert [n["state"]["split_brain"] for n in data["resources"][0]["nodes"]] == [["server2"], ["server1"]]
    json.dumps(data)


def test_syncing_shows_percentage_rate_and_eta(mydrbd: DrbdResource) -> None:
    [syncing] = parse_events2((DATA / "events2-statistics-syncing.txt").read_text())
    view = ResourceView(mydrbd, {"server1": dataclasses.replace(node("server1"), state=syncing),
                                 "server2": node("server2")}, {})
    text = rendered(view)
    assert "37.5% at 0.2 MiB/s, 10 s left" in text and "2500 KiB" in text
    assert "mydrbd on server2: not up" in view.problems


def test_unready_and_unreachable_hosts_are_problems(mydrbd: DrbdResource) -> None:
    view = ResourceView(mydrbd, {"server1": node("server1", module=MISSING)}, {"server2": "cannot reach 10.213.42.12:22"})
    assert view.problems == ["mydrbd on server1: no DRBD kernel module: modprobe: FATAL: Module drbd not found in "
                             "directory /lib/modules/6.1.0-28-amd64", "mydrbd on server2: cannot reach 10.213.42.12:22"]
    assert "Module drbd not found" in rendered(view)


def test_a_failed_steps_output_never_shows_the_shared_secret(mydrbd: DrbdResource) -> None:
    from haops.targets.drbd.remote import without_secret

    resource = dataclasses.replace(mydrbd, secret="Top-Secret-123")
    # drbdadm's own words for a failed drbdsetup, which repeat its command line; the second an old secret
    output = ("mydrbd: Failure: (162) Invalid configuration request\n"
              "Command 'drbdsetup new-peer mydrbd 1 --_name=store2 --shared-secret=Top-Secret-123 --protocol=C' "
              "terminated with exit code 10\n"
              "Command 'drbdsetup net-options mydrbd 1 --shared-secret=an-older-one' terminated with exit code 10\n")
    shown = without_secret(output, resource)
    assert "Top-Secret-123" not in shown and "an-older-one" not in shown
    assert "--shared-secret=***" in shown and "terminated with exit code 10" in shown
