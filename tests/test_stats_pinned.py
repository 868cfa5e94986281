"""stats, pinned: what tests/test_stats.py leaves loose (issue 11, item 8).

Exact intervals, boundaries (``<`` against ``<=``), the confidence level reaching the interval, and the messages
a bad input gets. Each test here was checked to fail when the code it pins is broken (docs/mutation.md).
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import comb

import pytest

from npucheck.stats import (
    UNSTABLE_IQR_REL,
    VERY_UNSTABLE_IQR_REL,
    Stats,
    instability_warnings,
    is_unstable,
    median_ci_ranks,
    quantile,
    summarize,
)


def _reference_ranks(n: int, confidence: float) -> tuple[int, int, float]:
    """The definition, by brute force in exact fractions: the narrowest symmetric pair of order statistics whose
    coverage 1 - 2·P(X <= lo), X ~ Binomial(n, 1/2), is at least ``confidence``; the full range if none is."""
    best = (0, n - 1, 1 - 2 * Fraction(1, 2**n))
    below = 1  # sum of C(n, k) for k <= lo
    for lo in range(1, n // 2 + 1):
        below += comb(n, lo)
        coverage = 1 - 2 * Fraction(below, 2**n)
        if coverage < confidence:
            break
        best = (lo, n - 1 - lo, coverage)
    return best[0], best[1], float(best[2])


# -------------------------------------------------------------------------------------------------- quantile
def test_quantile_interpolates_between_the_last_two_values():
    assert quantile([1.0, 2.0], 0.5) == 1.5
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.75) == 3.25
    assert quantile([1.0, 2.0, 4.0], 0.9) == pytest.approx(3.6)


def test_quantile_accepts_both_ends_of_zero_to_one():
    assert quantile([1.0, 2.0, 3.0], 0.0) == 1.0
    assert quantile([1.0, 2.0, 3.0], 1.0) == 3.0


@pytest.mark.parametrize("q", [-0.01, 1.01, 1.5, 2.0])
def test_quantile_outside_zero_to_one_is_refused_with_the_q(q):
    with pytest.raises(ValueError) as info:
        quantile([1.0, 2.0], q)
    assert str(info.value) == f"quantile q={q} outside [0, 1]"


def test_quantile_of_nothing_is_refused():
    with pytest.raises(ValueError) as info:
        quantile([], 0.5)
    assert str(info.value) == "quantile of no values"


# ------------------------------------------------------------------------------------------ median interval
@pytest.mark.parametrize(
    "n, expected",
    [
        (6, (0, 5, 1 - 2 / 64)),  # the first n with a 95% interval: the full range, 96.9%
        (10, (1, 8, 1 - 22 / 1024)),  # 1-based ranks 2 and 9
        (20, (5, 14, 1 - 2 * 21700 / 2**20)),  # 1-based ranks 6 and 15
    ],
)
def test_median_interval_ranks_and_exact_coverage_at_95_percent(n, expected):
    assert median_ci_ranks(n) == expected


@pytest.mark.parametrize("n", [1, 2, 7, 30, 99, 100, 301])
@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99])
def test_median_interval_matches_the_binomial_definition(n, confidence):
    lo, hi, coverage = median_ci_ranks(n, confidence)
    ref_lo, ref_hi, ref_coverage = _reference_ranks(n, confidence)
    assert (lo, hi) == (ref_lo, ref_hi)
    assert coverage == pytest.approx(ref_coverage, rel=1e-12)


def test_median_interval_of_thousands_of_samples_is_computed_exactly():
    """2**n does not fit a float past n = 1023: the CDF must stay in exact integers."""
    lo, hi, coverage = median_ci_ranks(2000)
    assert (lo, hi) == (955, 1044)
    assert coverage == pytest.approx(_reference_ranks(2000, 0.95)[2], rel=1e-12)
    assert summarize([float(i) for i in range(1, 2001)]).ci_low_s == 956.0


def test_a_low_confidence_narrows_the_interval_to_the_two_middle_values():
    # n = 10 at 20%: ranks 4 and 5 (0-based) cover 1 - 2·386/1024 = 24.6%, the narrowest there is
    assert median_ci_ranks(10, 0.2) == (4, 5, 1 - 2 * 386 / 1024)


def test_coverage_exactly_equal_to_the_confidence_is_enough():
    # n = 6: ranks 1 and 4 cover exactly 1 - 2·7/64 = 0.78125, which is "at least" 0.78125
    assert median_ci_ranks(6, 0.78125) == (1, 4, 0.78125)
    assert median_ci_ranks(6, 0.78125 + 1e-9) == (0, 5, 1 - 2 / 64)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.5])
def test_confidence_outside_the_open_unit_interval_is_refused(confidence):
    with pytest.raises(ValueError) as info:
        median_ci_ranks(10, confidence)
    assert str(info.value) == f"confidence {confidence} must be in (0, 1)"


@pytest.mark.parametrize("n", [0, -1])
def test_median_interval_of_no_samples_is_refused(n):
    with pytest.raises(ValueError) as info:
        median_ci_ranks(n)
    assert str(info.value) == "no samples"


# ------------------------------------------------------------------------------------------------- summarize
def test_summary_of_skewed_samples_field_by_field():
    stats = summarize([1.0, 1.0, 1.0, 2.0, 10.0])
    assert stats == Stats(
        n=5,
        median_s=1.0,
        ci_low_s=1.0,
        ci_high_s=10.0,
        ci_coverage=1 - 2 / 32,
        q1_s=1.0,
        q3_s=2.0,
        iqr_rel=1.0,
        mean_s=3.0,
        min_s=1.0,
        max_s=10.0,
    )


def test_the_confidence_level_reaches_the_interval():
    samples = [float(i) for i in range(1, 11)]
    at_95 = summarize(samples)
    at_50 = summarize(samples, 0.5)
    assert (at_95.ci_low_s, at_95.ci_high_s, at_95.ci_coverage) == (2.0, 9.0, 1 - 22 / 1024)
    assert (at_50.ci_low_s, at_50.ci_high_s, at_50.ci_coverage) == (4.0, 7.0, 1 - 2 * 176 / 1024)


def test_summary_of_no_samples_is_refused():
    with pytest.raises(ValueError) as info:
        summarize([])
    assert str(info.value) == "no samples"


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "1.0", None])
def test_a_bad_sample_is_named_in_the_message(bad):
    with pytest.raises(ValueError) as info:
        summarize([1.0, bad, 2.0])
    assert str(info.value) == f"sample {bad!r} is not a positive finite number of seconds"


# ---------------------------------------------------------------------------------------- instability
def test_is_unstable_is_strictly_above_ten_percent():
    assert UNSTABLE_IQR_REL == 0.10
    assert is_unstable(None) is False
    assert is_unstable(0.0) is False
    assert is_unstable(0.10) is False
    assert is_unstable(0.1000001) is True
    assert is_unstable(0.5) is True


def _stats(iqr_rel: float, ci_coverage: float = 0.96, n: int = 30) -> Stats:
    return replace(summarize([1.0] * 30), n=n, iqr_rel=iqr_rel, ci_coverage=ci_coverage)


def test_instability_warnings_word_for_word():
    assert VERY_UNSTABLE_IQR_REL == 0.25
    assert instability_warnings(_stats(0.3)) == [
        "very unstable: IQR is 30% of the median (> 25%); something else is probably using the device"
    ]
    assert instability_warnings(_stats(0.2)) == ["unstable: IQR is 20% of the median (> 10%)"]
    assert instability_warnings(_stats(0.05)) == []


def test_instability_thresholds_are_strict():
    assert instability_warnings(_stats(0.25)) == ["unstable: IQR is 25% of the median (> 10%)"]
    assert instability_warnings(_stats(0.10)) == []


def test_coverage_of_exactly_95_percent_is_not_flagged():
    assert instability_warnings(_stats(0.0, ci_coverage=0.95)) == []
    assert instability_warnings(_stats(0.0, ci_coverage=0.94, n=5)) == [
        "only 5 samples: the median's interval covers 94%, not 95%"
    ]
    assert instability_warnings(_stats(0.3, ci_coverage=0.75, n=3)) == [
        "very unstable: IQR is 30% of the median (> 25%); something else is probably using the device",
        "only 3 samples: the median's interval covers 75%, not 95%",
    ]
