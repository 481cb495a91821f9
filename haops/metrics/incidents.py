"""Incidents from an incident log (CSV or JSON rows of start and end) or derived from a drill record's requests.

Parsing works on text and data, so tests need no files; load_segments is the only part that reads files.
Every mistake in the input is a UserError naming file:line, all of them at once.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from haops.drill.analysis import failure_runs
from haops.drill.record import FAILURES, OK, DrillRecord, Request
from haops.errors import UserError
from haops.metrics.model import EPOCH, PROBE, Incident, Segment

EPOCH_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")
TIMESTAMP_HELP = "use ISO 8601 with an offset (2024-03-01T12:00:00Z, 2024-03-01T13:00:00+01:00) or epoch seconds"


class InputError(UserError):
    """Every problem found in the input files, reported together."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in the input:"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))


@dataclass(frozen=True)
class Window:
    start: float
    end: float


def parse_timestamp(value: object) -> float:
    """Epoch seconds from epoch seconds (a number or its digits) or ISO 8601 with Z or an offset."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a timestamp: {TIMESTAMP_HELP}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a timestamp: {TIMESTAMP_HELP}")
        return float(value)
    text = str(value).strip()
    if EPOCH_SECONDS.fullmatch(text):
        return float(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a timestamp: {TIMESTAMP_HELP}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add Z or +HH:MM, so it is not read in this machine's time zone")
    return moment.timestamp()


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


# Incident logs ------------------------------------------------------------------------------------------------


def parse_incident_log(text: str, name: str) -> list[Incident]:
    """Incidents of a CSV or JSON log; raises InputError with every bad row's name:line, in line order."""
    problems: list[tuple[int, str]] = []
    if text.lstrip().startswith(("[", "{")):
        rows = json_rows(text, name)
    else:
        rows, problems = csv_rows(text, name)
    incidents: list[Incident] = []
    for line, row in rows:
        try:
            incidents.append(incident_of_row(row, f"{name}:{line}"))
        except ValueError as exc:
            problems.append((line, str(exc)))
    if problems:
        raise InputError([f"{name}:{line}: {message}" for line, message in sorted(problems)])
    return incidents


def csv_rows(text: str, name: str) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str]]]:
    """(line number, row) for each row after the header, and (line number, problem) for rows of the wrong width.

    Blank lines and lines starting with # are skipped; one incident per line."""
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError([f"{name}: no header line; an incident log in CSV starts with: start,end[,service]"])
    header_line, header = lines[0]
    columns = [cell.strip().lower() for cell in next(csv.reader([header]))]
    missing = [column for column in ("start", "end") if column not in columns]
    if missing:
        raise InputError([f"{name}:{header_line}: the header has no {' or '.join(missing)} column; "
                          f"found {', '.join(columns)}; expected start,end[,service]"])
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[tuple[int, str]] = []
    for number, line in lines[1:]:
        cells = next(csv.reader([line]))
        if len(cells) == len(columns):
            rows.append((number, dict(zip(columns, cells))))
        else:
            problems.append((number, f"{len(cells)} fields, the header has {len(columns)} ({','.join(columns)})"))
    return rows, problems


def json_rows(text: str, name: str) -> list[tuple[int, Any]]:
    """(line number, element) for each element of a top-level JSON list, located where the element begins."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError([f"{name}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})"]) from None
    if not isinstance(data, list):
        raise InputError([f"{name}:1: an incident log in JSON is a list of objects "
                          '[{"start": ..., "end": ..., "service": ...}, ...]'])
    decoder = json.JSONDecoder()
    position = skip_space(text, text.index("[") + 1)
    rows: list[tuple[int, Any]] = []
    for _ in data:
        element, after = decoder.raw_decode(text, position)
        rows.append((text.count("\n", 0, position) + 1, element))
        position = skip_space(text, after)
        position = skip_space(text, position + 1)  # past the comma (or the closing bracket, after the last)
    return rows


def skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def incident_of_row(row: Any, where: str) -> Incident:
    if not isinstance(row, dict):
        raise ValueError(f"a row is an object with start and end, not {type(row).__name__}")
    lowered = {str(key).strip().lower(): value for key, value in row.items()}
    missing = [key for key in ("start", "end") if lowered.get(key) in (None, "")]
    if missing:
        raise ValueError(f"no {' or '.join(missing)}")
    start = parse_field(lowered, "start")
    end = parse_field(lowered, "end")
    if end <= start:
        raise ValueError(f"end {lowered['end']} is not after start {lowered['start']}")
    service = lowered.get("service") or ""
    if not isinstance(service, str):
        raise ValueError(f"service is {service!r}, not a name")
    return Incident(start=start, end=end, service=service.strip(), where=where)


def parse_field(row: dict[str, Any], key: str) -> float:
    try:
        return parse_timestamp(row[key])
    except ValueError as exc:
        raise ValueError(f"{key} {exc}") from None


def check_no_overlaps(incidents: Iterable[Incident]) -> None:
    """Two incidents of one service that overlap are one outage logged twice, or a typo: refuse both rows."""
    problems: list[str] = []
    for service, group in by_service(incidents).items():
        latest: Incident | None = None  # the incident ending last so far
        for incident in group:
            if latest is not None and incident.start < latest.end:
                label = f"service {service}" if service else "no service"
                problems.append(f"{incident.where} overlaps {latest.where} ({label}): it starts at {iso(incident.start)}, "
                                f"before the other ends at {iso(latest.end)}")
            if latest is None or incident.end > latest.end:
                latest = incident
    if problems:
        raise InputError(problems)


def by_service(incidents: Iterable[Incident]) -> dict[str, list[Incident]]:
    groups: dict[str, list[Incident]] = {}
    for incident in sorted(incidents, key=lambda i: (i.start, i.end)):
        groups.setdefault(incident.service, []).append(incident)
    return groups


def log_segments(incidents: Sequence[Incident], window: Window, source: str) -> tuple[list[Segment], list[str]]:
    """One segment per service the log names, over the window, incidents clipped to it.

    The notes say which incidents were cut at the window's edge or left out, being wholly outside it."""
    inside = [clip(i, window) for i in incidents if overlaps(i, window)]
    outside = [i.where for i in incidents if not overlaps(i, window)]
    notes = [f"{i.where} is cut at the window's edge; only its part inside the window counts" for i in inside if i.clipped]
    if outside:
        notes.append(f"{len(outside)} incident{'s' if len(outside) != 1 else ''} outside the window left out: {', '.join(outside)}")
    grouped = by_service(inside)
    services = sorted({i.service for i in incidents}) or [""]
    segments = [Segment(service, window.start, window.end, EPOCH, source, tuple(grouped.get(service, [])))
                for service in services]
    return segments, notes


def overlaps(incident: Incident, window: Window) -> bool:
    return incident.end > window.start and incident.start < window.end


def clip(incident: Incident, window: Window) -> Incident:
    start, end = max(incident.start, window.start), min(incident.end, window.end)
    if (start, end) == (incident.start, incident.end):
        return incident
    return replace(incident, start=start, end=end, clipped=True)


def parse_window(window_from: str | None, window_to: str | None) -> Window:
    if window_from is None or window_to is None:
        raise UserError("an incident log records failures only, so give the window it covers with --from and --to "
                        "(ISO 8601 with an offset, or epoch seconds): MTTF and availability count the uptime before "
                        "the first incident and after the last, which the log cannot tell")
    start = parse_option("--from", window_from)
    end = parse_option("--to", window_to)
    if end <= start:
        raise UserError(f"--to {window_to} is not after --from {window_from}")
    return Window(start, end)


def parse_option(option: str, value: str) -> float:
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise UserError(f"{option} {exc}") from None


# Drill records ------------------------------------------------------------------------------------------------


def outages(requests: Sequence[Request], end: float) -> list[tuple[float, float, bool]]:
    """(start, end, still down at the end) of each run of failed requests, by start time: the drill's
    own failure runs, except that one still failing when the probe stopped lasts to the window's `end`."""
    runs = failure_runs(requests)
    spans = [(start, stop, False) for start, stop in runs]
    last_ok = max((r.t for r in requests if r.ok), default=None)
    if runs and (last_ok is None or last_ok < runs[-1][0]):
        spans[-1] = (runs[-1][0], end, True)
    return spans


def record_segment(record: DrillRecord, source: str) -> Segment:
    """The probe's run from t = 0 as a window, with an incident per outage its requests show."""
    end = max([record.duration, *(r.t for r in record.requests)])
    incidents = tuple(Incident(start, stop, record.service, f"{source} ({record.drill})", open_at_end)
                      for start, stop, open_at_end in outages(record.requests, end))
    return Segment(record.service, 0.0, end, PROBE, source, incidents,
                   requests_sent=len(record.requests), requests_ok=sum(r.ok for r in record.requests),
                   resolution=1 / record.rate if record.rate > 0 else None)


def parse_drill_record(data: dict[str, Any], name: str) -> DrillRecord:
    try:
        record = DrillRecord.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError([f"{name}: not a drill record as DrillRecord.save writes it: {type(exc).__name__} {exc}"]) from None
    problems = [problem for index, request in enumerate(record.requests)
                if (problem := request_problem(request, f"{name}: request {index}"))]
    if not record.requests:
        problems.append(f"{name}: the drill record has no requests; there is nothing to measure")
    if record.duration <= 0:
        problems.append(f"{name}: duration {record.duration} is not positive")
    if problems:
        raise InputError(problems)
    return record


def request_problem(request: Request, where: str) -> str:
    if isinstance(request.t, bool) or not isinstance(request.t, (int, float)) or not math.isfinite(request.t):
        return f"{where}: t is {request.t!r}, not seconds"
    if request.outcome not in (OK, *FAILURES):
        return f"{where}: outcome {request.outcome!r}, expected {OK} or one of {', '.join(FAILURES)}"
    return ""


# Files ----------------------------------------------------------------------------------------------------------


def load_segments(paths: Sequence[Path], window_from: str | None, window_to: str | None) -> tuple[list[Segment], list[str]]:
    """Segments from drill records, or from incident logs over the --from/--to window, and notes about them."""
    paths = list(dict.fromkeys(paths))  # a file named twice counts once
    inputs = {path: classify(read_text(path), str(path)) for path in paths}
    records = {path: data for path, data in inputs.items() if isinstance(data, dict)}
    if records and len(records) != len(paths):
        raise UserError(f"give drill records or incident logs, not both: {', '.join(map(str, records))} "
                        f"{'is a drill record' if len(records) == 1 else 'are drill records'}, "
                        f"{', '.join(str(p) for p in paths if p not in records)} not")
    if records:
        if window_from is not None or window_to is not None:
            raise UserError("--from and --to set an incident log's window; a drill record's window is its probe run, "
                            "from t = 0 to its duration")
        return [record_segment(parse_drill_record(data, str(path)), str(path)) for path, data in records.items()], []
    window = parse_window(window_from, window_to)
    incidents: list[Incident] = []
    problems: list[str] = []
    for path, text in inputs.items():
        try:
            incidents.extend(parse_incident_log(str(text), str(path)))
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    check_no_overlaps(incidents)
    return log_segments(incidents, window, ", ".join(map(str, paths)))


def classify(text: str, name: str) -> dict[str, Any] | str:
    """A drill record's data (a JSON object with requests), or the text of an incident log (CSV or a JSON list)."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError([f"{name}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})"]) from None
    if not isinstance(data, dict) or "requests" not in data:
        raise InputError([f"{name}:1: a JSON object without requests: neither a drill record (DrillRecord.save) "
                          'nor an incident log (a list of {"start": ..., "end": ...} rows)'])
    return data


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it: {exc}") from None
