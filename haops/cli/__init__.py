"""The `haops` command. `--version` and every command's help answer without importing Typer:
help comes from help_cache, which holds what the Typer app itself printed."""

from __future__ import annotations

import gc
import os
import sys

from haops import __version__


def main(argv: list[str] | None = None) -> None:
    if argv is None:  # the haops process allocates mostly at import: no collection during a short
        gc.set_threshold(100_000, 10, 10)  # command (20,000 ran 4, ~23 ms), still some in a long one
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(f"haops {__version__}")
        return
    path = None
    if not args or args[-1] in ("--help", "-h"):
        from haops.cli import help_cache

        path = () if not args else help_cache.help_request(args)
        text = None if path is None else help_cache.cached_help(path)
        if text is not None:
            print_help(text, asked=bool(args))
            return
    from haops.cli.app import run

    if argv is not None:  # called in-process (tests): exit as Python would
        run(args, cache_help=path is not None)
        return
    try:
        run(args, cache_help=path is not None)
    except SystemExit as exit_:
        leave(exit_.code)
    leave(0)


def leave(code: object) -> None:
    """Exit with `code`. After SSH work, flush and go at once: the interpreter's teardown would
    otherwise wait on paramiko's transport threads and unload every module (~0.1 s). Every
    connection was closed by then; there is nothing left to finish."""
    if "paramiko" not in sys.modules:
        raise SystemExit(code)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def print_help(text: str, asked: bool) -> None:
    """As Click does: help asked for goes to stdout; `haops` alone prints it to stderr and exits 2."""
    if asked:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    sys.stderr.write(text + "\n")
    raise SystemExit(2)
