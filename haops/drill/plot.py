"""A drill as a picture: requests per 100 ms and each request's latency, with the events marked.

matplotlib is imported inside the functions so that loading haops (and `haops --help`) does not
pay for it. The figure is drawn on an Agg canvas of its own, never through pyplot, so it works
headless and leaves no global figure behind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haops.drill.analysis import BUCKET_SECONDS, bucket_counts, longest_gap, record_span
from haops.drill.record import (
    FAILURES, FAULT, FIRST_OK, NOTE, RESTORE, DrillRecord, Event,
)
from haops.drill.timeline import event_label, in_time_order, stagger_rows, title, totals

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100

OK_COLOUR = "#7fa7d4"
OK_DOT_COLOUR = "#2b6cb0"
FAILED_COLOUR = "#d55e00"
GAP_COLOUR = "#d55e00"
FAULT_SPAN_COLOUR = "#e6e6e6"
CAUSE_COLOUR = "#a50f15"  # what the drill did
CLIENT_COLOUR = "#00875a"  # what the client saw
CLUSTER_COLOUR = "#6a3d9a"  # how the cluster reacted
NOTE_COLOUR = "#555555"
EVENT_COLOURS = {FAULT: CAUSE_COLOUR, RESTORE: CAUSE_COLOUR, FIRST_OK: CLIENT_COLOUR, NOTE: NOTE_COLOUR}
FAILURE_MARKERS = {"timeout": "x", "refused": "v", "reset": "^", "http_error": "s", "unreachable": "D"}

# Bars and stairs draw at 1, event lines above them, request dots above the lines.
EVENT_LINE_ZORDER = 2.0
DOT_ZORDER = 3.0
LABEL_FONT_SIZE = 8.5
LABEL_PAD_PX = 4
LABEL_GAP_PX = 8
LATENCY_FLOOR_MS = 0.1  # a refusal can take "0 s"; a log axis needs something above zero
EMPTY_LATENCY_RANGE_MS = (0.1, 1000.0)


@dataclass(frozen=True)
class Layout:
    """Where things go, in inches from the figure's bottom left; axes take what is left."""

    label_rows: int
    width: float = 12.0
    left: float = 0.8
    right: float = 1.9  # the legends live here
    title: float = 0.75
    row: float = 0.22
    counts: float = 2.1
    between: float = 0.15
    latency: float = 2.5
    bottom: float = 0.55

    @property
    def strip(self) -> float:
        return self.label_rows * self.row + 0.1

    @property
    def height(self) -> float:
        return self.title + self.strip + self.counts + self.between + self.latency + self.bottom

    @property
    def axes_width_px(self) -> float:
        return (self.width - self.left - self.right) * DPI

    def rect(self, bottom: float, height: float) -> tuple[float, float, float, float]:
        return (self.left / self.width, bottom / self.height,
                (self.width - self.left - self.right) / self.width, height / self.height)

    def latency_rect(self) -> tuple[float, float, float, float]:
        return self.rect(self.bottom, self.latency)

    def counts_rect(self) -> tuple[float, float, float, float]:
        return self.rect(self.bottom + self.latency + self.between, self.counts)

    def row_y(self, row: int) -> float:
        """The centre of label row `row` (0 is nearest the data), as a fraction of the height."""
        strip_bottom = self.bottom + self.latency + self.between + self.counts
        return (strip_bottom + 0.05 + (row + 0.5) * self.row) / self.height

    def title_y(self) -> float:
        return (self.height - 0.2) / self.height


@dataclass(frozen=True)
class Label:
    text: str
    row: int
    align: str  # "left": the text starts at its line; "right": it ends there


def drill_style() -> AbstractContextManager[None]:
    """Fixed SVG ids, matplotlib's bundled font, and text kept as text: the same record gives the
    same bytes, and the SVG's labels can be searched and selected."""
    import matplotlib

    return matplotlib.rc_context({
        "svg.hashsalt": "haops-drill",
        "svg.fonttype": "none",
        "font.family": "DejaVu Sans",
        "font.size": 9.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


def save_timeline(record: DrillRecord, stem: Path) -> list[Path]:
    """Write the drill's timeline picture as <stem>.png and <stem>.svg; return both paths."""
    paths = [stem.with_name(stem.name + suffix) for suffix in (".png", ".svg")]
    with drill_style():
        figure = timeline_figure(record)
        for path in paths:
            metadata = {"Date": None} if path.suffix == ".svg" else {}
            figure.savefig(path, format=path.suffix[1:], dpi=DPI, metadata=metadata)
    return paths


def timeline_figure(record: DrillRecord) -> Figure:
    """The picture as a matplotlib Figure: counts on top, latency below, events across both."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with drill_style():
        events = in_time_order(record.events)
        start, end = time_range(record)
        texts = [f"{event_label(e)} ({e.t:.2f} s)" for e in events]
        labels = place_labels([e.t for e in events], texts, start, end, Layout(label_rows=0))
        layout = Layout(label_rows=max((label.row for label in labels), default=-1) + 1)
        figure = Figure(figsize=(layout.width, layout.height), dpi=DPI)
        FigureCanvasAgg(figure)
        counts_axes = figure.add_axes(layout.counts_rect())
        latency_axes = figure.add_axes(layout.latency_rect(), sharex=counts_axes)
        counts_axes.set_xlim(start, end)
        draw_counts(counts_axes, record, end)
        draw_latency(latency_axes, record)
        shade_fault_and_gap(counts_axes, record, in_legend=True)
        shade_fault_and_gap(latency_axes, record, in_legend=False)
        mark_gap(counts_axes, record)
        set_time_ticks(latency_axes)
        draw_legends(counts_axes, latency_axes)
        draw_events(figure, (counts_axes, latency_axes), layout, events, labels)
        draw_title(figure, layout, record)
    return figure


def time_range(record: DrillRecord) -> tuple[float, float]:
    """The x axis: from 0, or an event before it, to the record's last moment; at least a second."""
    start = min([0.0] + [e.t for e in record.events])
    return start, max(record_span(record), start + 1.0)


def text_widths_px(texts: Sequence[str], size: float) -> list[float]:
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer = RendererAgg(1, 1, DPI)
    font = FontProperties(size=size)
    return [renderer.get_text_width_height_descent(text, font, ismath=False)[0] for text in texts]


def place_labels(times: Sequence[float], texts: Sequence[str], start: float, end: float,
                 layout: Layout) -> list[Label]:
    """A row and a side for each label so that none overlaps another. A label reads rightwards
    from its line unless it would run off the figure, then leftwards."""
    room_right_px = layout.right * DPI
    intervals: list[tuple[float, float]] = []
    aligns: list[str] = []
    for t, width in zip(times, text_widths_px(texts, LABEL_FONT_SIZE)):
        x = (t - start) / (end - start) * layout.axes_width_px
        fits_right = x + LABEL_PAD_PX + width <= layout.axes_width_px + room_right_px
        aligns.append("left" if fits_right else "right")
        intervals.append((x, x + LABEL_PAD_PX + width) if fits_right else (x - LABEL_PAD_PX - width, x))
    rows = stagger_rows(intervals, min_gap=LABEL_GAP_PX)
    return [Label(text, row, align) for text, row, align in zip(texts, rows, aligns)]


def draw_counts(axes: Axes, record: DrillRecord, end: float) -> None:
    buckets = bucket_counts(record.requests, end)
    edges = [b.start for b in buckets] + [buckets[-1].end]
    ok = [b.ok for b in buckets]
    total = [b.total for b in buckets]
    axes.stairs(ok, edges, fill=True, color=OK_COLOUR, label="ok")
    axes.stairs(total, edges, baseline=ok, fill=True, color=FAILED_COLOUR, label="failed")
    axes.set_ylim(0, max(max(total) * 1.15, 1))
    axes.set_ylabel(f"requests per {BUCKET_SECONDS * 1000:.0f} ms")
    axes.tick_params(labelbottom=False)
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    if not record.requests:
        say_empty(axes)


def draw_latency(axes: Axes, record: DrillRecord) -> None:
    axes.set_yscale("log")
    ok = [r for r in record.requests if r.ok]
    if ok:
        axes.scatter([r.t for r in ok], [latency_ms(r.latency) for r in ok], s=5, linewidths=0,
                     color=OK_DOT_COLOUR, alpha=0.55, zorder=DOT_ZORDER, label=f"ok ({len(ok)})")
    for outcome in FAILURES:
        failed = [r for r in record.requests if r.outcome == outcome]
        if failed:
            axes.scatter([r.t for r in failed], [latency_ms(r.latency) for r in failed], s=18,
                         marker=FAILURE_MARKERS.get(outcome, "x"), color=FAILED_COLOUR, linewidths=1.0,
                         zorder=DOT_ZORDER, label=f"{outcome} ({len(failed)})")
    if record.requests:
        axes.set_ylim(*latency_range_ms([latency_ms(r.latency) for r in record.requests]))
    else:
        axes.set_ylim(*EMPTY_LATENCY_RANGE_MS)
        say_empty(axes)
    label_log_axis_plainly(axes)
    axes.set_ylabel("latency (ms, log scale)")
    axes.set_xlabel("seconds since the probe started")
    axes.grid(axis="y", which="major", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)


def latency_range_ms(latencies: Sequence[float]) -> tuple[float, float]:
    """Some room around the dots, and at least a decade so a steady latency still has a scale."""
    low, high = min(latencies) / 1.6, max(latencies) * 1.6
    widen = math.sqrt(max(10 * low / high, 1.0))
    return low / widen, high * widen


def label_log_axis_plainly(axes: Axes) -> None:
    """'1', '10', '100' on the decades and '2', '5' between them, not 10^0 and 3x10^0."""
    from matplotlib.ticker import FuncFormatter

    def plain(value: float, _: object) -> str:
        return f"{value:g}"

    def twos_and_fives(value: float, _: object) -> str:
        return plain(value, _) if f"{value:.0e}"[0] in "25" else ""

    axes.yaxis.set_major_formatter(FuncFormatter(plain))
    axes.yaxis.set_minor_formatter(FuncFormatter(twos_and_fives))


def latency_ms(seconds: float) -> float:
    return max(seconds * 1000, LATENCY_FLOOR_MS)


def say_empty(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no requests recorded", transform=axes.transAxes, ha="center", va="center",
              color=NOTE_COLOUR)


def shade_fault_and_gap(axes: Axes, record: DrillRecord, in_legend: bool) -> None:
    """Grey while a fault was in place (each fault until the next restore), orange over the longest gap."""
    restores = sorted(e.t for e in record.events_of(RESTORE))
    for fault in record.events_of(FAULT):
        restore = next((t for t in restores if t >= fault.t), None)
        if restore is not None:
            axes.axvspan(fault.t, restore, color=FAULT_SPAN_COLOUR, zorder=0, linewidth=0,
                         label="fault in place" if in_legend else None)
    gap = longest_gap(record.requests)
    if gap:
        axes.axvspan(*gap, color=GAP_COLOUR, alpha=0.13, zorder=0.5, linewidth=0,
                     label=f"longest gap {gap[1] - gap[0]:.2f} s" if in_legend else None)


def mark_gap(axes: Axes, record: DrillRecord) -> None:
    """A double arrow over the longest gap, in the headroom above the bars, with its length."""
    gap = longest_gap(record.requests)
    if not gap:
        return
    y = axes.get_ylim()[1] * 0.935
    axes.annotate("", xy=(gap[0], y), xytext=(gap[1], y),
                  arrowprops={"arrowstyle": "<|-|>", "color": GAP_COLOUR, "linewidth": 1.2, "shrinkA": 0, "shrinkB": 0})
    axes.annotate(f"gap {gap[1] - gap[0]:.2f} s", xy=(gap[1], y), xytext=(5, 0), textcoords="offset points",
                  va="center", ha="left", fontsize=9, fontweight="bold", color=GAP_COLOUR,
                  bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})


def set_time_ticks(axes: Axes) -> None:
    """About a dozen labelled seconds along the axis, with minor ticks between."""
    from matplotlib.ticker import AutoMinorLocator, MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 5, 10]))
    axes.xaxis.set_minor_locator(AutoMinorLocator())


def draw_legends(*axes_list: Axes) -> None:
    for axes in axes_list:
        handles, names = axes.get_legend_handles_labels()
        unique = dict(zip(names, handles))  # one entry per label, though each fault shades a span
        if unique:
            axes.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1.0),
                        frameon=False, fontsize=9, borderaxespad=0)


def draw_events(figure: Figure, panels: Sequence[Axes], layout: Layout, events: Sequence[Event],
                labels: Sequence[Label]) -> None:
    """A line per event down both panels, under the requests so it never hides a failure, and a
    stem from the top panel up to the event's label."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory, offset_copy

    at_event = blended_transform_factory(panels[0].transData, figure.transFigure)
    panels_top = layout.counts_rect()[1] + layout.counts_rect()[3]
    for index, (event, label) in enumerate(zip(events, labels)):
        line_style: dict[str, Any] = {"color": event_colour(event), "linewidth": 1.1,
                                      "linestyle": (0, (4, 2)), "alpha": 0.9}
        for number, axes in enumerate(panels):
            axes.axvline(event.t, zorder=EVENT_LINE_ZORDER, gid=event_line_gid(index, number), **line_style)
        top = layout.row_y(label.row)
        figure.add_artist(Line2D([event.t, event.t], [panels_top, top], transform=at_event,
                                 gid=f"event-stem-{index}", **line_style))
        side = LABEL_PAD_PX if label.align == "left" else -LABEL_PAD_PX
        figure.text(event.t, top, label.text, transform=offset_copy(at_event, figure, x=side, units="dots"),
                    ha=label.align, va="center", fontsize=LABEL_FONT_SIZE, color=event_colour(event),
                    bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none"},
                    gid=f"event-label-{index}")


def event_line_gid(index: int, panel: int) -> str:
    """'event-line-3' in the top panel, 'event-line-3-p1' below it: one plain id per event."""
    return f"event-line-{index}" if panel == 0 else f"event-line-{index}-p{panel}"


def event_colour(event: Event) -> str:
    return EVENT_COLOURS.get(event.kind, CLUSTER_COLOUR)


def draw_title(figure: Figure, layout: Layout, record: DrillRecord) -> None:
    x = layout.left / layout.width
    y = layout.title_y()
    figure.text(x, y, f"{title(record)} · {record.target}", fontsize=13, fontweight="bold", va="top")
    figure.text(x, y - 0.28 / layout.height, totals(record), fontsize=10.5, va="top", color="#333333")

