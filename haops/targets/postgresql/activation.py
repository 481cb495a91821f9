"""Shell that apply runs to make a host's cluster live, and the proof that it is.

Once seeded, a standby is never seeded again (standby.signal says it is one); a running cluster
is reloaded, and restarted only for parameters pg_settings marks pending_restart."""

from __future__ import annotations

from haops.targets.postgresql import layout
from haops.targets.postgresql.layout import CTL, DATA, ENV, FENCED, PGPASS, SETUP_SQL, psql

# initdb's catalogs have file numbers below PostgreSQL's FirstNormalObjectId; a file at or above it
# in any database (a table, the ledger, a rewritten catalog) is data a seed would wipe. Read from
# the files, so it holds for a stopped cluster too.
FIRST_USER_FILENODE = 16384
SEED_WAIT_S = 60  # a standby applied in parallel with its primary waits for it to serve
READY_WAIT_S = 30

_SCRIPT = r"""
set -e
cd /
. {env}
chown postgres:postgres {pgpass} && chmod 600 {pgpass}
if [ -e {fenced} ]; then
  echo "refused: {data} was fenced by haops db promote ($(cat {fenced})); it must rejoin as a standby first"; exit 1
fi
running() {{ {running}; }}
sql() {{ runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -h {sockets} -p "$HAOPS_PORT" -d postgres -c "$1"; }}
if [ "$HAOPS_ROLE" = standby ] && [ ! -e {data}/standby.signal ]; then
  if ls {data}/base/*/ 2>/dev/null | awk '/^[0-9]+$/ && $1 >= {first_user} {{ found = 1 }} END {{ exit !found }}'; then
    echo "refused: {data} holds tables of its own (is it the primary? check the inventory's postgresql.primary); haops seeds only a fresh cluster as a standby"; exit 1
  fi
  if [ "$(ls {data}/base 2>/dev/null | wc -l)" -gt 3 ]; then
    echo "refused: {data} holds databases of its own; haops seeds only a fresh cluster as a standby"; exit 1
  fi
  timeline=$(LC_ALL=C runuser -u postgres -- {bin}/pg_controldata {data} 2>/dev/null | sed -n "s/^Latest checkpoint's TimeLineID: *//p")
  if [ "${{timeline:-1}}" -gt 1 ]; then
    echo "refused: {data} was a promoted primary (timeline $timeline); haops seeds only a fresh cluster as a standby"; exit 1
  fi
  if running; then {ctl} stop -m fast; fi
  echo "seeding from $HAOPS_PRIMARY with pg_basebackup"
  deadline=$(($(date +%s) + {seed_wait}))
  until find {data} -mindepth 1 -delete && runuser -u postgres -- {bin}/pg_basebackup -D {data} -R -X stream -c fast -w \
      -d "host=$HAOPS_PRIMARY port=$HAOPS_PORT user=$HAOPS_USER passfile={pgpass} application_name=$HAOPS_NAME" 2>/tmp/haops-basebackup.err; do
    [ $(date +%s) -lt $deadline ] || {{ cat /tmp/haops-basebackup.err; exit 1; }}
    sleep 1
  done
fi
if running; then
  before=$(sql "SELECT pg_conf_load_time()")
  {ctl} reload
  for i in $(seq 50); do [ "$(sql 'SELECT pg_conf_load_time()')" != "$before" ] && break; sleep 0.1; done
  pending=$(sql "SELECT string_agg(name, ',' ORDER BY name) FROM pg_settings WHERE pending_restart")
  if [ -n "$pending" ]; then echo "restarting for $pending"; {ctl} restart -m fast; fi
else
  {ctl} start
fi
for i in $(seq {ready_tenths}); do runuser -u postgres -- {bin}/pg_isready -q -h {sockets} -p "$HAOPS_PORT" && break; sleep 0.1; done
if [ "$HAOPS_ROLE" = primary ]; then runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h {sockets} -p "$HAOPS_PORT" -d postgres < {setup}; fi
"""


def activation_script() -> str:
    return _SCRIPT.format(env=ENV, pgpass=PGPASS, fenced=FENCED, data=DATA, running=layout.running(),
                          sockets=layout.SOCKETS, ctl=CTL, bin=layout.BIN, seed_wait=SEED_WAIT_S,
                          ready_tenths=READY_WAIT_S * 10, setup=SETUP_SQL, first_user=FIRST_USER_FILENODE)


def proof_script(primary: bool, port: int) -> str:
    """Running in the role the inventory gives, nothing pending a restart, every configuration
    line loaded, the postmaster itself on the port; a standby also streams from its primary."""
    def sql(query: str) -> str:
        return psql(query, port)

    recovery = "f" if primary else "t"
    checks = [
        layout.running(),
        f'[ "$({sql("SELECT pg_is_in_recovery()")})" = {recovery} ]',
        f'[ "$({sql("SELECT count(*) FROM pg_settings WHERE pending_restart")})" = 0 ]',
        f'[ "$({sql("SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL")})" = 0 ]',
        f'[ "$({sql("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")})" = 0 ]',
        f"ss -ltnpH 'sport = :{port}' | grep -q \"pid=$({layout.postmaster_pid()}),\"",
    ]
    if not primary:
        checks.append(f'[ "$({sql("SELECT status FROM pg_stat_wal_receiver")})" = streaming ]')
    return " && ".join(f"( {check} )" for check in checks)
