-- Rendered by haops: run on the primary by apply. The password arrives as a SCRAM verifier only.
-- Local commit: in synchronous mode no standby exists yet to confirm the role it needs to connect.
SET synchronous_commit = local;
SELECT 'CREATE ROLE replicator' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') \gexec
ALTER ROLE replicator WITH LOGIN REPLICATION PASSWORD 'SCRAM-SHA-256$4096:dYDBxa/bYGZMVWZMSdqomg==$aMAIqIIH2GzJDRapYR8Z+jVkctJUltkYLjSbWf99ebI=:cZuN3ih5f2uCA53FMZDX57K0hzWiBMALML7lEO1cATY=';
CREATE TABLE IF NOT EXISTS haops_ledger (run text NOT NULL, n integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run, n));
GRANT SELECT, INSERT, DELETE ON haops_ledger TO replicator;
