"""haops sync in the lab: real rsync from the source host to three destinations over SSH,
real users, ACLs and xattrs, a real cut cable. Each test works in a directory of its own,
made afresh on every host."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from haops.replication.agent import load_keys
from haops.replication.fanout import PassReport, SyncContext, sync_pass
from haops.replication.request import resolve
from haops.replication.rsync import RsyncOptions
from haops.replication.watch import Schedule, run_continuous
from haops.session import settings_for
from haops.transport import Connections
from tests.apply.conftest import Cluster
from tests.replication.conftest import DESTINATIONS
from tests.test_cli import run

pytestmark = pytest.mark.lab
HOSTS = ("src1", *DESTINATIONS)
LISTING = ("cd {0} && find . -printf '%P %y %m %u:%g %l\\n' | sort && find . ! -type d -printf '%P %s\\n' | sort "
           "&& find . -type f -exec sha256sum {{}} + | sort")


def fresh(lab: Cluster, path: str, source_script: str) -> None:
    """`path` gone from every host, then made on the source by `source_script` (run inside it)."""
    for host in HOSTS:
        lab.sh(host, f"rm -rf {path}")
    lab.sh("src1", f"mkdir -p {path} && cd {path} && {source_script}")


def cli(capsys: pytest.CaptureFixture[str], lab: Cluster, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    code, out, err = run(capsys, "sync", "-i", str(lab.path), *args, "--json")
    return code, json.loads(out) if out.strip() else None, err


def by_host(report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    assert report is not None
    return {d["host"]: d for d in report["destinations"]}


def same_everywhere(lab: Cluster, path: str) -> None:
    """Checked without haops' manifest: names, types, modes, owners, sizes, links and checksums."""
    want = lab.sh("src1", LISTING.format(path))
    for host in DESTINATIONS:
        assert lab.sh(host, LISTING.format(path)) == want, host


def test_first_sync_reaches_every_destination_and_leaves_nothing_behind(sync_lab: Cluster,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = "/srv/t-first"
    fresh(sync_lab, path, "mkdir -p www/img && echo hello > www/index.html && head -c 300000 /dev/urandom > www/img/a.bin "
                          "&& ln -s index.html www/home.html && chmod 0640 www/index.html && echo x > skip.tmp")
    code, report, err = cli(capsys, sync_lab, f"src1:{path}", f"mirrors:{path}", "--exclude", "*.tmp")
    assert code == 0, err
    for host, result in by_host(report).items():
        assert result["converged"] and result["left"] == [], host
        assert {d["path"] for d in result["differed_before"]} == {".", "www", "www/index.html", "www/img",
                                                                  "www/img/a.bin", "www/home.html"}
        assert result["fixed"] == result["differed_before"]
        assert result["bytes_sent"] > 0 and result["total_size"] == 300006 + len("index.html")
    # Nothing of the run stays on the source: no known_hosts directory, no key, no agent socket.
    # (sshd removes the forwarded agent's socket as the session closes: a moment is allowed.)
    assert sync_lab.sh("src1", "for i in $(seq 20); do [ -z \"$(ls -A /tmp)\" ] && break; sleep 0.1; done; "
                               "ls -A /tmp; grep -rls 'PRIVATE KEY' /tmp /root /srv /var/tmp || true").strip() == ""

    code, again, err = cli(capsys, sync_lab, f"src1:{path}", f"mirrors:{path}", "--exclude", "*.tmp")
    assert code == 0, err
    assert all(r["changes"] == [] and r["differed_before"] == [] for r in by_host(again).values())
    for host in DESTINATIONS:
        assert sync_lab.sh(host, f"test ! -e {path}/skip.tmp && echo excluded").strip() == "excluded"
    sync_lab.sh("src1", f"rm {path}/skip.tmp")
    same_everywhere(sync_lab, path)


def test_a_users_files_keep_their_owner_never_root(sync_lab: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    """alice exists only on the source: her uid is kept. carol exists everywhere with other
    uids: mapped by name, or kept numerically with --numeric-ids."""
    for host in HOSTS:
        sync_lab.sh(host, "for u in alice carol; do userdel $u; groupdel $u; done 2>/dev/null; true")
    sync_lab.sh("src1", "useradd -u 2101 -U alice && useradd -u 3101 -U carol")
    for n, host in enumerate(DESTINATIONS):
        sync_lab.sh(host, f"useradd -u {3201 + n} -U carol")
    path = "/srv/t-owner"
    fresh(sync_lab, path, "echo a > alice.txt && chown alice:alice alice.txt && echo c > carol.txt && chown carol:carol carol.txt")
    code, report, err = cli(capsys, sync_lab, f"src1:{path}", f"mirrors:{path}")
    assert code == 0 and all(r["converged"] for r in by_host(report).values()), err
    for n, host in enumerate(DESTINATIONS):
        owners = sync_lab.sh(host, f"stat -c '%n %u:%g %U' {path}/alice.txt {path}/carol.txt").split("\n")
        assert owners[:2] == [f"{path}/alice.txt 2101:2101 UNKNOWN", f"{path}/carol.txt {3201 + n}:{3201 + n} carol"]

    code, report, err = cli(capsys, sync_lab, f"src1:{path}", "dst1:" + path, "--numeric-ids")
    assert code == 0 and by_host(report)["dst1"]["converged"], err
    assert {d["what"] for d in by_host(report)["dst1"]["fixed"]} == {"owner", "group"}
    assert sync_lab.sh("dst1", f"stat -c '%u:%g' {path}/carol.txt").strip() == "3101:3101"


def test_acls_and_xattrs_arrive_as_they_are(sync_lab: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    path = "/srv/t-acl"
    fresh(sync_lab, path, "mkdir shared && echo s > shared/f && setfacl -m u:4242:rw,g:4343:r shared/f "
                          "&& setfacl -d -m u:4242:rwx shared && setfattr -n user.origin -v src1 shared/f "
                          "&& setfattr -n user.kind -v dir shared")
    code, report, err = cli(capsys, sync_lab, f"src1:{path}", f"mirrors:{path}")
    assert code == 0 and all(r["converged"] for r in by_host(report).values()), err
    want = sync_lab.sh("src1", f"cd {path} && getfacl -Rn . && getfattr -R -d .")
    assert "user:4242:rw-" in want and "default:user:4242:rwx" in want and 'user.origin="src1"' in want
    for host in DESTINATIONS:
        assert sync_lab.sh(host, f"cd {path} && getfacl -Rn . && getfattr -R -d .") == want, host

    sync_lab.sh("dst2", f"setfacl -x u:4242 {path}/shared/f && setfattr -x user.origin {path}/shared/f")
    code, report, err = cli(capsys, sync_lab, f"src1:{path}", f"mirrors:{path}")
    assert code == 0, err
    # (removing an ACL entry also recomputes the mask, so the group bits of the mode may be fixed too)
    assert {("shared/f", "acl"), ("shared/f", "xattrs")} <= {(d["path"], d["what"]) for d in by_host(report)["dst2"]["fixed"]}


def test_one_changed_block_of_a_large_file_sends_a_delta(sync_lab: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    path, size = "/srv/t-delta", 32 * 1024 * 1024
    fresh(sync_lab, path, f"head -c {size} /dev/urandom > big.bin")
    code, first, err = cli(capsys, sync_lab, f"src1:{path}", f"mirrors:{path}")
    assert code == 0, err
    assert all(r["bytes_sent"] > size * 0.99 for r in by_host(first).values())  # random data: no delta, no compression
    sync_lab.sh("src1", f"head -c 4096 /dev/urandom | dd of={path}/big.bin bs=4096 seek=3000 conv=notrunc status=none")
    code, delta, err = cli(capsys, sync_lab, f"src1:{path}", f"mirrors:{path}")
    assert code == 0, err
    for host, result in by_host(delta).items():
        assert result["converged"] and [d["what"] for d in result["fixed"]] == ["content"], host
        assert result["total_size"] == size and result["bytes_sent"] < size / 100, result["bytes_sent"]
        assert result["literal_data"] < 64 * 1024 and result["matched_data"] > size - 64 * 1024
    same_everywhere(sync_lab, path)


def test_deletes_are_previewed_then_applied(sync_lab: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    path = "/srv/t-delete"
    fresh(sync_lab, path, "echo keep > keep.txt")
    for host in DESTINATIONS:
        sync_lab.sh(host, f"mkdir -p {path}/old && echo x > {path}/old/stale.txt && echo y > {path}/local.cache")
    code, out, err = run(capsys, "sync", "-i", str(sync_lab.path), f"src1:{path}", f"mirrors:{path}",
                         "--delete", "--exclude", "*.cache")
    assert code == 2 and "run again with --yes" in err
    for host in DESTINATIONS:
        assert "would remove 2 paths" in out and f"{host}:" in out
        assert sync_lab.sh(host, f"ls {path}/old").strip() == "stale.txt", "the preview changed nothing"
    assert "  - old/stale.txt" in out and "  - old/" in out and "local.cache" not in out

    code, report, err = cli(capsys, sync_lab, f"src1:{path}", f"mirrors:{path}", "--delete", "--yes", "--exclude", "*.cache")
    assert code == 0, err
    for host, result in by_host(report).items():
        assert sorted(result["deleted"]) == ["old/", "old/stale.txt"] and result["converged"], host
        assert sync_lab.sh(host, f"ls {path}").split() == ["keep.txt", "local.cache"]


def context(lab: Cluster, source: str, dest: str, options: RsyncOptions,
            on_event: Callable[[str, str, int | None], None] = lambda h, p, c: None) -> SyncContext:
    inv = lab.inventory
    settings = settings_for(inv)
    request = resolve(inv, source, dest, options)
    return SyncContext(inv, request, Connections(inv.hosts, settings), settings, load_keys([lab.lab.identity]), on_event)


def test_a_destination_cut_mid_run_fails_alone_and_converges_later(sync_lab: Cluster,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = "/srv/t-cut"
    fresh(sync_lab, path, "head -c 16000000 /dev/urandom > big.bin && echo small > small.txt")
    cut = threading.Event()

    def cut_dst3_once_it_streams(host: str, phase: str, percent: int | None) -> None:
        """On rsync's first progress line for dst3: logged in, transferring, not done."""
        if host == "dst3" and phase == "sync" and percent is not None and percent < 100 and not cut.is_set():
            cut.set()
            sync_lab.lab.cut("dst3")

    # 8 MB/s: each transfer takes about 2 s, so the cut lands while dst3's is running.
    # A 5 s I/O timeout also ends dst3's own receiving rsync soon after the cut (rsync hands
    # --timeout to the remote side), and with it its temporary file.
    ctx = context(sync_lab, f"src1:{path}", f"mirrors:{path}", RsyncOptions(bwlimit_kib=8000, io_timeout_s=5),
                  cut_dst3_once_it_streams)
    try:
        report = sync_pass(ctx)
    finally:
        ctx.connections.close()
        sync_lab.lab.heal("dst3")
    results = {r.host: r for r in report.results}
    assert cut.is_set() and not report.ok
    assert results["dst1"].converged and results["dst2"].converged
    assert not results["dst3"].ok and "rsync exit" in (results["dst3"].error or "")
    assert results["dst3"].seconds < 30
    sync_lab.sh("dst3", "for i in $(seq 150); do pgrep -x rsync >/dev/null || exit 0; sleep 0.1; done; exit 1", timeout=30)

    code, later, err = cli(capsys, sync_lab, f"src1:{path}", f"mirrors:{path}")
    assert code == 0, err
    healed = by_host(later)
    assert healed["dst3"]["converged"] and "big.bin" in {d["path"] for d in healed["dst3"]["fixed"]}
    assert healed["dst1"]["fixed"] == [] and healed["dst2"]["fixed"] == []
    same_everywhere(sync_lab, path)


def test_watch_mode_syncs_a_change_made_after_the_first_pass(sync_lab: Cluster) -> None:
    path = "/srv/t-watch"
    fresh(sync_lab, path, "echo one > one.txt")
    passes: list[PassReport] = []

    def change_after_first(report: PassReport) -> None:
        passes.append(report)
        if len(passes) == 1:
            sync_lab.sh("src1", f"echo two > {path}/two.txt && echo more >> {path}/one.txt")

    ctx = context(sync_lab, f"src1:{path}", f"mirrors:{path}", RsyncOptions())
    try:
        run_continuous(ctx, Schedule(watch=True, count=2, for_s=20, debounce_s=0.3, max_wait_s=3), change_after_first)
    finally:
        ctx.connections.close()
    assert len(passes) == 2 and all(p.ok for p in passes)
    assert all({d.path for d in r.fixed} == {"one.txt", "two.txt"} for r in passes[1].results)
    same_everywhere(sync_lab, path)
    assert "inotifywait" not in sync_lab.sh("src1", "ps -eo comm"), "the watcher was stopped"


def test_every_mode_stops_after_its_count(sync_lab: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    path = "/srv/t-every"
    fresh(sync_lab, path, "echo x > x.txt")
    code, out, err = run(capsys, "sync", "-i", str(sync_lab.path), f"src1:{path}", f"dst1:{path}",
                         "--every", "0.5", "--count", "2", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2 and all(p["ok"] for p in lines)
    assert lines[1]["destinations"][0]["changes"] == []
