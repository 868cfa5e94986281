"""Speed benchmarks (pytest-benchmark). In the normal test run each body runs once, untimed
(``--benchmark-disable`` in setup.cfg); measure with:

    python -m pytest tests/benchmarks --benchmark-enable

Numbers we recorded are in README.md ("Speed").
"""

import subprocess
import sys

import pytest

from npucheck.stats import summarize
from npucheck.store import save_result


@pytest.fixture
def stored(tmp_path, minimal_profile):
    return save_result(minimal_profile, tmp_path / "r.json")


def _cli(*args):
    subprocess.run([sys.executable, "-m", "npucheck.cli", *args], check=False, capture_output=True)


def test_show_starts_fast(benchmark, stored):
    """`npucheck show` must not import torch: the whole process should take well under a second."""
    benchmark.pedantic(_cli, args=("show", str(stored)), rounds=5, iterations=1)


def test_check_starts_fast(benchmark, stored):
    benchmark.pedantic(_cli, args=("check", str(stored)), rounds=5, iterations=1)


def test_statistics_of_a_thousand_samples(benchmark):
    samples = [1e-3 * (1 + (i % 17) / 100) for i in range(1000)]
    stats = benchmark(summarize, samples)
    assert stats.n == 1000
