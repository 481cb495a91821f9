"""Walk located YAML data, collect every problem with its file, line and key path."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

from haops.errors import InventoryError, Problem
from haops.inventory.values import show
from haops.inventory.source import LocatedDocument, Path

MISSING: Any = object()


def format_path(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class Reader:
    """Typed access to located data; problems are collected, not raised one by one."""

    def __init__(self, document: LocatedDocument) -> None:
        self.document = document
        self.problems: list[Problem] = []

    def problem(self, path: Path, message: str) -> None:
        line = self.document.line(path)
        self.problems.append(Problem(self.document.filename, line, format_path(path), message))

    def raise_if_any(self) -> None:
        if self.problems:
            self.problems.sort(key=lambda p: (p.line or 0, p.path))
            raise InventoryError(self.problems)

    def mapping(self, value: Any, path: Path, allowed: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any]:
        """`value` as a mapping; unknown keys and missing required keys are problems."""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping of keys to values, got {show(value)}")
            return {}
        allowed = list(allowed)
        for key in value:
            if key not in allowed:
                self.problem(path + (key,), unknown_key_message(key, allowed))
        for key in required:
            if key not in value:
                self.problem(path, f"missing required key {key!r}")
        return {key: item for key, item in value.items() if key in allowed}

    def sequence(self, value: Any, path: Path) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"must be a list, got {show(value)}")
            return []
        return value

    def field(self, data: dict[str, Any], path: Path, key: str, check: Callable[[Any], Any], default: Any = MISSING) -> Any:
        """The checked value of data[key]; the default when absent; None after a problem."""
        if key not in data:
            if default is MISSING:
                self.problem(path, f"missing required key {key!r}")
                return None
            return default
        return self.check(data[key], path + (key,), check)

    def check(self, value: Any, path: Path, check: Callable[[Any], Any]) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None


def unknown_key_message(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}"
