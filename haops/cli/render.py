"""`haops render`: the files one technology (or all) puts on each host."""

from __future__ import annotations

from pathlib import Path

import typer

from haops.cli.common import InventoryPath, load_inventory
from haops.cli.output import err, out
from haops.errors import UserError
from haops.inventory.model import Inventory
from haops.targets import BUILT_IN, all_targets, get_target, targets_by_host
from haops.targets.base import RenderContext, RenderedFile, Target
from haops.apply.validation import write_tree
from haops.secrets import MASK, mask


def render(
    target: str = typer.Argument(..., help=f"One of: {', '.join(BUILT_IN)}, or 'all'."),
    inventory: Path = InventoryPath,
    host: list[str] = typer.Option([], "--host", "-H", help="Only this host (repeatable)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write files to DIR/<host>/<path> instead of printing."),
    show_secrets: bool = typer.Option(False, "--show-secrets", help="Print passwords and keys instead of masking them."),
) -> None:
    """Render one technology's files (or all) for each host: stdout for copy-paste, or a folder."""
    inv = load_inventory(inventory)
    targets = all_targets() if target == "all" else [get_target(target)]
    rendered = _render_all(inv, targets, host)
    if not rendered:
        raise UserError(f"nothing to render: no host of {inventory} uses {target}" + (f" among {', '.join(host)}" if host else ""))
    if output is not None:
        _write(rendered, output)
    else:
        _print(rendered, show_secrets)


def _render_all(inv: Inventory, targets: list[Target], only: list[str]) -> dict[str, list[RenderedFile]]:
    unknown = [name for name in only if name not in inv.hosts]
    if unknown:
        raise UserError(f"unknown host {', '.join(unknown)}; hosts: {', '.join(inv.hosts)}")
    context = RenderContext()
    by_host = targets_by_host(inv, only or None, targets)
    return {host: [f for t in on_host for f in t.render(inv, host, context)] for host, on_host in by_host.items()}


def _write(rendered: dict[str, list[RenderedFile]], output: Path) -> None:
    for host, files in rendered.items():
        write_tree(output / host, files)
        for file in files:
            err().print(f"wrote {output / host / file.path.lstrip('/')}")


def _print(rendered: dict[str, list[RenderedFile]], show_secrets: bool) -> None:
    several = sum(len(files) for files in rendered.values()) > 1
    masked = False
    for host, files in rendered.items():
        for file in files:
            text = file.text if show_secrets else mask(file.text, file.secrets)
            masked = masked or text != file.text
            if several:
                out().print(f"# ==> {host}:{file.path} <==", markup=False)
            out().print(text, end="" if text.endswith("\n") else "\n", markup=False)
    if masked:
        err().print(f"note: secrets are masked as {MASK}; add --show-secrets to print them")
