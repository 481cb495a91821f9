"""Startup time of `haops --version` / `--help`, as ratios against peers measured in the same run.

Peers: the Python interpreter doing nothing (the floor), and a one-command Typer app
(what a plain Typer CLI costs). Goal: `haops --help` under 100 ms.

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


def median_seconds(argv: list[str], runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
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
            "haops --help": [haops, "--help"],
            "haops render --help (full Typer)": [haops, "render", "--help"],
        }
        results = {name: median_seconds(argv, args.runs) for name, argv in cases.items()}
    peer = results["typer hello --help (peer)"]
    print(f"median of {args.runs} runs, {os.cpu_count()} cores")
    for name, seconds in results.items():
        print(f"  {name:<36} {seconds * 1000:7.1f} ms   {seconds / peer:5.2f}x typer hello")
    verdict = "meets" if results["haops --help"] < 0.100 else "misses"
    print(f"haops --help {verdict} the 100 ms goal")


if __name__ == "__main__":
    main()
