"""The runner on the real CPU with a tiny suite: faults are recorded and the run goes on; Ctrl-C keeps data."""

from dataclasses import replace

import pytest
import torch
from conftest import make_measurement

import npucheck.measure.runner as runner_module
from npucheck.kernels.base import Check, Workload
from npucheck.measure.power.base import PowerSource
from npucheck.measure.runner import Runner, RunOptions
from npucheck.measure.suites import Suite
from npucheck.measure.timing import faults_are_counted
from npucheck.model import Measurement

TINY = Suite(
    name="tiny",
    description="test",
    suite_budget_s=20,
    case_budget_s=0.5,
    case_target_s=0.03,
    device_warmup_s=0,
    accelerator_warmup_s=0,
    min_samples=6,
    max_samples=8,
    min_sample_s=0.0005,
    power_window_s=0.3,
    idle_s=0.2,
    power_trials=1,
    entries=(
        {"kernel": "gemm", "shape_set": "square", "where": {"m": [128, 256]}},
        {"kernel": "lstm", "shape_set": "small", "pick": [0]},
    ),
)


def _run(monkeypatch=None, on_event=None, **options):
    runner = Runner(
        RunOptions(device="cpu", dtypes=options.pop("dtypes", ["fp32"]), flush=False, **options),
        on_event=on_event,
        suite=TINY,
    )
    return runner.run().to_dict()


@pytest.fixture(autouse=True)
def _no_load_scan(monkeypatch):
    monkeypatch.setattr(runner_module, "busy_processes", lambda interval_s=0.5, exclude=None: [])


def test_a_tiny_run_measures_every_case_and_keeps_raw_samples():
    profile = _run()
    ok = [m for m in profile["measurements"] if m["status"] == "ok"]
    assert [m["kernel"] for m in ok] == ["gemm", "gemm", "lstm"]
    for m in ok:
        assert m["correct"] is True
        assert len(m["samples_s"]) >= 6
        assert m["tflops_ci"][0] <= m["tflops"] <= m["tflops_ci"][1]
        assert m["tflops"] == pytest.approx(m["flops"] / m["stats"]["median_s"] / 1e12)
    assert profile["summary"]["peak_tflops"]["fp32"] == max(m["tflops"] for m in ok if m["kernel"] == "gemm")
    assert profile["summary"]["tflops_per_watt"] == {"fp32": None}
    assert profile["support"]["lstm"]["supported"] is True


def _fault_workload(kind):
    def run():
        if kind == "raise":
            raise RuntimeError("kernel exploded\nsecond line")
        if kind == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return torch.full((4,), float("nan"))

    def verify():
        out = run()
        from npucheck.kernels.base import compare

        return compare(out, torch.ones(4, dtype=torch.float64), "fp32", "all")

    return Workload(run=run, verify=verify, footprint_bytes=0)


@pytest.mark.parametrize(
    "kind,expected",
    [("raise", "RuntimeError: kernel exploded"), ("oom", "out of memory"), ("nan", "non-finite output")],
)
def test_a_failing_kernel_is_recorded_as_error_and_the_run_goes_on(monkeypatch, kind, expected):
    real = runner_module.build_workload

    def flaky(case, device, seed):
        return (
            _fault_workload(kind)
            if case.id == "gemm/fp32/m128_n128_k128_NN" and case.shape_set == "square"
            else real(case, device, seed)
        )

    monkeypatch.setattr(runner_module, "build_workload", flaky)
    profile = _run()
    first, second = profile["measurements"][:2]
    assert first["status"] == "error" and expected in first["error"]
    assert "\n" not in first["error"]
    assert first["tflops"] is None
    assert second["status"] == "ok"


def test_a_wrong_answer_is_an_error_and_never_a_peak(monkeypatch):
    real = runner_module.build_workload

    def wrong(case, device, seed):
        workload = real(case, device, seed)
        if case.kernel == "gemm":
            workload.verify = lambda: Check(rel_error=0.5, tolerance=2e-3, reference_dtype="float64", checked="all")
        return workload

    monkeypatch.setattr(runner_module, "build_workload", wrong)
    profile = _run()
    gemms = [m for m in profile["measurements"] if m["kernel"] == "gemm"]
    assert all(m["status"] == "error" and m["correct"] is False for m in gemms)
    assert "fp32" not in profile["summary"]["peak_tflops"]


def test_ctrl_c_keeps_what_was_measured_and_marks_the_run_interrupted():
    def interrupt(kind, data):
        if kind == "case_start" and data["index"] == 2:
            raise KeyboardInterrupt

    profile = _run(on_event=interrupt)
    assert profile["interrupted"] is True
    assert len(profile["measurements"]) == 2
    assert all(m["status"] == "ok" for m in profile["measurements"])
    assert any("interrupted" in w for w in profile["warnings"])


def test_a_case_predicted_over_budget_is_skipped_with_the_reason():
    big = Suite(**{**TINY.__dict__, "entries": ({"kernel": "gemm", "shape_set": "square", "where": {"m": [16384]}},)})
    profile = Runner(RunOptions(device="cpu", dtypes=["fp32"], flush=False), suite=big).run().to_dict()
    (m,) = profile["measurements"]
    assert m["status"] == "skipped"
    assert "exceeds the case budget" in m["reason"]


def test_other_load_before_the_run_is_warned_about(monkeypatch):
    monkeypatch.setattr(
        runner_module,
        "busy_processes",
        lambda interval_s=0.5, exclude=None: [{"pid": 42, "name": "stress", "cpu_percent": 99.0}],
    )
    profile = _run()
    assert profile["load"]["before"]["busy_processes"][0]["name"] == "stress"
    assert any("stress (pid 42" in w for w in profile["warnings"])


def test_threads_option_is_applied_and_recorded():
    before = torch.get_num_threads()
    try:
        profile = _run(threads=1)
        assert profile["environment"]["threads"]["intra_op"] == 1
    finally:
        torch.set_num_threads(before)


def test_a_kernels_first_case_is_sized_from_one_timed_call_not_the_gemm_probe(monkeypatch):
    """The GEMM probe predicts the LSTM is quick; one pilot call shows it is slow, so it is skipped, saying why."""
    import time

    real = runner_module.build_workload

    def slow_lstm(case, device, seed):
        workload = real(case, device, seed)
        if case.kernel == "lstm":
            inner = workload.run
            workload.run = lambda: (time.sleep(0.2), inner())[1]
        return workload

    monkeypatch.setattr(runner_module, "build_workload", slow_lstm)
    profile = _run()
    lstm = [m for m in profile["measurements"] if m["kernel"] == "lstm"]
    assert [m["status"] for m in lstm] == ["skipped"]
    assert "exceeds the case budget" in lstm[0]["reason"] and "rate from one timed call" in lstm[0]["reason"]


class _FlakySource(PowerSource):
    """A counter that works for idle and then throws what a vendor library might (not a PowerReadError)."""

    name, scope, quality = "flaky", "board", "Q2"
    has_counter = True

    def __init__(self):
        self.reads = 0
        self.broken = False

    def read_energy_j(self):
        self.reads += 1
        if self.broken:
            raise OSError("device vanished")
        return 100.0 * self.reads


def test_a_power_source_failing_mid_run_loses_only_its_windows():
    source = _FlakySource()

    def break_at_the_energy_windows(kind, data):
        if kind == "phase" and data["name"].startswith("energy window"):
            source.broken = True

    runner = Runner(
        RunOptions(device="cpu", dtypes=["fp32"], flush=False),
        suite=TINY,
        power_source=source,
        on_event=break_at_the_energy_windows,
    )
    profile = runner.run().to_dict()
    assert profile["power"]["idle"]["valid"] is True
    headline = [m for m in profile["measurements"] if m.get("energy")]
    assert headline and all(not m["energy"]["valid"] and "device vanished" in m["energy"]["reason"] for m in headline)
    assert all(m["status"] == "ok" for m in profile["measurements"])
    assert profile["summary"]["tflops_per_watt"]["fp32"] is None
    assert "device vanished" in profile["summary"]["power_note"]


def test_an_out_of_memory_at_a_larger_probe_size_keeps_the_last_size_that_worked(monkeypatch):
    real_build = runner_module.build_workload

    def build(case, device, seed):
        if case.shape_set == "probe" and case.shape["m"] >= 128:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 32 GiB")
        return real_build(case, device, seed)

    monkeypatch.setattr(runner_module, "build_workload", build)
    runner = Runner(RunOptions(device="cpu", dtypes=["fp32"], flush=False, power="none"), suite=TINY)
    draft = runner._start()
    unsupported = runner._probe(draft)
    assert unsupported == {}
    assert draft.settings.probe_tflops["fp32"] > 0
    assert "probe stopped at 128^3" in draft.settings.probe_notes["fp32"]


def test_a_dtype_whose_smallest_probe_fails_is_unsupported(monkeypatch):
    def build(case, device, seed):
        raise RuntimeError("no kernel for this dtype")

    monkeypatch.setattr(runner_module, "build_workload", build)
    runner = Runner(RunOptions(device="cpu", dtypes=["fp32"], flush=False, power="none"), suite=TINY)
    unsupported = runner._probe(runner._start())
    assert "probe failed" in unsupported["fp32"]


class _ClockedSource(PowerSource):
    """A source whose context reports a boost clock that falls for a few readings, then holds, and throttle
    reasons once ``throttle`` is set (as NVML's clock-event reasons do)."""

    name, scope, quality = "clocked", "board", "Q2"
    has_counter = True

    def __init__(self, clocks):
        self.clocks = list(clocks)
        self.reads = 0
        self.throttle = []

    def read_energy_j(self):
        self.reads += 1
        return 100.0 * self.reads

    def context(self):
        mhz = self.clocks.pop(0) if len(self.clocks) > 1 else self.clocks[0]
        return {"sm_clock_mhz": mhz, "throttle_reasons": list(self.throttle), "temperature_c": 70}


class _StepClock:
    """A clock that advances 1 s per read: each warm-up call 'takes' a second."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1.0
        return self.now


def test_warm_up_goes_on_until_the_clock_stops_falling():
    source = _ClockedSource([1980, 1900, 1800, 1700, 1650, 1650, 1650, 1650])
    runner = Runner(
        RunOptions(device="cpu", dtypes=["fp32"], flush=False, warmup_s=3.0),
        suite=TINY,
        power_source=source,
        clock=_StepClock(),
    )
    draft = runner._start()
    runner._probe(draft)
    runner._warm_up_device(draft)
    warmup = draft.settings.device_warmup
    assert warmup["clock_settled"] is True
    assert warmup["clock_mhz_first"] == 1980 and warmup["clock_mhz_last"] == 1650
    assert warmup["seconds"] > 3.0  # longer than the configured time: the clock was still falling then


def test_warm_up_stops_at_its_limit_and_says_the_clock_was_still_falling():
    source = _ClockedSource(list(range(2000, 1000, -50)))
    runner = Runner(
        RunOptions(device="cpu", dtypes=["fp32"], flush=False, warmup_s=2.0),
        suite=TINY,
        power_source=source,
        clock=_StepClock(),
    )
    draft = runner._start()
    runner._probe(draft)
    runner._warm_up_device(draft)
    assert draft.settings.device_warmup["clock_settled"] is False
    assert any("still falling" in w for w in draft.warnings)


def test_a_case_measured_while_throttled_is_flagged_with_the_reasons():
    source = _ClockedSource([1700])
    source.throttle = ["SwPowerCap"]
    runner = Runner(
        RunOptions(device="cpu", dtypes=["fp32"], flush=False, kernels=["gemm"], idle_s=0, power_window_s=0.05),
        suite=TINY,
        power_source=source,
    )
    profile = runner.run().to_dict()
    ok = [m for m in profile["measurements"] if m["status"] == "ok"]
    assert ok and all(m["throttled"] is True for m in ok)
    assert all(m["device_state"]["after"]["sm_clock_mhz"] == 1700 for m in ok)
    assert all(any("throttled" in w and "SwPowerCap" in w for w in m["warnings"]) for m in ok)


def test_a_cpu_run_settles_the_allocator_and_counts_page_faults_per_case():
    profile = _run(kernels=["gemm"])
    assert profile["environment"]["allocator"]["applied"] in (True, False)
    ok = [m for m in profile["measurements"] if m["status"] == "ok"]
    if faults_are_counted():
        assert all(m["minor_faults"] is not None and m["minor_faults"] >= 0 for m in ok)
    else:  # a sandbox that reports 0 faults forever: unknown, never a reassuring 0
        assert all(m["minor_faults"] is None and m["minor_faults_per_call"] is None for m in ok)
    assert all(m["cache_state"] == "warm" for m in ok)  # flush=False


def test_each_dtypes_best_gemm_is_confirmed_from_fresh_inputs():
    profile = _run(kernels=["gemm"])
    (confirmation,) = profile["confirmations"]
    best = max((m for m in profile["measurements"] if m["status"] == "ok"), key=lambda m: m["tflops"])
    assert confirmation["confirms"] == best["id"] and confirmation["status"] == "ok"
    assert confirmation["samples_s"] != best["samples_s"]
    assert profile["summary"]["peak"]["fp32"]["confirmed_tflops"] == confirmation["tflops"]


def test_fp32_cases_run_in_full_fp32_whatever_the_caller_set_and_the_setting_is_restored(monkeypatch):
    torch.set_float32_matmul_precision("medium")  # bf16 for fp32 matmuls on oneDNN, TF32 on CUDA
    try:
        profile = _run(kernels=["gemm"])
        assert profile["environment"]["fp32_precision"]["full_fp32"] is True
        from npucheck.kernels.precision import fp32_precision_state

        assert fp32_precision_state()["effective"]["mkldnn.matmul"] == "bf16"  # restored
    finally:
        torch.set_float32_matmul_precision("highest")


def test_the_cublas_tf32_override_is_recorded_and_warned_about(monkeypatch):
    monkeypatch.setenv("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "1")
    profile = _run(kernels=["gemm"])
    assert profile["environment"]["fp32_precision"]["override"] is True
    assert any("may not be true fp32" in w for w in profile["warnings"])


@pytest.mark.parametrize("sustained, judgeable", [(100.0, None), (86.0, None), (84.0, False), (120.0, False)])
def test_a_window_whose_sustained_tflops_is_over_15_percent_from_the_timed_median_is_not_judged(sustained, judgeable):
    energy = {"valid": True, "tflops": sustained, "warnings": []}
    runner_module._compare_timed_and_sustained(100.0, energy)
    assert energy["sustained_vs_timed"] == pytest.approx(sustained / 100.0)
    assert energy.get("judgeable") is judgeable
    assert bool(energy["warnings"]) is (judgeable is False)


def test_the_host_clock_check_flags_event_figures_the_host_clock_cannot_reproduce():
    runner = Runner(RunOptions(device="cpu", dtypes=["fp32"], flush=False, power="none"), suite=TINY)
    case = runner_module.KERNELS["gemm"].case("fp32", {"m": 128, "n": 128, "k": 128, "layout": "NN"}, "square")
    measured = Measurement.from_dict(make_measurement())
    events_read_0_s = replace(measured.stats, median_s=case.flops / 1e18)
    absurd = replace(measured, tflops=1e6, stats=events_read_0_s, warnings=())
    checked = runner._host_clock_check(case, absurd)
    assert checked.events_vs_host_clock > 1000
    assert any("event timing is suspect" in w for w in checked.warnings)


def test_a_case_above_the_datasheet_ceiling_is_an_error_not_a_result():
    runner = Runner(RunOptions(device="cpu", dtypes=["fp32"], flush=False, kernels=["gemm"], power="none"), suite=TINY)
    runner._datasheet = {
        "part": "Tiny Test Part",
        "peak_tflops": {"fp32": 1e-6},
        "ceiling_tflops": {"fp32": 1.05e-6},
        "ceiling_factor": 1.05,
    }
    profile = runner.run().to_dict()
    timed = [m for m in profile["measurements"] if m["samples_s"]]
    assert timed and all(m["status"] == "error" and "Tiny Test Part" in m["error"] for m in timed)
    assert profile["summary"]["peak_tflops"] == {}


def test_a_measurement_the_model_refuses_is_an_error_at_its_case_and_the_run_goes_on(monkeypatch):
    """Each case becomes a model object when it ends: a runner bug that writes a bad value (here a cache state
    outside the vocabulary) fails at that case, with the reason, instead of losing the whole run at save time."""
    real = runner_module._flag_faults_and_throttling

    def buggy(found, faults, calls):
        real(found, faults, calls)
        found["cache_state"] = "lukewarm"

    monkeypatch.setattr(runner_module, "_flag_faults_and_throttling", buggy)
    profile = _run(kernels=["gemm"])
    timed = profile["measurements"]
    assert timed and all(m["status"] == "error" and "did not fit the result model" in m["error"] for m in timed)
    assert all("lukewarm" in m["error"] for m in timed)
    assert profile["summary"]["counts"]["error"] == len(timed)
