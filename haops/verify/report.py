"""verify results as a Rich table, JSON, or JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import asdict
from pathlib import Path
from typing import Any

from haops.verify.result import FAIL, PASS, SKIP, CheckResult

STYLE = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}


def as_json(results: list[CheckResult]) -> list[dict[str, Any]]:
    return [asdict(r) | {"seconds": round(r.seconds, 3)} for r in results]


def table(results: list[CheckResult]) -> Any:
    from rich.table import Table
    from rich.text import Text

    view = Table(title="haops verify")
    for column in ("check", "subject", "expected", "observed", "result", "seconds"):
        view.add_column(column, justify="right" if column == "seconds" else "left", overflow="fold")
    for r in results:
        cells = [Text(value) for value in (r.check, r.subject, r.expected, r.observed)]
        view.add_row(*cells, Text(r.status, STYLE[r.status]), f"{r.seconds:.2f}")
    return view


def summary(results: list[CheckResult]) -> str:
    counts = {status: sum(r.status == status for r in results) for status in (PASS, FAIL, SKIP)}
    return f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped"


def write_junit(results: list[CheckResult], path: Path) -> None:
    suite = ElementTree.Element("testsuite", name="haops verify", tests=str(len(results)),
                                failures=str(sum(r.status == FAIL for r in results)),
                                skipped=str(sum(r.status == SKIP for r in results)),
                                time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ElementTree.SubElement(suite, "testcase", classname=f"haops.verify.{r.check}", name=r.subject, time=f"{r.seconds:.3f}")
        text = f"expected: {r.expected}\nobserved: {r.observed}"
        if r.status == FAIL:
            ElementTree.SubElement(case, "failure", message=r.observed).text = text
        elif r.status == SKIP:
            ElementTree.SubElement(case, "skipped", message=r.observed)
        else:
            ElementTree.SubElement(case, "system-out").text = text
    ElementTree.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
