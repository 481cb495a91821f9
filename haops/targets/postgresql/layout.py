"""Where Debian's postgresql keeps cluster 15/main, and the shell haops runs against it.

No systemd in the lab, and none needed: pg_ctlcluster starts, reloads and stops the cluster
as root on any init, and detaches the postmaster (its output goes to the cluster's log)."""

from __future__ import annotations

import shlex

VERSION = "15"
CLUSTER = "main"
BIN = f"/usr/lib/postgresql/{VERSION}/bin"
POSTGRES = f"{BIN}/postgres"
ETC = f"/etc/postgresql/{VERSION}/{CLUSTER}"
DATA = f"/var/lib/postgresql/{VERSION}/{CLUSTER}"
SOCKETS = "/var/run/postgresql"
CONF = f"{ETC}/postgresql.conf"
HBA = f"{ETC}/pg_hba.conf"
ENV = f"{ETC}/haops.env"  # this host's place in the cluster, read by the activation script
SETUP_SQL = f"{ETC}/haops-setup.sql"  # the replication role and the ledger table, run on the primary
PGPASS = "/var/lib/postgresql/.haops-replication.pgpass"
FENCED = f"{DATA}/haops.fenced"  # written by `haops db promote` on an old primary: never start it again as is
LEDGER_TABLE = "haops_ledger"
CTL = f"pg_ctlcluster {VERSION} {CLUSTER}"


def psql(sql: str, port: int = 5432, database: str = "postgres") -> str:
    """Shell: run `sql` as the postgres superuser over the local socket (peer), unaligned, tuples only."""
    return (f"runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -h {SOCKETS} -p {port} "
            f"-d {shlex.quote(database)} -c {shlex.quote(sql)}")


def running() -> str:
    """Shell test: the cluster's postmaster runs."""
    return f"{CTL} status >/dev/null 2>&1"


def postmaster_pid() -> str:
    """Shell: the postmaster's PID, or nothing."""
    return f"head -1 {DATA}/postmaster.pid 2>/dev/null"
