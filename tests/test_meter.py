"""The meter log source at opening: the sample period inferred from the log, stated-vs-observed warnings, stale and
empty logs refused, and exact readings of a constant log (issue 9). Logs are written with timestamps relative to
time.time(); no kernel runs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from npucheck.cli import cli
from npucheck.measure import power
from npucheck.measure.energy import sweep_window_s
from npucheck.measure.power.base import PowerSourceError
from npucheck.measure.power.meter import MeterLogSource, infer_period
from npucheck.measure.power.window import EnergyWindow
from npucheck.model import SourceInfo


def _write(path: Path, times: list[float], watts: float = 100.0) -> Path:
    path.write_text("timestamp,watts\n" + "".join(f"{t:.3f},{watts}\n" for t in times))
    return path


def _recent(period: float, count: int = 40, newest_age: float = 0.0) -> list[float]:
    """``count`` timestamps ``period`` apart, the newest ``newest_age`` seconds ago."""
    now = time.time() - newest_age
    return [now - period * i for i in reversed(range(count))]


def _ptd(t: float, watts: float) -> str:
    stamp = datetime.fromtimestamp(t, UTC).strftime("%m-%d-%Y %H:%M:%S.%f")[:-3]
    return f"Time,{stamp},Watts,{watts},Volts,230.1,Amps,0.5,PF,0.99,Mark,run\n"


class _Clock:
    """A wall clock and a sleep that advances it: waits without waiting."""

    def __init__(self, now: float):
        self.now = now
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


# ------------------------------------------------------------------------------------------------ 1: period inferred
def test_a_10_hz_log_without_a_stated_period_is_read_as_10_hz(tmp_path):
    log = _write(tmp_path / "m.csv", _recent(0.1))
    source, _ = power.open_source(f"meter:{log}")
    assert source.power_update_s == pytest.approx(0.1, abs=0.002)
    assert source.update_measured_s == pytest.approx(0.1, abs=0.002)
    info = source.describe()
    assert info["period_source"] == "inferred" and info["period_stated_s"] is None
    assert info["period_inferred_s"] == pytest.approx(0.1, abs=0.002)
    assert info["sample_type"] == "average" and info["sample_type_source"] == "default"
    assert info["log_format"] == "csv" and info["warnings"] == []
    assert "every 0.1 s (inferred: the median of the log's newest 20 spacings)" in source.detail
    assert "inferred 0.1 s" in source.update_note
    # the sweep and kernel windows depend on the period: 50 updates of 0.1 s fit a 5 s headline window
    assert sweep_window_s(source, 5.0) == (pytest.approx(5.0, abs=0.1), None)


def test_a_stated_period_is_used_and_recorded_as_stated(tmp_path):
    log = _write(tmp_path / "m.csv", _recent(0.1))
    source, _ = power.open_source(f"meter:{log},period=0.15,sample=instant")
    info = source.describe()
    assert source.power_update_s == 0.15 and info["period_source"] == "stated" and info["period_stated_s"] == 0.15
    assert info["period_inferred_s"] == pytest.approx(0.1, abs=0.002) and info["warnings"] == []  # 1.5x: no warning
    assert info["sample_type"] == "instant" and info["sample_type_source"] == "stated"
    assert "(stated)" in source.detail and "WARNING" not in source.detail


def test_a_ptdaemon_log_period_is_inferred_and_its_sample_type_left_as_the_default(tmp_path):
    log = tmp_path / "ptd.log"
    log.write_text("".join(_ptd(t, 230.0) for t in _recent(1.0, count=10)) + _ptd(time.time(), -1.0))
    source, _ = power.open_source(f"meter:{log}")
    info = source.describe()
    assert info["log_format"] == "ptdaemon" and source.error_samples == 1
    assert source.power_update_s == pytest.approx(1.0, abs=0.002) and info["period_source"] == "inferred"
    assert info["sample_type"] == "average" and info["sample_type_source"] == "default"
    assert "assumed: the log does not say" in source.detail


def test_infer_period_takes_the_median_of_the_newest_spacings():
    samples = [(float(t), 1.0) for t in range(100)] + [(200.0, 1.0), (200.5, 1.0), (201.0, 1.0)]
    # the newest 20 spacings: 17 of 1 s, one 100 s gap (a pause), two of 0.5 s: the median is 1 s, not the mean
    assert infer_period(samples) == (1.0, 20)
    assert infer_period([(5.0, 1.0)]) == (None, 0) and infer_period([(5.0, 1.0), (5.0, 2.0)]) == (None, 0)


# ------------------------------------------------------------------------------------------------ 2: disagreement
@pytest.mark.parametrize("stated", [1.0, 0.04])
def test_a_stated_period_more_than_2x_off_the_observed_spacing_is_warned_about(tmp_path, stated):
    log = _write(tmp_path / "m.csv", _recent(0.1))
    source, _ = power.open_source(f"meter:{log},period={stated:g}")
    assert source.power_update_s == stated  # the user's word is kept ...
    (warning,) = source.warnings  # ... with a warning that reaches the result
    assert f"period={stated:g} s was stated but the log's samples are 0.1 s apart" in warning
    assert "WARNING: " + warning in source.detail and "WARNING: " + warning in source.update_note
    stored = SourceInfo.from_dict(source.describe()).to_dict()  # power.source in the result profile
    assert stored["warnings"] == [warning] and warning in stored["detail"] and warning in stored["update_note"]


def test_a_log_ahead_of_this_hosts_clock_is_warned_about(tmp_path):
    log = _write(tmp_path / "m.csv", _recent(1.0, count=10, newest_age=-30.0))
    source, _ = power.open_source(f"meter:{log}")
    assert any("30.0 s ahead of this host's clock" in w for w in source.warnings)


# ------------------------------------------------------------------------------------------------ 3: stale or empty
def test_a_stopped_logger_is_refused_before_measuring_with_the_age_of_its_newest_sample(tmp_path):
    log = _write(tmp_path / "m.csv", _recent(0.1, newest_age=18.0))
    with pytest.raises(PowerSourceError, match=r"newest sample is 18\.\d s old .*logger seems stopped"):
        power.open_source(f"meter:{log}")


def test_staleness_is_max_of_5_periods_and_2_s(tmp_path):
    fast = _write(tmp_path / "fast.csv", _recent(0.1, newest_age=2.5))  # 10 Hz: stale after 2 s
    with pytest.raises(PowerSourceError, match=r"2\.5 s old"):
        power.open_source(f"meter:{fast}")
    slow = _write(tmp_path / "slow.csv", _recent(1.0, count=10, newest_age=3.0))  # 1 Hz: stale after 5 s
    source, _ = power.open_source(f"meter:{slow}")
    assert source.newest_sample_age_s == pytest.approx(3.0, abs=0.5)


def test_a_stale_log_is_exit_2_and_one_line_from_the_cli(tmp_path):
    log = _write(tmp_path / "m.csv", _recent(1.0, count=10, newest_age=60.0))
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["run", "--device", "cpu", "--power", f"meter:{log}", "-o", str(out)])
    assert result.exit_code == 2
    assert result.output.startswith("npucheck: error: meter:") and "seems stopped" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_an_empty_log_is_refused_after_a_short_wait(tmp_path):
    log = tmp_path / "m.csv"
    log.write_text("timestamp,watts\nnot a sample\n")
    clock = _Clock(time.time())
    source = MeterLogSource(log, sleep=clock.sleep, wall_clock=clock)
    with pytest.raises(
        PowerSourceError, match=r"holds no sample after waiting 3 s \(1 line\(s\) could not be parsed\)"
    ):
        source.measure_update()
    assert clock.slept == pytest.approx(3.0, abs=0.11)


def test_opening_waits_for_a_logger_that_has_just_started(tmp_path):
    log = tmp_path / "m.csv"
    log.write_text("")

    def start_late() -> None:
        time.sleep(0.3)
        with log.open("a") as f:
            for _ in range(4):
                f.write(f"{time.time():.3f},80\n")
                f.flush()
                time.sleep(0.05)

    writer = threading.Thread(target=start_late)
    writer.start()
    try:
        source, _ = power.open_source(f"meter:{log}")
    finally:
        writer.join()
    assert source.period_inferred_s == pytest.approx(0.05, abs=0.04)


# ------------------------------------------------------------------------------------------------ 4: constant log
def test_a_constant_log_reads_back_exactly_with_the_inferred_period(tmp_path):
    """A 0.5 Hz log of averages: with the old assumed 1 s period each sample covered only half its interval and
    the window was invalid; with the inferred 2 s it reads exactly 150 W and 150 J per second."""
    t0 = time.time()
    log = _write(tmp_path / "m.csv", [t0 - 10 + 2 * k for k in range(8)], watts=150.0)  # newest at t0 + 4
    source, _ = power.open_source(f"meter:{log}")
    assert source.power_update_s == pytest.approx(2.0)
    clock = _Clock(t0 - 5.5)  # the window [t0 - 5.5, t0 - 4.5] lies inside the sample at t0 - 4
    window = EnergyWindow(source, clock=clock, wall_clock=clock)
    with window:
        clock.now = t0 - 4.5
    energy = window.result()
    assert energy["valid"], energy["reason"]
    assert energy["avg_watts"] == pytest.approx(150.0, rel=1e-12)
    assert energy["joules"] == pytest.approx(150.0 * energy["window_s"], rel=1e-12)
    assert energy["coverage"] == pytest.approx(1.0)


def test_a_constant_log_written_live_reads_back_exactly(tmp_path):
    log = tmp_path / "m.csv"
    log.write_text("")
    stop = threading.Event()

    def write() -> None:
        with log.open("a") as f:
            while not stop.is_set():
                f.write(f"{time.time():.6f},42.5\n")
                f.flush()
                time.sleep(0.02)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        source, _ = power.open_source(f"meter:{log},sample=instant")
        window = EnergyWindow(source, clock=time.time, wall_clock=time.time)
        with window:
            time.sleep(0.5)
        energy = window.result(meter_wait_s=1.0)
    finally:
        stop.set()
        writer.join()
    assert energy["valid"], energy["reason"]
    # exact over the wall-clock interval the log is integrated on ...
    assert energy["joules"] == pytest.approx(42.5 * (window.end_unix - window.start_unix), rel=1e-9)
    # ... and the watts divide by window_s, read from the other clock a few microseconds apart at each edge
    assert energy["avg_watts"] == pytest.approx(42.5, rel=1e-4)
    assert energy["uncertainty_terms"] == {"source": 0.05}  # instant samples: no averaging lag
