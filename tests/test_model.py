"""npucheck.model: typed result objects keep the JSON format exactly, check values when built, import no torch."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from dataclasses import FrozenInstanceError, replace

import pytest
from conftest import make_measurement, make_profile, make_v1_profile

import npucheck.measure.runner as runner_module
from npucheck import model, store
from npucheck.measure.power.base import PowerSource
from npucheck.measure.runner import Runner, RunOptions
from npucheck.model import (
    CriterionResult,
    Energy,
    Measurement,
    Peak,
    ResultProfile,
    Settings,
    SourceInfo,
    Stats,
    Summary,
    SupportFamily,
    Verdict,
)
from npucheck.read.judge import judge
from npucheck.targets import load_targets
from tests.test_runner import TINY as RUNNER_TINY

# the runner tests' tiny suite, GEMM only, with short energy windows
TINY = replace(
    RUNNER_TINY,
    power_window_s=0.05,
    idle_s=0.05,
    entries=({"kernel": "gemm", "shape_set": "square", "where": {"m": [128, 256]}},),
)


class _CounterSource(PowerSource):
    """An energy counter rising 100 J per read: every window is valid."""

    name, scope, quality = "fake-counter", "board", "Q2"
    has_counter = True
    covers_device = True
    coverage = "fake: stated to cover the device"

    def __init__(self, broken_after_idle: bool = False):
        self.reads = 0
        self.broken = False
        self.broken_after_idle = broken_after_idle

    def read_energy_j(self):
        self.reads += 1
        if self.broken:
            raise OSError("device vanished")
        return 100.0 * self.reads


def _run(**options) -> dict:
    source = options.pop("power_source", None)
    on_event = None
    if source is not None and source.broken_after_idle:

        def on_event(kind, data):
            if kind == "phase" and data["name"].startswith("energy window"):
                source.broken = True

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_module, "busy_processes", lambda interval_s=0.5, exclude=None: [])
        runner = Runner(
            RunOptions(device="cpu", dtypes=["fp32"], kernels=["gemm"], flush=False, **options),
            suite=TINY,
            power_source=source,
            on_event=on_event,
        )
        profile = runner.run().to_dict()
    profile["verdicts"] = judge(profile, load_targets(None))  # as `npucheck run` does
    return json.loads(json.dumps(profile))  # what the file holds (no tuples, plain JSON)


@pytest.fixture(scope="module")
def tiny_run() -> dict:
    return _run(power="none")


@pytest.fixture(scope="module")
def energy_run() -> dict:
    return _run(power_source=_CounterSource(), power_trials=2)


@pytest.fixture(scope="module")
def failed_energy_run() -> dict:
    return _run(power_source=_CounterSource(broken_after_idle=True))


def _exact(doc: dict) -> None:
    original = copy.deepcopy(doc)
    profile = ResultProfile.from_dict(doc)
    assert doc == original  # reading never changes the document
    out = profile.to_dict()
    assert out == original
    assert json.dumps(out, sort_keys=True) == json.dumps(original, sort_keys=True)  # 1 vs 1.0, null vs absent
    assert ResultProfile.from_dict(out).to_dict() == original
    store.validate(out, "r.json")


# ------------------------------------------------------------------------------------------------ round trips
def test_the_shared_test_profile_round_trips_exactly():
    _exact(make_profile())


def test_a_real_tiny_run_round_trips_exactly_and_keeps_the_new_measurement_keys(tiny_run):
    _exact(tiny_run)
    profile = ResultProfile.from_dict(tiny_run)
    ok = [m for m in profile.measurements if m.status == "ok"]
    assert ok and all(m.cache_state == "warm" and m.timed_calls and m.stats is not None for m in ok)
    assert all(isinstance(m.stats, Stats) and m.tflops_ci[0] <= m.tflops_ci[1] for m in ok)
    (confirmation,) = profile.confirmations
    assert confirmation.role == "confirmation" and confirmation.confirms in {m.id for m in ok}
    assert profile.power.source is None and profile.power.spec == "none"
    assert set(profile.support) <= set(model.SUPPORT_FAMILIES)
    assert all(isinstance(family, SupportFamily) for family in profile.support.values())
    assert profile.verdicts and all(isinstance(v, Verdict) for v in profile.verdicts)


def test_a_run_with_energy_windows_round_trips_exactly(energy_run):
    _exact(energy_run)
    profile = ResultProfile.from_dict(energy_run)
    assert isinstance(profile.power.source, SourceInfo) and profile.power.source.scope == "board"
    assert profile.power.idle is not None and profile.power.idle.kind == "idle" and profile.power.idle.valid
    headline = [m.energy for m in profile.measurements if m.energy is not None and m.energy.kind == "headline"]
    assert headline and all(e.valid and e.quality == "Q2" and len(e.trials) == 2 for e in headline)
    assert profile.summary.tflops_per_watt_quality == {"fp32": "Q2"}


def test_a_run_whose_energy_windows_failed_round_trips_exactly(failed_energy_run):
    _exact(failed_energy_run)
    profile = ResultProfile.from_dict(failed_energy_run)
    failed = [m.energy for m in profile.measurements if m.energy is not None]
    assert failed and all(not e.valid and "device vanished" in e.reason for e in failed)


def test_a_version_1_file_migrated_by_the_store_round_trips_exactly(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(make_v1_profile()))
    _exact(store.load_result(path))


def test_keys_a_later_release_adds_are_kept_at_every_level():
    doc = make_profile(future_top={"a": [1, 2]})
    doc["device"]["future_device"] = 1
    doc["settings"]["future_setting"] = "x"
    doc["power"]["future_power"] = None
    doc["load"]["future_load"] = True
    doc["measurements"][0]["future_measurement"] = {"nested": [None]}
    doc["measurements"][0]["stats"]["future_stat"] = 0.5
    doc["measurements"][0]["check"]["future_check"] = 1
    doc["confirmations"][0]["future_confirmation"] = 2
    doc["support"]["cnn"]["future_support"] = 3
    doc["support"]["cnn"]["checks"][0]["future_support_check"] = 4
    doc["summary"]["future_summary"] = {}
    doc["summary"]["peak"]["fp16"]["future_peak"] = 5
    doc["verdicts"][0]["future_verdict"] = 6
    doc["verdicts"][0]["criteria"][0]["future_criterion"] = 7
    _exact(doc)
    assert ResultProfile.from_dict(doc).measurements[0].extra == {"future_measurement": {"nested": (None,)}}


def test_absent_and_null_stay_apart():
    bare = make_measurement()  # written before cache_state & co existed: the keys are absent
    nulls = make_measurement(cache_state=None, timed_calls=None, minor_faults=None)
    assert "cache_state" not in Measurement.from_dict(bare).to_dict()
    assert Measurement.from_dict(nulls).to_dict()["cache_state"] is None


def test_an_object_built_in_code_writes_what_the_runner_writes():
    m = Measurement(
        id="gemm/fp32/m8_n8_k8_NN",
        kernel="gemm",
        dtype="fp32",
        shape={"m": 8, "n": 8, "k": 8},
        flops=1024,
        status="skipped",
        reason="budget",
    )
    d = m.to_dict()
    assert d["energy"] is None and d["cache_state"] is None and d["warnings"] == [] and d["samples_s"] == []
    assert "role" not in d and "confirms" not in d and "host_clock_tflops" not in d
    assert Measurement.from_dict(d).to_dict() == d
    confirmation = replace(m, role="confirmation", confirms=m.id)
    assert confirmation.to_dict()["role"] == "confirmation"
    assert m.case.id == m.id and m.case.flops == 1024


def test_an_invalid_energy_says_why_and_carries_what_the_source_says_of_itself():
    from npucheck.measure.energy import invalid_energy

    source = _CounterSource()
    energy = invalid_energy(source, "out of memory: boom")
    described = source.describe()
    assert energy.valid is False and energy.reason == "out of memory: boom"
    assert (energy.source, energy.scope, energy.quality) == (
        described["name"],
        described["scope"],
        described["quality"],
    )
    written = energy.to_dict()
    assert written["joules"] is None and written["tflops_per_watt"] is None and written["warnings"] == []
    assert Energy.from_dict(written).to_dict() == written
    with pytest.raises(ValueError, match="needs its reason"):
        Energy.invalid("", described)


def test_objects_are_frozen_and_their_json_parts_read_only():
    profile = ResultProfile.from_dict(make_profile())
    with pytest.raises(FrozenInstanceError):
        profile.interrupted = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        profile.device.properties["memory_bytes"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        profile.measurements[0].shape["m"] = 1  # type: ignore[index]
    out = profile.to_dict()
    out["device"]["properties"]["memory_bytes"] = 1  # to_dict gives fresh, mutable copies
    assert profile.device.properties["memory_bytes"] == 34359738368


# ------------------------------------------------------------------------------------------------ bad values
def _bad_measurement(**overrides) -> None:
    Measurement.from_dict(make_measurement(**overrides))


def test_a_bad_status_fails_where_the_object_is_built():
    with pytest.raises(ValueError, match="okk"):
        _bad_measurement(status="okk")
    with pytest.raises(ValueError, match="okk"):
        Peak(case="a/b/c", confirmation_status="okk")
    with pytest.raises(ValueError, match="okk"):
        Summary(counts={"okk": 1})


def test_a_bad_dtype_fails():
    with pytest.raises(ValueError, match="fp8"):
        _bad_measurement(dtype="fp8")
    with pytest.raises(ValueError, match="fp8"):
        Settings(dtypes=["fp8"])
    with pytest.raises(ValueError, match="fp8"):
        Summary(peak_tflops={"fp8": 1.0})


def test_a_bad_family_fails():
    with pytest.raises(ValueError, match="transformer"):
        _bad_measurement(family="transformer")
    doc = make_profile()
    doc["support"]["mlp"] = doc["support"]["cnn"]  # "transformer" is a support family since issue 12
    with pytest.raises(ValueError, match="mlp"):
        ResultProfile.from_dict(doc)


def test_a_bad_quality_fails():
    with pytest.raises(ValueError, match="Q4"):
        Energy.invalid("x", {"name": "s", "scope": "board", "quality": "Q4"})
    with pytest.raises(ValueError, match="Q4"):
        Summary(tflops_per_watt_quality={"fp16": "Q4"})


def test_a_bad_scope_fails():
    with pytest.raises(ValueError, match="galaxy"):
        SourceInfo(name="s", scope="galaxy", quality="Q2")
    with pytest.raises(ValueError, match="galaxy"):
        Summary(tflops_per_watt_scope={"fp16": "galaxy"})
    for scope in model.SCOPES:  # every scope a source can report is accepted
        SourceInfo(name="s", scope=scope, quality="Q1")


def test_every_scope_a_power_source_uses_is_in_the_vocabulary_and_nobody_keeps_a_copy():
    from npucheck.measure.power import base, hwmon
    from npucheck.read import judge

    assert set(hwmon.DRIVER_SCOPES.values()) <= set(model.SCOPES)
    for scope in ("board", "module", "package", "platform", "dram", "wall", "soc-rail", "shared-board", "unknown"):
        assert scope in model.SCOPES  # the scopes the sources set (nvml, rapl, hwmon, meter)
    assert base.QUALITY_NAMES is model.QUALITY_NAMES
    assert judge.PARTIAL_SCOPES is model.PARTIAL_SCOPES and judge.SHARED_SCOPES is model.SHARED_SCOPES
    assert not hasattr(base, "SCOPES")


def test_a_bad_verdict_status_fails():
    with pytest.raises(ValueError, match="MAYBE"):
        Verdict(target="t", status="MAYBE", criteria=())
    with pytest.raises(ValueError, match="MAYBE"):
        CriterionResult(metric="peak_tflops.fp16", op=">=", threshold=1.0, measured=None, status="MAYBE", reason="r")
    with pytest.raises(ValueError, match="=>"):
        CriterionResult(metric="peak_tflops.fp16", op="=>", threshold=1.0, measured=None, status="PASS", reason="r")


def test_a_bad_cache_state_fails():
    with pytest.raises(ValueError, match="lukewarm"):
        _bad_measurement(cache_state="lukewarm")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_figure_fails(value):
    with pytest.raises(ValueError, match="not finite"):
        _bad_measurement(tflops=value)
    with pytest.raises(ValueError, match="not finite"):
        _bad_measurement(samples_s=[1e-4, value])


def test_an_interval_whose_low_end_is_above_its_high_end_fails():
    with pytest.raises(ValueError, match="above"):
        _bad_measurement(tflops_ci=[2.0, 1.0])
    with pytest.raises(ValueError, match="above"):
        Peak(case="a/b/c", tflops=1.5, ci_low=2.0, ci_high=1.0)
    with pytest.raises(ValueError, match="above"):
        Summary(tflops_per_watt_ci={"fp16": [0.2, 0.1]})


def test_other_bad_values_fail():
    with pytest.raises(ValueError, match="missing key 'status'"):
        Measurement.from_dict({k: v for k, v in make_measurement().items() if k != "status"})
    with pytest.raises(ValueError, match="kernel/dtype/shape"):
        _bad_measurement(id="gemm")
    with pytest.raises(ValueError, match="a number"):
        _bad_measurement(tflops="fast")
    with pytest.raises(ValueError, match="confirmation"):
        _bad_measurement(role="confirmation")  # without the id it confirms
    with pytest.raises(ValueError, match="reason"):
        Energy(
            source="s",
            scope="board",
            quality="Q2",
            uncertainty_rel=None,
            window_s=0.0,
            valid=False,
            joules=None,
            avg_watts=None,
            tflops=None,
            tflops_per_watt=None,
        )
    with pytest.raises(ValueError, match="schema_version"):
        ResultProfile.from_dict(make_profile(schema_version=1))  # version 1 is migrated by the store first
    with pytest.raises(ValueError, match="UTC"):
        ResultProfile.from_dict(make_profile(created_utc="yesterday"))
    with pytest.raises(ValueError, match="extra repeats"):
        Peak(case="a/b/c", extra={"case": "x"})


# ------------------------------------------------------------------------------------------------ import cost
def test_importing_the_model_loads_no_torch():
    code = "import sys, npucheck.model\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_every_builtin_datasheet_is_stored_and_read_back_exactly():
    from npucheck.datasheets import MEASURED_DTYPES, load_datasheets
    from npucheck.model import StoredDatasheet

    sheets = load_datasheets()
    assert len(sheets) >= 19
    for sheet in sheets:
        written = sheet.to_dict()
        stored = StoredDatasheet.from_dict(written)
        assert stored.to_dict() == written, sheet.part
        for dtype in MEASURED_DTYPES:
            assert stored.peak(dtype) == sheet.peak_tflops(dtype), (sheet.part, dtype)
            assert stored.ceiling(dtype) == sheet.ceiling_tflops(dtype), (sheet.part, dtype)
