"""The Typer application: one module per command group, user errors as exit 2."""

from __future__ import annotations

import typer

from haops import __version__
from haops.cli import inventory as inventory_cli
from haops.cli import lab as lab_cli
from haops.cli.apply import apply
from haops.cli.drill import drill
from haops.cli.metrics import metrics
from haops.cli.planned import failback, switchover
from haops.cli.prune import prune
from haops.cli.render import render
from haops.cli.status import status
from haops.cli.validate import validate
from haops.cli.verify import verify
from haops.errors import UserError

app = typer.Typer(
    name="haops",
    help="Render, check, push and prove high-availability web clusters from one inventory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
app.add_typer(inventory_cli.app, name="inventory")
app.add_typer(lab_cli.app, name="lab")


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"haops {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", "-V", callback=version_callback, is_eager=True, help="Show the version and exit.")) -> None:
    """Render, check, push and prove high-availability web clusters from one inventory."""


def run(args: list[str]) -> None:
    try:
        app(args, prog_name="haops", standalone_mode=True)
    except UserError as exc:
        from haops.cli.output import fail

        fail(str(exc))
        raise SystemExit(exc.exit_code) from None
