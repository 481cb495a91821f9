"""The Typer application: one module per command group, user errors as exit 2."""

from __future__ import annotations

from typing import Any

import typer
import typer.main

from haops import __version__
from haops.cli import db as db_cli
from haops.cli import drbd as drbd_cli
from haops.cli import inventory as inventory_cli
from haops.cli import lab as lab_cli
from haops.cli import vagrant as vagrant_cli
from haops.cli.apply import apply
from haops.cli.drill import drill
from haops.cli.metrics import metrics
from haops.cli.planned import failback, switchover
from haops.cli.prune import prune
from haops.cli.render import render
from haops.cli.status import status
from haops.cli.sync import sync
from haops.cli.validate import validate
from haops.cli.verify import verify
from haops.cli.help_cache import HELP_FLAGS, HELP_WIDTH, store
from haops.errors import UserError

app = typer.Typer(
    name="haops",
    help="Render, check, push and prove high-availability web clusters from one inventory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain Click help: it depends only on the terminal's width, so help_cache can keep it.
    rich_markup_mode=None,
    context_settings={"help_option_names": list(HELP_FLAGS)},
)
app.command()(render)
app.command()(validate)
app.command()(apply)
app.command()(prune)
app.command()(verify)
app.command()(status)
app.command()(drill)
app.command()(switchover)
app.command()(failback)
app.command()(metrics)
app.command()(sync)
app.add_typer(inventory_cli.app, name="inventory")
app.add_typer(lab_cli.app, name="lab")
app.add_typer(drbd_cli.app, name="drbd")
app.add_typer(db_cli.app, name="db")
app.add_typer(vagrant_cli.app, name="vagrant")


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"haops {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", "-V", callback=version_callback, is_eager=True, help="Show the version and exit.")) -> None:
    """Render, check, push and prove high-availability web clusters from one inventory."""


def all_help() -> dict[str, str]:
    """Every command's help as `haops PATH --help` prints it, keyed by the path ("" for haops itself)."""
    texts: dict[str, str] = {}

    def walk(command: Any, name: str, parent: Any, path: tuple[str, ...]) -> None:
        context = command.make_context(name, [], parent=parent, resilient_parsing=True,
                                       **({} if parent else {"terminal_width": HELP_WIDTH}))
        texts[" ".join(path)] = context.get_help()
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, sub_name, context, (*path, sub_name))

    walk(typer.main.get_command(app), "haops", None, ())
    return texts


def run(args: list[str], cache_help: bool = False) -> None:
    """Run the command line; `cache_help` (a help request the cache could not answer) renders
    and stores every command's help first."""
    if cache_help:
        store(all_help())
    try:
        app(args, prog_name="haops", standalone_mode=True)
    except UserError as exc:
        from haops.cli.output import fail

        fail(str(exc))
        raise SystemExit(exc.exit_code) from None
