"""The terminal timeline: cells, markers and legend where a person counting columns puts them."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from haops.drill.record import NOTE, Event
from haops.drill.timeline import event_label, rich_timeline, stagger_rows, terminal_timeline
from tests.drill.builders import EVENTS, empty_record, lb_failure_record, steady_requests

pytestmark = pytest.mark.unit
CELLS_ROW = 3  # title, totals, time axis, then the cells


def columns_of(row: str, glyph: str) -> set[int]:
    return {i for i, c in enumerate(row) if c == glyph}


@pytest.mark.parametrize("width, failed, mixed", [
    # 10 s in 72 cells of 10/72 s: cell c is [c*10/72, (c+1)*10/72). The failures [4.0, 4.8) fill
    # cells 29 (from 4.028 s) to 33 (until 4.722 s); 28 (3.889-4.028) and 34 (4.722-4.861) hold both.
    (72, set(range(29, 34)), {28, 34}),
    # cells of 0.25 s: 16 (4.0-4.25) to 18 fail, 19 (4.75-5.0) holds both.
    (40, {16, 17, 18}, {19}),
    # cells of 0.1 s: 40 (4.0-4.1) to 47 (4.7-4.8), nothing shared.
    (100, set(range(40, 48)), set()),
])
def test_failed_cells_are_exactly_where_the_failures_are(width: int, failed: set[int], mixed: set[int]) -> None:
    cells = terminal_timeline(lb_failure_record(), width)[CELLS_ROW]
    assert len(cells) == width
    assert columns_of(cells, "×") == failed
    assert columns_of(cells, "▒") == mixed
    assert columns_of(cells, "█") == set(range(width)) - failed - mixed


def test_markers_sit_under_their_cells_and_close_ones_stack() -> None:
    lines = terminal_timeline(lb_failure_record(), 72)
    marker_rows = lines[CELLS_ROW + 1: CELLS_ROW + 4]
    found = {char: (row, col) for row, line in enumerate(marker_rows) for col, char in enumerate(line) if char != " "}
    # Column = floor(t * 72 / 10): 4.0 -> 28, 4.75, 4.76 and 4.8 -> 34, 7.0 -> 50, 7.5 -> 54.
    assert found == {"1": (0, 28), "2": (0, 34), "3": (1, 34), "4": (2, 34), "5": (0, 50), "6": (0, 54)}
    assert lines[CELLS_ROW + 4].startswith("█ ok")


def test_legend_lists_each_event_time_kind_and_host_in_time_order() -> None:
    record = lb_failure_record(events=list(reversed(EVENTS)))
    legend = terminal_timeline(record, 72)[-len(EVENTS):]
    assert legend[0] == "1    4.000 s  fault        lb1       kill -9 keepalived"
    assert legend[1] == "2    4.750 s  vip_added    lb2       10.213.0.100/24 on eth0"
    assert legend[3] == "4    4.800 s  first_ok     client"
    assert legend[5] == "6    7.500 s  failback     lb1"


def test_header_gives_totals_and_the_longest_gap() -> None:
    title, totals = terminal_timeline(lb_failure_record())[:2]
    assert title == "lb-failure drill · web · 200 req/s"
    assert totals == "2000 sent · 160 failed · longest gap 0.800 s (4.000 → 4.800 s)"


@pytest.mark.parametrize("width", [20, 40, 72])
def test_no_line_is_wider_than_asked(width: int) -> None:
    long_note = Event(5.0, NOTE, "lb1", "a very long note that would run far past the right edge of any terminal")
    record = lb_failure_record(events=[*EVENTS, long_note])
    assert max(len(line) for line in terminal_timeline(record, width)) <= width


def test_no_failures_show_only_ok_cells() -> None:
    lines = terminal_timeline(lb_failure_record(requests=steady_requests(99, 99)), 72)
    assert lines[1] == "2000 sent · 0 failed · no gap"
    assert lines[CELLS_ROW] == "█" * 72


def test_empty_record_says_so() -> None:
    assert terminal_timeline(empty_record()) == [
        "lb-failure drill · web · 200 req/s", "0 sent · 0 failed · no gap", "no requests or events recorded"]


def test_events_without_requests_still_draw_markers() -> None:
    record = empty_record()
    record.events.append(Event(2.0, "fault", "lb1"))
    lines = terminal_timeline(record, 10)
    assert lines[CELLS_ROW] == " " * 10
    assert lines[CELLS_ROW + 1] == "         1"  # the fault is the span's last moment: the last cell


def test_stagger_rows_puts_each_interval_in_the_lowest_row_with_room() -> None:
    intervals = [(0.0, 1.0), (0.5, 2.0), (2.0, 3.0), (1.0, 2.0)]
    assert stagger_rows(intervals) == [0, 1, 0, 0]
    assert stagger_rows(intervals, min_gap=0.5) == [0, 1, 0, 2]
    assert stagger_rows([]) == []


def test_event_labels_are_short_and_name_the_host() -> None:
    assert [event_label(e) for e in EVENTS] == [
        "fault on lb1", "VIP added on lb2", "GARP on lb2", "first ok on client", "restore on lb1", "failback on lb1"]
    assert event_label(Event(1.0, NOTE, "", "reload 3 of 50")) == "reload 3 of 50"


def test_rich_timeline_is_the_plain_text_without_a_terminal_or_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    record = lb_failure_record()
    plain = "\n".join(terminal_timeline(record)) + "\n"

    def printed(force_terminal: bool | None = None) -> str:
        out = io.StringIO()
        Console(file=out, width=100, force_terminal=force_terminal).print(rich_timeline(record))
        return out.getvalue()

    assert printed() == plain  # not a terminal
    assert re.search(r"\x1b\[[0-9;]*31m×", printed(force_terminal=True)), "failed cells red on a terminal"
    monkeypatch.setenv("NO_COLOR", "1")
    assert re.sub(r"\x1b\[[0-9;]*m", "", printed(force_terminal=True)) == plain
    assert "31m" not in printed(force_terminal=True)


def test_markers_in_neighbouring_columns_take_separate_rows_so_they_never_read_as_one_number() -> None:
    # 10 s in 10 cells: 1.0 s is column 1, 2.0 s column 2 (touching), 4.0 s column 4 (a blank between).
    events = [Event(1.0, "fault", "lb1"), Event(2.0, "vip_added", "lb2"), Event(4.0, "restore", "lb1")]
    lines = terminal_timeline(lb_failure_record(events=events), 10)
    assert lines[CELLS_ROW + 1: CELLS_ROW + 3] == [" 1  3", "  2"]
