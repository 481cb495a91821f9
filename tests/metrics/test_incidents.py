"""Incidents from incident logs (CSV, JSON) and from drill records, and every refusal with its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from haops.drill.record import OK, REFUSED, TIMEOUT, DrillRecord, Request
from haops.errors import UserError
from haops.metrics.incidents import (
    InputError,
    Window,
    check_no_overlaps,
    load_segments,
    log_segments,
    outages,
    parse_drill_record,
    parse_incident_log,
    parse_timestamp,
    parse_window,
    record_segment,
)
from haops.metrics.model import EPOCH, PROBE, Incident

pytestmark = pytest.mark.unit

# 2024-01-01T00:00:00Z: 54 years after 1970 with 13 leap days (1972..2020): (54 x 365 + 13) x 86,400 = 1,704,067,200.
NEW_YEAR = 1_704_067_200.0
HOUR = 3600.0


@pytest.mark.parametrize("text, expected", [
    ("2024-01-01T00:00:00Z", NEW_YEAR),
    ("2024-01-01T01:00:00+01:00", NEW_YEAR),  # 01:00 at +01:00 is midnight UTC
    ("2023-12-31T19:00:00-05:00", NEW_YEAR),
    ("2024-01-01T00:00:01.5Z", NEW_YEAR + 1.5),
    ("1704067200", NEW_YEAR),
    ("1704067200.25", NEW_YEAR + 0.25),
    (1704067200, NEW_YEAR),
])
def test_timestamps(text: object, expected: float) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text, message", [
    ("2024-01-01T00:00:00", "no UTC offset"),
    ("2024-01-01", "no UTC offset"),
    ("yesterday", "is not a timestamp"),
    ("2024-13-01T00:00:00Z", "is not a timestamp"),
    ("-5", "is not a timestamp"),
    (True, "is not a timestamp"),
    (float("nan"), "is not a timestamp"),  # json.loads reads NaN
])
def test_bad_timestamps(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(text)


CSV_LOG = """\
# a comment, then a blank line

start,end,service,note
2024-01-01T01:00:00Z,2024-01-01T02:00:00Z,www,first
1704081600,1704083400,api,epoch seconds
2024-01-01T05:00:00+01:00,2024-01-01T04:30:00Z,www,"offset, and a quoted comma"
"""


def test_csv_log_rows_with_their_lines() -> None:
    incidents = parse_incident_log(CSV_LOG, "log.csv")
    # Line 4: 01:00-02:00Z. Line 5: 1704081600 = NEW_YEAR + 4 h, 1704083400 = + 4.5 h. Line 6: 05:00+01:00 = 04:00Z to 04:30Z.
    assert incidents == [
        Incident(NEW_YEAR + 1 * HOUR, NEW_YEAR + 2 * HOUR, "www", "log.csv:4"),
        Incident(NEW_YEAR + 4 * HOUR, NEW_YEAR + 4.5 * HOUR, "api", "log.csv:5"),
        Incident(NEW_YEAR + 4 * HOUR, NEW_YEAR + 4.5 * HOUR, "www", "log.csv:6"),
    ]


def test_csv_without_service_column() -> None:
    assert parse_incident_log("Start,End\n10,20\n", "log.csv") == [Incident(10.0, 20.0, "", "log.csv:2")]


def test_csv_bad_rows_are_all_refused_with_their_lines() -> None:
    text = ("start,end,service\n"
            "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,www\n"
            "2024-01-01T03:00:00,2024-01-01T04:00:00Z,www\n"  # line 3: no offset
            "2024-01-01T06:00:00Z,2024-01-01T05:00:00Z,www\n"  # line 4: ends before it starts
            "2024-01-01T07:00:00Z,,www\n"  # line 5: no end
            "2024-01-01T08:00:00Z,2024-01-01T09:00:00Z\n"  # line 6: two fields, not three
            "2024-01-01T10:00:00Z,2024-01-01T10:00:00Z,www\n")  # line 7: zero length
    with pytest.raises(InputError) as raised:
        parse_incident_log(text, "log.csv")
    problems = raised.value.problems
    assert [p.split(":")[1] for p in problems] == ["3", "4", "5", "6", "7"]
    assert "log.csv:3: start '2024-01-01T03:00:00' has no UTC offset" in problems[0]
    assert "log.csv:4: end 2024-01-01T05:00:00Z is not after start 2024-01-01T06:00:00Z" in problems[1]
    assert "log.csv:5: no end" in problems[2]
    assert "log.csv:6: 2 fields, the header has 3" in problems[3]
    assert "log.csv:7: end 2024-01-01T10:00:00Z is not after start" in problems[4]


def test_csv_header_must_name_start_and_end() -> None:
    with pytest.raises(InputError, match=r"log.csv:1: the header has no end column"):
        parse_incident_log("start,stop\n1,2\n", "log.csv")


JSON_LOG = """[
  {"start": "2024-01-01T01:00:00Z", "end": "2024-01-01T02:00:00Z", "service": "www"},
  {
    "start": 1704081600,
    "end": 1704083400
  }
]
"""


def test_json_log_rows_with_the_line_they_begin_on() -> None:
    assert parse_incident_log(JSON_LOG, "log.json") == [
        Incident(NEW_YEAR + HOUR, NEW_YEAR + 2 * HOUR, "www", "log.json:2"),
        Incident(NEW_YEAR + 4 * HOUR, NEW_YEAR + 4.5 * HOUR, "", "log.json:3"),
    ]


def test_json_bad_rows_are_refused_with_their_lines() -> None:
    text = '[\n {"start": 10, "end": 20},\n {"start": 30, "end": 25},\n "not a row",\n {"end": 50}\n]\n'
    with pytest.raises(InputError) as raised:
        parse_incident_log(text, "log.json")
    assert [p.split(": ")[0] for p in raised.value.problems] == ["log.json:3", "log.json:4", "log.json:5"]
    assert "is not after start 30" in raised.value.problems[0]
    assert "no start" in raised.value.problems[2]


def test_json_syntax_error_names_its_line() -> None:
    with pytest.raises(InputError, match=r"log.json:3: not valid JSON"):
        parse_incident_log('[\n {"start": 1, "end": 2},\n {"start": 3 "end": 4}\n]', "log.json")


def test_json_log_must_be_a_list() -> None:
    with pytest.raises(InputError, match="a list of objects"):
        parse_incident_log('{"start": 1, "end": 2}', "log.json")


def test_overlapping_incidents_of_one_service_are_refused_naming_both_rows() -> None:
    incidents = [Incident(0.0, 100.0, "www", "log.csv:2"), Incident(50.0, 60.0, "www", "log.csv:3"),
                 Incident(70.0, 80.0, "www", "log.csv:4")]  # inside line 2's incident too: its end is still the latest
    with pytest.raises(InputError) as raised:
        check_no_overlaps(incidents)
    assert [p.split(" (")[0] for p in raised.value.problems] == ["log.csv:3 overlaps log.csv:2", "log.csv:4 overlaps log.csv:2"]
    assert "service www" in raised.value.problems[0]


def test_other_services_may_overlap_and_incidents_may_touch() -> None:
    check_no_overlaps([Incident(0.0, 100.0, "www", "a:2"), Incident(50.0, 60.0, "api", "a:3"),
                       Incident(100.0, 110.0, "www", "a:4")])


def test_log_segments_clip_to_the_window_and_say_so() -> None:
    incidents = [Incident(-10.0, 5.0, "www", "a:2"), Incident(40.0, 50.0, "www", "a:3"),
                 Incident(95.0, 120.0, "www", "a:4"), Incident(200.0, 210.0, "api", "a:5")]
    segments, notes = log_segments(incidents, Window(0.0, 100.0), "a")
    www, api = sorted(segments, key=lambda s: s.service, reverse=True)
    assert [(i.start, i.end, i.clipped) for i in www.incidents] == [(0.0, 5.0, True), (40.0, 50.0, False), (95.0, 100.0, True)]
    assert (api.service, api.incidents, api.clock, api.length) == ("api", (), EPOCH, 100.0)
    assert notes == ["a:2 is cut at the window's edge; only its part inside the window counts",
                     "a:4 is cut at the window's edge; only its part inside the window counts",
                     "1 incident outside the window left out: a:5"]


def test_window_is_required_for_a_log() -> None:
    with pytest.raises(UserError, match="--from and --to"):
        parse_window("2024-01-01T00:00:00Z", None)
    with pytest.raises(UserError, match="--to 2023-01-01T00:00:00Z is not after --from"):
        parse_window("2024-01-01T00:00:00Z", "2023-01-01T00:00:00Z")
    with pytest.raises(UserError, match="--from 'monday' is not a timestamp"):
        parse_window("monday", "2024-01-01T00:00:00Z")
    assert parse_window("2024-01-01T00:00:00Z", "1704070800") == Window(NEW_YEAR, NEW_YEAR + HOUR)


# Drill records ------------------------------------------------------------------------------------------------


def probe(outcomes: str, rate: float = 10.0) -> list[Request]:
    """One request per character every 1/rate seconds: '.' succeeds, 'x' is refused, 't' times out."""
    kinds = {".": OK, "x": REFUSED, "t": TIMEOUT}
    return [Request(t=round(i / rate, 6), outcome=kinds[c], latency=0.001) for i, c in enumerate(outcomes)]


def record(outcomes: str, duration: float, rate: float = 10.0) -> DrillRecord:
    return DrillRecord(drill="lb-failure", service="www", target="http://10.213.0.100/", rate=rate, duration=duration,
                       requests=probe(outcomes, rate))


def test_outages_start_at_the_first_failure_and_end_at_the_first_success_after_it() -> None:
    # Requests every 0.1 s: t = 0.3..0.5 fail, first success at 0.6; t = 0.8 fails alone, success at 0.9.
    assert outages(probe("...xtx..x."), end=1.0) == [(0.3, 0.6, False), (0.8, 0.9, False)]


def test_an_outage_at_the_start_and_one_still_open_at_the_end() -> None:
    # The first request fails: the outage starts with it at t = 0. The last three fail: open until the end, 1.0.
    assert outages(probe("x..xxx"), end=1.0) == [(0.0, 0.1, False), (0.3, 1.0, True)]


def test_outages_follow_start_time_not_file_order() -> None:
    requests = list(reversed(probe("..xx..")))
    assert outages(requests, end=0.6) == [(0.2, 0.4, False)]


def test_segment_of_a_drill_record() -> None:
    # 20 requests at 10/s over 2 s; t = 0.5..0.9 fail (5 requests), success again at 1.0; 15 of 20 ok.
    segment = record_segment(record("....." "xxxxx" "..........", duration=2.0), "run.json")
    assert (segment.start, segment.end, segment.clock, segment.service) == (0.0, 2.0, PROBE, "www")
    assert [(i.start, i.end, i.clipped) for i in segment.incidents] == [(0.5, 1.0, False)]
    assert (segment.requests_sent, segment.requests_ok) == (20, 15)
    assert segment.resolution == pytest.approx(0.1)  # 1 / rate
    assert segment.incidents[0].where == "run.json (lb-failure)"


def test_drill_outage_open_at_the_end_is_clipped_there() -> None:
    segment = record_segment(record("..xx", duration=0.4), "run.json")
    assert [(i.start, i.end, i.clipped) for i in segment.incidents] == [(0.2, 0.4, True)]


def test_drill_record_with_unknown_outcome_or_no_requests_is_refused() -> None:
    data = record("..", duration=1.0).to_json()
    data["requests"][1]["outcome"] = "meh"
    with pytest.raises(InputError, match=r"run.json: request 1: outcome 'meh'"):
        parse_drill_record(data, "run.json")
    with pytest.raises(InputError, match="no requests"):
        parse_drill_record(record("", duration=1.0).to_json(), "run.json")
    with pytest.raises(InputError, match="not a drill record"):
        parse_drill_record({"requests": []}, "run.json")


def test_load_saved_drill_records(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    record("..xx..", duration=0.6).save(first)
    record("......", duration=0.6).save(second)
    segments, notes = load_segments([first, second], None, None)
    assert [len(s.incidents) for s in segments] == [1, 0] and notes == []


def test_load_refuses_drill_records_mixed_with_logs_and_a_window_for_drills(tmp_path: Path) -> None:
    drill, log = tmp_path / "run.json", tmp_path / "log.csv"
    record("..", duration=0.2).save(drill)
    log.write_text("start,end\n1,2\n")
    with pytest.raises(UserError, match="not both"):
        load_segments([drill, log], "0", "10")
    with pytest.raises(UserError, match="a drill record's window is its probe run"):
        load_segments([drill], "0", "10")


def test_load_logs_checks_overlaps_across_files(tmp_path: Path) -> None:
    first, second = tmp_path / "one.csv", tmp_path / "two.json"
    first.write_text("start,end,service\n0,100,www\n")
    second.write_text('[{"start": 50, "end": 60, "service": "www"}]')
    with pytest.raises(InputError, match=rf"{second}:1 overlaps {first}:2"):
        load_segments([first, second], "0", "1000")


def test_load_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_segments([tmp_path / "nope.csv"], "0", "1")


def test_a_file_named_twice_counts_once(tmp_path: Path) -> None:
    drill = tmp_path / "run.json"
    record("..xx..", duration=0.6).save(drill)
    segments, _ = load_segments([drill, drill], None, None)
    assert len(segments) == 1
