"""PostgreSQL streaming replication in the lab, end to end: seeded standbys, an idempotent second
apply, reload against restart, status, the write ledger, a real crash of the primary with a
promotion (synchronous: no acknowledged write lost), and fencing."""

from __future__ import annotations

import json

import psycopg
import pytest
from typer.testing import CliRunner

from haops.cli.app import app
from haops.targets.postgresql import layout
from tests.apply.conftest import Cluster
from tests.db.conftest import apply_all

pytestmark = pytest.mark.lab
STANDBYS = ("db2", "db3")


def db(cluster: Cluster, *args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, ["db", *args, "-i", str(cluster.path), "--json"])
    assert result.exit_code in (0, 1), result.output
    data: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    data["exit_code"] = result.exit_code
    return data


def sql(cluster: Cluster, host: str, query: str) -> str:
    return cluster.sh(host, layout.psql(query)).strip()


def identity(cluster: Cluster, host: str) -> tuple[str, str, str, str]:
    """The postmaster, when it started, the data directory's inode and the cluster's system identifier."""
    return (cluster.sh(host, layout.postmaster_pid()).strip(), sql(cluster, host, "SELECT pg_postmaster_start_time()"),
            cluster.sh(host, f"stat -c %i {layout.DATA}").strip(),
            sql(cluster, host, "SELECT system_identifier FROM pg_control_system()"))


def test_standbys_seeded_and_a_second_apply_neither_reseeds_nor_restarts(replicated: Cluster) -> None:
    primary_id = sql(replicated, "db1", "SELECT system_identifier FROM pg_control_system()")
    before = {host: identity(replicated, host) for host in ("db1", *STANDBYS)}
    for host in STANDBYS:
        assert sql(replicated, host, "SELECT pg_is_in_recovery()") == "t"
        assert before[host][3] == primary_id  # a copy of the primary (pg_basebackup), not its own initdb
        replicated.sh(host, f"touch {layout.DATA}/sentinel")  # a re-seed would delete it
    assert sql(replicated, "db1", "SELECT string_agg(application_name || ':' || sync_state, ',' ORDER BY application_name) "
                                  "FROM pg_stat_replication") == "db2:quorum,db3:quorum"
    again = apply_all(replicated)
    assert [(o.report.host, o.report.changed, o.report.reloads, o.report.ok) for o in again] == [
        (host, [], [], True) for host in ("db1", *STANDBYS)]
    assert {host: identity(replicated, host) for host in before} == before
    for host in STANDBYS:
        replicated.sh(host, f"test -e {layout.DATA}/sentinel")


def test_a_reloadable_change_reloads_and_listen_addresses_restarts(replicated: Cluster) -> None:
    pid = {host: replicated.sh(host, layout.postmaster_pid()).strip() for host in ("db1", "db2")}
    replicated.rewrite("synchronous: true", "synchronous: false")
    assert all(o.report.ok for o in apply_all(replicated))
    assert sql(replicated, "db1", "SHOW synchronous_standby_names") == ""
    assert replicated.sh("db1", layout.postmaster_pid()).strip() == pid["db1"]  # reloaded, not restarted
    replicated.rewrite("  replication_role:", "  listen: all\n  replication_role:")
    assert all(o.report.ok for o in apply_all(replicated))
    assert sql(replicated, "db1", "SHOW listen_addresses") == "*"
    assert replicated.sh("db1", layout.postmaster_pid()).strip() != pid["db1"]  # pending_restart -> restarted
    assert sql(replicated, "db1", "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


def test_status_shows_roles_and_lag_and_the_ledger_reads_back_on_each_standby(replicated: Cluster) -> None:
    status = db(replicated, "status")
    assert status["exit_code"] == 0 and status["problems"] == []
    roles = {h["host"]: (h["role"], h["upstream"]) for h in status["hosts"]}
    assert roles == {"db1": ("primary", None), "db2": ("standby", "10.213.44.11"), "db3": ("standby", "10.213.44.11")}
    assert all(isinstance(h["lag_bytes"], int) for h in status["hosts"] if h["role"] == "standby")
    check = db(replicated, "check", "--rows", "300", "--rate", "150")
    assert check["ok"] and check["acknowledged"] == 300
    for standby in check["standbys"]:
        assert standby["present"] == 300 and standby["missing"] == []
        assert standby["lag_p99_ms"] is not None and standby["lag_p50_ms"] <= standby["lag_p99_ms"]


def test_crash_of_the_primary_under_writes_then_promotion_loses_no_acknowledged_write(replicated: Cluster) -> None:
    report = db(replicated, "drill", "--rows", "1150", "--rate", "250", "--crash-after", "500")
    assert report["synchronous"] and report["old_primary"] == "db1"
    assert report["acknowledged"] >= 1000
    assert report["rpo_rows"] == 0 and report["lost"] == []
    assert report["rto_s"] is not None and report["exit_code"] == 0
    new = report["new_primary"]
    assert report["promotion"]["fenced"] == ["db1"]
    assert sql(replicated, new, "SELECT pg_is_in_recovery()") == "f"
    other = next(h for h in STANDBYS if h != new)
    assert sql(replicated, other, "SELECT status || ' ' || sender_host FROM pg_stat_wal_receiver") == \
        f"streaming {replicated.inventory.hosts[new].address}"
    # The fenced old primary: apply will not start it; started by hand it comes up read-only.
    refused = {o.report.host: " ".join(o.report.messages) for o in apply_all(replicated) if not o.report.ok}
    assert "db1" in refused and "fenced" in refused["db1"]
    replicated.sh("db1", f"{layout.CTL} start")
    assert sql(replicated, "db1", "SELECT pg_is_in_recovery()") == "t"
    write = replicated.lab.exec("db1", ["sh", "-c", layout.psql(f"INSERT INTO {layout.LEDGER_TABLE} (run, n) VALUES ('x', 1)")])
    assert write.returncode != 0 and "read-only transaction" in write.stderr


def test_promote_fences_a_running_primary_first(replicated: Cluster) -> None:
    done = db(replicated, "promote", "db3")
    assert done["exit_code"] == 0 and done["fenced"] == ["db1"] and done["repointed"] == ["db2"]
    assert done["rto_s"] is not None
    assert replicated.lab.exec("db1", ["sh", "-c", layout.running()]).returncode != 0
    replicated.sh("db1", f"test -e {layout.FENCED} && test -e {layout.DATA}/standby.signal")
    inv = replicated.inventory
    pg = inv.postgresql
    assert pg is not None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=str(inv.hosts["db1"].address), port=pg.port, user=pg.replication_role,
                        password=pg.replication_password, dbname="postgres", connect_timeout=2)
    status = db(replicated, "status")
    assert {h["host"]: h["role"] for h in status["hosts"]} == {"db1": "fenced", "db2": "standby", "db3": "primary"}
    assert status["problems"] == []


def test_roles_swapped_in_the_inventory_never_wipe_the_primary(replicated: Cluster) -> None:
    rows_before = sql(replicated, "db1", f"SELECT count(*) FROM {layout.LEDGER_TABLE}")
    replicated.rewrite("primary: db1\n  standbys: {group: standby}", "primary: db2\n  standbys: [db1, db3]")
    for state in ("running", "stopped"):  # stopped: after a reboot, nothing to ask, only its files
        if state == "stopped":
            replicated.sh("db1", f"{layout.CTL} stop -m fast")
        refused = {o.report.host: " ".join(o.report.messages) for o in apply_all(replicated) if not o.report.ok}
        assert "holds tables of its own" in refused.get("db1", ""), (state, refused)
    replicated.sh("db1", f"{layout.running()} || {layout.CTL} start")  # a rollback may have started it again
    assert sql(replicated, "db1", "SELECT pg_is_in_recovery()") == "f"
    assert sql(replicated, "db1", f"SELECT count(*) FROM {layout.LEDGER_TABLE}") == rows_before
