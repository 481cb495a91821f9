"""Consoles for results (stdout) and for errors and progress (stderr)."""

from __future__ import annotations

import sys
from functools import cache

from rich.console import Console

# Rich assumes 80 columns when output goes to a file or pipe; tables of measurements need more.
PIPE_WIDTH = 160


@cache
def out() -> Console:
    return Console(highlight=False, emoji=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)


@cache
def err() -> Console:
    return Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def fail(message: str) -> None:
    err().print(f"[bold red]error:[/] {message}", markup=True)
