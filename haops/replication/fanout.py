"""One sync pass: the source's manifest, then every destination in parallel (its manifest
before, rsync from the source host, its manifest after), and what each one proved.

rsync runs on the source host and logs in to each destination with keys from haops'
forwarded agent (haops/replication/agent.py) and the host key haops itself just verified
for that destination: the source never holds a private key, and never trusts a host key
haops did not check.
"""

from __future__ import annotations

import getpass
import secrets
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from haops.replication import manifest as manifests
from haops.replication import rsync
from haops.replication.agent import RunAgent, SigningKey
from haops.replication.manifest import Difference, Manifest
from haops.replication.request import SyncRequest
from haops.transport import Connections, HostFailure, SshSettings, run, stream

if TYPE_CHECKING:
    from fabric import Connection

    from haops.inventory.model import Inventory

# host, phase ("manifest", "sync", "verify", "done", "failed"), percent of the transfer or None
OnEvent = Callable[[str, str, int | None], None]
MANIFEST_TIMEOUT_S = 120.0
DEFAULT_RUN_TIMEOUT_S = 3600.0


@dataclass
class DestinationResult:
    host: str
    ok: bool = False
    error: str | None = None
    before: list[Difference] | None = None
    after: list[Difference] | None = None
    changes: list[rsync.Change] = field(default_factory=list)
    stats: rsync.RsyncStats | None = None
    seconds: float = 0.0
    delete: bool = False

    @property
    def left(self) -> list[Difference] | None:
        return None if self.after is None else manifests.blocking(self.after, self.delete)

    @property
    def converged(self) -> bool:
        return self.ok and self.left == []

    @property
    def fixed(self) -> list[Difference]:
        still = {(d.path, d.what) for d in self.after or []}
        return [d for d in manifests.blocking(self.before or [], self.delete) if (d.path, d.what) not in still]

    @property
    def deletions(self) -> list[str]:
        return [c.path for c in self.changes if c.deleting]


@dataclass
class PassReport:
    source: str
    source_path: str
    dest_path: str
    started: str
    source_files: int = 0
    source_size: int = 0
    results: list[DestinationResult] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok and (self.dry_run or r.converged) for r in self.results)


@dataclass
class SyncContext:
    """Everything one pass needs, shared by its per-destination threads."""

    inventory: Inventory
    request: SyncRequest
    connections: Connections
    settings: SshSettings
    keys: list[SigningKey]
    on_event: OnEvent = lambda host, phase, percent: None
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S


def read_manifest(connection: Connection, path: str, excludes: tuple[str, ...]) -> Manifest:
    ran = run(connection, manifests.manifest_command(path, excludes), timeout_s=MANIFEST_TIMEOUT_S)
    if ran.code != 0:
        raise HostFailure(f"manifest of {path} failed ({ran.code}): {ran.stderr.strip()[-300:]}")
    return manifests.parse_manifest(ran.stdout)


def login_for(ctx: SyncContext, dest: str) -> rsync.Login:
    """The source reaches a destination at its inventory address (port 22) when haops itself
    goes through a management address (ssh_host), else where haops goes."""
    host = ctx.inventory.hosts[dest]
    user = host.ssh_user or ctx.settings.forced_user or getpass.getuser()
    sudo = host.through_sudo
    if host.ssh_host:
        return rsync.Login(f"haops-{dest}", str(host.address), 22, user, sudo)
    return rsync.Login(f"haops-{dest}", host.connect_to, host.ssh_port or 22, user, sudo)


def rsync_script(workdir: str, known_hosts_line: str, argv: list[str]) -> str:
    """On the source: a private directory for the run's known_hosts (public keys only),
    removed when the script ends, and rsync."""
    cleanup = shlex.quote(f"rm -rf -- {shlex.quote(workdir)}")
    return "\n".join([
        "command -v rsync >/dev/null || { echo 'rsync is not installed on the source' >&2; exit 127; }",
        "umask 077",
        f"mkdir -m 700 -- {shlex.quote(workdir)} || exit 97",
        f"trap {cleanup} EXIT HUP INT TERM",
        f"printf '%s\\n' {shlex.quote(known_hosts_line)} > {shlex.quote(workdir + '/known_hosts')}",
        shlex.join(argv),
    ])


def run_rsync(ctx: SyncContext, agent: RunAgent, dest: str, host_key: Any,
              options: rsync.RsyncOptions) -> tuple[rsync.RsyncOutput, int, str]:
    login = login_for(ctx, dest)
    workdir = f"/tmp/haops-sync-{secrets.token_hex(8)}"
    argv = rsync.rsync_argv(ctx.request.source_path, login, ctx.request.dest_path, f"{workdir}/known_hosts", options)
    script = rsync_script(workdir, f"{login.alias} {host_key.get_name()} {host_key.get_base64()}", argv)
    output = rsync.RsyncOutput()

    def feed(piece: str) -> None:
        percent = output.feed(piece)
        if percent is not None:
            ctx.on_event(dest, "sync", percent)

    source = ctx.connections.get(ctx.request.source)
    ran = stream(source, script, feed, ctx.run_timeout_s, prepare=agent.attach)
    return output, ran.code, ran.stderr


def sync_destination(ctx: SyncContext, agent: RunAgent, source: Manifest, dest: str,
                     options: rsync.RsyncOptions) -> DestinationResult:
    result = DestinationResult(dest, delete=options.delete)
    started = time.monotonic()
    try:
        ctx.on_event(dest, "manifest", None)
        connection = ctx.connections.get(dest)
        result.before = manifests.compare(source, read_manifest(connection, ctx.request.dest_path,
                                                                options.excludes), options.numeric_ids)
        ctx.on_event(dest, "sync", None)
        output, code, stderr = run_rsync(ctx, agent, dest, connection.transport.get_remote_server_key(), options)
        result.changes, result.stats = output.changes, output.stats()
        if code != 0:
            result.error = rsync.failure_text(code, stderr)
        elif not options.dry_run:
            ctx.on_event(dest, "verify", 100)
            after = read_manifest(connection, ctx.request.dest_path, options.excludes)
            result.after = manifests.compare(source, after, options.numeric_ids)
        result.ok = result.error is None
    except HostFailure as exc:
        result.error = str(exc)
    result.seconds = time.monotonic() - started
    ctx.on_event(dest, "done" if result.ok and (options.dry_run or result.converged) else "failed", None)
    return result


def sync_pass(ctx: SyncContext, options: rsync.RsyncOptions | None = None,
              deletable: dict[str, tuple[str, ...]] | None = None) -> PassReport:
    """Every destination in parallel; a destination that fails does not hold up the others."""
    options = options or ctx.request.options
    request = ctx.request
    report = PassReport(request.source, request.source_path, request.dest_path,
                        datetime.now(timezone.utc).isoformat(timespec="seconds"), dry_run=options.dry_run)
    started = time.monotonic()
    source = read_manifest(ctx.connections.get(request.source), request.source_path, options.excludes)
    if source.entries is None:
        raise HostFailure(f"{request.source}:{request.source_path} is not a directory")
    report.source_files, report.source_size = source.files, source.total_size
    agent = RunAgent(ctx.keys, max_signatures=2 * len(request.destinations))
    try:
        with ThreadPoolExecutor(max_workers=len(request.destinations)) as pool:
            futures = [pool.submit(sync_destination, ctx, agent, source, dest,
                                   options_for(options, dest, deletable)) for dest in request.destinations]
        report.results = [f.result() for f in futures]
    finally:
        agent.close()
    report.seconds = time.monotonic() - started
    return report


def options_for(options: rsync.RsyncOptions, dest: str, deletable: dict[str, tuple[str, ...]] | None) -> rsync.RsyncOptions:
    """With a confirmed preview: the destination may lose only what it listed (nothing when its
    preview failed)."""
    if deletable is None or not options.delete:
        return options
    paths = deletable.get(dest, ())
    return replace(options, deletable=paths, max_delete=len(paths))


def preview_deletions(ctx: SyncContext) -> PassReport:
    """What --delete would remove on each destination: a dry run, changing nothing."""
    return sync_pass(ctx, replace(ctx.request.options, dry_run=True, delete=True, max_delete=None, deletable=None))


def as_json(report: PassReport) -> dict[str, Any]:
    return {
        "source": f"{report.source}:{report.source_path}", "destination_path": report.dest_path,
        "started": report.started, "seconds": round(report.seconds, 3), "dry_run": report.dry_run,
        "source_files": report.source_files, "source_size": report.source_size, "ok": report.ok,
        "destinations": [destination_json(r) for r in report.results],
    }


def destination_json(result: DestinationResult) -> dict[str, Any]:
    def listed(differences: list[Difference] | None) -> list[dict[str, str]] | None:
        return None if differences is None else [{"path": d.path, "what": d.what, "detail": d.detail}
                                                 for d in differences]

    stats = result.stats
    return {
        "host": result.host, "ok": result.ok, "converged": result.converged, "error": result.error,
        "seconds": round(result.seconds, 3),
        "bytes_sent": stats.bytes_sent if stats else None, "bytes_received": stats.bytes_received if stats else None,
        "total_size": stats.total_size if stats else None, "literal_data": stats.literal if stats else None,
        "matched_data": stats.matched if stats else None, "files_transferred": stats.transferred if stats else None,
        "differed_before": listed(manifests.blocking(result.before, result.delete) if result.before is not None else None),
        "fixed": listed(result.fixed), "left": listed(result.left),
        "kept_extra": [d.path for d in result.after or [] if d.what == "extra" and not result.delete],
        "deleted": result.deletions,
        "changes": [{"code": c.code, "path": c.path, "what": c.what} for c in result.changes],
    }
