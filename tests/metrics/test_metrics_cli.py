"""`haops metrics` end to end: the docs' example log worked by hand, drill records, JSON, and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from haops.cli import main
from haops.drill.record import OK, REFUSED, DrillRecord, Request

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "docs/examples/incidents.csv")
DRILL_EXAMPLE = str(ROOT / "docs/examples/drill-record.json")
JANUARY = ("--from", "2024-01-01T00:00:00Z", "--to", "2024-01-31T00:00:00Z")
DAY, HOUR = 86_400, 3600


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(["metrics", *args])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def services(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return {s["service"]: s for s in json.loads(out)["services"]}


def test_example_log_worked_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    www = services(capsys, EXAMPLE, *JANUARY)["www"]
    # Window: 30 days = 2,592,000 s. www is down 30 min + 60 min + 15 min = 6,300 s in r = 3 incidents.
    assert (www["observed"], www["downtime"], www["failures"]) == (30 * DAY, 6300, 3)
    # TTF: Jan 1 -> Jan 5 00:00 = 4 d; Jan 5 00:30 -> Jan 12 06:00 = 7 d 5.5 h; Jan 12 07:00 -> Jan 20 12:00 = 8 d 5 h.
    # TBF: none; Jan 5 00:00 -> Jan 12 06:00 = 7 d 6 h; Jan 12 06:00 -> Jan 20 12:00 = 8 d 6 h.
    assert [(i["ttf"], i["ttr"], i["tbf"]) for i in www["incidents"]] == [
        (4 * DAY, 1800, None), (7 * DAY + 5.5 * HOUR, 3600, 7 * DAY + 6 * HOUR), (8 * DAY + 5 * HOUR, 900, 8 * DAY + 6 * HOUR)]
    # Uptime 2,592,000 - 6,300 = 2,585,700: MTTF = 2,585,700 / 3 = 861,900; MTTR = 6,300 / 3 = 2,100; MTBF = 864,000 = 10 d.
    assert (www["uptime"], www["mttf"], www["mttr"], www["mtbf"]) == (2_585_700, 861_900, 2100, 10 * DAY)
    # A = 2,585,700 / 2,592,000 = 0.9975694; 1 - A = 0.0024306, -log10 = 3 - log10(2.4306) = 3 - 0.38571 = 2.6143 nines.
    assert www["availability"]["time"] == pytest.approx(0.9975694, abs=1e-7)
    assert www["availability"]["time_nines"] == pytest.approx(2.6143, abs=1e-4)
    assert www["availability"]["requests"] is None
    # 90%: lower = 2 x 2,585,700 / chi2(0.95; 8) = 5,171,400 / 15.507 = 333,488 s (92.6 h);
    #      upper = 5,171,400 / chi2(0.05; 6) = 5,171,400 / 1.635 = 3,162,936 s (878.6 h). MTBF's: + MTTR 2,100 s.
    assert www["mttf_interval"]["lower"] == pytest.approx(333_488, rel=1e-3)
    assert www["mttf_interval"]["upper"] == pytest.approx(3_162_936, rel=1e-3)
    assert www["mtbf_interval"]["lower"] == pytest.approx(333_488 + 2100, rel=1e-3)
    # 99.9% over the window: 0.001 x 2,592,000 = 2,592 s allowed; 6,300 used = 2.4306 of it.
    # A month's budget is 0.001 x 2,629,746 = 2,629.746 s; 6,300 is 2.3957 of it.
    assert www["budget"]["window"] == {"allowed": pytest.approx(2592), "used": 6300, "fraction": pytest.approx(2.4306, abs=1e-4)}
    assert www["budget"]["month"]["fraction"] == pytest.approx(2.3957, abs=1e-4)
    assert www["meets_sla"] is False


def test_example_log_other_service(capsys: pytest.CaptureFixture[str]) -> None:
    api = services(capsys, EXAMPLE, *JANUARY)["api"]
    # One incident of 15 min = 900 s: A = 1 - 900 / 2,592,000 = 0.99965278; -log10(0.00034722) = 4 - 0.54061 = 3.4594.
    assert (api["failures"], api["downtime"]) == (1, 900)
    assert api["availability"]["time_nines"] == pytest.approx(3.4594, abs=1e-4)
    assert api["meets_sla"] is True


def test_table_states_the_conventions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, EXAMPLE, *JANUARY)
    assert code == 0
    for text in ("MTBF = MTTF + MTTR", "MTTF = uptime / r", "chi-square", "8.4.5.1", "Window: --from to --to",
                 "budget per month at 99.9%", "43m 49.7s", "99.7569% (2.61 nines)", "missed"):
        assert text in out, text


def test_sla_and_confidence_options(capsys: pytest.CaptureFixture[str]) -> None:
    www = services(capsys, EXAMPLE, *JANUARY, "--sla", "99", "--confidence", "0.95")["www"]
    # 99% over 30 days: 0.01 x 2,592,000 = 25,920 s allowed; 6,300 used = 0.24306 of it, so the SLA is met.
    assert www["budget"]["window"]["allowed"] == pytest.approx(25_920)
    assert www["meets_sla"] is True
    # 95%: lower = 5,171,400 / chi2(0.975; 8) = 5,171,400 / 17.535 = 294,919 s.
    assert www["mttf_interval"]["lower"] == pytest.approx(294_919, rel=1e-3)


def test_service_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(services(capsys, EXAMPLE, *JANUARY, "--service", "api")) == ["api"]
    code, _, err = run(capsys, EXAMPLE, *JANUARY, "--service", "nope")
    assert code == 2 and "matches no service" in err and "api, www" in err


def test_fail_below_sla_exits_1_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, EXAMPLE, *JANUARY)[0] == 0
    assert run(capsys, EXAMPLE, *JANUARY, "--fail-below-sla")[0] == 1
    assert run(capsys, EXAMPLE, *JANUARY, "--fail-below-sla", "--service", "api")[0] == 0


def drill(path: Path, outcomes: str, rate: float = 100.0) -> Path:
    requests = [Request(t=round(i / rate, 6), outcome=OK if c == "." else REFUSED, latency=0.001) for i, c in enumerate(outcomes)]
    DrillRecord("backend-failure", "www", "http://10.213.0.100/", rate, len(outcomes) / rate, requests).save(path)
    return path


def test_drill_records_side_by_side_availabilities(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Two runs at 100 req/s of 1 s each. Run a: t = 0.10..0.29 fail (20 requests), success at 0.30.
    # Run b: t = 0.50..0.54 fail (5 requests), success at 0.55; the last 2 (0.98, 0.99) fail and stay failed to 1.00.
    a = drill(tmp_path / "a.json", "." * 10 + "x" * 20 + "." * 70)
    b = drill(tmp_path / "b.json", "." * 50 + "x" * 5 + "." * 43 + "xx")
    www = services(capsys, str(a), str(b))["www"]
    # Downtime 0.20 + 0.05 + 0.02 = 0.27 s of 2 s: A_time = 1.73 / 2 = 0.865. Requests: 173 ok of 200 = 0.865.
    assert [(i["start"], i["end"], i["clipped"]) for i in www["incidents"]] == [
        (0.1, 0.3, False), (0.5, 0.55, False), (0.98, 1.0, True)]
    assert www["failures"] == 3 and www["downtime"] == pytest.approx(0.27)
    assert www["availability"]["time"] == pytest.approx(0.865)
    assert (www["availability"]["requests_ok"], www["availability"]["requests_sent"]) == (173, 200)
    assert www["availability"]["requests"] == pytest.approx(0.865)
    assert www["resolution"] == pytest.approx(0.01)  # 1 / 100 req/s
    # TBF within a run only: b's second incident starts 0.98 - 0.50 = 0.48 s after its first; each run's first has none.
    assert [i["tbf"] for i in www["incidents"]] == [None, None, pytest.approx(0.48)]


def test_drill_without_failures_has_only_a_lower_bound(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    www = services(capsys, str(drill(tmp_path / "ok.json", "." * 100)))["www"]
    # r = 0, T = 1 s: MTTF >= 1 / -ln(0.1) = 1 / 2.302585 = 0.43429 s, one-sided; no means, nines null (no downtime).
    assert www["mttf_interval"] == {"lower": pytest.approx(0.43429, rel=1e-4), "upper": None, "confidence": 0.9, "two_sided": False}
    assert (www["mttf"], www["mtbf"], www["availability"]["time_nines"]) == (None, None, None)


def test_drill_table_states_the_resolution(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, DRILL_EXAMPLE)
    assert code == 0
    assert "within 1/rate = 100.0 ms" in out and "t=2.000s" in out and "t=3.200s" in out and "48 of 60" in out


def test_drill_outage_open_at_the_end_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, str(drill(tmp_path / "end.json", "....xx")))
    assert code == 0 and "still failing when the probe stopped" in out


@pytest.mark.parametrize("content, message", [
    ("start,end\n2024-01-02T00:00:00Z,2024-01-01T00:00:00Z\n", "bad.csv:2: end 2024-01-01T00:00:00Z is not after start"),
    ("start,end\n2024-01-02T00:00:00,2024-01-03T00:00:00Z\n", "bad.csv:2: start '2024-01-02T00:00:00' has no UTC offset"),
    ("start,end,service\n1704153600,1704240000,www\n1704200000,1704300000,www\n", "bad.csv:3 overlaps bad.csv:2"),
    ('{"drill": "x", "requests": [}', "bad.csv:1: not valid JSON"),
])
def test_bad_files_exit_2_with_the_line_and_no_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, content: str, message: str) -> None:
    (tmp_path / "bad.csv").write_text(content)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "bad.csv", *JANUARY)
    assert code == 2 and message in err and "Traceback" not in err + out


@pytest.mark.parametrize("args, message", [
    ((EXAMPLE,), "give the window it covers with --from and --to"),
    ((EXAMPLE, *JANUARY, "--sla", "100"), "--sla 100 is not a percentage between 0 and 100"),
    ((EXAMPLE, *JANUARY, "--confidence", "90"), "--confidence 90 is not between 0 and 1"),
    ((DRILL_EXAMPLE, *JANUARY), "a drill record's window is its probe run"),
    ((DRILL_EXAMPLE, EXAMPLE), "give drill records or incident logs, not both"),
    (("/nonexistent/log.csv", *JANUARY), "/nonexistent/log.csv: no such file"),
])
def test_user_mistakes_exit_2(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err + out


def test_as_a_subprocess_json_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "haops", "metrics"]
    good = subprocess.run([*command, EXAMPLE, *JANUARY, "--json"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "MTBF = MTTF + MTTR" in json.loads(good.stdout)["conventions"][0]
    (tmp_path / "bad.json").write_text('[\n {"start": 1, "end": 2},\n {"start": 5, "end": "soon"}\n]\n')
    bad = subprocess.run([*command, "bad.json", "--from", "0", "--to", "10"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "bad.json:3: end 'soon' is not a timestamp" in bad.stderr and "Traceback" not in bad.stderr


def test_the_command_line_loads_scipy_only_to_compute() -> None:
    # `haops --help` and `haops metrics --help` must stay fast: importing the app must not import scipy.
    probe = "import sys, haops.cli.app; print('scipy' in sys.modules, 'haops.metrics.formulas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_the_sla_holds_for_requests_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # An uneven probe: ok at t = 0, 10 failures packed into 0.500..0.509, ok at 0.510 and at 0.9; window 1 s.
    # Time: down 0.510 - 0.500 = 0.010 s of 1 s, A = 0.99. Requests: 1 + 2 = 3 ok of 13 = 0.2308.
    # At --sla 98 the time-based figure passes and the request-based one fails.
    requests = [Request(0.0, OK, 0.001), *(Request(0.5 + i / 1000, REFUSED, 0.001) for i in range(10)),
                Request(0.51, OK, 0.001), Request(0.9, OK, 0.001)]
    path = tmp_path / "uneven.json"
    DrillRecord("reload", "www", "http://10.213.0.100/", 12.0, 1.0, requests).save(path)
    www = services(capsys, str(path), "--sla", "98")["www"]
    assert www["availability"]["time"] == pytest.approx(0.99)
    assert www["availability"]["requests"] == pytest.approx(0.2308, abs=1e-4)
    assert www["meets_sla"] is False
    assert run(capsys, str(path), "--sla", "98", "--fail-below-sla")[0] == 1
