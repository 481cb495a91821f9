"""How durations and shares read in the table."""

from __future__ import annotations

import pytest

from haops.metrics.report import duration, percent

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("seconds, text", [
    (0.235, "0.235s"),
    (59.9996, "1m 00.0s"),  # rounds up into the next unit instead of printing 60.000s
    (604.8, "10m 04.8s"),  # 99.9% of a week
    (2629.746, "43m 49.7s"),  # 99.9% of a month
    (31_556.952, "8h 45m 57s"),  # 99.9% of a year
    (2_592_000, "30d 00h 00m"),
    (861_900, "9d 23h 25m"),  # 239.4167 h
])
def test_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize("value, text", [
    (0.0038, "0.0038%"), (0.046, "0.046%"), (34.7222, "34.72%"), (243.056, "243%"), (20_000.0, "20,000%"), (0.0, "0%"),
])
def test_percent(value: float, text: str) -> None:
    assert percent(value) == text
