"""The Typer application: one module per command group, user errors as exit 2."""

from __future__ import annotations

import functools
from importlib import import_module
from typing import Any

import typer
import typer.main

from haops import __version__
from haops.cli.help_cache import HELP_FLAGS, HELP_WIDTH, store
from haops.errors import UserError

# Each top-level command, in help order: (module, attribute, a command or a group's Typer app).
# A run imports only the module of the command it runs (all of them cost ~0.1 s to import).
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "render": ("haops.cli.render", "render", False),
    "validate": ("haops.cli.validate", "validate", False),
    "apply": ("haops.cli.apply", "apply", False),
    "prune": ("haops.cli.prune", "prune", False),
    "verify": ("haops.cli.verify", "verify", False),
    "status": ("haops.cli.status", "status", False),
    "drill": ("haops.cli.drill", "drill", False),
    "switchover": ("haops.cli.planned", "switchover", False),
    "failback": ("haops.cli.planned", "failback", False),
    "metrics": ("haops.cli.metrics", "metrics", False),
    "sync": ("haops.cli.sync", "sync", False),
    "inventory": ("haops.cli.inventory", "app", True),
    "lab": ("haops.cli.lab", "app", True),
    "drbd": ("haops.cli.drbd", "app", True),
    "db": ("haops.cli.db", "app", True),
    "vagrant": ("haops.cli.vagrant", "app", True),
}


def build(names: list[str]) -> typer.Typer:
    """The haops app with these top-level commands (every one: the whole command line)."""
    built = typer.Typer(
        name="haops",
        help="Render, check, push and prove high-availability web clusters from one inventory.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Plain Click help: it depends only on the terminal's width, so help_cache can keep it.
        rich_markup_mode=None,
        context_settings={"help_option_names": list(HELP_FLAGS)},
    )
    built.callback()(root)
    for name in names:
        module, attribute, is_group = COMMANDS[name]
        target = getattr(import_module(module), attribute)
        if is_group:
            built.add_typer(target, name=name)
        else:
            built.command(name=name)(target)
    return built


@functools.cache
def whole_app() -> typer.Typer:
    return build(list(COMMANDS))


def app_for(args: list[str]) -> typer.Typer:
    """Only the command `args` runs, when its first word names one; else the whole app (help,
    --version, a mistyped command: they list every command)."""
    return build(args[:1]) if args and args[0] in COMMANDS else whole_app()


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # `from haops.cli.app import app`: the whole app, built on first use
        return whole_app()
    raise AttributeError(name)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"haops {__version__}")
        raise typer.Exit()


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

    walk(typer.main.get_command(whole_app()), "haops", None, ())
    return texts


def run(args: list[str], cache_help: bool = False) -> None:
    """Run the command line; `cache_help` (a help request the cache could not answer) renders
    and stores every command's help first."""
    if cache_help:
        store(all_help())
    try:
        app_for(args)(args, prog_name="haops", standalone_mode=True)
    except UserError as exc:
        from haops.cli.output import fail

        fail(str(exc))
        raise SystemExit(exc.exit_code) from None
