"""haops sync: bytes sent for a one-block change of a 100 MiB file (target < 1 %), and the time
of one source to three destinations against one to one (target <= 1.5x).

    sudo .venv/bin/python bench/sync.py [--runs N] [--size-mib 100]

Builds its own lab (hasyncb, 10.213.41.0/24: a source and three destinations) and tears it
down. Prints the figures; it is a benchmark, not a test, so it never fails on them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from ipaddress import IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from haops.replication.agent import load_keys
from haops.replication.fanout import PassReport, SyncContext, sync_pass
from haops.replication.request import resolve
from haops.replication.rsync import RsyncOptions
from haops.session import settings_for
from haops.transport import Connections
from tests.apply.conftest import Cluster
from tests.replication.conftest import built_sync_lab

LAB, NETWORK = "hasyncb", IPv4Network("10.213.41.0/24")
DELTA_TARGET_PCT, FANOUT_TARGET = 1.0, 1.5
BLOCK = 4096
# A web tree: text that compresses, and binaries that do not.
TREE = ("mkdir -p site/txt site/bin && for i in $(seq 400); do seq $i 40000 > site/txt/f$i.txt; done; "
        "for i in $(seq 8); do head -c 4000000 /dev/urandom > site/bin/b$i.bin; done")


def one_pass(lab: Cluster, path: str, dest: str) -> PassReport:
    inv = lab.inventory
    settings = settings_for(inv)
    request = resolve(inv, f"src1:{path}", f"{dest}:{path}", RsyncOptions())
    ctx = SyncContext(inv, request, Connections(inv.hosts, settings), settings, load_keys([lab.lab.identity]))
    try:
        report = sync_pass(ctx)
    finally:
        ctx.connections.close()
    failed = [r.host for r in report.results if not r.converged]
    assert not failed, f"did not converge: {failed}"
    return report


def delta(lab: Cluster, size_mib: int, runs: int) -> None:
    path, size = "/srv/bench-delta", size_mib * 1024 * 1024
    lab.sh("src1", f"rm -rf {path} && mkdir -p {path} && head -c {size} /dev/urandom > {path}/big.bin")
    lab.sh("dst1", f"rm -rf {path}")
    first = one_pass(lab, path, "dst1").results[0].stats
    sent, received, literal = [], [], []
    for run in range(runs):
        offset = (run + 1) * (size // (runs + 2)) // BLOCK
        lab.sh("src1", f"head -c {BLOCK} /dev/urandom | dd of={path}/big.bin bs={BLOCK} seek={offset} conv=notrunc status=none")
        stats = one_pass(lab, path, "dst1").results[0].stats
        assert stats is not None
        sent.append(stats.bytes_sent)
        received.append(stats.bytes_received)
        literal.append(stats.literal)
    pct = 100 * statistics.median(sent) / size
    verdict = "ok" if pct < DELTA_TARGET_PCT else "MISSED"
    print(f"first sync of {size_mib} MiB: {first.bytes_sent if first else '?'} bytes sent")
    print(f"one {BLOCK}-byte block changed in {size_mib} MiB ({size} bytes), {runs} runs: bytes sent median "
          f"{statistics.median(sent):.0f} (min {min(sent)}, max {max(sent)}) = {pct:.4f} % of the file "
          f"(target < {DELTA_TARGET_PCT:.0f} %: {verdict}); received (block checksums) median "
          f"{statistics.median(received):.0f} = {100 * statistics.median(received) / size:.3f} %; "
          f"literal data median {statistics.median(literal):.0f}")


def fanout(lab: Cluster, runs: int) -> None:
    path = "/srv/bench-fanout"
    lab.sh("src1", f"rm -rf {path} && mkdir -p {path} && cd {path} && {TREE}")
    size = int(lab.sh("src1", f"du -sb {path} | cut -f1"))
    times: dict[str, list[float]] = {"dst1": [], "mirrors": []}
    cpu: dict[str, list[float]] = {"dst1": [], "mirrors": []}
    for _ in range(runs):
        for dest in times:
            for host in ("dst1", "dst2", "dst3"):
                lab.sh(host, f"rm -rf {path}")
            before = busy_cpu_seconds()
            times[dest].append(one_pass(lab, path, dest).seconds)
            cpu[dest].append(busy_cpu_seconds() - before)
    one, three = statistics.median(times["dst1"]), statistics.median(times["mirrors"])
    cores = os.cpu_count() or 1
    cpu_one, cpu_three = statistics.median(cpu["dst1"]), statistics.median(cpu["mirrors"])
    print(f"machine CPU per pass (every lab host shares this machine's {cores} cores): one-to-one {cpu_one:.2f} s, "
          f"one-to-three {cpu_three:.2f} s; so one-to-three takes at least {cpu_three / cores:.2f} s here, "
          f"{cpu_three / cores / one:.2f}x the one-to-one time, whatever the fan-out does")
    ratio = three / one
    verdict = "ok" if ratio <= FANOUT_TARGET else "MISSED"
    print(f"first sync of a {size / 1e6:.1f} MB tree (400 text files, 8 x 4 MB random), {runs} runs each, "
          f"manifests and proof included: one-to-one median {one:.2f} s {fmt(times['dst1'])}, one-to-three "
          f"median {three:.2f} s {fmt(times['mirrors'])}: ratio {ratio:.2f}x (target <= {FANOUT_TARGET}x: "
          f"{verdict}); three one-to-one runs in a row would take {3 * one:.2f} s")


def busy_cpu_seconds() -> float:
    """CPU time this machine spent busy (all cores, every process), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    idle = int(fields[3]) + int(fields[4])  # idle, iowait
    return (sum(int(f) for f in fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for lab in built_sync_lab(Path(folder), LAB, NETWORK):
            delta(lab, args.size_mib, args.runs)
            fanout(lab, args.runs)


if __name__ == "__main__":
    main()
