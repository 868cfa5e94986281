"""The judge: PASS only when the interval clears the threshold, FAIL only when it misses it."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from conftest import make_measurement
from conftest import make_profile as full_profile
from hypothesis import given
from hypothesis import strategies as st

from npucheck.errors import ResultFileError
from npucheck.model import as_profile
from npucheck.read.judge import exit_code_for, judge, judge_criterion
from npucheck.targets import Criterion, Target, load_targets

RANK = {"FAIL": 0, "INCONCLUSIVE": 1, "PASS": 2}


def gemm(
    size: int = 1024,
    tflops: float | None = 100.0,
    ci: tuple[float, float] | None = None,
    status: str = "ok",
    correct: bool | None = True,
    dtype: str = "fp16",
    no_interval: bool = False,
) -> dict[str, Any]:
    """One GEMM measurement as the runner writes it (conftest's complete one) with the figures the judge reads."""
    ran = status == "ok"
    not_run: dict[str, Any] = (
        {}
        if ran
        else {
            "check": None,
            "samples_s": [],
            "calls_per_sample": None,
            "warmup_calls": None,
            "timing_method": None,
            "cache_flush_bytes": None,
            "stats": None,
            "foreign_cpu_cores": None,
        }
    )
    if ran and tflops is not None and math.isfinite(tflops) and tflops > 0:
        ci = None if no_interval else ci or (tflops, tflops)
        not_run.update(_raw_samples(2 * size**3, tflops, ci))
    if status == "error":
        not_run["error"] = "RuntimeError: out of memory"
    if status == "skipped":
        not_run["reason"] = "predicted time exceeds the case budget"
    fields: dict[str, Any] = {
        "tflops": tflops if ran else None,
        "tflops_ci": list(ci) if ci is not None and ran else None,
        **not_run,
    }
    return make_measurement(
        id=f"gemm/{dtype}/m{size}_n{size}_k{size}",
        dtype=dtype,
        shape={"m": size, "n": size, "k": size, "layout": "NN"},
        flops=2 * size**3,
        status=status,
        correct=correct,
        **fields,
    )


def _raw_samples(flops: int, tflops: float, ci: tuple[float, float] | None) -> dict[str, Any]:
    """Raw per-call seconds whose median and 95% interval (ranks 1 and 8 of 10) give ``tflops`` and ``ci`` when
    recomputed (npucheck.evidence), and the stats the runner would store with them."""
    from npucheck.stats import summarize

    median = flops / (tflops * 1e12)
    fast, slow = (flops / (ci[1] * 1e12), flops / (ci[0] * 1e12)) if ci else (median, median)
    samples = [fast, fast, median, median, median, median, median, median, slow, slow]
    stats = summarize(samples, 0.95)
    return {
        "samples_s": samples,
        "stats": {**stats.to_dict()},
        "tflops": tflops,
        **({"tflops_ci": list(ci)} if ci else {}),
    }


def make_profile(
    measurements: list[dict[str, Any]] | None = None,
    support: dict[str, bool | None] | None = None,
    tflops_per_watt: float | None = None,
    tflops_per_watt_ci: tuple[float, float] | None = None,
    quality: str | None = "Q2",
    interrupted: bool = False,
    scope: str = "board",
    confirmed: bool = True,
    datasheet: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete result profile (conftest's) whose parts the judge reads are these: the measurements, their
    confirmations, the device's datasheet, support and summary (a bare TFLOPS/W gets the interval
    (value, value) unless ``tflops_per_watt_ci`` is given; pass ``tflops_per_watt_ci=()`` for none). With
    ``confirmed``, each dtype's best correct GEMM gets a confirmation re-measure equal to it, as the runner
    writes one."""
    summary: dict[str, Any] = {"tflops_per_watt": {"fp16": tflops_per_watt}}
    if tflops_per_watt is not None and tflops_per_watt_ci != ():
        summary["tflops_per_watt_ci"] = {"fp16": list(tflops_per_watt_ci or (tflops_per_watt, tflops_per_watt))}
    if quality is not None:
        summary["tflops_per_watt_quality"] = {"fp16": quality}
    summary["tflops_per_watt_scope"] = {"fp16": scope}
    summary["tflops_per_watt_covers"] = {"fp16": True}
    summary["tflops_per_watt_covers_reason"] = {"fp16": "NVML UUID matches cuda:0"}
    confirmations = []
    if confirmed:
        best: dict[str, dict[str, Any]] = {}
        for m in measurements or []:
            if (
                m["status"] == "ok"
                and m["correct"] is not False
                and m["tflops"] is not None
                and math.isfinite(m["tflops"])
                and m["tflops"] > best.get(m["dtype"], {}).get("tflops", -1)
            ):
                best[m["dtype"]] = m
        confirmations = [{**m, "role": "confirmation", "confirms": m["id"]} for m in best.values()]
    device = {**full_profile()["device"], "datasheet": datasheet}
    measurements = list(measurements or [])
    if tflops_per_watt is not None:  # the headline window the summary's figure comes from (on a skipped case)
        measurements.append(_window_carrier(tflops_per_watt, quality or "Q2", scope, tflops_per_watt_ci))
    return full_profile(
        interrupted=interrupted,
        measurements=measurements,
        confirmations=confirmations,
        device=device,
        summary=summary,
        support={family: {"supported": value} for family, value in (support or {}).items()},
    )


def _window_carrier(value: float, quality: str, scope: str, ci: tuple[float, float] | None) -> dict[str, Any]:
    """A skipped fp16 conv2d case carrying the fp16 headline energy window whose joules, seconds and work give
    ``value`` TFLOPS/W (1 J over 1 s); its uncertainty is stated only where it gives the interval exactly."""
    energy = {
        "kind": "headline",
        "case": "conv2d/fp16/carrier",
        "source": "nvml",
        "scope": scope,
        "quality": quality,
        "uncertainty_rel": 0.0 if ci is None else None,
        "window_s": 1.0,
        "valid": True,
        "joules": 1.0,
        "avg_watts": 1.0,
        "flops": value * 1e12,
        "tflops": value * 1e12 / 1.0 / 1e12,
        "tflops_per_watt": value * 1e12 / 1.0 / 1e12 / 1.0,
    }
    return make_measurement(
        id="conv2d/fp16/carrier",
        kernel="conv2d",
        family="cnn",
        shape={"n": 1},
        status="skipped",
        reason="carries the energy window",
        correct=None,
        check=None,
        samples_s=[],
        stats=None,
        tflops=None,
        tflops_ci=None,
        energy=energy,
    )


def peak(op: str = ">=", threshold: float = 128.0, dtype: str = "fp16") -> Criterion:
    return Criterion("peak_tflops", op, threshold, dtype=dtype)


def per_watt(op: str = ">", threshold: float = 1.0) -> Criterion:
    return Criterion("tflops_per_watt", op, threshold, dtype="fp16")


def families(threshold: int = 1, names: tuple[str, ...] = ("cnn", "rnn", "lstm")) -> Criterion:
    return Criterion("supported_families", ">=", threshold, families=names)


def target(*criteria: Criterion, name: str = "t") -> Target:
    return Target(name=name, title=f"title of {name}", source="", description="", criteria=criteria, path="")


def judged(profile: dict[str, Any], criterion: Criterion) -> dict[str, Any]:
    """The verdict entry of a single criterion."""
    return judge(profile, [target(criterion)])[0]["criteria"][0]


# ----------------------------------------------------------------------------------------------------- shape
def test_verdict_has_the_documented_keys():
    verdict = judge(make_profile([gemm(tflops=200.0)]), [target(peak(), name="cloud")])[0]
    assert verdict == {
        "target": "cloud",
        "title": "title of cloud",
        "status": "PASS",
        "criteria": [
            {
                "metric": "peak_tflops.fp16",
                "op": ">=",
                "threshold": 128.0,
                "unit": "TFLOPS",
                "measured": 200.0,
                "lower": 200.0,
                "upper": 200.0,
                "status": "PASS",
                "reason": verdict["criteria"][0]["reason"],
            }
        ],
    }


def test_a_model_object_and_its_dict_get_the_same_verdicts():
    profile = make_profile(
        [gemm(tflops=200.0, ci=(190.0, 210.0)), gemm(2048, status="skipped")],
        support={"cnn": True, "rnn": None},
        tflops_per_watt=1.2,
        tflops_per_watt_ci=(1.1, 1.3),
    )
    targets = load_targets(None) + [target(peak(), per_watt(), families(2))]
    assert judge(as_profile(profile), targets) == judge(profile, targets)
    assert judge_criterion(as_profile(profile), peak()) == judge_criterion(profile, peak())


def test_a_summary_built_in_code_has_its_coverage_like_one_read_from_a_file():
    read = as_profile(make_profile(tflops_per_watt=2.0, tflops_per_watt_ci=(1.8, 2.2)))
    built = replace(read, summary=replace(read.summary, present_keys=None))  # to_dict writes the coverage
    assert built.summary.present_keys is None and judge_criterion(built, per_watt())["status"] == "PASS"
    assert judge_criterion(built, per_watt()) == judge_criterion(read, per_watt())


def test_verdicts_follow_the_order_of_the_targets():
    verdicts = judge(make_profile(), [target(peak(), name="b"), target(peak(), name="a")])
    assert [v["target"] for v in verdicts] == ["b", "a"]


def test_builtin_targets_judge_a_profile_without_power_as_not_pass():
    profile = make_profile([gemm(tflops=300.0, ci=(290.0, 310.0))], support={"cnn": True, "rnn": True, "lstm": True})
    statuses = {v["target"]: v["status"] for v in judge(profile, load_targets(None))}
    assert statuses == {
        "miit-2020-cloud": "INCONCLUSIVE",
        "miit-2020-terminal": "INCONCLUSIVE",
        "miit-2020-terminal-strict": "INCONCLUSIVE",
    }


# ------------------------------------------------------------------------------------------------ the bounds
def test_lower_bound_equal_to_threshold_passes_greater_or_equal():
    assert judged(make_profile([gemm(tflops=130.0, ci=(128.0, 131.0))]), peak(">="))["status"] == "PASS"


def test_lower_bound_equal_to_threshold_is_inconclusive_for_strictly_greater():
    verdict = judged(make_profile([gemm(tflops=130.0, ci=(128.0, 131.0))]), peak(">"))
    assert verdict["status"] == "INCONCLUSIVE"


def test_upper_bound_just_below_threshold_fails():
    below = math.nextafter(128.0, 0.0)
    assert judged(make_profile([gemm(tflops=120.0, ci=(110.0, below))]), peak(">="))["status"] == "FAIL"


def test_upper_bound_equal_to_threshold_fails_strictly_greater():
    assert judged(make_profile([gemm(tflops=120.0, ci=(110.0, 128.0))]), peak(">"))["status"] == "FAIL"


def test_interval_straddling_the_threshold_is_inconclusive_and_says_so():
    verdict = judged(make_profile([gemm(tflops=128.5, ci=(126.0, 131.0))]), peak(">="))
    assert verdict["status"] == "INCONCLUSIVE"
    assert "straddles the threshold" in verdict["reason"]


def test_upper_bound_equal_to_threshold_passes_less_or_equal():
    profile = make_profile(tflops_per_watt=0.9, tflops_per_watt_ci=(0.8, 1.0))
    assert judged(profile, per_watt("<=", 1.0))["status"] == "PASS"


def test_upper_bound_equal_to_threshold_is_inconclusive_for_strictly_less():
    profile = make_profile(tflops_per_watt=0.9, tflops_per_watt_ci=(0.8, 1.0))
    assert judged(profile, per_watt("<", 1.0))["status"] == "INCONCLUSIVE"


def test_lower_bound_above_threshold_fails_less_or_equal():
    profile = make_profile(tflops_per_watt=1.2, tflops_per_watt_ci=(1.1, 1.3))
    assert judged(profile, per_watt("<=", 1.0))["status"] == "FAIL"


# ----------------------------------------------------------------------------------------------- peak_tflops
def test_peak_is_the_best_median_judged_on_its_confirmation():
    cases = [gemm(1024, 100.0, (95.0, 104.0)), gemm(2048, 140.0, (120.0, 150.0)), gemm(4096, 130.0, (125.0, 160.0))]
    verdict = judged(make_profile(cases), peak())
    assert (verdict["measured"], verdict["lower"], verdict["upper"]) == (140.0, 120.0, 150.0)
    assert "gemm/fp16/m2048_n2048_k2048" in verdict["reason"]


def test_without_a_confirmation_the_bounds_are_the_best_over_cases():
    cases = [gemm(1024, 100.0, (95.0, 104.0)), gemm(2048, 140.0, (120.0, 150.0)), gemm(4096, 130.0, (125.0, 160.0))]
    verdict = judged(make_profile(cases, confirmed=False), peak())
    assert (verdict["measured"], verdict["lower"], verdict["upper"]) == (140.0, 125.0, 160.0)


def test_a_peak_without_an_interval_is_inconclusive():
    verdict = judged(make_profile([gemm(tflops=140.0, no_interval=True)]), peak())
    assert (verdict["lower"], verdict["upper"], verdict["status"]) == (140.0, 140.0, "INCONCLUSIVE")
    assert "no interval" in verdict["reason"]
    verdict = judged(make_profile([gemm(tflops=100.0, no_interval=True)], confirmed=False), peak())
    assert verdict["status"] == "INCONCLUSIVE" and "no interval" in verdict["reason"]  # not FAIL either


def test_peak_ignores_incorrect_errored_and_skipped_cases():
    cases = [
        gemm(1024, 100.0),
        gemm(2048, 500.0, correct=False),
        gemm(4096, status="error"),
        gemm(8192, status="skipped"),
    ]
    assert judged(make_profile(cases), peak())["measured"] == 100.0


def test_an_unchecked_peak_is_measured_but_never_passes():
    verdict = judged(make_profile([gemm(tflops=150.0, correct=None)]), peak())
    assert (verdict["status"], verdict["measured"]) == ("INCONCLUSIVE", 150.0)
    assert "unchecked" in verdict["reason"]


def test_an_unchecked_peak_can_still_fail():
    assert judged(make_profile([gemm(tflops=50.0, correct=None)]), peak())["status"] == "FAIL"


def test_peak_ignores_other_dtypes():
    cases = [gemm(1024, 100.0, dtype="fp16"), gemm(1024, 900.0, dtype="bf16")]
    assert judged(make_profile(cases), peak(dtype="fp16"))["measured"] == 100.0


def test_peak_ignores_non_finite_throughput():
    # a non-finite TFLOPS never reaches the judge: the model refuses it where the profile is read
    assert judged(make_profile([gemm(1024, 100.0)]), peak())["measured"] == 100.0
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ResultFileError, match="Measurement.tflops: .* is not finite"):
            judged(make_profile([gemm(1024, 100.0), gemm(2048, bad)]), peak())


def test_peak_with_no_gemm_case_of_the_dtype_is_inconclusive_not_measured():
    verdict = judged(make_profile([gemm(dtype="bf16")]), peak(dtype="fp16"))
    assert verdict["status"] == "INCONCLUSIVE"
    assert verdict["measured"] is None and "not measured" in verdict["reason"]


def test_peak_with_every_case_errored_is_error_and_says_how_many():
    cases = [gemm(size, status="error") for size in (1024, 2048, 4096)]
    verdict = judged(make_profile(cases), peak())
    assert verdict["status"] == "ERROR"
    assert "all 3 fp16 GEMM cases errored" in verdict["reason"]


def test_peak_with_every_case_wrong_is_error():
    cases = [gemm(1024, 900.0, correct=False), gemm(2048, status="error")]
    assert judged(make_profile(cases), peak())["status"] == "ERROR"


def test_peak_with_every_case_skipped_is_inconclusive():
    verdict = judged(make_profile([gemm(size, status="skipped") for size in (1024, 2048)]), peak())
    assert verdict["status"] == "INCONCLUSIVE"
    assert "2 skipped" in verdict["reason"]


def test_peak_fail_stays_fail_but_reports_larger_cases_skipped():
    cases = [gemm(1024, 50.0, (48.0, 52.0)), gemm(8192, status="skipped"), gemm(16384, status="skipped")]
    verdict = judged(make_profile(cases), peak())
    assert verdict["status"] == "FAIL"
    assert "2 larger cases skipped" in verdict["reason"]


def test_peak_reason_counts_errored_cases_beside_the_best():
    cases = [gemm(1024, 200.0), gemm(2048, status="error")]
    assert "1 errored" in judged(make_profile(cases), peak())["reason"]


# ------------------------------------------------------------------------------------------- tflops_per_watt
def test_per_watt_without_power_is_inconclusive_never_pass():
    verdict = judged(make_profile([gemm(tflops=500.0)], tflops_per_watt=None), per_watt())
    assert verdict["status"] == "INCONCLUSIVE"
    assert verdict["reason"] == "fp16 TFLOPS/W is unknown: no power source gave a reading"


def test_per_watt_without_a_summary_is_inconclusive():
    profile = make_profile()
    profile["summary"] = {}  # every part of the summary is optional; the summary itself is not
    assert judged(profile, per_watt())["status"] == "INCONCLUSIVE"
    del profile["summary"]
    with pytest.raises(ResultFileError, match="missing key 'summary'"):
        judged(profile, per_watt())


def test_per_watt_without_an_interval_judges_the_figure_itself():
    verdict = judged(make_profile(tflops_per_watt=1.4), per_watt())
    assert (verdict["measured"], verdict["lower"], verdict["upper"]) == (1.4, 1.4, 1.4)
    assert verdict["status"] == "PASS"


def test_per_watt_exactly_one_fails_more_than_one():
    assert judged(make_profile(tflops_per_watt=1.0), per_watt(">", 1.0))["status"] == "FAIL"


def test_per_watt_interval_straddling_one_is_inconclusive():
    profile = make_profile(tflops_per_watt=1.05, tflops_per_watt_ci=(0.95, 1.15))
    assert judged(profile, per_watt())["status"] == "INCONCLUSIVE"


def test_estimated_power_never_decides_a_verdict():
    verdict = judged(make_profile(tflops_per_watt=5.0, quality="Q0"), per_watt())
    assert verdict["status"] == "INCONCLUSIVE"
    assert verdict["measured"] == 5.0
    assert "estimated power (Q0) never decides a verdict" in verdict["reason"]


def test_measured_power_quality_decides():
    assert judged(make_profile(tflops_per_watt=5.0, quality="Q2"), per_watt())["status"] == "PASS"


def test_per_watt_with_every_gemm_case_errored_is_error():
    profile = make_profile([gemm(1024, status="error"), gemm(2048, status="error")])
    verdict = judged(profile, per_watt())
    assert verdict["status"] == "ERROR" and "all 2 fp16 GEMM cases errored" in verdict["reason"]


# ---------------------------------------------------------------------------------------- supported_families
def test_support_counts_supported_as_lower_and_unchecked_as_possible():
    verdict = judged(make_profile(support={"cnn": True, "rnn": None, "lstm": False}), families(1))
    assert (verdict["measured"], verdict["lower"], verdict["upper"]) == (1, 1, 2)
    assert verdict["status"] == "PASS"


def test_support_reason_lists_supported_unsupported_and_unchecked():
    reason = judged(make_profile(support={"cnn": True, "rnn": None, "lstm": False}), families(1))["reason"]
    assert "supported: cnn" in reason and "unsupported: lstm" in reason and "unchecked: rnn" in reason


def test_support_with_an_unchecked_family_that_could_decide_is_inconclusive():
    verdict = judged(make_profile(support={"cnn": True, "rnn": None, "lstm": True}), families(3))
    assert verdict["status"] == "INCONCLUSIVE"


def test_support_that_cannot_reach_the_threshold_fails():
    verdict = judged(make_profile(support={"cnn": True, "rnn": None, "lstm": False}), families(3))
    assert verdict["status"] == "FAIL"


def test_support_missing_from_the_profile_counts_as_unchecked():
    verdict = judged(make_profile(support={}), families(1))
    assert (verdict["lower"], verdict["upper"], verdict["status"]) == (0, 3, "INCONCLUSIVE")


def test_every_family_supported_passes_the_strict_target():
    profile = make_profile(support={"cnn": True, "rnn": True, "lstm": True})
    assert judged(profile, families(3))["status"] == "PASS"


def test_support_ignores_families_the_criterion_does_not_list():
    verdict = judged(make_profile(support={"gru": True, "cnn": False}), families(1, ("cnn",)))
    assert verdict["status"] == "FAIL"


# --------------------------------------------------------------------------------------------- target status
@pytest.mark.parametrize(
    "statuses, expected",
    [
        (["PASS", "PASS"], "PASS"),
        (["PASS", "INCONCLUSIVE"], "INCONCLUSIVE"),
        (["INCONCLUSIVE", "ERROR"], "ERROR"),
        (["ERROR", "FAIL"], "FAIL"),
        (["PASS", "FAIL"], "FAIL"),
    ],
)
def test_target_status_is_the_worst_of_its_criteria(statuses, expected):
    # here 1.0 TFLOPS/W passes ">= 1" and fails "> 1", the fp16 peak straddles 128, every bf16 case errored
    make = {
        "PASS": per_watt(">=", 1.0),
        "FAIL": per_watt(">", 1.0),
        "INCONCLUSIVE": peak(),
        "ERROR": peak(dtype="bf16"),
    }
    profile = make_profile(
        [gemm(tflops=128.5, ci=(126.0, 131.0)), gemm(status="error", dtype="bf16")], tflops_per_watt=1.0
    )
    verdict = judge(profile, [target(*(make[s] for s in statuses))])[0]
    assert [c["status"] for c in verdict["criteria"]] == statuses
    assert verdict["status"] == expected


def test_interrupted_run_notes_it_on_every_reason_but_a_pass():
    profile = make_profile([gemm(tflops=200.0)], interrupted=True)
    verdict = judge(profile, [target(peak(), per_watt())])[0]
    passed, unknown = verdict["criteria"]
    assert "interrupted" not in passed["reason"]
    assert unknown["reason"].endswith(" (run was interrupted: judged on the cases measured)")


# ------------------------------------------------------------------------------------------------ exit codes
@pytest.mark.parametrize(
    "statuses, code",
    [
        (["PASS"], 0),
        (["PASS", "PASS"], 0),
        (["PASS", "FAIL"], 1),
        (["INCONCLUSIVE", "FAIL"], 1),
        (["PASS", "INCONCLUSIVE"], 3),
        (["ERROR"], 3),
        ([], 3),
    ],
)
def test_exit_code_is_0_all_pass_1_any_fail_3_otherwise(statuses, code):
    assert exit_code_for([{"status": s} for s in statuses]) == code


# ------------------------------------------------------------------------------------------------ properties
thresholds = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
values = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
rates = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False)
"""Peak TFLOPS: positive, as raw per-call seconds give (the judge recomputes them from the samples)."""
ops = st.sampled_from([">=", ">", "<=", "<"])


def _holds(value: float, op: str, threshold: float) -> bool:
    return {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold, "<": value < threshold}[op]


@given(ops, thresholds, values, values)
def test_pass_means_both_bounds_meet_and_fail_means_neither_does(op, threshold, a, b):
    lower, upper = min(a, b), max(a, b)
    profile = make_profile(tflops_per_watt=lower, tflops_per_watt_ci=(lower, upper))
    verdict = judged(profile, per_watt(op, threshold))
    met = [_holds(lower, op, threshold), _holds(upper, op, threshold)]
    expected = "PASS" if all(met) else "FAIL" if not any(met) else "INCONCLUSIVE"
    assert verdict["status"] == expected


@given(ops, thresholds, values)
def test_a_zero_width_interval_is_never_inconclusive(op, threshold, value):
    assert judged(make_profile(tflops_per_watt=value), per_watt(op, threshold))["status"] in ("PASS", "FAIL")


def test_a_stored_figure_without_its_interval_is_never_judged():
    verdict = judged(make_profile(tflops_per_watt=5.0, tflops_per_watt_ci=()), per_watt())
    assert verdict["status"] == "INCONCLUSIVE" and "no uncertainty interval" in verdict["reason"]


def test_a_figure_of_unknown_quality_is_never_judged():
    verdict = judged(make_profile(tflops_per_watt=5.0, quality=None), per_watt())
    assert verdict["status"] == "INCONCLUSIVE" and "not a measured level" in verdict["reason"]
    # a quality outside the vocabulary never reaches the judge: the model refuses it where the profile is read
    with pytest.raises(ResultFileError, match="'Q9' is not one of Q0, Q1, Q2, Q3"):
        judged(make_profile(tflops_per_watt=5.0, quality="Q9"), per_watt())


@pytest.mark.parametrize("scope", ["dram", "soc-rail"])
def test_power_of_part_of_the_device_is_never_judged(scope):
    verdict = judged(make_profile(tflops_per_watt=50.0, tflops_per_watt_ci=(45.0, 55.0), scope=scope), per_watt())
    assert verdict["status"] == "INCONCLUSIVE" and "covers only part of the device" in verdict["reason"]


@given(st.sampled_from([">=", ">"]), thresholds, rates, rates, st.floats(min_value=0.0, max_value=1e4))
def test_raising_the_interval_never_lowers_the_verdict_of_an_at_least_criterion(op, threshold, a, b, shift):
    lower, upper = min(a, b), max(a, b)
    before = judged(make_profile([gemm(tflops=lower, ci=(lower, upper))]), peak(op, threshold))
    raised = gemm(tflops=lower + shift, ci=(lower + shift, upper + shift))
    after = judged(make_profile([raised]), peak(op, threshold))
    assert RANK[after["status"]] >= RANK[before["status"]]


@given(st.lists(st.tuples(rates, rates), min_size=1, max_size=5), st.tuples(rates, rates), thresholds)
def test_without_a_confirmation_adding_a_case_never_lowers_the_bounds_and_nothing_passes(pairs, extra, threshold):
    def case(i: int, pair: tuple[float, float]) -> dict[str, Any]:
        lower, upper = min(pair), max(pair)
        return gemm(1024 + i, lower, (lower, upper))

    cases = [case(i, pair) for i, pair in enumerate(pairs)]
    before = judged(make_profile(cases, confirmed=False), peak(">=", threshold))
    after = judged(make_profile(cases + [case(len(cases), extra)], confirmed=False), peak(">=", threshold))
    assert after["measured"] >= before["measured"] and after["lower"] >= before["lower"]
    assert after["upper"] >= before["upper"]
    assert "PASS" not in (before["status"], after["status"])  # the selection alone is biased upward


@given(st.lists(st.sampled_from([True, False, None]), min_size=3, max_size=3), st.integers(0, 3))
def test_support_bounds_bracket_every_way_the_unchecked_families_could_go(flags, threshold):
    support = dict(zip(("cnn", "rnn", "lstm"), flags))
    verdict = judged(make_profile(support=support), families(threshold))
    assert verdict["lower"] == flags.count(True)
    assert verdict["upper"] == flags.count(True) + flags.count(None)
    if None not in flags:
        assert verdict["status"] in ("PASS", "FAIL")


# ------------------------------------------------------------------------------------- confirmation, ceiling
def test_a_passing_selection_without_its_confirmation_is_inconclusive_not_pass():
    verdict = judged(make_profile([gemm(tflops=200.0, ci=(190.0, 210.0))], confirmed=False), peak())
    assert verdict["status"] == "INCONCLUSIVE"
    assert "not confirmed" in verdict["reason"]


def test_a_failing_selection_without_a_confirmation_still_fails():
    verdict = judged(make_profile([gemm(tflops=100.0, ci=(90.0, 110.0))], confirmed=False), peak())
    assert verdict["status"] == "FAIL"


def test_the_verdict_is_the_confirmations_not_the_selections():
    profile = make_profile([gemm(1024, 90.0, ci=(85.0, 95.0)), gemm(2048, 140.0, ci=(131.0, 150.0))])
    # best of many was lucky: the re-measure's raw samples give 120 (115-126)
    profile["confirmations"][0].update(_raw_samples(2 * 2048**3, 120.0, (115.0, 126.0)))
    verdict = judged(profile, peak())
    assert (verdict["status"], verdict["measured"], verdict["lower"]) == ("FAIL", 120.0, 115.0)
    assert "confirmation re-measure" in verdict["reason"]


def test_a_confirmation_that_errored_is_an_error():
    profile = make_profile([gemm(tflops=200.0, ci=(190.0, 210.0))])
    profile["confirmations"][0].update(status="error", error="out of memory", tflops=None, tflops_ci=None)
    assert judged(profile, peak())["status"] == "ERROR"


SHEET = {
    "part": "NVIDIA H100 SXM5",
    "peak_tflops": {"fp16": 989.4},
    "ceiling_tflops": {"fp16": 989.4 * 1.05},
    "ceiling_factor": 1.05,
}


def test_a_figure_above_the_datasheet_ceiling_never_passes():
    # an events-on-the-wrong-stream bug gives absurd figures: 50,000 TFLOPS on an H100
    profile = make_profile([gemm(tflops=50_000.0, ci=(49_000.0, 51_000.0))], datasheet=SHEET)
    verdict = judged(profile, peak())
    assert verdict["status"] == "ERROR"
    assert "datasheet" in verdict["reason"]


def test_cases_above_the_ceiling_are_not_the_peak():
    cases = [gemm(1024, 700.0, ci=(690.0, 710.0)), gemm(2048, 50_000.0, ci=(49_000.0, 51_000.0))]
    verdict = judged(make_profile(cases, datasheet=SHEET), peak())
    assert verdict["measured"] == 700.0
    assert "above the datasheet ceiling" in verdict["reason"]


def test_tflops_per_watt_whose_window_disagreed_with_the_timed_median_is_not_judged():
    profile = make_profile(tflops_per_watt=2.0, tflops_per_watt_ci=(1.8, 2.2))
    profile["summary"]["tflops_per_watt_not_judged"] = {"fp16": "sustained 0.70x the timed median"}
    verdict = judged(profile, per_watt())
    assert verdict["status"] == "INCONCLUSIVE" and "0.70x" in verdict["reason"]


def test_tflops_per_watt_without_recorded_coverage_is_not_judged():
    profile = make_profile(tflops_per_watt=2.0, tflops_per_watt_ci=(1.8, 2.2))
    del profile["summary"]["tflops_per_watt_covers"]
    assert judged(profile, per_watt())["status"] == "INCONCLUSIVE"


def test_events_reading_faster_than_the_host_clock_keep_the_peak_from_passing():
    # no datasheet and no power source: the host clock is the only independent timer left
    profile = make_profile([gemm(tflops=5000.0, ci=(4900.0, 5100.0))])
    profile["confirmations"][0]["events_vs_host_clock"] = 40.0  # events on an idle stream read ~0 s
    verdict = judged(profile, peak())
    assert verdict["status"] == "INCONCLUSIVE" and "host clock" in verdict["reason"]


def test_events_agreeing_with_the_host_clock_pass():
    profile = make_profile([gemm(tflops=200.0, ci=(190.0, 210.0))])
    profile["confirmations"][0]["events_vs_host_clock"] = 1.03
    assert judged(profile, peak())["status"] == "PASS"
