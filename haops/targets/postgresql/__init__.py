"""PostgreSQL streaming replication (Debian's postgresql 15, cluster 15/main).

Every host of the cluster gets a self-contained postgresql.conf, a pg_hba.conf, its place in the
cluster (haops.env) and the replication password in a passfile; the primary also gets the SQL that
creates the replication role (from a SCRAM verifier) and the ledger table `haops db check` writes.

Activation: the primary is started (or reloaded, and restarted only when pg_settings says a
changed parameter is pending_restart) and the setup SQL run; a standby that is not one yet is
seeded once with pg_basebackup -R and started. A seeded, running host whose files did not change
is left alone, so a second apply neither re-seeds nor restarts. A host `haops db promote` fenced
is never started again by apply.

Checked with PostgreSQL's own parsers, on a scratch cluster: `postgres -C` reads the candidate
postgresql.conf (every name, value and range; a bad one is FATAL), and the pg_hba_file_rules view of
a single-user backend whose hba_file is the candidate reports every line it cannot load.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

from haops.inventory.model import Inventory, PostgresCluster
from haops.render import render_template
from haops.targets.base import Check, ProblemAt, RenderContext, RenderedFile, StateCheck, Target, under
from haops.targets.postgresql import layout
from haops.targets.postgresql.activation import activation_script, proof_script
from haops.targets.postgresql.checker import CHECK_SCRIPT
from haops.targets.postgresql.scram import verifier
from haops.targets.postgresql.state import replication_check

PRIMARY, STANDBY = "primary", "standby"


def cluster_of(inventory: Inventory) -> PostgresCluster:
    if inventory.postgresql is None:
        from haops.errors import UserError

        raise UserError(f"{inventory.source} has no postgresql section")
    return inventory.postgresql


def synchronous_names(pg: PostgresCluster) -> str:
    """ANY 1 of every host: the primary's own name never matches, so after a promotion the same
    text makes the remaining standbys synchronous on the new primary."""
    if not pg.synchronous:
        return ""
    return "ANY 1 (" + ", ".join(f'"{name}"' for name in pg.hosts) + ")"


def listen_addresses(inventory: Inventory, pg: PostgresCluster, host: str) -> str:
    return "*" if pg.listen == "all" else f"localhost,{inventory.hosts[host].address}"


def pgpass_text(pg: PostgresCluster) -> str:
    escaped = pg.replication_password.replace("\\", "\\\\").replace(":", "\\:")
    return render_template("postgresql/pgpass.j2", pg=pg, password=escaped)


class PostgresTarget(Target):
    name = "postgresql"
    secret_lines = (r"PASSWORD '([^']*)'", r"^[^:]*:[^:]*:[^:]*:[^:]*:(.*)$")

    def review(self, inventory: Inventory) -> list[ProblemAt]:
        pg = inventory.postgresql
        if pg is None or inventory.lab is None:
            return []
        outside = [n for n in pg.clients if not n.subnet_of(inventory.lab.network)]
        return [(("postgresql", "clients"), f"{n} is outside the lab network {inventory.lab.network}") for n in outside]

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        if inventory.postgresql is None:
            return ()
        return tuple(name for name in inventory.hosts if name in inventory.postgresql.hosts)

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        pg = cluster_of(inventory)
        role = PRIMARY if host == pg.primary else STANDBY
        common = dict(pg=pg, host=host, role=role, version=layout.VERSION, cluster=layout.CLUSTER)
        conf = render_template("postgresql/postgresql.conf.j2", **common, data=layout.DATA, hba=layout.HBA,
                               etc=layout.ETC, sockets=layout.SOCKETS, listen=listen_addresses(inventory, pg, host),
                               synchronous_names=synchronous_names(pg))
        peers = [ip_network(inventory.hosts[name].address) for name in pg.hosts]  # /32, or /128 for IPv6
        hba = render_template("postgresql/pg_hba.conf.j2", **common, peers=peers)
        env = render_template("postgresql/haops.env.j2", **common, primary_address=inventory.hosts[pg.primary].address)
        files = [RenderedFile(layout.CONF, conf), RenderedFile(layout.HBA, hba), RenderedFile(layout.ENV, env),
                 RenderedFile(layout.PGPASS, pgpass_text(pg), 0o600, (pg.replication_password,))]
        if role == PRIMARY:
            secret = verifier(pg.replication_password, pg.replication_role)
            sql = render_template("postgresql/haops-setup.sql.j2", **common, verifier=secret, ledger=layout.LEDGER_TABLE)
            files.append(RenderedFile(layout.SETUP_SQL, sql, 0o600, (secret, pg.replication_password)))
        return files

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        return [Check(layout.POSTGRES, ("sh", "-c", CHECK_SCRIPT, "pg-check", layout.BIN,
                                        under(root, layout.CONF), under(root, layout.HBA)),
                      f"postgres -C and pg_hba_file_rules ({host})")]

    # --- going live: no Daemon, the cluster's own control script ------------------------------

    def probe(self) -> str:
        return f"[ ! -e {layout.FENCED} ] && {layout.running()}"

    def generation(self) -> str:
        return "echo"

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        return activation_script()

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        pg = cluster_of(inventory)
        return proof_script(host == pg.primary, pg.port)

    def stop(self, init: str) -> str | None:
        return f"if {layout.running()}; then {layout.CTL} stop -m fast; fi"

    def listeners(self, inventory: Inventory, host: str) -> list[tuple[str, int]]:
        pg = cluster_of(inventory)
        return [(str(inventory.hosts[host].address), pg.port)]

    def state_checks(self, inventory: Inventory, host: str) -> list[StateCheck]:
        pg = cluster_of(inventory)
        return [StateCheck("PostgreSQL role", host, replication_check(host == pg.primary, pg.port))]


TARGET = PostgresTarget()
