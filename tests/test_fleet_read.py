"""The reading side of a fleet (``npucheck fleet DIR``, ``npucheck.read.fleet``, ``npucheck.fleetfile``): synthetic
fleet directories built from ``conftest.make_profile``, with raw samples chosen so that each device's speed and
interval are known exactly."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import make_measurement, make_profile

from npucheck.errors import ResultFileError
from npucheck.fleetfile import (
    FLEET_FILE,
    FLEET_SCHEMA,
    FLEET_SCHEMA_VERSION,
    load_summary,
    profile_stem,
    write_summary,
)
from npucheck.read import fleet as fleets
from npucheck.stats import summarize
from npucheck.store import validate

FLOPS = 2 * 256**3
FP16_CASE = "gemm/fp16/m256_n256_k256_NN"
BF16_CASE = "gemm/bf16/m256_n256_k256_NN"


def samples(per_call_s: float, noise: float = 0.002, n: int = 30) -> list[float]:
    """``n`` per-call times spread evenly over per_call_s·(1 ± noise), shuffled deterministically: the median is
    per_call_s and the 95% interval of the median is about ±0.38·noise around it (n = 30)."""
    values = [per_call_s * (1 + noise * (-1 + 2 * i / (n - 1))) for i in range(n)]
    return values[1::2] + values[0::2]


def tflops_of(per_call_s: float) -> float:
    return FLOPS / per_call_s / 1e12


def gpu(
    host: str,
    local_rank: int,
    *,
    fp16_s: float = 1e-4,
    bf16_s: float | None = None,
    noise: float = 0.002,
    model: str = "NVIDIA H200",
    driver: str | None = "550.54.15",
    limit_w: float | None = 700.0,
    uuid: str | None = "auto",
    verdict: str = "PASS",
    rank: int | None = None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A schema-valid profile of one device of a fleet whose peak fp16 (and bf16) case has the given per-call time."""
    profile = make_profile()
    sm_state = state or {"sm_clock_mhz": 1980, "throttle_reasons": [], "temperature_c": 60}
    device_state = {
        "before": {**sm_state, "power_limit_w": limit_w} if limit_w else dict(sm_state),
        "after": {**sm_state, "power_limit_w": limit_w} if limit_w else dict(sm_state),
    }
    measurements = [_measurement(FP16_CASE, "fp16", fp16_s, noise, device_state)]
    if bf16_s is not None:
        measurements.append(_measurement(BF16_CASE, "bf16", bf16_s, noise, device_state))
    profile["measurements"] = measurements
    profile["confirmations"] = []
    peaks = {}
    for m in measurements:
        peaks[m["dtype"]] = {"case": m["id"], "tflops": m["tflops"], "ci_low": m["tflops_ci"][0]}
        peaks[m["dtype"]]["ci_high"] = m["tflops_ci"][1]
    profile["summary"] = {
        "peak_tflops": {d: p["tflops"] for d, p in peaks.items()},
        "peak": peaks,
        "tflops_per_watt": {"fp16": None},
        "counts": {"ok": len(measurements), "error": 0, "skipped": 0},
    }
    profile["device"].update(
        backend="cuda",
        id=f"cuda:{local_rank}",
        name=model,
        properties={"uuid": f"GPU-{host}-{local_rank}"} if uuid == "auto" else ({"uuid": uuid} if uuid else {}),
    )
    profile["environment"].update(
        hostname=host,
        driver=driver,
        fleet={"rank": local_rank if rank is None else rank, "local_rank": local_rank, "launcher": "torchrun"},
    )
    profile["verdicts"][0]["status"] = verdict
    for criterion in profile["verdicts"][0]["criteria"]:
        criterion["status"] = verdict
    return profile


def _measurement(case: str, dtype: str, per_call_s: float, noise: float, state: dict[str, Any]) -> dict[str, Any]:
    raw = samples(per_call_s, noise)
    stats = summarize(raw)
    return make_measurement(
        id=case,
        dtype=dtype,
        samples_s=raw,
        stats=stats.to_dict(),
        tflops=FLOPS / stats.median_s / 1e12,
        tflops_ci=[FLOPS / stats.ci_high_s / 1e12, FLOPS / stats.ci_low_s / 1e12],
        device_state=state,
    )


def write(directory: Path, profiles: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, profile in profiles.items():
        (directory / f"{name}.json").write_text(json.dumps(profile, indent=1), encoding="utf-8")
    return directory


def summary(members: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    doc = {
        "schema": FLEET_SCHEMA,
        "schema_version": FLEET_SCHEMA_VERSION,
        "npucheck_version": "0.1.0",
        "created_utc": "2026-11-25T22:10:00Z",
        "started_utc": "2026-11-25T22:00:00Z",
        "launcher": "torchrun",
        "run_id": "t1",
        "command": ["npucheck", "run", "--fleet", "DIR"],
        "world_size": len(members),
        "hosts": sorted({m["host"] for m in members}),
        "settings": {"suite": "quick", "kernels": ["gemm"], "dtypes": None, "timeout_s": 600.0},
        "members": members,
    }
    doc.update(overrides)
    return doc


def member(rank: int, host: str, local_rank: int, status: str = "ok", reason: str | None = None) -> dict[str, Any]:
    stem = profile_stem(host, local_rank, f"cuda:{local_rank}")
    return {
        "rank": rank,
        "local_rank": local_rank,
        "host": host,
        "device": f"cuda:{local_rank}",
        "status": status,
        "profile": f"{stem}.json" if status in ("ok", "interrupted") else None,
        "reason": reason,
        "local_copy": None,
        "exit_code": 0 if status == "ok" else None,
        "pid": None,
    }


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    """Four GPUs on host vm, vm-1 48% slow in bf16 (fp16 normal); fleet.json with an error and a missing member."""
    profiles = {
        profile_stem("vm", i, f"cuda:{i}"): gpu("vm", i, bf16_s=1e-4 / (0.52 if i == 1 else 1)) for i in range(4)
    }
    directory = write(tmp_path / "fleet", profiles)
    members = [member(i, "vm", i) for i in range(4)]
    members.append(member(4, "vm", 4, "error", "RuntimeError: CUDA error: an illegal memory access"))
    members.append(member(5, "vm", 5, "missing", "no profile after the 600 s timeout"))
    write_summary(directory, summary(members))
    return directory


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "npucheck.cli", *args], capture_output=True, text=True, check=False, env=env
    )


# ------------------------------------------------------------------------------------------------ the files
def test_the_synthetic_profiles_are_valid_result_profiles():
    validate(gpu("vm", 0, bf16_s=2e-4), "synthetic")  # the tests read what npucheck writes


def test_profile_stem_slugs_the_host_and_drops_the_colon():
    assert profile_stem("GPU07.example.com", 3, "cuda:3") == "gpu07-example-com-3-cuda3"
    assert profile_stem("vm", 1, "cpu") == "vm-1-cpu"
    with pytest.raises(ValueError):
        profile_stem("vm", -1, "cpu")


def test_a_summary_round_trips_and_is_replaced_atomically(tmp_path: Path):
    doc = summary([member(0, "vm", 0)])
    path = write_summary(tmp_path, doc)
    assert path == tmp_path / FLEET_FILE and load_summary(path) == doc
    write_summary(tmp_path, summary([member(0, "vm", 0), member(1, "vm", 1)]))
    assert len(load_summary(path)["members"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == [FLEET_FILE]  # no temporary file left behind
    assert path.read_text().startswith('{\n  "command"')  # indent 2, sorted keys


def test_an_invalid_summary_is_never_written(tmp_path: Path):
    bad = summary([{**member(0, "vm", 0), "status": "lost"}])
    with pytest.raises(ResultFileError, match=r"members\[0\]\.status"):
        write_summary(tmp_path, bad)
    assert not (tmp_path / FLEET_FILE).exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("[1]", "not a JSON object"),
        ('{"schema": "other"}', "not an npucheck fleet summary"),
        (json.dumps(summary([]) | {"schema_version": 2}), "newer npucheck .*upgrade npucheck"),
        (json.dumps(summary([]) | {"world_size": 0}), r"\$\.world_size"),
    ],
)
def test_a_bad_summary_is_one_line(tmp_path: Path, text: str, message: str):
    path = tmp_path / FLEET_FILE
    path.write_text(text)
    with pytest.raises(ResultFileError, match=message) as caught:
        load_summary(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


# ------------------------------------------------------------------------------------------------ loading
def test_loading_with_fleet_json_keeps_error_and_missing_members(fleet_dir: Path):
    data = fleets.load_fleet(fleet_dir)
    frame = data.devices
    assert list(frame.columns[: len(fleets.DEVICE_COLUMNS)]) == list(fleets.DEVICE_COLUMNS)
    assert list(frame["rank"]) == [0, 1, 2, 3, 4, 5]
    assert list(frame["status"]) == ["ok"] * 4 + ["error", "missing"]
    error, missing = frame.iloc[4], frame.iloc[5]
    assert "illegal memory access" in error["reason"] and "600 s" in missing["reason"]
    assert math.isnan(error["peak_fp16_tflops"]) and math.isnan(missing["peak_bf16_tflops"])
    assert data.summary is not None and data.summary["launcher"] == "torchrun" and data.unreadable == ()
    first = frame.iloc[0]
    assert first["key"] == "vm/GPU-vm-0" and first["host"] == "vm" and first["device"] == "cuda:0"
    assert first["model"] == "NVIDIA H200" and first["driver"] == "550.54.15" and first["power_limit_w"] == 700
    assert first["worst_verdict"] == "PASS" and first["verdicts"] == "miit-2020-cloud: PASS"
    assert first["sm_clock_mhz"] == 1980 and first["throttle_reasons"] == "" and first["temperature_c"] == 60


def test_loading_without_fleet_json_takes_the_members_from_the_profiles(fleet_dir: Path):
    (fleet_dir / FLEET_FILE).unlink()
    interrupted = gpu("vm", 7)
    interrupted["interrupted"] = True
    write(fleet_dir, {"vm-7-cuda7": interrupted})
    data = fleets.load_fleet(fleet_dir)
    assert data.summary is None
    assert list(data.devices["local_rank"]) == [0, 1, 2, 3, 7]  # error and missing members are unknown now
    assert list(data.devices["status"]) == ["ok"] * 4 + ["interrupted"]
    assert bool(data.devices.iloc[4]["interrupted"])


def test_figures_come_from_the_raw_samples_not_the_stored_summary(tmp_path: Path):
    profile = gpu("vm", 0, fp16_s=2e-4)
    profile["summary"]["peak"]["fp16"].update(tflops=999.0, ci_low=998.0, ci_high=1000.0)  # a stale summary
    no_samples = gpu("vm", 1, fp16_s=2e-4)
    no_samples["measurements"][0]["samples_s"] = []
    data = fleets.load_fleet(write(tmp_path, {"a": profile, "b": no_samples}))
    row, fallback = data.devices.iloc[0], data.devices.iloc[1]
    stats = summarize(samples(2e-4))
    assert row["peak_fp16_tflops"] == pytest.approx(tflops_of(2e-4))
    assert row["peak_fp16_ci_low"] == pytest.approx(FLOPS / stats.ci_high_s / 1e12)
    assert row["peak_fp16_ci_high"] == pytest.approx(FLOPS / stats.ci_low_s / 1e12)
    assert row["notes"] == "peak fp16: edited or corrupt: stored 999, raw samples give 0.167772"  # the edit named
    assert fallback["peak_fp16_tflops"] == pytest.approx(no_samples["summary"]["peak"]["fp16"]["tflops"])
    assert "stored summary" in fallback["notes"]
    assert set(data.samples) == {"a.json"}


def test_a_stored_tflops_per_watt_its_window_does_not_give_is_named_and_not_shown(tmp_path: Path):
    honest = gpu("vm", 0)
    window = {"kind": "headline", "valid": True, "flops": 4e15, "joules": 8000.0, "window_s": 10.0}
    honest["measurements"][0]["energy"] = window
    honest["summary"]["tflops_per_watt"] = {"fp16": 4e15 / 10.0 / 1e12 / (8000.0 / 10.0)}  # 0.5
    honest["summary"]["tflops_per_watt_ci"] = {"fp16": [0.45, 0.55]}
    edited = copy.deepcopy(honest)
    edited["summary"]["tflops_per_watt"] = {"fp16": 5.0}
    no_window = copy.deepcopy(honest)
    no_window["measurements"][0]["energy"] = None
    data = fleets.load_fleet(write(tmp_path, {"a": honest, "b": edited, "c": no_window}))
    a, b, c = (data.devices.iloc[i] for i in range(3))
    assert a["fp16_tflops_per_watt"] == 0.5 and a["fp16_tflops_per_watt_ci_low"] == 0.45 and a["notes"] == ""
    assert _none(b["fp16_tflops_per_watt"]) and _none(b["fp16_tflops_per_watt_ci_low"])
    assert b["notes"] == "fp16 TFLOPS/W: edited or corrupt: stored 5, its window gives 0.5"
    assert _none(c["fp16_tflops_per_watt"]) and "but no energy window gives it" in c["notes"]


def _none(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_evidence_is_read_from_the_peak_case(tmp_path: Path):
    state = {"sm_clock_mhz": 1410, "throttle_reasons": ["SwPowerCap"], "temperature_c": 87}
    profile = gpu("vm", 0, state=state)
    profile["measurements"][0]["foreign_cpu_cores"] = 3.5
    profile["measurements"][0]["device_state"]["before"]["temperature_c"] = 91  # the hottest edge counts
    profile["warnings"] = ["w1", "w2"]
    row = fleets.load_fleet(write(tmp_path, {"a": profile})).devices.iloc[0]
    assert row["sm_clock_mhz"] == 1410 and row["throttle_reasons"] == "SwPowerCap"
    assert row["temperature_c"] == 91 and row["foreign_cpu_cores"] == 3.5 and row["warnings"] == 2


def test_unreadable_profiles_are_listed_not_fatal(fleet_dir: Path):
    (fleet_dir / "vm-2-cuda2.json").write_text('{"schema_version": 2, "device": {"na')  # truncated
    wrong = gpu("vm", 3)
    wrong["summary"]["peak"]["fp16"]["tflops"] = "fast"
    write(fleet_dir, {"vm-3-cuda3": wrong, "newer": make_profile(schema_version=3)})
    data = fleets.load_fleet(fleet_dir)
    reasons = "\n".join(data.unreadable)
    assert len(data.unreadable) == 3 and all("\n" not in line for line in data.unreadable)
    assert "vm-2-cuda2.json: truncated JSON" in reasons
    assert "vm-3-cuda3.json: $.summary.peak.fp16.tflops: expected a number, found a string" in reasons
    assert "newer.json: written by a newer npucheck (schema 3 > 2); upgrade npucheck" in reasons
    by_rank = data.devices.set_index("rank")
    assert by_rank.loc[2, "status"] == "error" and "truncated JSON" in by_rank.loc[2, "reason"]
    assert by_rank.loc[0, "status"] == "ok"
    done = cli("fleet", str(fleet_dir))
    assert done.returncode == 0, done.stderr
    assert "npucheck: skipped " in done.stderr and "Traceback" not in done.stderr + done.stdout


def test_a_folder_without_fleet_json_or_profiles_is_an_error(tmp_path: Path):
    with pytest.raises(ResultFileError, match="neither fleet.json nor any result profile"):
        fleets.load_fleet(tmp_path)
    with pytest.raises(ResultFileError, match="no such folder"):
        fleets.load_fleet(tmp_path / "absent")


# ------------------------------------------------------------------------------------------------ outliers
def test_the_slow_device_and_only_it_is_flagged(fleet_dir: Path):
    analysed = fleets.analyse(fleets.load_fleet(fleet_dir))
    assert list(analysed.loc[analysed["flagged"], "profile"]) == ["vm-1-cuda1.json"]
    slow = analysed[analysed["flagged"]].iloc[0]
    assert bool(slow["peak_bf16_tflops_flag"]) and not bool(slow["peak_fp16_tflops_flag"])
    assert slow["peak_bf16_tflops_ratio"] == pytest.approx(0.52, abs=0.002)
    assert slow["flag_reasons"].startswith("peak bf16 48% below its 3 peers (0.52×; 95% CI 0.52–0.52×)")
    assert "clock 1980 MHz vs peers' median 1980 MHz" in slow["evidence"]
    # error and missing members are never flagged, and are kept
    assert not analysed.loc[analysed["status"].isin(["error", "missing"]), "flagged"].any()
    assert analysed["group"].iloc[0] == "NVIDIA H200 · driver 550.54.15 · 700 W"


def test_a_noisy_device_15_percent_slow_is_not_flagged(tmp_path: Path):
    profiles = {f"d{i}": gpu("vm", i, noise=0.5) for i in range(4)}
    profiles["d3"] = gpu("vm", 3, fp16_s=1e-4 / 0.85, noise=0.5)  # 15% slow, but ±19% intervals
    analysed = fleets.analyse(fleets.load_fleet(write(tmp_path, profiles)))
    slow = analysed.set_index("profile").loc["d3.json"]
    assert slow["peak_fp16_tflops_ratio"] == pytest.approx(0.85, abs=0.001)
    assert not analysed["flagged"].any()
    assert "not significantly" in slow["notes"]
    tight = {f"d{i}": gpu("vm", i) for i in range(3)} | {"d3": gpu("vm", 3, fp16_s=1e-4 / 0.85)}
    quiet = fleets.analyse(fleets.load_fleet(write(tmp_path / "quiet", tight)))
    assert list(quiet.loc[quiet["flagged"], "profile"]) == ["d3.json"]  # the same shortfall, tight samples


def test_the_tolerance_decides_a_small_significant_shortfall(tmp_path: Path):
    profiles = {f"d{i}": gpu("vm", i) for i in range(3)}
    profiles["d3"] = gpu("vm", 3, fp16_s=1e-4 / 0.95)  # 5% slow, intervals ±0.08%
    data = fleets.load_fleet(write(tmp_path, profiles))
    assert not fleets.analyse(data, tolerance=0.10)["flagged"].any()
    strict = fleets.analyse(data, tolerance=0.03)
    assert list(strict.loc[strict["flagged"], "profile"]) == ["d3.json"]


def test_a_two_device_group_compares_each_with_the_other(tmp_path: Path):
    profiles = {"a": gpu("vm", 0, fp16_s=1e-4), "b": gpu("vm", 1, fp16_s=2e-4)}
    analysed = fleets.analyse(fleets.load_fleet(write(tmp_path, profiles))).set_index("profile")
    fast, slow = analysed.loc["a.json"], analysed.loc["b.json"]
    assert slow["peak_fp16_tflops_ref"] == pytest.approx(fast["peak_fp16_tflops"])  # not the median of both
    assert fast["peak_fp16_tflops_ref"] == pytest.approx(slow["peak_fp16_tflops"])
    assert slow["peak_fp16_tflops_ratio"] == pytest.approx(0.5) and fast["peak_fp16_tflops_ratio"] == pytest.approx(2)
    assert bool(slow["flagged"]) and not bool(fast["flagged"])
    assert "below its 1 peer " in slow["flag_reasons"]


def test_groups_keep_models_drivers_and_power_limits_apart(tmp_path: Path):
    profiles = {f"h{i}": gpu("a", i) for i in range(3)}
    profiles["a100"] = gpu("b", 0, model="NVIDIA A100-SXM4-80GB", fp16_s=3e-4)  # a third as fast: another model
    profiles["capped0"] = gpu("c", 0, limit_w=400.0, fp16_s=1.6e-4)  # power-capped: its own group
    profiles["capped1"] = gpu("c", 1, limit_w=400.0, fp16_s=1.6e-4)
    profiles["olddriver"] = gpu("d", 0, driver="535.104.05", fp16_s=1.2e-4)
    analysed = fleets.analyse(fleets.load_fleet(write(tmp_path, profiles))).set_index("profile")
    assert not analysed["flagged"].any()
    assert analysed.loc["a100.json", "group"] == "NVIDIA A100-SXM4-80GB · driver 550.54.15 · 700 W"
    assert analysed.loc["capped0.json", "group"] == "NVIDIA H200 · driver 550.54.15 · 400 W"
    assert analysed.loc["a100.json", "flag_reasons"] == "alone in its group: not compared"
    assert analysed.loc["olddriver.json", "flag_reasons"] == "alone in its group: not compared"
    assert analysed.loc["capped0.json", "peak_fp16_tflops_ratio"] == pytest.approx(1.0)
    groups = fleets.groups_frame(analysed.reset_index()).set_index("group")
    assert groups.loc["NVIDIA H200 · driver 550.54.15 · 700 W", "devices"] == 3
    spread = groups.loc["NVIDIA H200 · driver 550.54.15 · 700 W", "peak_fp16_tflops_spread"]
    assert spread == pytest.approx(0.0, abs=1e-9)
    assert len(groups) == 4


def test_groups_frame_spread_is_max_over_min(tmp_path: Path):
    profiles = {"a": gpu("vm", 0, fp16_s=1e-4), "b": gpu("vm", 1, fp16_s=1.25e-4, noise=0.5)}
    groups = fleets.groups_frame(fleets.analyse(fleets.load_fleet(write(tmp_path, profiles))))
    row = groups.iloc[0]
    assert row["peak_fp16_tflops_spread"] == pytest.approx(0.25)
    assert row["peak_fp16_tflops_min"] == pytest.approx(tflops_of(1.25e-4))
    assert row["devices"] == 2 and row["ok_devices"] == 2


def test_exit_codes_with_and_without_fail_on_outlier(fleet_dir: Path, tmp_path: Path):
    analysed = fleets.analyse(fleets.load_fleet(fleet_dir))
    assert fleets.exit_code(analysed, fail_on_outlier=False) == 0
    assert fleets.exit_code(analysed, fail_on_outlier=True) == 1
    clean = write(tmp_path / "clean", {f"d{i}": gpu("vm", i) for i in range(3)})
    assert fleets.exit_code(fleets.analyse(fleets.load_fleet(clean)), True) == 0
    failing = write(tmp_path / "failing", {f"d{i}": gpu("vm", i, verdict="FAIL") for i in range(3)})
    assert fleets.exit_code(fleets.analyse(fleets.load_fleet(failing)), True) == 1
    write_summary(clean, summary([member(0, "vm", 0), member(1, "vm", 1, "missing", "lost")]))
    (clean / "vm-0-cuda0.json").write_text(json.dumps(gpu("vm", 0)))
    assert fleets.exit_code(fleets.analyse(fleets.load_fleet(clean)), True) == 1  # a missing member
    assert cli("fleet", str(fleet_dir)).returncode == 0
    assert cli("fleet", str(fleet_dir), "--fail-on-outlier").returncode == 1


# ------------------------------------------------------------------------------------------------ the command
def test_the_table_fits_80_columns_and_names_the_outlier(fleet_dir: Path):
    for columns in (80, 100):
        done = cli("fleet", str(fleet_dir), columns=columns)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stdout + done.stderr and done.stderr == ""
        lines = done.stdout.splitlines()
        assert max(len(line) for line in lines) <= columns, [line for line in lines if len(line) > columns]
        header = " ".join(line.strip() for line in lines[: lines.index("")])
        assert header.startswith(f"fleet {fleet_dir}: 6 devices on 1 host, launcher torchrun, suite quick")
        assert "vm-1-cuda1" in done.stdout and "OUTLIER" in done.stdout
        assert "vm-5-cuda5: missing: no profile after the 600 s timeout" in done.stdout
        assert "vm-4-cuda4: error: RuntimeError" in done.stdout
        bottom = " ".join(line.strip() for line in lines[len(lines) - lines[::-1].index("") :])
        assert bottom == "6 devices, 1 flagged: vm-1-cuda1 (peak bf16 48% below its peers); 1 missing, 1 error"


def test_csv_json_and_markdown(fleet_dir: Path):
    as_json = json.loads(cli("fleet", str(fleet_dir), "--format", "json").stdout)
    assert [d["profile"] for d in as_json["devices"] if d["flagged"]] == ["vm-1-cuda1.json"]
    assert as_json["tolerance"] == 0.1 and as_json["launcher"] == "torchrun" and len(as_json["groups"]) == 2
    csv = cli("fleet", str(fleet_dir), "--format", "csv", "--tolerance", "0.5").stdout.splitlines()
    assert csv[0].startswith("key,rank,local_rank,host,device") and len(csv) == 7
    assert ",True," not in csv[2]  # 48% short is within a 50% tolerance
    markdown = cli("fleet", str(fleet_dir), "--format", "markdown").stdout
    assert markdown.startswith("# fleet ") and "| vm-1-cuda1 |" in markdown and "## Outliers" in markdown


def test_bad_input_exits_2_with_one_line(fleet_dir: Path, tmp_path: Path):
    newer = json.loads((fleet_dir / FLEET_FILE).read_text()) | {"schema_version": 2}
    (fleet_dir / FLEET_FILE).write_text(json.dumps(newer))
    done = cli("fleet", str(fleet_dir))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "upgrade npucheck" in done.stderr
    absent = cli("fleet", str(tmp_path / "nowhere"))
    assert (
        absent.returncode == 2 and absent.stderr.strip() == f"npucheck: error: {tmp_path / 'nowhere'}: no such folder"
    )
    assert cli("fleet", str(fleet_dir), "--tolerance", "1").returncode == 2


def test_the_fleet_command_never_imports_torch(fleet_dir: Path):
    code = (
        "import sys; from npucheck.cli import main\n"
        f"try:\n    main(['fleet', {str(fleet_dir)!r}, '--format', 'csv'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------------------------ two fleets
def test_compare_fleets_finds_the_device_that_got_slower(tmp_path: Path):
    base = write(tmp_path / "base", {f"d{i}": gpu("vm", i) for i in range(3)})
    later = {f"d{i}": gpu("vm", i) for i in range(3)}
    later["d2"] = gpu("vm", 2, fp16_s=1.25e-4)  # 20% slower
    del later["d1"]
    later["d9"] = gpu("vm", 9)
    other = write(tmp_path / "other", later)
    frame = fleets.compare_fleets(fleets.load_fleet(base), fleets.load_fleet(other)).set_index("key")
    assert frame.loc["vm/GPU-vm-2", "verdict"] == "regression"
    assert frame.loc["vm/GPU-vm-2", "fp16_ratio"] == pytest.approx(0.8, abs=0.002)
    assert frame.loc["vm/GPU-vm-2", "fp16_ratio_high"] < 1
    assert frame.loc["vm/GPU-vm-0", "verdict"] == "noise"
    assert frame.loc["vm/GPU-vm-1", "verdict"] == "missing" and frame.loc["vm/GPU-vm-9", "verdict"] == "new"
    assert list(frame.index) == ["vm/GPU-vm-0", "vm/GPU-vm-1", "vm/GPU-vm-2", "vm/GPU-vm-9"]


def test_group_labels_say_what_is_unknown():
    assert fleets.group_label("AMD EPYC 9654", None, float("nan")) == "AMD EPYC 9654 · no driver · no limit"
    assert fleets.group_label("NVIDIA H200", "550.54", 700.0) == "NVIDIA H200 · driver 550.54 · 700 W"
    assert fleets.group_label(None, None, None) == "no profile"


def test_the_table_becomes_blocks_where_even_its_first_columns_do_not_fit(fleet_dir: Path):
    analysed = fleets.analyse(fleets.load_fleet(fleet_dir))
    lines = fleets.fleet_table_lines(analysed, 20)
    assert lines[:3] == ["Fleet: 6 devices", "vm-0-cuda0", "  fp16 TFLOPS: 0.3355"]
    assert lines[lines.index("vm-1-cuda1") :][:3] == ["vm-1-cuda1", "  fp16 TFLOPS: 0.3355;", "  flag: OUTLIER"]
    wide = fleets.fleet_table_lines(analysed, 200)
    assert wide[1].split() == [
        "device", "model", "uuid", "driver", "limit", "W", "fp16", "TFLOPS", "bf16", "TFLOPS", "verdicts", "flag"
    ]  # fmt: skip


def test_an_interrupted_profile_is_judged_but_never_a_reference(tmp_path: Path):
    partial = gpu("vm", 2, fp16_s=2e-4)  # half speed: its largest cases never ran
    partial["interrupted"] = True
    profiles = {"a": gpu("vm", 0), "b": gpu("vm", 1, fp16_s=1.02e-4), "c": partial}
    analysed = fleets.analyse(fleets.load_fleet(write(tmp_path, profiles))).set_index("profile")
    assert analysed.loc["a.json", "peak_fp16_tflops_ref"] == pytest.approx(tflops_of(1.02e-4))  # b alone, not c
    both = (tflops_of(1e-4) + tflops_of(1.02e-4)) / 2
    assert analysed.loc["c.json", "peak_fp16_tflops_ref"] == pytest.approx(both)  # the median of a and b
    assert bool(analysed.loc["c.json", "flagged"]) and "below its 2 peers" in analysed.loc["c.json", "flag_reasons"]
    assert analysed.loc["c.json", "status"] == "interrupted"


def test_a_rank_that_never_reported_is_named_by_its_rank(fleet_dir: Path):
    doc = json.loads((fleet_dir / FLEET_FILE).read_text())
    doc["members"].append({"rank": 6, "host": None, "device": None, "status": "missing", "reason": "never joined"})
    doc["world_size"] = 7
    write_summary(fleet_dir, doc)
    analysed = fleets.analyse(fleets.load_fleet(fleet_dir))
    lost = analysed.iloc[-1]
    assert lost["key"] == "rank/6" and lost["status"] == "missing" and not bool(lost["flagged"])
    assert "rank 6: missing: never joined" in fleets.missing_lines(analysed)
    assert fleets.bottom_line(analysed).endswith("; 2 missing, 1 error")
