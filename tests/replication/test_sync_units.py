"""haops sync without a lab: rsync's argv, its output parsed from recorded real runs, manifests
compared from recorded real hosts and made here by the real script, the agent's protocol,
the request and the debounce."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from paramiko import Ed25519Key, Message
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from haops import inventory
from haops.errors import UserError
from haops.replication import agent, manifest, rsync
from haops.replication.request import resolve
from haops.replication.watch import burst_of_changes
from haops.transport import _pieces

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parent.parent / "data"
LOGIN = rsync.Login("haops-web2", "10.0.0.22", 22, "root")


def recorded(name: str) -> str:
    return (DATA / "rsync" / name).read_text()


# --- argv ---------------------------------------------------------------------------

def test_argv_pushes_contents_with_deltas_compression_owners_acls_xattrs() -> None:
    argv = rsync.rsync_argv("/srv/www", LOGIN, "/srv/www", "/tmp/k/known_hosts", rsync.RsyncOptions())
    assert argv[:2] == ["rsync", "-aAXz"]
    assert argv[-3:] == ["--", "/srv/www/", "root@10.0.0.22:/srv/www/"]
    assert "--delete" not in argv and "--numeric-ids" not in argv and "--dry-run" not in argv
    assert {"--itemize-changes", "--stats", "--info=progress2", "--no-human-readable", "--timeout=30"} <= set(argv)


def test_argv_delete_is_bounded_by_the_preview_and_excludes_pass_through() -> None:
    options = rsync.RsyncOptions(("*.log", "/cache/"), delete=True, max_delete=3, numeric_ids=True, dry_run=True)
    argv = rsync.rsync_argv("/a", LOGIN, "/b/", "/tmp/k/kh", options)
    assert {"--delete", "--max-delete=3", "--numeric-ids", "--dry-run", "--exclude=*.log", "--exclude=/cache/"} <= set(argv)
    assert argv[-1] == "root@10.0.0.22:/b/"


def test_ssh_of_the_source_is_strict_and_uses_only_the_forwarded_agent() -> None:
    words = rsync.ssh_command(LOGIN, "/tmp/k/kh", rsync.RsyncOptions()).split()
    options = {words[i + 1] for i, w in enumerate(words) if w == "-o"}
    assert words[:3] == ["ssh", "-F", "/dev/null"]
    assert {"StrictHostKeyChecking=yes", "UserKnownHostsFile=/tmp/k/kh", "GlobalKnownHostsFile=/dev/null",
            "HostKeyAlias=haops-web2", "IdentityFile=none", "BatchMode=yes", "ForwardAgent=no"} <= options


def test_a_word_rsync_would_split_is_refused() -> None:
    with pytest.raises(ValueError):
        rsync.ssh_command(rsync.Login("haops-x", "10.0.0.1", 22, "a user"), "/tmp/kh", rsync.RsyncOptions())


# --- parsers, on real runs ------------------------------------------------------------

def test_first_sync_output() -> None:
    output = rsync.parse(recorded("first-sync.txt"))
    assert [(c.path, c.what) for c in output.changes] == [("skip.log", "create"), ("sub/", "time"), ("sub/big2", "create")]
    assert output.stats() == rsync.RsyncStats(files=6, created=2, deleted=0, transferred=2, total_size=11000013,
                                              transferred_size=8000002, literal=8000002, matched=0,
                                              bytes_sent=8002252, bytes_received=66)
    assert output.percent == 72


def test_delta_output_counts_only_the_changed_block_as_literal() -> None:
    output = rsync.parse(recorded("delta-delete.txt"))
    stats = output.stats()
    assert stats is not None and (stats.literal, stats.matched, stats.bytes_sent) == (2824, 7997176, 3062)
    assert [(c.code, c.what) for c in output.changes] == [("<f..t.o....", "time,owner")]


def test_delete_preview_lists_what_would_go() -> None:
    output = rsync.parse(recorded("delete-dry-run.txt"))
    assert output.deletions == ["a.txt"]


def test_output_fed_as_it_arrives_reports_progress() -> None:
    output, seen = rsync.RsyncOutput(), []
    rest = _pieces(recorded("first-sync.txt")[:300], lambda piece: seen.append(output.feed(piece)))
    assert 0 in seen and not rest.endswith("\n")


def test_failure_names_the_meaning_and_rsyncs_words() -> None:
    text = rsync.failure_text(12, "rsync: connection unexpectedly closed (0 bytes received so far) [sender]\n"
                                  "rsync error: error in rsync protocol data stream (code 12) at io.c(232)\n")
    assert text.startswith("rsync exit 12 (error in rsync protocol data stream") and "unexpectedly closed" in text
    assert "rsync error:" not in text


# --- manifests --------------------------------------------------------------------------

def recorded_manifest(name: str) -> manifest.Manifest:
    return manifest.parse_manifest((DATA / "manifest" / f"{name}.json").read_text())


def test_recorded_manifests_differ_exactly_where_the_hosts_do() -> None:
    """Recorded on lab hosts: the source's sub/ is carol's (uid 3001 there, 3002 on the destination),
    with a default ACL for carol and an xattr; sub/big2 exists only on the source, a.txt only on
    the destination."""
    found = {(d.path, d.what): d.detail for d in manifest.compare(recorded_manifest("source"), recorded_manifest("destination"))}
    assert set(found) == {("a.txt", "extra"), ("sub", "owner"), ("sub", "group"), ("sub", "acl"), ("sub", "xattrs"),
                          ("sub/big2", "missing")}
    assert found[("sub", "owner")] == "root(0), source carol(3001)"
    assert found[("sub", "xattrs")] == "user.note"


def test_names_map_like_rsync_and_numeric_ids_do_not() -> None:
    source, dest = recorded_manifest("source"), recorded_manifest("destination")
    ids = manifest.IdMap(source, dest, numeric=False)
    assert (ids.uid(3001), ids.uid(2001), ids.uid(0)) == (3002, 2001, 0)  # carol by name; alice has no name there
    assert manifest.IdMap(source, dest, numeric=True).uid(3001) == 3001


def test_extra_files_block_convergence_only_with_delete() -> None:
    differences = [manifest.Difference("old", "extra"), manifest.Difference("a", "content")]
    assert manifest.blocking(differences, delete=False) == differences[1:]
    assert manifest.blocking(differences, delete=True) == differences


def run_script(root: Path, excludes: tuple[str, ...]) -> manifest.Manifest:
    done = subprocess.run([sys.executable, "-c", manifest.MANIFEST_SCRIPT, str(root), json.dumps(list(excludes))],
                          capture_output=True, text=True, check=True)
    return manifest.parse_manifest(done.stdout)


def test_the_script_applies_rsyncs_exclude_rules(tmp_path: Path) -> None:
    for rel in ("keep.txt", "x.log", "deep/x.log", "cache/a", "deep/cache/b", "top/f", "deep/top/f", "a/b/c/deep", "cachefile"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "link").symlink_to("keep.txt")
    found = run_script(tmp_path, ("*.log", "cache/", "/top", "a/**/deep"))
    assert sorted(found.entries or {}) == [".", "a", "a/b", "a/b/c", "cachefile", "deep", "deep/top", "deep/top/f",
                                           "keep.txt", "link"]
    entries = found.entries or {}
    assert entries["link"]["link"] == "keep.txt" and entries["keep.txt"]["size"] == 8
    assert found.total_size == len("keep.txt") + len("deep/top/f") + len("cachefile")


@pytest.mark.parametrize("pattern", ["**/deep", "/**/deep", "deep", "deep/", "a/**/deep", "*.log", "/top", "c*/",
                                     "**/cache/b", "x.[lL]og", "d?ep"])
def test_the_script_leaves_out_what_real_rsync_leaves_out(tmp_path: Path, pattern: str) -> None:
    source, copy = tmp_path / "src", tmp_path / "copy"
    for rel in ("deep/cache/b", "deep/x.log", "a/b/c/deep", "top/f", "cache/a", "keep.txt", "x.log"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(rel)
    subprocess.run(["rsync", "-a", f"--exclude={pattern}", f"{source}/", f"{copy}/"], check=True, timeout=60)
    copied = sorted(str(p.relative_to(copy)) for p in copy.rglob("*"))
    assert sorted(e for e in run_script(source, (pattern,)).entries or {} if e != ".") == copied


def test_the_script_says_when_the_directory_is_missing(tmp_path: Path) -> None:
    missing = run_script(tmp_path / "nothing", ())
    assert missing.entries is None
    source = run_script(tmp_path, ())
    assert manifest.compare(source, missing) == [manifest.Difference(".", "missing")]


def test_the_script_sees_mode_content_and_xattrs(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("one")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "f").write_text("two")
    os.chmod(tmp_path / "dst" / "f", 0o600)
    os.setxattr(tmp_path / "src" / "f", "user.haops", b"1")
    found = {d.what for d in manifest.compare(run_script(tmp_path / "src", ()), run_script(tmp_path / "dst", ()))}
    assert found == {"content", "mode", "xattrs"}


# --- the agent ---------------------------------------------------------------------------

def test_agent_lists_its_keys_and_signs_a_bounded_number_of_times() -> None:
    from cryptography.hazmat.primitives import serialization

    private = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                         serialization.NoEncryption())
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"haops-agent-test-{os.getpid()}"
    path.write_bytes(private)
    try:
        key = agent.load_keys([path])[0]
    finally:
        path.unlink()
    served = agent.RunAgent([key], max_signatures=1)
    listing = served.answer(bytes([agent.REQUEST_IDENTITIES]))
    assert listing[0] == agent.IDENTITIES_ANSWER and key.asbytes() in listing
    request = bytes([agent.SIGN_REQUEST]) + agent.ssh_string(key.asbytes()) + agent.ssh_string(b"session") + bytes(4)
    answer = served.answer(request)
    assert answer[0] == agent.SIGN_RESPONSE
    signature, _ = agent.take_string(answer[1:])
    assert Ed25519Key(data=key.asbytes()).verify_ssh_sig(b"session", Message(signature))
    assert served.answer(request) == bytes([agent.FAILURE])  # over its bound
    assert served.answer(bytes([agent.SIGN_REQUEST]) + b"\0\0") == bytes([agent.FAILURE])  # malformed
    served.close()
    assert served.answer(bytes([agent.REQUEST_IDENTITIES])) == bytes([agent.FAILURE])


def test_agent_refuses_every_other_request() -> None:
    served = agent.RunAgent([], max_signatures=5)
    for kind in (17, 18, 19, 22, 23):  # add, remove, remove all, lock, unlock
        assert served.answer(bytes([kind])) == bytes([agent.FAILURE])


# --- request and debounce ------------------------------------------------------------------

INVENTORY = """\
hosts:
  src1: {address: 10.213.40.11, groups: [files]}
  dst1: {address: 10.213.40.21, groups: [files, mirrors]}
  dst2: {address: 10.213.40.22, groups: [files, mirrors]}
"""


def test_a_group_leaves_out_the_source(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    inv = inventory.load(path)
    request = resolve(inv, "src1:/srv/www/", "files:/srv/www", rsync.RsyncOptions())
    assert (request.destinations, request.source_path) == (("dst1", "dst2"), "/srv/www")
    assert resolve(inv, "src1:/a", "dst2,mirrors:/a", rsync.RsyncOptions()).destinations == ("dst2", "dst1")


@pytest.mark.parametrize(("source", "dest", "options", "says"), [
    ("src1", "mirrors:/a", rsync.RsyncOptions(), "HOST:PATH"),
    ("src1:relative", "mirrors:/a", rsync.RsyncOptions(), "absolute"),
    ("src1:/", "mirrors:/a", rsync.RsyncOptions(), "not a directory"),
    ("src1:/a/../etc", "mirrors:/a", rsync.RsyncOptions(), "not a directory"),
    ("src1:/a", "mirrors:/.", rsync.RsyncOptions(), "not a directory"),  # rsync's /./ is / itself
    ("src1:/a", "mirrors://./", rsync.RsyncOptions(), "not a directory"),
    ("src1:/a", "mirrors:/srv/./www", rsync.RsyncOptions(), "not a directory"),
    ("nobody:/a", "mirrors:/a", rsync.RsyncOptions(), "not a host"),
    ("src1:/a", "nogroup:/a", rsync.RsyncOptions(), "no host or group"),
    ("src1:/a", "src1:/b", rsync.RsyncOptions(), "is the source"),
    ("src1:/a", "mirrors:/a", rsync.RsyncOptions(("+ keep",)), "not supported"),
])
def test_mistakes_are_user_errors(tmp_path: Path, source: str, dest: str, options: rsync.RsyncOptions, says: str) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    with pytest.raises(UserError, match=says):
        resolve(inventory.load(path), source, dest, options)


def test_a_burst_ends_when_quiet_or_at_its_bound() -> None:
    events: queue.Queue[str] = queue.Queue()
    assert burst_of_changes(events, 0.01, 0.05, 1.0) == []
    for n in range(3):
        events.put(f"CREATE /a/{n}")
    assert len(burst_of_changes(events, 0.01, 0.05, 1.0)) == 3

    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            events.put("MODIFY /a/x")
            time.sleep(0.01)

    writer = threading.Thread(target=busy)
    writer.start()
    try:
        started = time.monotonic()
        burst_of_changes(events, 1.0, 0.05, 0.3)
        assert time.monotonic() - started < 1.0  # never waits for a quiet moment that does not come
    finally:
        stop.set()
        writer.join()


@pytest.mark.parametrize("args", [
    ["--count", "2"], ["--every", "1", "--watch"], ["--every", "1", "--delete"], ["--watch", "--dry-run"],
    ["--every", "0.01"], ["--io-timeout", "0"],
])
def test_cli_refuses_inconsistent_options(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    from haops.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["sync", "-i", "inventories/example.yml", "web1:/srv/a", "web:/srv/a", *args])
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_confirmed_delete_removes_only_the_listed_paths_with_real_rsync(tmp_path: Path) -> None:
    source, dest = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    (dest / "olddir").mkdir(parents=True)
    for name in ("shown", "we*rd", "weXrd", "olddir/f", " lead", "café", "tab\tname"):
        (dest / name).write_text("x")

    def rsync_delete(*extra: str) -> subprocess.CompletedProcess[str]:
        # the C locale, as under `become: sudo`, where rsync escapes what it will not print
        return subprocess.run(["rsync", "-a", "-8", "--delete", "--itemize-changes", *extra, f"{source}/", f"{dest}/"],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "LC_ALL": "C"})

    listed = rsync.parse(rsync_delete("--dry-run").stdout).deletions
    assert sorted(listed) == [" lead", "café", "olddir/", "olddir/f", "shown", "tab\tname", "we*rd", "weXrd"]
    for name in ("appeared-after-the-preview", "lead"):  # "lead": what " lead" would be with its space lost
        (dest / name).write_text("keep me")
    confirmed = tuple(path for path in listed if path != "weXrd")  # not confirmed: a wildcard must not reach it
    done = rsync_delete(*rsync.only_these_deleted(confirmed))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["appeared-after-the-preview", "lead", "weXrd"]


def test_an_ipv6_destination_is_bracketed_so_rsync_does_not_read_a_daemon() -> None:
    login = rsync.Login("haops-dst1", "fd00:213::22", 22, "root")
    argv = rsync.rsync_argv("/srv/www", login, "/srv/www", "/tmp/kh", rsync.RsyncOptions())
    assert argv[-1] == "root@[fd00:213::22]:/srv/www/"
    v4 = rsync.rsync_argv("/srv/www", rsync.Login("haops-dst1", "10.213.0.22", 22, "root"), "/srv/www", "/tmp/kh",
                          rsync.RsyncOptions())
    assert v4[-1] == "root@10.213.0.22:/srv/www/"


def test_the_watcher_is_ready_only_once_inotifywait_has_set_its_watches() -> None:
    from types import SimpleNamespace

    from haops.replication.watch import Watcher

    ctx = SimpleNamespace(request=SimpleNamespace(source="src1", source_path="/srv/www"))
    watcher = Watcher(ctx, None)  # type: ignore[arg-type]
    # inotifywait's own lines, as it printed them here (stderr joined to stdout)
    for line in ("pid 4242", "Setting up watches.  Beware: since -r was given, this may take a while!"):
        watcher.take(line)
    assert watcher.pid == "4242" and not watcher.ready.is_set()
    for line in ("Watches established.", "CLOSE_WRITE,CLOSE /srv/www/x", "CREATE,ISDIR /srv/www/d",
                 "Couldn't watch /srv/www/gone: No such file or directory"):
        watcher.take(line)
    assert watcher.ready.is_set()
    assert [watcher.events.get_nowait() for _ in range(2)] == ["CLOSE_WRITE,CLOSE /srv/www/x", "CREATE,ISDIR /srv/www/d"]
    assert watcher.events.empty() and watcher.said == ["Couldn't watch /srv/www/gone: No such file or directory"]


def test_every_skips_the_slots_a_slow_pass_overran_instead_of_running_them_back_to_back() -> None:
    from haops.replication.watch import Schedule, every

    began: list[float] = []

    def one(reports: list) -> None:  # type: ignore[type-arg]
        began.append(time.monotonic())
        time.sleep(0.5 if len(began) == 1 else 0.01)  # the first pass overruns two 0.2 s slots
        reports.append(len(began))

    every(None, Schedule(every_s=0.2, count=3), one)  # type: ignore[arg-type]
    assert len(began) == 3
    starts = [round(t - began[0], 2) for t in began]
    assert starts[1] >= 0.55 and starts[2] - starts[1] >= 0.15, starts  # slots at 0.6 and 0.8, not 0.5 and 0.51
