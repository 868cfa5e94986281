"""`npucheck run` end to end with power sources that another process drives while the run goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner
from conftest import make_measurement
from fakes import make_zone

from npucheck.cli import cli
from npucheck.model import Measurement

RAPL_WRITER = """
import os, sys, time
path, watts, max_uj = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
start, t0 = 987654, time.monotonic()
while True:
    uj = int(start + watts * (time.monotonic() - t0) * 1e6) % (max_uj + 1)
    with open(path + ".tmp", "w") as f:
        f.write(f"{uj}\\n")
    os.replace(path + ".tmp", path)
    time.sleep(0.005)
"""

METER_WRITER = """
import sys, time
path, watts = sys.argv[1], float(sys.argv[2])
with open(path, "a", buffering=1) as f:
    while True:
        f.write(f"{time.time():.3f},{watts}\\n")
        time.sleep(0.1)
"""

RUN = [
    "run",
    "--device",
    "cpu",
    "--suite",
    "quick",
    "--kernels",
    "gemm",
    "--dtypes",
    "fp16,fp32",
    "--power-trials",
    "2",
    "--power-window",
    "1",
    "--idle-seconds",
    "0.5",
]


def _writer(script: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)])


def _headline(profile: dict) -> list[dict]:
    return [m["energy"] for m in profile["measurements"] if (m.get("energy") or {}).get("kind") == "headline"]


@pytest.mark.slow
def test_rapl_counter_advanced_by_another_process_is_reported_within_2_percent(tmp_path, monkeypatch):
    watts, max_uj = 50.0, 20_000_000  # the counter wraps every 0.4 s, several times in each window
    zone = make_zone(tmp_path / "sys", "intel-rapl:0", "package-0", 0, max_uj=max_uj)
    writer = _writer(RAPL_WRITER, zone / "energy_uj", watts, max_uj)
    monkeypatch.setenv("NPUCHECK_SYSFS_ROOT", str(tmp_path / "sys"))
    out = tmp_path / "r.json"
    try:
        time.sleep(0.2)
        result = CliRunner().invoke(cli, RUN + ["--power", "rapl", "-o", str(out)])
    finally:
        writer.kill()
    assert result.exit_code == 0, result.output
    profile = json.loads(out.read_text())
    assert profile["power"]["source"]["name"] == "rapl" and profile["power"]["idle"]["valid"]
    windows = _headline(profile)
    assert {e["case"].split("/")[1] for e in windows} == {"fp16", "fp32"}
    for energy in windows:
        assert energy["valid"], energy["reason"]
        assert energy["avg_watts"] == pytest.approx(watts, rel=0.02)
        assert energy["tflops_per_watt"] == pytest.approx(energy["tflops"] / energy["avg_watts"])
        assert energy["quality"] == "Q2" and energy["scope"] == "package"
        assert [t["avg_watts"] == pytest.approx(watts, rel=0.03) for t in energy["trials"]] == [True, True]
    summary = profile["summary"]
    assert summary["tflops_per_watt"]["fp32"] == pytest.approx(
        next(e for e in windows if "/fp32/" in e["case"])["tflops_per_watt"]
    )
    criteria = {c["metric"]: c for v in profile["verdicts"] for c in v["criteria"]}
    per_watt = criteria["tflops_per_watt.fp16"]
    assert per_watt["status"] == "FAIL", per_watt  # a few GFLOPS at 50 W is far below 1 TFLOPS/W


@pytest.mark.slow
def test_meter_log_written_live_by_another_process_is_reported(tmp_path):
    log = tmp_path / "meter.csv"
    log.write_text("timestamp,watts\n")
    writer = _writer(METER_WRITER, log, 123.4)
    out = tmp_path / "r.json"
    try:
        result = CliRunner().invoke(
            cli, RUN + ["--power", f"meter:{log},period=0.1,accuracy=0.01,sample=instant", "-o", str(out)]
        )
    finally:
        writer.kill()
    assert result.exit_code == 0, result.output
    profile = json.loads(out.read_text())
    for energy in _headline(profile):
        assert energy["valid"], energy["reason"]
        assert energy["avg_watts"] == pytest.approx(123.4, rel=0.01)
        assert energy["quality"] == "Q3" and energy["scope"] == "wall"
        assert set(energy["uncertainty_terms"]) == {"source", "trial spread"}  # instant samples: no averaging lag
        assert energy["uncertainty_terms"]["source"] == 0.01
    low, high = profile["summary"]["tflops_per_watt_ci"]["fp16"]
    assert low < profile["summary"]["tflops_per_watt"]["fp16"] < high


def test_an_unusable_named_power_source_is_exit_2_before_measuring(tmp_path, monkeypatch):
    monkeypatch.setenv("NPUCHECK_SYSFS_ROOT", str(tmp_path))
    result = CliRunner().invoke(cli, ["run", "--device", "cpu", "--power", "rapl", "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert result.output.startswith("npucheck: error: rapl:") and "is not present" in result.output
    assert not (tmp_path / "r.json").exists()


def test_energy_windows_batch_short_calls_between_synchronizations():
    from npucheck.measure.energy import window_batch

    # single-call samples of a 0.1 ms kernel: 100 calls per synchronization, not one
    measured = Measurement.from_dict(make_measurement())

    def timed(calls_per_sample, median_s):
        stats = replace(measured.stats, median_s=median_s) if median_s is not None else None
        return replace(measured, calls_per_sample=calls_per_sample, stats=stats)

    assert window_batch(timed(1, 1e-4)) == 100
    assert window_batch(timed(1, 0.05)) == 1
    assert window_batch(timed(40, 1e-3)) == 40
    assert window_batch(timed(None, None)) == 1
