"""INT8 and FP8 GEMM: exact int32 checks, fp8 against a float64 reference, skip reasons from torch's documented
limits, work counted in operations (TOPS), and the int8 criteria (peak_tops, tops_per_watt)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import torch
from test_judge import gemm, judged, make_profile

import npucheck.measure.runner as runner_module
from npucheck import store
from npucheck.errors import TargetProfileError, UsageError
from npucheck.kernels import KERNELS, build_workload, lowp, select_dtypes
from npucheck.kernels.base import generator_for
from npucheck.measure.runner import Runner, RunOptions
from npucheck.measure.suites import get_suite, load_suites
from npucheck.model import as_profile
from npucheck.read.text import summary_rows
from npucheck.targets import Criterion, parse_target
from tests.test_runner import TINY

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


def _workload(dtype: str, m: int = 32, n: int = 32, k: int = 32, layout: str = "NN"):
    shape = {"m": m, "n": n, "k": k, "layout": layout}
    return lowp.build(shape, dtype, CPU, generator_for(f"gemm/{dtype}/t", 0, CPU))


# ------------------------------------------------------------------------------------------------------ int8
def test_int8_gemm_matches_the_int64_reference_exactly():
    check = _workload("int8", 48, 40, 72).verify()
    assert check.status == "ok"
    assert (check.rel_error, check.tolerance, check.reference_dtype) == (0.0, 0.0, "int64")


def test_int8_output_is_int32_and_equals_the_int64_product():
    workload = _workload("int8", 24, 16, 32, layout="TN")
    a, b, _ = workload.keep
    assert a.dtype == b.dtype == torch.int8
    out = workload.run()
    assert out.dtype == torch.int32
    assert torch.equal(out.to(torch.int64), a.to(torch.int64) @ b.to(torch.int64))


def test_one_int32_value_off_by_one_is_a_wrong_result(monkeypatch):
    real = torch._int_mm

    def off_by_one(a, b, out=None):
        result = real(a, b, out=out)
        result[0, 0] += 1
        return result

    workload = _workload("int8")  # 32 x 32: every row and column is checked
    monkeypatch.setattr(torch, "_int_mm", off_by_one)
    check = workload.verify()
    assert check.status == "wrong" and check.ok is False
    assert check.rel_error > 0
    assert check.reason == "1 of 1024 int32 values differ from the int64 reference"


def test_exact_check_has_no_tolerance():
    ref = torch.arange(16, dtype=torch.int64).reshape(4, 4) * 1000
    assert lowp.exact_check(ref.to(torch.int32), ref, "all").status == "ok"
    assert lowp.exact_check((ref + torch.eye(4, dtype=torch.int64)).to(torch.int32), ref, "all").status == "wrong"


# ------------------------------------------------------------------------------------------------------- fp8
@pytest.mark.parametrize("dtype", ["fp8_e4m3", "fp8_e5m2"])
def test_fp8_gemm_is_checked_against_float64_of_the_rounded_operands(dtype):
    workload = _workload(dtype, 64, 64, 256, layout="NT")
    a, b = workload.keep[:2]
    assert a.dtype == (torch.float8_e5m2 if dtype == "fp8_e5m2" else torch.float8_e4m3fn)
    assert b.dtype == torch.float8_e4m3fn  # cuBLASLt refuses e5m2 x e5m2
    assert b.stride() == (1, 256)  # column-major, as _scaled_mm requires
    check = workload.verify()
    assert check.status == "ok"
    # measured here: ~1.6e-3, the bf16 output's rounding (docs/result-profile.md)
    assert 1e-4 < check.rel_error < lowp.FP8_TOLERANCE / 3


def test_fp8_with_a_dropped_scale_is_wrong(monkeypatch):
    real = torch._scaled_mm
    workload = _workload("fp8_e4m3", 32, 32, 32, layout="NT")

    def unscaled(a, b, scale_a, scale_b, out_dtype, out=None):
        one = torch.ones((), dtype=torch.float32)
        return real(a, b, scale_a=one, scale_b=one, out_dtype=out_dtype, out=out)

    monkeypatch.setattr(torch, "_scaled_mm", unscaled)
    check = workload.verify()
    assert check.status == "wrong" and check.rel_error > 0.5


def test_fp8_needs_b_column_major_so_other_layouts_are_skipped_cases():
    with pytest.raises(lowp.UnsupportedCase, match="layout NT"):
        _workload("fp8_e4m3", layout="NN")


# ------------------------------------------------------------------------------------- limits and skip reasons
def test_fp8_below_compute_capability_8_9_is_not_supported_with_the_reason():
    reason = lowp.support_reason("fp8_e4m3", CUDA, capability=(8, 0), probe=_no_probe_expected)
    assert reason == "torch._scaled_mm needs CUDA compute capability 8.9+ (this device: cuda, sm_80)"


def _no_probe_expected(dtype: str, device: torch.device) -> None:
    raise AssertionError("the capability alone decides")


def test_fp8_on_sm89_and_sm90_is_probed():
    probed = []
    for capability in ((8, 9), (9, 0)):
        assert lowp.support_reason("fp8_e5m2", CUDA, capability, probe=lambda d, dev: probed.append(d)) is None
    assert probed == ["fp8_e5m2", "fp8_e5m2"]


def test_a_failing_probe_becomes_the_one_line_reason():
    def refuse(dtype, device):
        raise RuntimeError(
            "torch._scaled_mm is only supported on CUDA devices with compute capability >= 9.0 or 8.9, or ROCm MI300+"
            "\nmore"
        )

    reason = lowp.support_reason("fp8_e4m3", torch.device("mps"), probe=refuse)
    assert reason == (
        "torch._scaled_mm (fp8_e4m3) is not supported on mps: RuntimeError: torch._scaled_mm is only supported on "
        "CUDA devices with compute capability >= 9.0 or 8.9, or ROCm MI300+"
    )


def test_the_cpu_build_runs_both_ops():
    assert lowp.support_reason("int8", CPU) is None
    assert lowp.support_reason("fp8_e4m3", CPU) is None


@pytest.mark.parametrize(
    ("shape", "allowed"),
    [
        ({"m": 16, "n": 32, "k": 32}, False),  # m must be > 16
        ({"m": 17, "n": 32, "k": 36}, False),  # k a multiple of 8
        ({"m": 17, "n": 12, "k": 32}, False),  # n a multiple of 8
        ({"m": 17, "n": 8, "k": 8}, True),
    ],
)
def test_int8_on_cuda_follows_int_mm_limits(shape, allowed):
    reason = lowp.shape_reason("int8", {**shape, "layout": "NN"}, CUDA)
    assert (reason is None) is allowed
    assert lowp.shape_reason("int8", {**shape, "layout": "NN"}, CPU) is None  # the CPU op has no such limit


def test_fp8_on_cuda_needs_k_and_n_multiples_of_16():
    assert "multiples of 16" in lowp.shape_reason("fp8_e4m3", {"m": 8, "n": 24, "k": 32, "layout": "NT"}, CUDA)
    assert lowp.shape_reason("fp8_e4m3", {"m": 8, "n": 32, "k": 32, "layout": "NT"}, CUDA) is None


def test_rocm_mi300_uses_the_fnuz_formats(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.2", raising=False)
    assert lowp.fp8_operand_dtypes("fp8_e4m3", CUDA, arch="gfx942:sramecc+:xnack-") == (
        torch.float8_e4m3fnuz,
        torch.float8_e4m3fnuz,
    )
    assert lowp.fp8_operand_dtypes("fp8_e5m2", CUDA, arch="gfx950")[0] == torch.float8_e5m2


def test_other_kernels_have_no_low_precision_path():
    case = KERNELS["conv2d"].case("int8", KERNELS["conv2d"].shape_sets["resnet50"][0], "resnet50")
    with pytest.raises(lowp.UnsupportedCase, match="conv2d has no int8 path"):
        build_workload(case, CPU, 0)


# ------------------------------------------------------------------------------------------ counting and suites
def test_work_is_two_m_n_k_operations():
    case = KERNELS["gemm"].case("int8", {"m": 17, "n": 24, "k": 40, "layout": "NN"}, "square")
    assert case.flops == 2 * 17 * 24 * 40
    assert case.id == "gemm/int8/m17_n24_k40_NN"


def test_dtypes_are_selectable_and_unknown_ones_refused():
    assert select_dtypes(["int8,fp8_e4m3", "fp8_e5m2"]) == ["int8", "fp8_e4m3", "fp8_e5m2"]
    with pytest.raises(UsageError, match="unknown dtype 'int4'"):
        select_dtypes(["int4"])


def test_suites_run_int8_and_fp8_only_on_gemm_and_only_where_listed():
    every = select_dtypes(None)
    quick = get_suite("quick").cases(list(KERNELS), every)
    low = [c for c in quick if c.dtype in lowp.LOW_PRECISION_DTYPES]
    assert [c.id for c in low] == ["gemm/int8/m2048_n2048_k2048_NN"]
    standard = get_suite("standard").cases(list(KERNELS), every)
    assert {c.kernel for c in standard if c.dtype in lowp.LOW_PRECISION_DTYPES} == {"gemm"}
    assert {c.dtype for c in standard if c.dtype.startswith("fp8")} == {"fp8_e4m3", "fp8_e5m2"}
    assert all(c.shape["layout"] == "NT" for c in standard if c.dtype.startswith("fp8"))
    # measured in this order, so a short budget takes cases from the context dtypes (bf16, fp32) first
    order = list(dict.fromkeys(c.dtype for c in standard))
    assert order == ["fp16", "int8", "fp8_e4m3", "fp8_e5m2", "bf16", "fp32"]


def test_a_suite_entry_asking_int8_of_a_convolution_is_refused():
    text = """[s]
description = "x"
suite_budget_s = 1
case_budget_s = 1
case_target_s = 1
device_warmup_s = 0
accelerator_warmup_s = 0
min_samples = 1
max_samples = 2
min_sample_s = 0.001
power_window_s = 1
idle_s = 0
power_trials = 1
entries = [{ kernel = "conv2d", shape_set = "resnet50", dtypes = ["int8"] }]
"""
    with pytest.raises(UsageError, match="conv2d has no int8 path"):
        load_suites(text)


# --------------------------------------------------------------------------------------------- an int8 run
TINY_INT8 = replace(
    TINY,
    name="tiny-int8",
    entries=(
        {"kernel": "gemm", "shape_set": "square", "where": {"m": [128, 256]}, "dtypes": ["int8"]},
        {"kernel": "gemm", "shape_set": "square-nt", "where": {"m": [128]}, "dtypes": ["fp8_e4m3"]},
    ),
)


def _tiny_run(monkeypatch, dtypes: list[str]) -> dict[str, Any]:
    monkeypatch.setattr(runner_module, "busy_processes", lambda interval_s=0.5, exclude=None: [])
    options = RunOptions(device="cpu", kernels=["gemm"], dtypes=dtypes, flush=False, power="none")
    return Runner(options, suite=TINY_INT8).run().to_dict()


def test_an_int8_run_checks_exactly_confirms_the_peak_and_saves_a_valid_file(monkeypatch, tmp_path):
    profile = _tiny_run(monkeypatch, ["int8"])
    ok = [m for m in profile["measurements"] if m["status"] == "ok"]
    assert [m["id"] for m in ok] == [m["id"] for m in profile["measurements"]], profile["measurements"]
    assert [m["id"] for m in ok] == ["gemm/int8/m128_n128_k128_NN", "gemm/int8/m256_n256_k256_NN"]
    assert all(m["check"]["tolerance"] == 0.0 and m["check"]["rel_error"] == 0.0 for m in ok)
    best = max(ok, key=lambda m: m["tflops"])
    assert profile["summary"]["peak_tflops"] == {"int8": best["tflops"]}
    assert [c["confirms"] for c in profile["confirmations"]] == [best["id"]]
    path = tmp_path / "int8.json"
    path.write_text(json.dumps(profile), encoding="utf-8")
    assert store.load_result(path)["summary"]["peak_tflops"]["int8"] == best["tflops"]


def test_a_device_without_the_op_skips_its_cases_with_the_reason(monkeypatch):
    reason = "torch._scaled_mm needs CUDA compute capability 8.9+ (this device: cuda:0, sm_80)"
    real = runner_module.Device.dtype_support if hasattr(runner_module, "Device") else None
    assert real is not None
    monkeypatch.setattr(
        runner_module.Device, "dtype_support", lambda self, d: reason if d == "fp8_e4m3" else real(self, d)
    )
    profile = _tiny_run(monkeypatch, ["fp8_e4m3"])
    assert [(m["status"], m["reason"]) for m in profile["measurements"]] == [("skipped", reason)]
    assert profile["summary"]["peak_tflops"] == {}
    assert profile["summary"]["counts"]["ok"] == 0


# ---------------------------------------------------------------------------------------------- targets, judge
def _target(criteria: str) -> Any:
    return parse_target(f'format = 1\nname = "t"\ntitle = "t"\n{criteria}', "t.toml")


def test_int8_criteria_are_in_tops():
    target = _target('[[criteria]]\nmetric = "tops_per_watt"\ndtype = "int8"\nop = ">="\nthreshold = 2.0\n')
    (criterion,) = target.criteria
    assert (criterion.label, criterion.unit) == ("tops_per_watt.int8", "TOPS/W")
    peak = _target('[[criteria]]\nmetric = "peak_tops"\ndtype = "int8"\nop = ">="\nthreshold = 1\n').criteria[0]
    assert peak.unit == "TOPS"


@pytest.mark.parametrize(
    ("metric", "dtype", "message"),
    [
        ("peak_tops", "fp16", "peak_tops applies to int8 only; use peak_tflops for fp16"),
        ("tflops_per_watt", "int8", "int8 is counted in operations, not FLOPs: use tops_per_watt"),
    ],
)
def test_mixing_tops_and_tflops_is_refused_in_one_line(metric, dtype, message):
    body = f'[[criteria]]\nmetric = "{metric}"\ndtype = "{dtype}"\nop = ">="\nthreshold = 1\n'
    with pytest.raises(TargetProfileError, match=message) as caught:
        _target(body)
    assert "\n" not in str(caught.value)


def _int8_profile(confirmed: bool = True) -> dict[str, Any]:
    return make_profile([gemm(tflops=2.0, ci=(1.9, 2.1), dtype="int8")], confirmed=confirmed)


def test_peak_tops_passes_on_the_confirmation_and_says_tops():
    verdict = judged(_int8_profile(), Criterion("peak_tops", ">=", 1.0, dtype="int8"))
    assert (verdict["status"], verdict["metric"], verdict["unit"]) == ("PASS", "peak_tops.int8", "TOPS")
    assert "confirmation re-measure" in verdict["reason"] and "TFLOPS" not in verdict["reason"]


def test_peak_tops_without_a_confirmation_is_not_a_pass():
    verdict = judged(_int8_profile(confirmed=False), Criterion("peak_tops", ">=", 1.0, dtype="int8"))
    assert verdict["status"] == "INCONCLUSIVE"
    assert "not confirmed" in verdict["reason"]


def test_peak_tops_fails_when_even_the_upper_bound_misses():
    assert judged(_int8_profile(), Criterion("peak_tops", ">=", 3.0, dtype="int8"))["status"] == "FAIL"


def test_tops_per_watt_without_power_is_inconclusive_and_says_tops():
    verdict = judged(_int8_profile(), Criterion("tops_per_watt", ">=", 2.0, dtype="int8"))
    assert verdict["status"] == "INCONCLUSIVE"
    assert verdict["reason"].startswith("int8 TOPS/W is unknown")


def test_tops_per_watt_is_judged_on_the_int8_headline_window():
    profile = make_profile([gemm(tflops=2.0, ci=(1.9, 2.1), dtype="int8")], tflops_per_watt=3.0)
    summary = profile["summary"]
    for key, value in list(summary.items()):
        if isinstance(value, dict) and "fp16" in value:
            summary[key] = {"int8": value["fp16"]}
    carrier = profile["measurements"][-1]
    carrier["dtype"] = "int8"
    verdict = judged(profile, Criterion("tops_per_watt", ">=", 2.0, dtype="int8"))
    assert (verdict["status"], verdict["measured"]) == ("PASS", 3.0)
    assert judged(profile, Criterion("tops_per_watt", ">=", 4.0, dtype="int8"))["status"] == "FAIL"


def test_the_summary_table_labels_int8_in_tops():
    profile = _int8_profile()
    case = "gemm/int8/m1024_n1024_k1024"
    profile["summary"]["peak_tflops"] = {"int8": 2.0}
    profile["summary"]["peak"] = {"int8": {"case": case, "tflops": 2.0, "ci_low": 1.9, "ci_high": 2.1}}
    _, rows = summary_rows(as_profile(profile))
    assert "int8 (TOPS)" in [row[0] for row in rows]


def test_files_without_int8_still_load_and_judge():
    profile = as_profile(make_profile([gemm(tflops=200.0, ci=(190.0, 210.0))]))
    assert set(profile.summary.tflops_per_watt or {}) <= {"fp16"}
    old = replace(Criterion("peak_tflops", ">=", 128.0, dtype="fp16"))
    assert judged(make_profile([gemm(tflops=200.0, ci=(190.0, 210.0))]), old)["status"] == "PASS"
    verdict = judged(make_profile([gemm(tflops=200.0, ci=(190.0, 210.0))]), Criterion("peak_tops", ">=", 1, "int8"))
    assert verdict["status"] == "INCONCLUSIVE" and "no int8 GEMM case" in verdict["reason"]


def test_a_selection_with_no_case_is_a_usage_error_before_measuring():
    options = RunOptions(device="cpu", kernels=["conv2d"], dtypes=["int8"], flush=False, power="none")
    with pytest.raises(UsageError, match="no case for kernels conv2d in dtypes int8"):
        Runner(options, suite=get_suite("quick"))


def test_fp8_operands_are_scaled_to_their_own_formats_range_never_past_it():
    """ROCm's float8_e4m3fnuz tops out at 240 and turns 256 and above into NaN: scaling to e4m3fn's 448 would put a
    few percent of the operands out of range on an MI300 (review)."""
    import torch

    from npucheck.kernels import lowp

    values = torch.linspace(-3.0, 3.0, 1001)
    # half an ulp: 3 mantissa bits (e4m3) 1/16, 2 bits (e5m2) 1/8
    for dtype, rtol in ((torch.float8_e4m3fn, 0.07), (torch.float8_e4m3fnuz, 0.07), (torch.float8_e5m2, 0.13)):
        quantised, scale = lowp._quantise(values, dtype, torch.device("cpu"))
        back = quantised.float()
        assert torch.isfinite(back).all(), dtype
        assert float(back.abs().max()) <= torch.finfo(dtype).max
        assert torch.allclose(back * scale, values, rtol=rtol, atol=1e-3), dtype


def test_the_int8_check_always_covers_the_last_row_and_column(monkeypatch):
    """A wrong value in the last row's last column (an edge tile) is caught whatever the random sample (review)."""
    import torch

    from npucheck.kernels import build_workload

    real = torch._int_mm

    def wrong_corner(a, b, *, out):
        real(a, b, out=out)
        out[-1, -1] += 1
        return out

    monkeypatch.setattr(torch, "_int_mm", wrong_corner)
    for seed in range(3):
        case = KERNELS["gemm"].case("int8", {"m": 200, "n": 136, "k": 64, "layout": "NN"}, "test")
        check = build_workload(case, torch.device("cpu"), seed).verify()
        assert check.ok is False and "first and last" in check.checked
