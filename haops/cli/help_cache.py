"""Every command's help, rendered once by the real Typer app and kept on disk, so `haops X --help`
answers without importing Typer (the same idea as Python's own bytecode cache).

The Typer app is the one source of truth: the cache holds exactly what it printed, under a key
made from every haops source file and Typer's own (name, size, mtime). Changing or adding a
command changes the key, so the next help request renders afresh; a cache can never drift.
Help is rendered for a terminal at least DEFAULT_COLUMNS wide (and for pipes); narrower ones
always take the real, slower path.

Stdlib only: this module runs before anything heavy is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import haops
from haops.user_cache import cache_dir

HELP_FLAGS = ("--help", "-h")
DEFAULT_COLUMNS = 80  # Click renders help at min(columns, 80) - 2
HELP_WIDTH = DEFAULT_COLUMNS - 2
PACKAGE = Path(haops.__file__).parent


def help_request(args: list[str]) -> tuple[str, ...] | None:
    """The command path whose help `args` asks for (`lab up -h`), or None for anything else."""
    if args and args[-1] in HELP_FLAGS and not any(a.startswith("-") for a in args[:-1]):
        return tuple(args[:-1])
    return None


def _sources() -> Iterator[Path]:
    yield from sorted(PACKAGE.rglob("*.py"))
    spec = find_spec("typer")
    if spec is not None and spec.origin is not None:
        yield Path(spec.origin)


def cache_key() -> str:
    digest = hashlib.sha256(f"{haops.__version__} {sys.version} {PACKAGE}".encode())
    for path in _sources():
        stat = path.stat()
        digest.update(f"{path} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def cache_file() -> Path:
    return cache_dir() / f"help-{cache_key()}.json"


def wide_enough() -> bool:
    import shutil

    return shutil.get_terminal_size().columns >= DEFAULT_COLUMNS


def cached_help(path: tuple[str, ...]) -> str | None:
    """The help text of the command at `path` as Typer printed it, if the cache is current."""
    if not wide_enough():
        return None
    try:
        texts = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    text = texts.get(" ".join(path)) if isinstance(texts, dict) else None
    return text if isinstance(text, str) else None


def store(texts: dict[str, str]) -> None:
    """Write the cache atomically and drop older ones; a cache that cannot be written is no error."""
    import tempfile

    try:
        target = cache_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent, delete=False, suffix=".tmp") as tmp:
            json.dump(texts, tmp)
        os.replace(tmp.name, target)
        for old in target.parent.glob("help-*.json"):
            if old != target:
                old.unlink(missing_ok=True)
    except OSError:
        pass
