"""`haops status`: who holds each VIP, each VRRP node's state and priority, each backend as each balancer sees it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from haops.cli.common import AskBecomePass, InventoryPath, JsonFlag, load_inventory, ssh_settings
from haops.cli.output import err, out

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from haops.status import ClusterStatus

STATE_STYLES = {"MASTER": "bold green", "BACKUP": "cyan", "FAULT": "bold red", "UP": "green", "DOWN": "bold red",
                "MAINT": "yellow", "unknown": "bold red"}


def status(inventory: Path = InventoryPath, ask_become_pass: bool = AskBecomePass, as_json: bool = JsonFlag) -> None:
    """Read the live cluster: VRRP from keepalived's own dump, backends from each balancer (read only)."""
    from haops.status import as_json as status_json
    from haops.status import read_status
    from haops.transport import Connections

    inv = load_inventory(inventory)
    connections = Connections(inv.hosts, ssh_settings(inv, ask_become_pass=ask_become_pass))
    try:
        with err().status("reading the cluster"):
            found = read_status(inv, connections)
    finally:
        connections.close()
    if as_json:
        out().print_json(json.dumps(status_json(found)))
    else:
        print_status(found)
    raise typer.Exit(1 if found.problems else 0)


def styled(state: str | None) -> Text:
    from rich.text import Text

    return Text(state or "unreadable", STATE_STYLES.get(state or "unknown", ""))


def vip_table(found: ClusterStatus) -> Table:
    from rich.table import Table

    table = Table(title="VIPs")
    for column in ("instance", "VIP", "held by", "node", "state", "priority", "effective", "holds VIP"):
        table.add_column(column, justify="right" if column in ("priority", "effective") else "left")
    for view in found.vips:
        for n, node in enumerate(view.nodes):
            first = n == 0
            holders = ", ".join(view.holders) or "nobody"
            table.add_row(view.instance.name if first else "", view.instance.vip.with_prefixlen if first else "",
                          holders if first else "", node.host, styled(node.state), str(node.priority or "-"),
                          str(node.effective_priority or "-"), "yes" if node.holds_vip else "no")
    return table


def backend_table(found: ClusterStatus) -> Table:
    from rich.table import Table

    table = Table(title="Backends, as each balancer sees them")
    for column in ("service", "seen from", "backend", "state", "detail"):
        table.add_column(column)
    for state in found.backends:
        table.add_row(state.service, state.host, shown(state.backend), styled(state.state), state.detail)
    return table


def shown(backend: str) -> str:
    from haops.targets.base import ALL_BACKENDS

    return "all" if backend == ALL_BACKENDS else backend


def print_status(found: ClusterStatus) -> None:
    from rich.text import Text

    if found.vips:
        out().print(vip_table(found))
    if found.backends:
        out().print(backend_table(found))
    if not found.vips and not found.backends:
        out().print("nothing to show: the inventory has no VRRP instances and no services")
    for problem in found.problems:
        err().print(Text("problem: ", "bold red"), Text(problem), sep="")
    count = len(found.problems)
    out().print(f"{len(found.vips)} VIPs, {len(found.backends)} backend views, {count} problem{'' if count == 1 else 's'}")
