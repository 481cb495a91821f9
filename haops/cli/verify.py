"""`haops verify`: prove the cluster balances, sticks, resolves and survives a dead backend."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from haops.cli.common import InventoryPath, JsonFlag, load_inventory
from haops.cli.output import err, out


def verify(
    inventory: Path = InventoryPath,
    as_json: bool = JsonFlag,
    junit: Path | None = typer.Option(None, "--junit", help="Also write the results as JUnit XML to this file."),
    faults: bool | None = typer.Option(None, "--faults/--no-faults", help="Stop a backend and slow links to test failover "
                                       "[default: only when the inventory's lab is running]."),
    as_pytest: bool = typer.Option(False, "--pytest", help="Run the checks as a pytest suite (pass pytest options after --)."),
    pytest_args: list[str] = typer.Argument(None, help="Options for pytest, with --pytest."),
    source: str | None = typer.Option(None, "--from", help="Send the traffic probes from this inventory host, or "
                                      "'local' (this machine; only to the inventory's service addresses) "
                                      "[default: the first host in group 'client']."),
) -> None:
    """Check state on every host (testinfra) and measure live traffic against the inventory."""
    inv = load_inventory(inventory)
    if junit is not None and not junit.parent.resolve().is_dir():
        from haops.errors import UserError

        raise UserError(f"--junit {junit}: folder {junit.parent} does not exist")
    if as_pytest:
        raise typer.Exit(run_pytest(inventory, faults, pytest_args or [], source))
    from haops.session import settings_for
    from haops.verify import report
    from haops.verify.run import verify as run_verify

    from haops.verify.run import no_source_note

    note = no_source_note(inv, source)
    if note is not None:
        err().print(f"[yellow]note:[/] {note}", highlight=False)
    with err().status("verifying") as status:
        results = run_verify(inv, settings_for(inv), faults, lambda text: status.update(text), source)
    if junit is not None:
        report.write_junit(results, junit)
    if as_json:
        out().print_json(json.dumps(report.as_json(results)))
    else:
        out().print(report.table(results))
        out().print(report.summary(results))
    raise typer.Exit(1 if any(r.failed for r in results) else 0)


def run_pytest(inventory: Path, faults: bool | None, args: list[str], source: str | None = None) -> int:
    import pytest

    from haops.verify import pytest_suite

    os.environ["HAOPS_VERIFY_INVENTORY"] = str(inventory)
    if faults is not None:
        os.environ["HAOPS_VERIFY_FAULTS"] = "1" if faults else "0"
    if source is not None:
        os.environ["HAOPS_VERIFY_FROM"] = source
    code = pytest.main([pytest_suite.__file__, "-p", "no:cacheprovider", "-q", *args])
    sys.stdout.flush()
    return int(code)
