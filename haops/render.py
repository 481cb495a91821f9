"""The Jinja2 environment shared by every target."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from haops.inventory.model import endpoint
from haops.user_cache import cache_dir


def template_root() -> Path:
    """Templates ship inside the wheel as haops/templates; a source checkout keeps them at top level."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


def duration(milliseconds: int) -> str:
    """Milliseconds in the largest whole unit: 1500 -> '1500ms', 2000 -> '2s', 60000 -> '1m'."""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def whole_seconds(milliseconds: int) -> int:
    """Round up to whole seconds, at least 1, for daemons that only take seconds."""
    return max(1, -(-milliseconds // 1000))


def bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (~20 ms a run saved); Jinja2 checks each entry
    against its template's source, so an edited template is compiled afresh."""
    directory = cache_dir() / "jinja2"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(directory)) if os.access(directory, os.W_OK) else None


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_root())),
        bytecode_cache=bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["duration"] = duration
    env.filters["seconds"] = whole_seconds
    env.filters["endpoint"] = endpoint
    return env


def render_template(name: str, **variables: Any) -> str:
    return environment().get_template(name).render(**variables)
