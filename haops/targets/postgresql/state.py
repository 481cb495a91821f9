"""What verify checks on a PostgreSQL host: the role the inventory gives, and streaming."""

from __future__ import annotations

from collections.abc import Callable

from haops.targets.base import RemoteHost, Verdict
from haops.targets.postgresql.layout import psql
from haops.verify.result import verdict


def replication_check(primary: bool, port: int) -> Callable[[RemoteHost], Verdict]:
    def probe(remote: RemoteHost) -> Verdict:
        if primary:
            expected = "primary (not in recovery)"
            ran = remote.run(psql("SELECT pg_is_in_recovery()", port))
            return expected, ran.stdout.strip() or ran.stderr.strip()[:200], verdict(ran.rc == 0 and ran.stdout.strip() == "f")
        expected = "standby streaming from its primary"
        ran = remote.run(psql("SELECT pg_is_in_recovery() || ' ' || coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')", port))
        return expected, ran.stdout.strip() or ran.stderr.strip()[:200], verdict(ran.rc == 0 and ran.stdout.strip() == "true streaming")
    return probe
