"""Errors a user can cause. The CLI prints them on one screen and exits 2."""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """A mistake in what the user asked for: bad input, bad inventory, missing file."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an inventory, located as precisely as we can."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class InventoryError(UserError):
    """Every problem found in one inventory, reported together."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        header = f"inventory has {count} problem{'s' if count != 1 else ''}:"
        super().__init__("\n".join([header, *(f"  {p}" for p in problems)]))
