"""Consoles for results (stdout) and for errors and progress (stderr)."""

from __future__ import annotations

from functools import cache

from rich.console import Console


@cache
def out() -> Console:
    return Console(highlight=False, soft_wrap=True)


@cache
def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    err().print(f"[bold red]error:[/] {message}", markup=True)
