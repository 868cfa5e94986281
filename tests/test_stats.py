"""The statistics behind every figure: median, its distribution-free interval, spread, warnings."""

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from npucheck.stats import instability_warnings, median_ci_ranks, quantile, summarize


def test_quantile_matches_linear_interpolation():
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.25) == 1.75
    assert quantile([7.0], 0.9) == 7.0


def test_median_interval_ranks_match_binomial_tables():
    # n = 100 at 95%: the classical interval is between the 40th and 61st order statistics (1-based).
    lo, hi, coverage = median_ci_ranks(100)
    assert (lo + 1, hi + 1) == (40, 61)
    assert 0.95 <= coverage < 0.97


def test_below_six_samples_no_95_percent_interval_exists():
    lo, hi, coverage = median_ci_ranks(5)
    assert (lo, hi) == (0, 4)
    assert coverage == pytest.approx(1 - 2 / 32)
    assert coverage < 0.95


def test_summary_of_known_samples():
    stats = summarize([3.0, 1.0, 2.0, 5.0, 4.0, 6.0])
    assert stats.median_s == 3.5
    assert (stats.min_s, stats.max_s) == (1.0, 6.0)
    assert stats.ci_low_s <= stats.median_s <= stats.ci_high_s
    assert stats.iqr_rel == pytest.approx((4.75 - 2.25) / 3.5)


@pytest.mark.parametrize("bad", [[], [0.0], [-1.0], [float("nan")], [float("inf")]])
def test_bad_samples_are_refused(bad):
    with pytest.raises(ValueError):
        summarize(bad)


@given(st.lists(st.floats(min_value=1e-9, max_value=1e3), min_size=1, max_size=300))
def test_interval_always_brackets_the_median(samples):
    stats = summarize(samples)
    assert stats.min_s <= stats.ci_low_s <= stats.median_s <= stats.ci_high_s <= stats.max_s
    assert stats.q1_s <= stats.median_s <= stats.q3_s


def test_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = random.Random(1)
    true_median = math.log(2)  # exponential(1)
    hits = sum(
        (s := summarize([rng.expovariate(1.0) for _ in range(30)])).ci_low_s <= true_median <= s.ci_high_s
        for _ in range(2000)
    )
    assert 0.93 <= hits / 2000 <= 0.995


def test_wide_spread_is_flagged_unstable():
    assert any("unstable" in w for w in instability_warnings(summarize([1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 1.0])))
    assert not instability_warnings(summarize([1.0, 1.01, 0.99, 1.0, 1.02, 1.0]))


def test_few_samples_are_flagged():
    assert any("only 3 samples" in w for w in instability_warnings(summarize([1.0, 1.0, 1.0])))
