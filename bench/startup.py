"""Startup time of `haops --version` / `--help`, as ratios against peers measured in the same run.

Peers: the Python interpreter doing nothing (the floor), and a one-command Typer app
(what a plain Typer CLI costs). Goal: `haops --help` and every command's `--help` at most
100 ms. The commands are the Typer app's own, so a new one is timed too. Each case runs once
untimed first: the first help after an install or a change renders every command's help
with Typer and keeps it (haops/cli/help_cache.py), as Python keeps bytecode.

    .venv/bin/python bench/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TYPER_HELLO = "import typer\napp = typer.Typer()\n@app.command()\ndef hello() -> None:\n    print('hello')\napp()\n"


GOAL_S = 0.100


def median_seconds(argv: list[str], runs: int) -> float:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # warm
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    haops = str(Path(sys.executable).with_name("haops"))
    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text(TYPER_HELLO)
        cases = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "typer hello --help (peer)": [sys.executable, str(hello), "--help"],
            "haops --version": [haops, "--version"],
            **{f"haops {path} --help".replace("  ", " "): [haops, *path.split(), "--help"] for path in help_paths(haops)},
            "haops apply -h": [haops, "apply", "-h"],
        }
        results = {name: median_seconds(argv, args.runs) for name, argv in cases.items()}
    peer = results["typer hello --help (peer)"]
    print(f"median of {args.runs} runs, {os.cpu_count()} cores")
    for name, seconds in results.items():
        print(f"  {name:<36} {seconds * 1000:7.1f} ms   {seconds / peer:5.2f}x typer hello")
    helps = {name: s for name, s in results.items() if name.startswith("haops ") and "--version" not in name}
    slow = {name: s for name, s in helps.items() if s > GOAL_S}
    worst = max(helps, key=lambda n: helps[n])
    print(f"every help <= {GOAL_S * 1000:.0f} ms: {'met' if not slow else 'MISSED'} "
          f"({len(helps)} commands, slowest {worst} {helps[worst] * 1000:.1f} ms)")


def help_paths(haops: str) -> list[str]:
    """Every command path of the installed haops, from its own Typer app ("" is haops itself)."""
    python = str(Path(haops).with_name("python"))
    probe = "from haops.cli.app import all_help; print('\\n'.join(all_help()))"
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


if __name__ == "__main__":
    main()
