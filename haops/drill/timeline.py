"""A drill as text: one row of cells for the requests, event markers under it, and a legend.

    lb-failure drill · web · 200 req/s
    2000 sent · 160 failed · longest gap 0.800 s (4.000 → 4.800 s)
    0 s                                 5.0 s                         10.0 s
    ████████████████████████████▒×××××▒█████████████████████████████████████
                                1     2               5   6
                                      3
                                      4
    █ ok  × failed  ▒ both  · one cell = 139 ms
    1    4.000 s  fault        lb1       kill -9 keepalived
    2    4.750 s  vip_added    lb2       10.213.0.100/24 on eth0
    ...

Plain text with no colour codes, so it reads the same with NO_COLOR, in a pipe or in a log;
`rich_timeline` adds colour for terminals that want it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from haops.drill.analysis import Bucket, bucket_counts, bucket_index, longest_gap, record_span
from haops.drill.record import (
    DETECT, FAILBACK, FAULT, FIRST_OK, GARP, NEIGH, NOTE, RESTORE, VIP_ADDED, VIP_REMOVED, VRRP_ADVERT,
    DrillRecord, Event,
)

if TYPE_CHECKING:
    from rich.text import Text


OK_CELL, FAILED_CELL, MIXED_CELL, EMPTY_CELL = "█", "×", "▒", " "

SHORT_NAMES = {
    FAULT: "fault", DETECT: "detected", VRRP_ADVERT: "VRRP advert", VIP_ADDED: "VIP added",
    VIP_REMOVED: "VIP removed", GARP: "GARP", NEIGH: "ARP entry moved", FIRST_OK: "first ok",
    RESTORE: "restore", FAILBACK: "failback", NOTE: "note",
}
MARKERS = "123456789abcdefghijklmnopqrstuvwxyz"
OVERFLOW_MARKER = "*"
NOTE_LABEL_CHARS = 32


def event_label(event: Event) -> str:
    """A few words for an event: 'VIP added on lb2', 'first ok', or a note's own text."""
    name = SHORT_NAMES.get(event.kind, event.kind)
    if event.kind == NOTE and event.detail:
        name = shorten(event.detail, NOTE_LABEL_CHARS)
    return f"{name} on {event.host}" if event.host else name


def title(record: DrillRecord) -> str:
    return f"{record.drill} drill · {record.service} · {record.rate:g} req/s"


def totals(record: DrillRecord) -> str:
    """'2000 sent · 160 failed · longest gap 0.800 s (4.000 → 4.800 s)'."""
    failed = sum(not r.ok for r in record.requests)
    gap = longest_gap(record.requests)
    gap_text = f"longest gap {gap[1] - gap[0]:.3f} s ({gap[0]:.3f} → {gap[1]:.3f} s)" if gap else "no gap"
    return f"{len(record.requests)} sent · {failed} failed · {gap_text}"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def stagger_rows(intervals: Sequence[tuple[float, float]], min_gap: float = 0.0) -> list[int]:
    """A row for each (start, end) interval, in input order, so that no two in a row come closer
    than min_gap; each interval takes the lowest row it fits in, earliest start first."""
    rows = [0] * len(intervals)
    row_ends: list[float] = []
    for i in sorted(range(len(intervals)), key=lambda i: intervals[i][0]):
        start, end = intervals[i]
        row = next((r for r, row_end in enumerate(row_ends) if row_end + min_gap <= start), len(row_ends))
        if row == len(row_ends):
            row_ends.append(end)
        row_ends[row] = end
        rows[i] = row
    return rows


def in_time_order(events: Sequence[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.t)


def marker(index: int) -> str:
    return MARKERS[index] if index < len(MARKERS) else OVERFLOW_MARKER


def cell_glyph(bucket: Bucket) -> str:
    if bucket.ok and bucket.failed:
        return MIXED_CELL
    if bucket.failed:
        return FAILED_CELL
    return OK_CELL if bucket.ok else EMPTY_CELL


def axis_row(span: float, width: int) -> str:
    """'0 s' at the left edge, the middle time at the centre and the end time at the right."""
    row = [" "] * width
    labels = [(0, "0 s", "left"), (width, f"{span:.1f} s", "right")]
    if width >= 30:
        labels.append((width // 2, f"{span / 2:.1f} s", "left"))
    for column, text, align in labels:
        start = column - len(text) if align == "right" else column
        row[max(start, 0): max(start, 0) + len(text)] = text
    return "".join(row)[:width].rstrip()


def marker_rows(events: Sequence[Event], span: float, width: int) -> list[str]:
    """Each event's marker under its cell; markers that would touch move down a row."""
    columns = [bucket_index(e.t, span / width, width) for e in events]
    rows = stagger_rows([(c, c + 1) for c in columns], min_gap=1)
    lines = [[" "] * width for _ in range(max(rows, default=-1) + 1)]
    for index, (column, row) in enumerate(zip(columns, rows)):
        lines[row][column] = marker(index)
    return ["".join(line).rstrip() for line in lines]


def legend_rows(events: Sequence[Event], width: int) -> list[str]:
    return [
        shorten(f"{marker(i)} {e.t:8.3f} s  {e.kind:<12} {e.host:<9} {e.detail}".rstrip(), width)
        for i, e in enumerate(events)
    ]


def key_row(span: float, width: int) -> str:
    cell_ms = span / width * 1000
    return shorten(f"{OK_CELL} ok  {FAILED_CELL} failed  {MIXED_CELL} both  · one cell = {cell_ms:.0f} ms", width)


def terminal_timeline(record: DrillRecord, width: int = 72) -> list[str]:
    """The drill in `width` columns: a cell per 1/width of the run, ok/failed/both/none, then the
    events' markers under the cells they happened in, and a legend of the events."""
    if width < 1:
        raise ValueError(f"a timeline needs at least one column, not {width}")
    header = [shorten(title(record), width), shorten(totals(record), width)]
    if not record.requests and not record.events:
        return [*header, "no requests or events recorded"]
    span = record_span(record) or 1.0
    events = in_time_order(record.events)
    cells = bucket_counts(record.requests, span, span / width)
    return [
        *header,
        axis_row(span, width),
        "".join(cell_glyph(cell) for cell in cells),
        *marker_rows(events, span, width),
        key_row(span, width),
        *legend_rows(events, width),
    ]


def rich_timeline(record: DrillRecord, width: int = 72) -> Text:
    """The same lines with ok cells green and failed ones red; Rich drops the colour by itself
    for NO_COLOR and for output that is not a terminal."""
    from rich.text import Text

    text = Text("\n".join(terminal_timeline(record, width)))
    text.highlight_regex(f"{OK_CELL}+", "green")
    text.highlight_regex(f"{FAILED_CELL}+", "bold red")
    text.highlight_regex(f"{MIXED_CELL}+", "yellow")
    return text
