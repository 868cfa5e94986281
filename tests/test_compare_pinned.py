"""compare, pinned: what the broader compare tests leave loose (issue 11, item 8).

Each test here was checked to fail when the code it pins is broken (see docs/mutation.md for the mutation run).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import GEMM_FLOPS, make_measurement, make_profile, verdict_giving

from npucheck import evidence
from npucheck.cli import cli
from npucheck.read import compare as comparing
from npucheck.read.verified import as_verified, verified
from npucheck.stats import summarize


def _case(case_id: str, median_s: float, seed: int, spread: float = 0.02, n: int = 30, **extra) -> dict:
    """A measured fp16 GEMM, ``n`` samples scattered ``spread`` (relative) around ``median_s``; correct=True."""
    samples = [float(s) for s in np.random.default_rng(seed).normal(median_s, spread * median_s, n)]
    stats = summarize(samples)
    fields = {
        "id": case_id,
        "samples_s": samples,
        "stats": stats.to_dict(),
        "tflops": GEMM_FLOPS / stats.median_s / 1e12,
        "tflops_ci": [GEMM_FLOPS / stats.ci_high_s / 1e12, GEMM_FLOPS / stats.ci_low_s / 1e12],
    }
    return make_measurement(**(fields | extra))


def _energy(tflops_per_watt: float, source: str = "rapl", scope: str = "package", **extra) -> dict:
    watts = 100.0
    tflops = tflops_per_watt * watts
    window = {
        "kind": "sweep",
        "case": "x",
        "source": source,
        "scope": scope,
        "quality": "Q2",
        "uncertainty_rel": 0.1,
        "window_s": 2.0,
        "start_unix": 1795600000.0,
        "valid": True,
        "reason": None,
        "joules": 2 * watts,
        "avg_watts": watts,
        "tflops": tflops,
        "tflops_per_watt": tflops_per_watt,
        "tflops_per_watt_net": None,
        "trace": [[0.0, watts], [1.0, watts], [2.0, watts]],
        "warnings": [],
    }
    return window | extra


def _row(base_cases: list[dict], other_cases: list[dict], case: str = "gemm/fp16/a", **kwargs) -> pd.Series:
    base = make_profile(measurements=base_cases)
    other = make_profile(measurements=other_cases)
    return comparing.compare_frames(base, [("o", other)], **kwargs).set_index("case").loc[case]


def _none(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# ---------------------------------------------------------------------------------------- the bug: wrong answers
def test_a_wrong_answer_that_ran_twice_as_fast_is_not_an_improvement():
    """Every case has a non-null ``correct``, so pandas would hold numpy booleans: ``is False`` never matched."""
    base = [_case("gemm/fp16/a", 1e-4, 1), _case("gemm/fp16/b", 1e-4, 2)]
    other = [_case("gemm/fp16/a", 0.5e-4, 3, correct=False), _case("gemm/fp16/b", 1e-4, 4)]
    assert all(isinstance(m["correct"], bool) for m in base + other)
    row = _row(base, other)
    assert row["verdict"] == comparing.NOT_MEASURED
    assert _none(row["other_tflops"]) and _none(row["ratio"])
    assert row["base_tflops"] == pytest.approx(base[0]["tflops"])
    assert row["note"] == "status ok vs ok (other: failed its correctness check)"


def test_a_wrong_answer_in_the_base_is_not_a_regression_either():
    row = _row([_case("gemm/fp16/a", 1e-4, 1, correct=False)], [_case("gemm/fp16/a", 2e-4, 2)])
    assert row["verdict"] == comparing.NOT_MEASURED and _none(row["base_tflops"])
    assert row["note"] == "status ok vs ok (base: failed its correctness check)"


def test_a_numpy_false_is_a_wrong_answer_and_an_unchecked_case_is_still_compared():
    frame = comparing.cases_frame(make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 1)]))
    case = frame.loc["gemm/fp16/a"].copy()
    case["correct"] = np.bool_(False)
    assert comparing._ok_tflops(case) is None
    case["correct"] = np.bool_(True)
    assert comparing._ok_tflops(case) == pytest.approx(frame.loc["gemm/fp16/a", "tflops"])
    for unchecked in (None, float("nan")):
        case["correct"] = unchecked
        assert comparing._ok_tflops(case) is not None
    row = _row([_case("gemm/fp16/a", 1e-4, 1, correct=None)], [_case("gemm/fp16/a", 0.5e-4, 2, correct=None)])
    assert row["verdict"] == comparing.IMPROVEMENT


def test_the_case_frame_holds_python_values_not_numpy_booleans_or_nan():
    profile = make_profile(
        measurements=[_case("gemm/fp16/a", 1e-4, 1, kernel_version=None), _case("gemm/fp16/b", 1e-4, 2)]
    )
    frame = comparing.cases_frame(profile)
    assert frame.loc["gemm/fp16/b", "correct"] is True and frame.loc["gemm/fp16/a", "kernel_version"] is None
    assert frame.loc["gemm/fp16/b", "flushed"] is False


@pytest.mark.parametrize(
    ("base_extra", "other_extra", "note"),
    [
        ({"status": "skipped", "samples_s": [], "tflops": None}, {}, "status skipped vs ok"),
        ({}, {"status": "error", "samples_s": [], "tflops": None}, "status ok vs error"),
        ({}, {"samples_s": []}, "status ok vs ok (other: no raw samples)"),
        # a loaded file's case whose TFLOPS its samples do not give is an error (npucheck.read.verified), named
        (
            {"tflops": None},
            {},
            f"status error vs ok (base: edited or corrupt: stored tflops none, raw samples give {0.335316})",
        ),
        (
            {"samples_s": []},
            {"correct": False},
            "status ok vs ok (base: no raw samples; other: failed its correctness check)",
        ),
    ],
)
def test_a_case_that_cannot_be_compared_says_which_side_and_why(base_extra, other_extra, note):
    row = _row([_case("gemm/fp16/a", 1e-4, 1, **base_extra)], [_case("gemm/fp16/a", 1e-4, 2, **other_extra)])
    assert row["verdict"] == comparing.NOT_MEASURED and row["note"] == note


def test_a_verified_profile_is_read_as_it_is():
    """What :func:`verified` returned is not verified again (its re-derived summary would read as modified since
    sealed): compare gives the same rows for a sealed file's dict and its verified copy."""
    doc = json.loads(json.dumps(make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 1)])))
    doc = evidence.seal(doc)
    made = verified(doc).profile
    assert as_verified(made) is made and verified(made).notes == ()
    other = make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 2)])
    pd.testing.assert_frame_equal(
        comparing.compare_frames(made, [("o", other)]), comparing.compare_frames(doc, [("o", other)])
    )


def test_an_edited_case_is_never_compared_and_the_edit_is_named():
    """The other file's headline was edited to twice the speed, raw samples left as measured: before, compare read
    the stored samples (so the speed ratio was right) but listed the stored TFLOPS; now the case is not measured."""
    edited = _case("gemm/fp16/a", 1e-4, 2)
    edited["tflops"] *= 2
    row = _row([_case("gemm/fp16/a", 1e-4, 1)], [edited])
    assert row["verdict"] == comparing.NOT_MEASURED and row["other_tflops"] is None
    assert row["note"].startswith("status ok vs error (other: edited or corrupt: stored tflops ")


# ------------------------------------------------------------------------ significance and threshold, both sides
@pytest.mark.parametrize(
    ("ratio", "low", "high", "verdict"),
    [
        (1.20, 1.10, 1.30, comparing.IMPROVEMENT),
        (1.0501, 1.01, 1.10, comparing.IMPROVEMENT),
        (1.05, 1.01, 1.10, comparing.SMALL),  # exactly the threshold: not beyond it
        (1.03, 1.01, 1.05, comparing.SMALL),  # significant but small
        (1.20, 1.00, 1.40, comparing.NOISE),  # the interval touches 1: not significant, however large
        (1.20, 0.90, 1.50, comparing.NOISE),
        (0.80, 0.70, 0.90, comparing.REGRESSION),
        (0.9499, 0.90, 0.99, comparing.REGRESSION),
        (0.95, 0.90, 0.99, comparing.SMALL),
        (0.97, 0.95, 0.99, comparing.SMALL),
        (0.80, 0.60, 1.00, comparing.NOISE),
        (1.00, 0.99, 1.01, comparing.NOISE),
    ],
)
def test_classify_needs_both_a_factor_beyond_the_threshold_and_an_interval_that_excludes_1(ratio, low, high, verdict):
    assert comparing.classify(ratio, low, high, threshold=0.05) == verdict


def test_the_threshold_is_what_the_caller_gives_and_5_percent_by_default():
    assert comparing.DEFAULT_THRESHOLD == 0.05
    assert comparing.classify(1.10, 1.05, 1.15, threshold=0.2) == comparing.SMALL
    assert comparing.classify(0.90, 0.85, 0.95, threshold=0.2) == comparing.SMALL
    base, other = [_case("gemm/fp16/a", 1e-4, 1, spread=0.005)], [_case("gemm/fp16/a", 0.93e-4, 2, spread=0.005)]
    assert _row(base, other)["verdict"] == comparing.IMPROVEMENT  # 7.5% faster, beyond the default 5%
    assert _row(base, other, threshold=0.10)["verdict"] == comparing.SMALL
    slower = [_case("gemm/fp16/a", 1.08e-4, 2, spread=0.005)]
    assert _row(base, slower)["verdict"] == comparing.REGRESSION
    assert _row(base, slower, threshold=0.10)["verdict"] == comparing.SMALL


def test_a_large_but_noisy_speed_up_is_noise_and_a_clear_one_is_an_improvement():
    base = [_case("gemm/fp16/a", 1e-4, 1, spread=0.4, n=6), _case("gemm/fp16/b", 1e-4, 3)]
    other = [_case("gemm/fp16/a", 0.85e-4, 2, spread=0.4, n=6), _case("gemm/fp16/b", 0.5e-4, 4)]
    noisy = _row(base, other)
    assert noisy["ratio"] > 1.05 and noisy["ratio_low"] <= 1 and noisy["verdict"] == comparing.NOISE
    clear = _row(base, other, case="gemm/fp16/b")
    assert clear["verdict"] == comparing.IMPROVEMENT and clear["ratio"] == pytest.approx(2, rel=0.03)
    assert 1 < clear["ratio_low"] <= clear["ratio"] <= clear["ratio_high"]


# -------------------------------------------------------------------------- interval: confidence, resamples, seed
def _reference_interval(base: list[float], other: list[float], seed: int, resamples: int, confidence: float):
    """The documented procedure, written out: percentile bootstrap of the ratio of medians, base's indices first."""
    b, o = np.asarray(base), np.asarray(other)
    rng = np.random.default_rng(seed)
    bm = np.array([np.median(b[idx]) for idx in rng.integers(0, b.size, (resamples, b.size))])
    om = np.array([np.median(o[idx]) for idx in rng.integers(0, o.size, (resamples, o.size))])
    alpha = 1 - confidence
    low, high = np.quantile(bm / om, [alpha / 2, 1 - alpha / 2])
    return float(np.median(b) / np.median(o)), float(low), float(high)


def test_the_interval_is_a_95_percent_percentile_bootstrap_of_2000_resamples():
    assert comparing.CONFIDENCE == 0.95 and comparing.RESAMPLES == 2000
    base = _case("gemm/fp16/a", 1e-4, 1, n=15)["samples_s"]
    other = _case("gemm/fp16/a", 0.9e-4, 2, n=12)["samples_s"]
    got = comparing.ratio_interval(base, other)
    assert got == pytest.approx(_reference_interval(base, other, 0, 2000, 0.95), rel=1e-12)
    assert comparing.ratio_interval(base, other, seed=5, resamples=300, confidence=0.8) == pytest.approx(
        _reference_interval(base, other, 5, 300, 0.8), rel=1e-12
    )
    assert got[0] == pytest.approx(float(np.median(base) / np.median(other)))


def test_a_higher_confidence_gives_a_wider_interval_around_the_same_ratio():
    base = _case("gemm/fp16/a", 1e-4, 1)["samples_s"]
    other = _case("gemm/fp16/a", 0.9e-4, 2)["samples_s"]
    widths = []
    for confidence in (0.5, 0.8, 0.95, 0.99):
        ratio, low, high = comparing.ratio_interval(base, other, confidence=confidence)
        assert low < ratio < high
        widths.append(high - low)
    assert widths == sorted(widths) and len(set(widths)) == 4


def test_compare_uses_the_documented_interval_and_passes_its_seed_through():
    base = [_case("gemm/fp16/a", 1e-4, 1)]
    other = [_case("gemm/fp16/a", 0.97e-4, 2)]
    for seed, kwargs in ((0, {}), (7, {"seed": 7})):
        row = _row(base, other, **kwargs)
        expected = comparing.ratio_interval(base[0]["samples_s"], other[0]["samples_s"], seed=seed)
        assert (row["ratio"], row["ratio_low"], row["ratio_high"]) == expected


def test_the_same_inputs_give_identical_intervals_and_another_seed_moves_them():
    base = _case("gemm/fp16/a", 1e-4, 1)["samples_s"]
    other = _case("gemm/fp16/a", 0.97e-4, 2)["samples_s"]
    first = comparing.ratio_interval(base, other, seed=3)
    assert comparing.ratio_interval(list(base), list(other), seed=3) == first
    assert comparing.ratio_interval(base, other, seed=4) != first
    assert comparing.ratio_interval(base, other, seed=0) == comparing.ratio_interval(base, other)
    profiles = (
        make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 1)]),
        make_profile(measurements=[_case("gemm/fp16/a", 0.97e-4, 2)]),
    )
    pd.testing.assert_frame_equal(
        comparing.compare_frames(profiles[0], [("o", profiles[1])]),
        comparing.compare_frames(profiles[0], [("o", profiles[1])]),
    )


# ----------------------------------------------------------------------------------------------- comparability
@pytest.mark.parametrize(
    ("field", "base_value", "other_value", "note"),
    [
        ("kernel_version", 1, 2, "kernel version differs (1 vs 2)"),
        ("kernel_version", None, 2, "kernel version differs (unknown vs 2)"),
        ("kernel_version", 2, None, "kernel version differs (2 vs unknown)"),
        ("flop_convention", "2*m*n*k", "m*n*k", "FLOP convention differs (2*m*n*k vs m*n*k)"),
        (
            "timing_method",
            "host_clock_sync",
            "device_events",
            "timing method differs (host_clock_sync vs device_events)",
        ),
        ("cache_flush_bytes", 0, 1 << 20, "cache flushing differs (False vs True)"),
        ("cache_flush_bytes", 1 << 21, None, "cache flushing differs (True vs False)"),
    ],
)
def test_each_comparability_key_makes_a_case_incomparable_with_its_reason(field, base_value, other_value, note):
    base = [_case("gemm/fp16/a", 1e-4, 1, **{field: base_value}), _case("gemm/fp16/b", 1e-4, 3)]
    other = [_case("gemm/fp16/a", 0.5e-4, 2, **{field: other_value}), _case("gemm/fp16/b", 1e-4, 4)]
    row = _row(base, other)
    assert row["verdict"] == comparing.INCOMPARABLE and row["note"] == note
    assert _none(row["ratio"]) and _none(row["ratio_low"]) and _none(row["ratio_high"])
    assert row["base_tflops"] == pytest.approx(base[0]["tflops"])  # both measured: just not comparable
    assert _row(base, other, case="gemm/fp16/b")["verdict"] == comparing.NOISE


def test_equal_keys_compare_even_when_both_are_unknown_or_a_flush_of_other_size():
    """Two unknown kernel versions (pandas would make them NaN, and NaN != NaN) are the same, not a difference."""
    base = [
        _case("gemm/fp16/a", 1e-4, 1, kernel_version=None, cache_flush_bytes=1 << 20),
        _case("gemm/fp16/b", 1e-4, 3),
    ]
    other = [
        _case("gemm/fp16/a", 0.5e-4, 2, kernel_version=None, cache_flush_bytes=1 << 22),
        _case("gemm/fp16/b", 1e-4, 4),
    ]
    row = _row(base, other)
    assert row["verdict"] == comparing.IMPROVEMENT and row["note"] == ""


def test_an_invalid_energy_window_is_not_compared_and_says_why():
    base = [_case("gemm/fp16/a", 1e-4, 1, energy=_energy(1.0))]
    invalid = _energy(2.0) | {"valid": False, "reason": "window too short"}
    row = _row(base, [_case("gemm/fp16/a", 1e-4, 2, energy=invalid)])
    assert row["verdict"] == comparing.NOISE  # the speed still compares
    assert _none(row["other_tflops_per_watt"]) and _none(row["tflops_per_watt_ratio"])
    assert row["note"] == "TFLOPS/W not compared: other's window invalid (window too short)"
    back = _row([_case("gemm/fp16/a", 1e-4, 1, energy=invalid | {"reason": "no samples"})], base)
    assert back["note"] == "TFLOPS/W not compared: base's window invalid (no samples)"
    assert _none(back["base_tflops_per_watt"]) and _none(back["tflops_per_watt_ratio"])
    both = _row([_case("gemm/fp16/a", 1e-4, 1, energy=invalid)], [_case("gemm/fp16/a", 1e-4, 2, energy=invalid)])
    assert both["note"] == (
        "TFLOPS/W not compared: base's window invalid (window too short), other's window invalid (window too short)"
    )


def test_tflops_per_watt_on_one_side_only_is_not_compared_and_not_noted():
    with_power = [_case("gemm/fp16/a", 1e-4, 1, energy=_energy(1.0))]
    without = [_case("gemm/fp16/a", 1e-4, 2)]
    for base, other in ((with_power, without), (without, with_power)):
        row = _row(base, other)
        assert _none(row["tflops_per_watt_ratio"]) and row["note"] == ""


# ---------------------------------------------------------------------------------------------------- TFLOPS/W
def test_tflops_per_watt_of_one_source_and_scope_is_a_ratio_other_over_base():
    row = _row(
        [_case("gemm/fp16/a", 1e-4, 1, energy=_energy(2.0))], [_case("gemm/fp16/a", 1e-4, 2, energy=_energy(1.0))]
    )
    assert row["base_tflops_per_watt"] == 2.0 and row["other_tflops_per_watt"] == 1.0
    assert row["tflops_per_watt_ratio"] == 0.5 and row["note"] == ""


@pytest.mark.parametrize(
    ("other_source", "other_scope", "note"),
    [
        ("nvml", "package", "TFLOPS/W not compared: rapl/package vs nvml/package"),
        ("rapl", "platform", "TFLOPS/W not compared: rapl/package vs rapl/platform"),
    ],
)
def test_tflops_per_watt_of_another_source_or_scope_is_not_compared(other_source, other_scope, note):
    row = _row(
        [_case("gemm/fp16/a", 1e-4, 1, energy=_energy(2.0))],
        [_case("gemm/fp16/a", 1e-4, 2, energy=_energy(1.0, source=other_source, scope=other_scope))],
    )
    assert _none(row["tflops_per_watt_ratio"]) and row["note"] == note


@pytest.mark.parametrize(
    ("base_u", "other_u", "other_tpw", "note"),
    [
        (0.25, 0.25, 2.5, "TFLOPS/W change within ±25%"),  # exactly at the uncertainty: within
        (0.1, 0.3, 1.5, "TFLOPS/W change within ±30%"),  # the larger uncertainty of the two
        (0.3, 0.1, 2.5, "TFLOPS/W change within ±30%"),
        (0.1, 0.1, 2.5, ""),  # beyond it: a real change, no note
        (None, None, 2.0, "TFLOPS/W change within ±0%"),
        (None, None, 2.0 * 1.01, ""),  # no uncertainty known: any change counts
    ],
)
def test_a_tflops_per_watt_change_within_the_meters_uncertainty_is_noted(base_u, other_u, other_tpw, note):
    row = _row(
        [_case("gemm/fp16/a", 1e-4, 1, energy=_energy(2.0, uncertainty_rel=base_u))],
        [_case("gemm/fp16/a", 1e-4, 2, energy=_energy(other_tpw, uncertainty_rel=other_u))],
    )
    assert row["tflops_per_watt_ratio"] == pytest.approx(other_tpw / 2.0) and row["note"] == note


def test_power_notes_follow_the_speed_note_after_a_semicolon():
    invalid = _energy(2.0) | {"valid": False, "reason": "too short"}
    row = _row(
        [_case("gemm/fp16/a", 1e-4, 1, energy=_energy(1.0))],
        [_case("gemm/fp16/a", 1e-4, 2, timing_method="device_events", energy=invalid)],
    )
    assert row["note"] == "timing method differs (host_clock_sync vs device_events); TFLOPS/W not compared: " + (
        "other's window invalid (too short)"
    )
    row = _row(
        [_case("gemm/fp16/a", 1e-4, 1, energy=_energy(1.0))],
        [_case("gemm/fp16/a", 1e-4, 2, timing_method="device_events", energy=_energy(1.0, source="nvml"))],
    )
    assert row["note"].endswith("device_events); TFLOPS/W not compared: rapl/package vs nvml/package")
    row = _row(
        [_case("gemm/fp16/a", 1e-4, 1, energy=_energy(1.0))],
        [_case("gemm/fp16/a", 1e-4, 2, timing_method="device_events", energy=_energy(1.0))],
    )
    assert row["note"].endswith("device_events); TFLOPS/W change within ±10%")


# --------------------------------------------------------------------------------- rows, sides and their reasons
def test_rows_list_the_base_cases_then_the_new_ones_and_name_the_side_that_lacks_a_case():
    base = [_case("gemm/fp16/a", 1e-4, 1), _case("gemm/fp16/b", 1e-4, 2, flops=GEMM_FLOPS, dtype="fp16")]
    other = [_case("gemm/fp16/c", 1e-4, 3, kernel="conv2d", family="cnn"), _case("gemm/fp16/a", 1e-4, 4)]
    frame = comparing.compare_frames(make_profile(measurements=base), [("o", make_profile(measurements=other))])
    assert list(frame["case"]) == ["gemm/fp16/a", "gemm/fp16/b", "gemm/fp16/c"]
    rows = frame.set_index("case")
    assert rows.loc["gemm/fp16/b", "verdict"] == comparing.MISSING and rows.loc["gemm/fp16/b", "note"] == "only in base"
    assert rows.loc["gemm/fp16/c", "verdict"] == comparing.MISSING and rows.loc["gemm/fp16/c", "note"] == "not in base"
    assert rows.loc["gemm/fp16/c", "kernel"] == "conv2d" and rows.loc["gemm/fp16/c", "family"] == "cnn"
    assert _none(rows.loc["gemm/fp16/b", "other_tflops"]) and _none(rows.loc["gemm/fp16/c", "base_tflops"])
    assert rows.loc["gemm/fp16/c", "other_tflops"] == pytest.approx(other[0]["tflops"])
    assert list(frame["other"]) == ["o"] * 3 and rows.loc["gemm/fp16/a", "flops"] == GEMM_FLOPS
    assert frame.columns.tolist() == [
        "other",
        "case",
        "kernel",
        "family",
        "dtype",
        "flops",
        "base_tflops",
        "other_tflops",
        "ratio",
        "ratio_low",
        "ratio_high",
        "base_tflops_per_watt",
        "other_tflops_per_watt",
        "tflops_per_watt_ratio",
        "verdict",
        "note",
    ]


def test_profiles_without_measurements_compare_to_an_empty_frame():
    empty = make_profile(measurements=[], confirmations=[])
    assert comparing.cases_frame(empty).empty
    assert comparing.compare_frames(empty, [("o", make_profile(measurements=[], confirmations=[]))]).empty


def test_absent_means_none_nan_or_na_and_unknown_keys_on_both_sides_are_the_same():
    """The frames compare_frames builds hold None; a frame pandas built (NaN, pd.NA) must read the same."""
    for absent in (None, float("nan"), np.nan, pd.NA):
        assert comparing._absent(absent)
        assert comparing._same(absent, None) and comparing._same(float("nan"), absent)
        assert not comparing._same(absent, 1) and not comparing._same(1, absent)
        assert not comparing._wrong(absent)
    for present in (0, 0.0, False, "", 1.5):
        assert not comparing._absent(present)
    assert comparing._wrong(False) and comparing._wrong(np.bool_(False)) and not comparing._wrong(np.bool_(True))
    frame = comparing.cases_frame(make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 1)]))
    case = frame.loc["gemm/fp16/a"].copy()
    nan_keys = case.copy()
    nan_keys["kernel_version"] = nan_keys["flop_convention"] = float("nan")
    same_nan = nan_keys.copy()
    assert comparing._incomparable(nan_keys, same_nan) is None
    assert comparing._incomparable(case, nan_keys) == "kernel version differs (1 vs unknown)"
    case["tflops"] = float("nan")
    assert comparing._ok_tflops(case) is None and comparing._unusable(case) == "no TFLOPS"
    case["tflops"] = float("inf")
    assert comparing._unusable(case) == "no TFLOPS"


def test_every_verdict_agrees_with_its_ratio_and_the_bound_that_decides_it():
    """Over many pairs: regression means the interval's upper bound is below 1 and the ratio beyond the threshold;
    improvement the lower bound above 1; small change excludes 1 within the threshold; noise contains 1."""
    rng = np.random.default_rng(11)
    base, other = [], []
    for i in range(40):
        factor = float(rng.choice([0.5, 0.93, 0.97, 1.0, 1.03, 1.08, 2.0]))
        spread = float(rng.choice([0.005, 0.05, 0.3]))
        base.append(_case(f"gemm/fp16/c{i}", 1e-4, 100 + i, spread=spread, n=8))
        other.append(_case(f"gemm/fp16/c{i}", 1e-4 / factor, 200 + i, spread=spread, n=8))
    frame = comparing.compare_frames(make_profile(measurements=base), [("o", make_profile(measurements=other))])
    seen = set()
    for row in frame.to_dict(orient="records"):
        ratio, low, high, verdict = row["ratio"], row["ratio_low"], row["ratio_high"], row["verdict"]
        seen.add(verdict)
        assert low <= ratio <= high
        if verdict == comparing.REGRESSION:
            assert high < 1 and ratio < 0.95
        elif verdict == comparing.IMPROVEMENT:
            assert low > 1 and ratio > 1.05
        elif verdict == comparing.SMALL:
            assert (high < 1 or low > 1) and not (high < 1 and ratio < 0.95) and not (low > 1 and ratio > 1.05)
        else:
            assert verdict == comparing.NOISE and low <= 1 <= high
    assert seen == {comparing.REGRESSION, comparing.IMPROVEMENT, comparing.SMALL, comparing.NOISE}


# ------------------------------------------------------------------------------------------------------- summary
def _verdict(target: str, status: str) -> dict:
    return verdict_giving(status, target)


def test_a_new_target_or_a_dropped_one_is_not_a_verdict_change():
    base = make_profile(verdicts=[_verdict("a", "FAIL"), _verdict("b", "PASS"), _verdict("gone", "FAIL")])
    other = make_profile(verdicts=[_verdict("a", "FAIL"), _verdict("b", "FAIL"), _verdict("new", "PASS")])
    same = make_profile(verdicts=[_verdict("a", "FAIL")])
    others = [("o", other), ("same", same)]
    summary = comparing.summary(comparing.compare_frames(base, others), base, others)
    assert summary["verdict_changes"] == {"o": [{"target": "b", "base": "PASS", "other": "FAIL"}], "same": []}


def test_summary_geomean_per_family_over_compared_cases_and_counts_of_every_verdict():
    base = [
        _case("gemm/fp16/a", 1e-4, 1, spread=0.005),
        _case("gemm/fp16/b", 1e-4, 2, spread=0.005),
        _case("conv2d/fp16/c", 1e-4, 3, spread=0.005, kernel="conv2d", family="cnn"),
        _case("gemm/fp16/d", 1e-4, 4),
        _case("gemm/fp16/e", 1e-4, 5),
    ]
    other = [
        _case("gemm/fp16/a", 0.5e-4, 6, spread=0.005),
        _case("gemm/fp16/b", 2e-4, 7, spread=0.005),
        _case("conv2d/fp16/c", 0.8e-4, 8, spread=0.005, kernel="conv2d", family="cnn"),
        _case("gemm/fp16/d", 0.5e-4, 9, kernel_version=2),
    ]
    b, o = make_profile(measurements=base), make_profile(measurements=other)
    frame = comparing.compare_frames(b, [("o", o)])
    summary = comparing.summary(frame, b, [("o", o)])
    rows = frame.set_index("case")
    gemm = math.sqrt(rows.loc["gemm/fp16/a", "ratio"] * rows.loc["gemm/fp16/b", "ratio"])
    assert list(summary["geomean"]["o"]) == ["cnn", "gemm"]
    assert summary["geomean"]["o"]["gemm"] == pytest.approx(gemm, rel=1e-12)
    assert summary["geomean"]["o"]["cnn"] == pytest.approx(rows.loc["conv2d/fp16/c", "ratio"], rel=1e-12)
    assert summary["counts"] == {"o": {"improvement": 2, "regression": 1, "incomparable": 1, "missing": 1}}
    assert isinstance(summary["counts"]["o"]["improvement"], int)
    empty = comparing.summary(frame.iloc[0:0], b, [("o", o)])
    assert empty == {"geomean": {}, "counts": {}, "verdict_changes": {}, "broken": {}}


def test_summary_keeps_each_other_profile_apart_in_the_order_given():
    b = make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 1, spread=0.005)])
    fast = make_profile(measurements=[_case("gemm/fp16/a", 0.5e-4, 2, spread=0.005)])
    slow = make_profile(measurements=[_case("gemm/fp16/a", 2e-4, 3, spread=0.005)])
    others = [("z-fast", fast), ("a-slow", slow)]
    summary = comparing.summary(comparing.compare_frames(b, others), b, others)
    assert list(summary["geomean"]) == ["z-fast", "a-slow"] and list(summary["counts"]) == ["z-fast", "a-slow"]
    assert summary["geomean"]["z-fast"]["gemm"] == pytest.approx(2, rel=0.02)
    assert summary["geomean"]["a-slow"]["gemm"] == pytest.approx(0.5, rel=0.02)
    assert summary["counts"] == {"z-fast": {"improvement": 1}, "a-slow": {"regression": 1}}


# -------------------------------------------------------------------------------------------- listing and markdown
def test_results_frame_pins_every_column_of_a_profile():
    profile = make_profile(interrupted=True)
    frame = comparing.results_frame([("/r/a.json", profile)])
    assert frame.to_dict(orient="records") == [
        {
            "file": "/r/a.json",
            "device": "Intel(R) Xeon(R) Platinum 8480+",
            "backend": "cpu",
            "date": "2026-11-23T10:00:00Z",
            "suite": "quick",
            "kernels": "gemm",
            "dtypes": "fp16",
            "threads": 4,
            "peak_fp16_tflops": profile["summary"]["peak_tflops"]["fp16"],
            "fp16_tflops_per_watt": None,
            "power": None,
            "interrupted": True,
            "verdicts": "miit-2020-cloud: FAIL",
        }
    ]
    # no fp16 GEMM (so no fp16 peak), and an fp16 headline window whose joules and work give 0.25 TFLOPS/W
    window = _energy(0.25, kind="headline", flops=0.25 * 100.0 * 1e12 * 2.0)
    carrier = make_measurement(
        id="conv2d/fp16/x", kernel="conv2d", family="cnn", status="skipped", reason="carries the window",
        correct=None, samples_s=[], stats=None, tflops=None, tflops_ci=None, energy=window,
    )  # fmt: skip
    bare = make_profile(
        interrupted=False, verdicts=[_verdict("a", "PASS"), _verdict("b", "FAIL")], measurements=[carrier]
    )
    bare["summary"]["peak_tflops"] = {}
    bare["summary"]["tflops_per_watt"] = {"fp16": 0.25}
    bare["settings"]["kernels"] = ["gemm", "conv2d"]
    bare["settings"]["dtypes"] = ["fp16", "bf16"]
    bare["power"]["source"] = {"name": "rapl", "scope": "package", "quality": "Q2"}
    row = comparing.results_frame([("b.json", bare)]).iloc[0]
    assert not row["interrupted"] and row["power"] == "rapl" and row["fp16_tflops_per_watt"] == 0.25
    # b (stored FAIL: peak >= 1000) is judged again: with no fp16 GEMM there is no peak to judge
    assert row["verdicts"] == "a: PASS, b: INCONCLUSIVE" and row["kernels"] == "gemm, conv2d"
    assert row["dtypes"] == "fp16, bf16" and _none(row["peak_fp16_tflops"])
    assert comparing.results_frame([]).columns.tolist() == list(frame.columns)


def test_the_listing_of_a_loaded_file_shows_what_its_raw_evidence_gives():
    """The same edits in a loaded file (a dict): the fp16 peak comes from the fp16 case's samples, a TFLOPS/W no
    energy window gives is dropped, and a verdict is the one its stored criteria give on the evidence."""
    doc = make_profile(verdicts=[_verdict("a", "PASS"), _verdict("b", "FAIL")])
    measured = doc["summary"]["peak_tflops"]["fp16"]
    doc["summary"]["peak_tflops"] = {"fp16": 500.0}
    doc["summary"]["tflops_per_watt"] = {"fp16": 0.25}
    doc["verdicts"][1]["status"] = "PASS"  # b's criterion (peak >= 1000) does not pass on these samples
    row = comparing.results_frame([("b.json", doc)]).iloc[0]
    assert row["peak_fp16_tflops"] == measured and _none(row["fp16_tflops_per_watt"])
    assert row["verdicts"] == "a: PASS, b: FAIL"


def test_to_markdown_shows_missing_values_as_a_dash_and_numbers_to_4_significant_digits():
    frame = pd.DataFrame({"case": ["a", "b"], "ratio": [1.234567, float("nan")], "note": [None, "x"]})
    assert comparing.to_markdown(frame).splitlines() == [
        "| case   |   ratio | note   |",
        "|:-------|--------:|:-------|",
        "| a      |   1.235 | —      |",
        "| b      |   —     | x      |",
    ]
    assert "1.235e-05" in comparing.to_markdown(pd.DataFrame({"x": [1.234567e-5]}))


# ------------------------------------------------------------------------------- cases that broke, for CI gates
def test_a_case_that_turned_wrong_or_errored_is_broken_and_fails_the_gate(tmp_path):
    """A case right in the base that is a wrong answer (or an error, here an edited headline) in the other has no
    speed to compare, so it is no regression; before, `--fail-on-regression` passed such a profile."""
    base = make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 1), _case("gemm/fp16/b", 1e-4, 2)])
    edited = _case("gemm/fp16/b", 1e-4, 4)
    edited["tflops"] *= 2
    other = make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 3, correct=False), edited])
    frame = comparing.compare_frames(base, [("o", other)])
    summary = comparing.summary(frame, base, [("o", other)])
    assert summary["broken"] == {"o": ["gemm/fp16/a", "gemm/fp16/b"]}
    assert comparing.REGRESSION not in set(frame["verdict"])
    paths = [tmp_path / "base.json", tmp_path / "other.json"]
    for path, doc in zip(paths, (base, other)):
        path.write_text(json.dumps(doc), encoding="utf-8")
    gate = CliRunner().invoke(cli, ["compare", *map(str, paths), "--fail-on-regression"], env={"COLUMNS": "200"})
    assert gate.exit_code == 1, gate.output
    assert "2 case(s) right in the base now an error or a wrong answer" in gate.output
    assert "4 threads): gemm/fp16/b: edited or corrupt" in gate.output  # the note names the profile and case
    same = CliRunner().invoke(cli, ["compare", str(paths[0]), str(paths[0]), "--fail-on-regression"])
    assert same.exit_code == 0, same.output


def test_a_case_wrong_in_the_base_too_or_skipped_now_is_not_broken():
    base = make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 1, correct=False), _case("gemm/fp16/b", 1e-4, 2)])
    skipped = _case("gemm/fp16/b", 1e-4, 4, status="skipped", reason="too big", samples_s=[], stats=None)
    skipped.update(tflops=None, tflops_ci=None, correct=None)
    other = make_profile(measurements=[_case("gemm/fp16/a", 1e-4, 3, correct=False), skipped])
    frame = comparing.compare_frames(base, [("o", other)])
    assert comparing.summary(frame, base, [("o", other)])["broken"] == {"o": []}
