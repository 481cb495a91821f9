"""The `haops` command. `--version` and the top-level help answer without importing Typer."""

from __future__ import annotations

import sys

from haops import __version__

COMMANDS = (
    ("render", "Render one technology's files (or all) for each host: stdout or a folder."),
    ("validate", "Render everything and prove each file with the daemon's own checker."),
    ("apply", "Push configs over SSH: check on host, install atomically, reload, prove, roll back."),
    ("verify", "Prove the cluster balances, sticks, resolves and survives a dead backend."),
    ("prune", "Remove what haops made live on a host that the inventory no longer asks for."),
    ("status", "Who holds each VIP, each VRRP node's state, each backend as its balancers see it."),
    ("drill", "Break the cluster under a steady probe and measure what clients saw (failover, takeover...)."),
    ("switchover", "Move a VIP or drain a backend on purpose, measuring that no request fails."),
    ("failback", "Give back: return a VIP or a drained backend to where the inventory puts it, measured."),
    ("metrics", "Availability from drill records or an incident log: MTTF, MTTR, MTBF, nines, SLA budget."),
    ("inventory", "Check an inventory, or show it resolved with every default filled in."),
    ("lab", "A cluster of real SSH hosts made of Linux namespaces on this machine."),
)

TOP_HELP = "\n".join(
    [
        "Usage: haops [OPTIONS] COMMAND [ARGS]...",
        "",
        "  Render, check, push and prove high-availability web clusters from one inventory.",
        "",
        "Options:",
        "  --version  Show the version and exit.",
        "  --help     Show this message and exit.",
        "",
        "Commands:",
        *(f"  {name:<10} {text}" for name, text in COMMANDS),
        "",
        "Run 'haops COMMAND --help' for a command's options.",
    ]
)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(f"haops {__version__}")
        return
    if args in ([], ["--help"], ["-h"]):
        print(TOP_HELP)
        return
    from haops.cli.app import run

    run(args)
