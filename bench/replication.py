"""PostgreSQL replication figures in a lab of their own: lag under steady writes, RTO, RPO.

    .venv/bin/python bench/replication.py [--drills 3] [--rows 1200] [--rate 250]

Lab `hapgb` (10.213.45.0/24): inventories/postgresql.yml moved there (db1 primary, db2/db3
standbys). Every measurement gets a freshly built lab, applied:
- lag: `haops db check` (the ledger: --rows at --rate, acknowledged when COMMIT returns), the
  p50/p99 of COMMIT-returned -> row visible on each standby, polled every 5 ms from this machine;
- promote: `haops db promote db2` with db1 running (fence, pg_promote, re-point db3), RTO =
  promotion start -> first committed write on db2;
- drill, synchronous, --drills times: kill -9 of db1's postmaster after a third of the rows,
  promotion of the most advanced standby at the first failed write, RTO = crash -> first
  acknowledged write on the new primary, RPO = acknowledged rows it lacks (over >= 1,000);
- drill, asynchronous, once: the same, RPO reported as measured.
The peer figure is Patroni's documented default ttl of 30 s (a leader key expires that long after
its holder dies before a replica may take over); Patroni is not run here, so that side of the ratio
is its default, not a measurement. A benchmark: a missed target is reported, never raised.
Writes /tmp/hapgb/results.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from haops import inventory  # noqa: E402
from haops.apply.run import ApplyOptions, apply  # noqa: E402
from haops.inventory.model import Inventory  # noqa: E402
from haops.lab import Lab, LabHost  # noqa: E402
from haops.session import settings_for  # noqa: E402
from haops.targets.postgresql import cluster_of  # noqa: E402
from haops.targets.postgresql.check import check, drill  # noqa: E402
from haops.targets.postgresql.promote import promote  # noqa: E402
from haops.transport import Connections  # noqa: E402

LAB, NETWORK = "hapgb", IPv4Network("10.213.45.0/24")
WORK = Path("/tmp/hapgb")
PATRONI_TTL_S = 30.0
RTO_TARGET_S = 10.0


def inventory_text(synchronous: bool) -> str:
    text = (ROOT / "inventories" / "postgresql.yml").read_text().replace("10.213.44.", "10.213.45.")
    text = text.replace("name: hapg,", f"name: {LAB},").replace("10.213.45.0/24", str(NETWORK))
    return text if synchronous else text.replace("synchronous: true", "synchronous: false")


def fresh(lab: Lab, synchronous: bool) -> Inventory:
    path = WORK / "postgresql.yml"
    path.write_text(inventory_text(synchronous))
    inv = inventory.load(path)
    lab.down()
    lab.up([LabHost(h.name, h.address, h.groups) for h in inv.hosts.values()], path.read_text())
    outcomes = apply(inv, list(inv.hosts), ApplyOptions(), settings_for(inv), lambda host, step: None)
    failed = {o.report.host: o.report.messages for o in outcomes if not o.report.ok}
    if failed:
        raise SystemExit(f"apply failed: {failed}")
    return inv


def quiet(text: str) -> None:
    pass


def measure(lab: Lab, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    inv = fresh(lab, True)
    connections = Connections(inv.hosts, settings_for(inv))
    lag = check(inv, cluster_of(inv), connections.runner, args.lag_rows, args.rate, quiet)
    connections.close()
    results["lag"] = [{"standby": s.host, "p50_ms": s.lag_p50_ms, "p99_ms": s.lag_p99_ms, "max_ms": s.lag_max_ms,
                       "missing": len(s.missing)} for s in lag.standbys] + [{"rows": lag.acknowledged, "rate": args.rate}]
    inv = fresh(lab, True)
    connections = Connections(inv.hosts, settings_for(inv))
    done = promote(inv, cluster_of(inv), "db2", connections.runner, quiet)
    connections.close()
    results["promote"] = {"rto_s": None if done.rto_s is None else round(done.rto_s, 3), "fenced": done.fenced,
                          "repointed": done.repointed}
    for mode, count in (("sync", args.drills), ("async", 1)):
        results[f"drill_{mode}"] = []
        for _ in range(count):
            inv = fresh(lab, mode == "sync")
            connections = Connections(inv.hosts, settings_for(inv))
            report = drill(inv, cluster_of(inv), connections.runner, args.rows, args.rate, args.rows // 3, quiet)
            connections.close()
            results[f"drill_{mode}"].append({"rto_s": report.rto_s, "detect_s": report.detect_s,
                                             "promote_s": report.promote_s, "acknowledged": report.acknowledged,
                                             "rpo_rows": report.rpo_rows, "new_primary": report.new_primary})
    return results


def summary(results: dict[str, Any]) -> list[str]:
    lines = []
    for row in results["lag"][:-1]:
        lines.append(f"lag on {row['standby']}: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, max {row['max_ms']} ms "
                     f"over {results['lag'][-1]['rows']} rows at {results['lag'][-1]['rate']:g}/s")
    rto = results["promote"]["rto_s"]
    lines.append(f"haops db promote (planned, old primary fenced): RTO {rto} s; target <= {RTO_TARGET_S:g} s "
                 f"{'met' if rto is not None and rto <= RTO_TARGET_S else 'MISSED'}; "
                 f"Patroni default ttl {PATRONI_TTL_S:g} s / RTO = {PATRONI_TTL_S / rto:.1f}x" if rto else "promote: no write")
    for mode in ("sync", "async"):
        drills = results[f"drill_{mode}"]
        rtos = [d["rto_s"] for d in drills if d["rto_s"] is not None]
        acked = sum(d["acknowledged"] for d in drills)
        lost = sum(d["rpo_rows"] for d in drills)
        median = statistics.median(rtos) if rtos else None
        lines.append(f"drill {mode} x{len(drills)}: RTO (kill -9 -> write accepted) {rtos} s, median {median}; "
                     f"RPO {lost} rows lost of {acked} acknowledged"
                     + (f"; vs Patroni ttl {PATRONI_TTL_S:g} s: {PATRONI_TTL_S / median:.1f}x" if median else ""))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drills", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--lag-rows", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=250.0)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    lab = Lab(LAB, NETWORK)
    started = time.monotonic()
    try:
        results = measure(lab, args)
    finally:
        lab.down()
    results["seconds"] = round(time.monotonic() - started, 1)
    (WORK / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for line in summary(results):
        print(line)
    print(f"({results['seconds']} s; {WORK / 'results.json'})")


if __name__ == "__main__":
    main()
