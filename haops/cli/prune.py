"""`haops prune`: list, and on request remove, what haops once made live on a host that the inventory no longer asks for."""

from __future__ import annotations

from pathlib import Path

import typer

from haops.cli.common import AskBecomePass, InventoryPath, load_inventory, ssh_settings
from haops.cli.output import out


def prune(
    inventory: Path = InventoryPath,
    limit: str = typer.Option("", "--limit", "-l", help="Only these hosts: comma-separated host globs or group names."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking."),
    dry_run: bool = typer.Option(False, "--list", help="Only list the leftovers; change nothing."),
    ask_become_pass: bool = AskBecomePass,
) -> None:
    """Daemons stopped, rules unloaded, files moved into the host's backup folder: only what haops recorded making live."""
    from haops.apply.execute import BACKUP_ROOT, new_run_id
    from haops.apply.facts import init_script, parse_recorded, recorded_script
    from haops.apply.lock import HostLock
    from haops.apply.prune import Leftover, leftovers, retire_script
    from haops.cli.apply import select_hosts
    from haops.targets import targets_by_host
    from haops.transport import Connections, HostFailure, run

    inv = load_inventory(inventory)
    hosts = select_hosts(inv, limit)
    wanted = targets_by_host(inv)
    connections = Connections(inv.hosts, ssh_settings(inv, ask_become_pass=ask_become_pass))
    found: list[Leftover] = []
    inits: dict[str, str] = {}
    failed: list[str] = []
    try:
        for host in hosts:
            try:
                ran = run(connections.get(host), f"{init_script()}\n{recorded_script()}")
            except HostFailure as exc:
                failed.append(f"{host}: {exc}")
                continue
            inits[host] = ran.stdout.split("\n", 1)[0].removeprefix("I ").strip() if inv.hosts[host].init == "auto" else inv.hosts[host].init
            found += leftovers(inv, host, wanted.get(host, []), parse_recorded(ran.stdout))
        for item in found:
            files = ", ".join(item.files) or "no files recorded"
            out().print(f"{item.host}: {item.what}: {files}", markup=False, highlight=False)
        if not found:
            out().print("nothing to prune: every host runs only what the inventory asks for")
        if found and not dry_run and (yes or typer.confirm(f"remove these {len(found)} leftover(s)?")):
            backup = f"{BACKUP_ROOT}/{new_run_id()}"
            for host in dict.fromkeys(item.host for item in found):
                connection = connections.get(host)
                with HostLock(connection, host):
                    for item in (i for i in found if i.host == host):
                        done = run(connection, retire_script(item, inits[host], backup))
                        if done.code != 0:
                            failed.append(f"{host}: {item.name}: {(done.stdout + done.stderr).strip()}")
                        else:
                            out().print(f"{host}: {item.name} removed (files kept in {backup}/pruned)", markup=False)
    finally:
        connections.close()
    for line in failed:
        out().print(f"[red]failed[/] {line}", highlight=False)
    raise typer.Exit(1 if failed else 0)
