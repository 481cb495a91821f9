"""Unit tests: the postgresql inventory section, SCRAM verifiers, status parsing, promotion choice."""

from __future__ import annotations

import base64
import hashlib
import hmac
import textwrap

import pytest

from haops import inventory
from haops.errors import InventoryError, UserError
from haops.targets.postgresql.promote import choose_candidate, sql_literal
from haops.targets.postgresql.ledger import percentile
from haops.targets.postgresql.scram import verifier
from haops.targets.postgresql.status import HostState, ClusterState, lsn, parse_host, problems_of
from haops.transport import Ran

pytestmark = pytest.mark.unit
BASE = """\
lab: {name: hapg, network: 10.213.44.0/24}
hosts:
  db1: 10.213.44.11
  db2: 10.213.44.12
"""


def parse(section: str) -> inventory.Inventory:
    return inventory.parse(BASE + textwrap.dedent(section), "inv.yml")


def problems(section: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        parse(section)
    return [str(p) for p in caught.value.problems]


def test_a_cluster_with_defaults() -> None:
    pg = parse("postgresql: {primary: db1, standbys: [db2], replication_password: s3cret}\n").postgresql
    assert pg is not None and pg.hosts == ("db1", "db2") and pg.port == 5432 and not pg.synchronous
    assert pg.replication_role == "replicator"


def test_problems_carry_file_and_line() -> None:
    found = problems("""\
        postgresql:
          primary: db9
          standbys: [db2]
          replication_password: "it's"
          replication_role: Bad-Role
          listen: everywhere
        """)
    assert any(p.startswith("inv.yml:6:") and "unknown host 'db9'" in p for p in found), found
    assert any(p.startswith("inv.yml:8:") and "replication_password" in p for p in found), found
    assert any(p.startswith("inv.yml:9:") and "role name" in p for p in found), found
    assert any(p.startswith("inv.yml:10:") and "address, all" in p for p in found), found


def test_the_primary_cannot_be_a_standby_and_clients_stay_in_the_lab() -> None:
    assert any("either the primary or a standby" in p for p in problems(
        "postgresql: {primary: db1, standbys: [db1, db2], replication_password: x}\n"))
    assert any("outside the lab network" in p for p in problems(
        "postgresql: {primary: db1, standbys: [db2], replication_password: x, clients: [192.0.2.0/24]}\n"))


def test_the_password_is_masked_in_inventory_show() -> None:
    from haops.inventory.resolved import resolved

    data = resolved(parse("postgresql: {primary: db1, standbys: [db2], replication_password: s3cret-pw}\n"))
    assert data["postgresql"]["replication_password"] == "********"
    assert "s3cret-pw" not in str(data)


def test_scram_verifier_is_what_a_client_proof_checks_against() -> None:
    text = verifier("pencil", "replicator")
    assert text == verifier("pencil", "replicator") != verifier("pencil", "other")
    method, rest = text.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored, server = (base64.b64decode(k) for k in keys.split(":"))
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert method == "SCRAM-SHA-256" and iterations == "4096"
    assert hashlib.sha256(client_key).digest() == stored
    assert hmac.new(salted, b"Server Key", hashlib.sha256).digest() == server


def test_lsn_and_host_parsing() -> None:
    assert lsn("0/50381C8") == 0x50381C8 and lsn("16/B374D848") == (0x16 << 32) + 0xB374D848 and lsn("") is None
    primary = parse_host("db1", Ran(0, "H|f|0/5000100|||\nR|db2|10.213.44.12|streaming|sync|256|0.0021\n", ""))
    assert primary.role == "primary" and primary.wal == 0x5000100
    assert primary.peers[0].lag_bytes == 256 and primary.peers[0].lag_seconds == pytest.approx(0.0021)
    standby = parse_host("db2", Ran(0, "H|t|0/5000100|0/5000000|10.213.44.11|streaming\n", ""))
    assert standby.role == "standby" and standby.replayed == 0x5000000 and standby.receiver == "streaming"
    assert parse_host("db3", Ran(0, "FENCED\nDOWN\n", "")).role == "fenced"
    assert parse_host("db3", Ran(0, "DOWN\n", "")).role == "down"
    state = ClusterState((primary, standby), problems_of((primary, standby)))
    assert state.lag_bytes(standby) == 0x100 and state.problems == []


def test_two_primaries_are_a_split_brain() -> None:
    found = problems_of((HostState("db1", "primary"), HostState("db2", "primary")))
    assert found == ["2 primaries accept writes: db1, db2 (split brain)"]


def test_promotion_refuses_a_standby_behind_another() -> None:
    state = ClusterState((HostState("db1", "down"), HostState("db2", "standby", wal=100),
                          HostState("db3", "standby", wal=200)))
    with pytest.raises(UserError, match="db3 has received more WAL than db2"):
        choose_candidate(state, "db2", force=False)
    choose_candidate(state, "db2", force=True)
    choose_candidate(state, "db3", force=False)
    with pytest.raises(UserError, match="db1 is down, not a standby"):
        choose_candidate(state, "db1", force=False)


def test_percentiles_and_literals() -> None:
    assert percentile([], 0.99) is None
    assert percentile(list(map(float, range(1, 101))), 0.99) == 99.0
    assert percentile([5.0], 0.5) == 5.0
    assert sql_literal("a'b") == "'a''b'"


def test_db_commands_give_a_one_screen_error_for_a_user_mistake(capsys: pytest.CaptureFixture[str]) -> None:
    from haops.cli import main

    def code(*args: str) -> tuple[int, str]:
        try:
            main(list(args))
            return 0, ""
        except SystemExit as exit_:
            return int(exit_.code or 0), capsys.readouterr().err

    status, err = code("db", "status", "-i", "inventories/example.yml")
    assert status == 2 and "has no postgresql section" in err and "Traceback" not in err
    status, err = code("db", "promote", "web9", "-i", "inventories/postgresql.yml")
    assert status == 2 and "not a host of the postgresql cluster" in err


def test_pg_hba_admits_each_peer_as_one_address_in_either_family() -> None:
    from haops.targets import postgresql as target
    from haops.targets.base import RenderContext

    inv = inventory.parse("hosts:\n  db1: 10.213.44.11\n  db2: fd00:213:0:44::12\n"
                          "postgresql: {primary: db1, standbys: [db2], replication_password: s3cret}\n", "inv.yml")
    [hba] = [f for f in target.TARGET.render(inv, "db1", RenderContext()) if f.path.endswith("pg_hba.conf")]
    peers = [line.split()[3] for line in hba.text.splitlines() if line.startswith("host") and " replication " in line]
    assert peers == ["10.213.44.11/32", "fd00:213:0:44::12/128"]


def test_verify_asks_postgresql_on_the_inventorys_port() -> None:
    from types import SimpleNamespace

    from haops.targets import postgresql as target

    inv = parse("postgresql: {primary: db1, standbys: [db2], replication_password: s3cret, port: 5433}\n")
    asked: list[str] = []

    class Host:
        def run(self, command: str) -> SimpleNamespace:
            asked.append(command)
            return SimpleNamespace(rc=0, stdout="true streaming\n", stderr="")

    [check] = target.TARGET.state_checks(inv, "db2")
    assert check.probe(Host())[2] == "pass"
    assert " -p 5433 " in asked[0], asked


def test_a_check_that_could_not_read_back_on_a_standby_is_not_ok() -> None:
    from haops.targets.postgresql.check import CheckReport

    assert CheckReport("db1", "run", 10, 5.0, 10, 0, (), 2.0).ok
    assert not CheckReport("db1", "run", 10, 5.0, 10, 0, (), 2.0, not_checked=("db3",)).ok
