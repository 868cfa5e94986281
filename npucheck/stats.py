"""Statistics over raw timing samples. Pure Python: no numpy or torch, so readers of stored results stay fast.

The headline figure is the median. Its confidence interval is distribution-free (order statistics and the
binomial distribution), because timing samples are skewed and often multi-modal, and a normal-theory interval
around the mean would be wrong exactly when it matters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = [
    "instability_warnings",
    "is_unstable",
    "median_ci_ranks",
    "quantile",
    "Stats",
    "summarize",
    "UNSTABLE_IQR_REL",
    "VERY_UNSTABLE_IQR_REL",
]


UNSTABLE_IQR_REL = 0.10
"""IQR / median above which a measurement is flagged unstable (torch.utils.benchmark's threshold)."""
VERY_UNSTABLE_IQR_REL = 0.25
"""IQR / median above which the environment probably interfered."""


@dataclass(frozen=True)
class Stats:
    """Summary of per-call times, all in seconds.

    ``ci_low_s``/``ci_high_s`` bound the median with at least ``ci_coverage`` probability (exact binomial
    coverage of the chosen order statistics; below 6 samples no 95% interval exists and the range is used).
    """

    n: int
    median_s: float
    ci_low_s: float
    ci_high_s: float
    ci_coverage: float
    q1_s: float
    q3_s: float
    iqr_rel: float
    mean_s: float
    min_s: float
    max_s: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of already sorted values."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q={q} outside [0, 1]")
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int, float]:
    """Zero-based ranks (lo, hi) of the order statistics bounding the median, and their exact coverage.

    The interval [x_(lo), x_(hi)] covers the true median with probability 1 - 2·P(X <= lo) where
    X ~ Binomial(n, 1/2). We take the narrowest symmetric pair whose coverage is at least ``confidence``;
    when even the full range falls short (n < 6 at 95%), the full range is returned with its real coverage.
    """
    if n < 1:
        raise ValueError("no samples")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} must be in (0, 1)")
    total = 2**n
    term = 1  # C(n, 0); the CDF is accumulated in exact integers, one term per rank (linear, not quadratic)
    cumulative = term
    best = (0, n - 1, 1.0 - 2.0 * (cumulative / total))
    lo = 1
    while lo <= (n - 1) // 2:
        term = term * (n - lo + 1) // lo  # C(n, lo)
        cumulative += term
        coverage = 1.0 - 2.0 * (cumulative / total)  # interval between 0-based ranks lo and n-1-lo
        if coverage < confidence:
            break
        best = (lo, n - 1 - lo, coverage)
        lo += 1
    return best


def summarize(samples_s: Sequence[float], confidence: float = 0.95) -> Stats:
    """Summarize per-call seconds.

    Raises:
        ValueError: no samples, or a sample that is not a positive finite number.
    """
    if not samples_s:
        raise ValueError("no samples")
    for value in samples_s:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"sample {value!r} is not a positive finite number of seconds")
    ordered = sorted(float(v) for v in samples_s)
    n = len(ordered)
    median = quantile(ordered, 0.5)
    lo, hi, coverage = median_ci_ranks(n, confidence)
    q1, q3 = quantile(ordered, 0.25), quantile(ordered, 0.75)
    return Stats(
        n=n,
        median_s=median,
        ci_low_s=ordered[lo],
        ci_high_s=ordered[hi],
        ci_coverage=coverage,
        q1_s=q1,
        q3_s=q3,
        iqr_rel=(q3 - q1) / median,
        mean_s=math.fsum(ordered) / n,
        min_s=ordered[0],
        max_s=ordered[-1],
    )


def is_unstable(iqr_rel: float | None) -> bool:
    """Whether a case's spread makes it unstable (IQR above UNSTABLE_IQR_REL of the median): the field readers
    classify by, never the warning's wording."""
    return iqr_rel is not None and iqr_rel > UNSTABLE_IQR_REL


def instability_warnings(stats: Stats) -> list[str]:
    """Human-readable warnings when the spread says the figure should not be trusted as is."""
    warnings = []
    if stats.iqr_rel > VERY_UNSTABLE_IQR_REL:
        warnings.append(
            f"very unstable: IQR is {stats.iqr_rel:.0%} of the median (> {VERY_UNSTABLE_IQR_REL:.0%}); "
            "something else is probably using the device"
        )
    elif stats.iqr_rel > UNSTABLE_IQR_REL:
        warnings.append(f"unstable: IQR is {stats.iqr_rel:.0%} of the median (> {UNSTABLE_IQR_REL:.0%})")
    if stats.ci_coverage < 0.95:
        warnings.append(f"only {stats.n} samples: the median's interval covers {stats.ci_coverage:.0%}, not 95%")
    return warnings
