"""The timeline picture: real PNG and SVG files that show the record's counts, failures and events."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import numpy
import pytest
from matplotlib.artist import Artist
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import StepPatch
from matplotlib.text import Text

from haops.drill.plot import Layout, place_labels, save_timeline, timeline_figure
from tests.drill.builders import (
    EVENTS, FAIL_FROM, TIMEOUT_SECONDS, crowded_record, empty_record, lb_failure_record, steady_requests,
)

pytestmark = pytest.mark.unit
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


def svg_texts(path: Path) -> list[str]:
    return ["".join(t.itertext()) for t in ET.parse(path).getroot().iter(f"{SVG}text")]


def svg_ids(path: Path, pattern: str) -> list[str]:
    return [i for e in ET.parse(path).getroot().iter() if re.fullmatch(pattern, i := e.get("id", ""))]


def with_gid(figure: Figure, pattern: str) -> list[Artist]:
    return [a for a in figure.findobj() if re.fullmatch(pattern, str(a.get_gid() or ""))]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The lb-failure record drawn once for the tests that only read the files."""
    return save_timeline(lb_failure_record(), tmp_path_factory.mktemp("plot") / "lb-failure.2024-05-01")


def test_save_writes_a_png_and_an_svg_beside_the_stem(saved: list[Path]) -> None:
    png, svg = saved
    assert (png.name, svg.name) == ("lb-failure.2024-05-01.png", "lb-failure.2024-05-01.svg")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert ET.parse(svg).getroot().tag == f"{SVG}svg"


def test_svg_names_every_event_and_the_totals(saved: list[Path]) -> None:
    texts = svg_texts(saved[1])
    for label in ["fault on lb1 (4.00 s)", "VIP added on lb2 (4.75 s)", "GARP on lb2 (4.76 s)",
                  "first ok on client (4.80 s)", "restore on lb1 (7.00 s)", "failback on lb1 (7.50 s)"]:
        assert label in texts
    assert "2000 sent · 160 failed · longest gap 0.800 s (4.000 → 4.800 s)" in texts
    assert "lb-failure drill · web · 200 req/s · http://10.213.0.100:80/" in texts
    assert "gap 0.80 s" in texts


def test_one_line_per_event_in_each_panel(saved: list[Path]) -> None:
    svg = saved[1]
    assert len(svg_ids(svg, r"event-line-\d+")) == len(EVENTS)
    assert len(svg_ids(svg, r"event-line-\d+-p1")) == len(EVENTS)
    assert len(svg_ids(svg, r"event-label-\d+")) == len(EVENTS)
    figure = timeline_figure(crowded_record())
    assert len(with_gid(figure, r"event-line-\d+")) == 9


def test_top_panel_stacks_failed_on_ok_per_100_ms() -> None:
    counts_axes = timeline_figure(lb_failure_record()).axes[0]
    ok, stacked = [p for p in counts_axes.patches if isinstance(p, StepPatch)]
    ok_values, edges, _ = ok.get_data()
    total_values, _, baseline = stacked.get_data()
    assert len(edges) == 101 and edges[40] == pytest.approx(FAIL_FROM)
    failed = [round(n) for n in numpy.asarray(total_values) - numpy.asarray(baseline)]
    assert failed == [0] * 40 + [20] * 8 + [0] * 52  # [4.0, 4.8) at 20 per 100 ms
    assert list(ok_values) == [20] * 40 + [0] * 8 + [20] * 52


def test_failed_requests_sit_at_their_timeout_in_the_latency_panel() -> None:
    latency_axes = timeline_figure(lb_failure_record()).axes[1]
    assert latency_axes.get_yscale() == "log"
    dots = {str(c.get_label()): numpy.asarray(c.get_offsets()) for c in latency_axes.collections
            if isinstance(c, PathCollection)}
    assert set(dots) == {"ok (1840)", "timeout (160)"}
    timeouts = dots["timeout (160)"]
    assert set(timeouts[:, 1].tolist()) == {TIMEOUT_SECONDS * 1000}
    assert timeouts[:, 0].min() == FAIL_FROM


def test_close_event_labels_do_not_overlap() -> None:
    figure = timeline_figure(crowded_record())
    figure.draw_without_rendering()
    boxes = [t.get_window_extent() for t in with_gid(figure, r"event-label-\d+") if isinstance(t, Text)]
    assert len(boxes) == 9
    overlapping = [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]
    assert not overlapping
    assert all(box.x1 <= figure.bbox.x1 and box.x0 >= figure.bbox.x0 for box in boxes), "a label runs off the figure"


def test_a_label_near_the_right_edge_reads_leftwards() -> None:
    labels = place_labels([0.0, 5.0, 9.9], ["start", "middle", "a label long enough to run past the legends at the right"], 0.0, 10.0,
                          Layout(label_rows=0))
    assert [label.align for label in labels] == ["left", "left", "right"]
    assert [label.row for label in labels] == [0, 0, 0]


def test_reruns_are_byte_for_byte_the_same(saved: list[Path], tmp_path: Path) -> None:
    again = save_timeline(lb_failure_record(), tmp_path / "again")
    for a, b in zip(saved, again):
        assert a.read_bytes() == b.read_bytes(), a.suffix


def test_empty_record_draws_an_empty_picture(tmp_path: Path) -> None:
    png, svg = save_timeline(empty_record(), tmp_path / "empty")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert svg_texts(svg).count("no requests recorded") == 2
    assert svg_ids(svg, r"event-line-\d+") == []


def test_record_without_failures_has_no_gap(tmp_path: Path) -> None:
    _, svg = save_timeline(lb_failure_record(requests=steady_requests(99, 99)), tmp_path / "clean")
    texts = svg_texts(svg)
    assert "2000 sent · 0 failed · no gap" in texts
    assert not any(text.startswith(("gap ", "longest gap")) for text in texts)
    assert len(svg_ids(svg, r"event-line-\d+")) == len(EVENTS)


def test_importing_the_drill_modules_does_not_load_matplotlib() -> None:
    code = "import sys, haops.drill.plot, haops.drill.timeline; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "False"
