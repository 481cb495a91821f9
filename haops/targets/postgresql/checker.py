"""PostgreSQL's own parsers as the checker, on a scratch cluster made for the check.

`postgres -C data_directory -c config_file=CANDIDATE` loads the candidate postgresql.conf the way
the server does at start and exits: an unknown parameter, a value of the wrong type or out of
range, or a bad synchronous_standby_names is FATAL ("configuration file ... contains errors").
pg_hba.conf has no such flag in 15; the pg_hba_file_rules view parses the server's hba_file and
gives every line's error, so a single-user backend of a throwaway initdb (0.6 s) with
hba_file=CANDIDATE reads it. What this does not prove: that the addresses exist on the host, that
the port is free, that the resources (shared_buffers) fit, or that a standby can reach its primary;
apply's proof checks those on the live server.

Arguments: $1 the server's bin directory, $2 the candidate postgresql.conf, $3 its pg_hba.conf.
The server refuses to run as root, so as root it runs as postgres."""

CHECK_SCRIPT = r"""
bin=$1; conf=$2; hba=$3
as=""; [ "$(id -u)" = 0 ] && as="runuser -u postgres --"
work=$(mktemp -d /tmp/haops-pgcheck.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
cp "$conf" "$work/postgresql.conf" && cp "$hba" "$work/pg_hba.conf" || exit 1
[ -z "$as" ] || chown -R postgres "$work"
$as "$bin/initdb" -D "$work/data" --no-sync -A trust -U postgres >"$work/initdb.out" 2>&1 || { cat "$work/initdb.out"; exit 1; }
$as "$bin/postgres" -D "$work/data" -c config_file="$work/postgresql.conf" -C data_directory >/dev/null || exit 1
out=$(echo "SELECT 'line ' || line_number || ': ' || error AS hba_error FROM pg_hba_file_rules WHERE error IS NOT NULL" |
      $as "$bin/postgres" --single -D "$work/data" -c hba_file="$work/pg_hba.conf" -c log_min_messages=fatal postgres 2>&1) ||
      { echo "$out"; exit 1; }
echo "$out" | grep -q 'backend>' || { echo "$out"; exit 1; }
errors=$(echo "$out" | sed -n 's/^[[:space:]]*1: hba_error = "\(.*\)"[[:space:]].*$/pg_hba.conf \1/p')
[ -z "$errors" ] || { echo "$errors"; exit 1; }
"""
