"""What npucheck's own machinery costs beside the kernels (pytest-benchmark; see test_bench_speed.py for how to
run): the timing harness per sample and the power sampler thread per ``--power-hz``. ``scripts/selfbench.py``
measures the same with more sources and rates and writes docs/benchmarks.md."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

from npucheck.measure.devices import CpuDevice
from npucheck.measure.power.nvml import NvmlSource
from npucheck.measure.power.window import PowerSampler
from npucheck.measure.timing import TimingSettings, time_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes import FakeNvml  # noqa: E402

SAMPLES = 1000
MAX_OVERHEAD_US = 50.0
"""Generous: about 1.5 µs a sample on the 2-vCPU CI machine (docs/benchmarks.md), 1/1000 of a 2 ms sample."""
X, Y = torch.ones(8), torch.empty(8)
KERNELS = {"noop": lambda: None, "tiny_torch_add": lambda: torch.add(X, X, out=Y)}


def _bare_s(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - start


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_timing_harness_overhead_per_sample(benchmark, kernel):
    """``time_kernel`` taking SAMPLES one-call samples (no flush, warm-up and statistics included) against a bare
    loop of the same calls: what the harness adds per sample."""
    fn = KERNELS[kernel]
    settings = TimingSettings(budget_s=0.0, min_samples=SAMPLES, max_samples=SAMPLES, min_sample_s=0.0)
    device = CpuDevice()
    timing = benchmark.pedantic(time_kernel, args=(fn, device, lambda: None, settings), rounds=5, iterations=1)
    assert timing.calls_per_sample == 1 and len(timing.samples_s) == SAMPLES
    start = time.perf_counter()
    time_kernel(fn, device, lambda: None, settings)
    harness = time.perf_counter() - start
    overhead_us = (harness - _bare_s(fn, SAMPLES)) / SAMPLES * 1e6
    benchmark.extra_info["overhead_per_sample_us"] = overhead_us
    assert overhead_us < MAX_OVERHEAD_US, f"the harness added {overhead_us:.1f} µs a sample"


@pytest.mark.parametrize("hz", [10, 100, 1000])
def test_power_sampler_cpu_cost_per_hz(benchmark, hz):
    """Process CPU time while the sampler polls the NVML fake (power + counter) and the main thread sleeps half
    a second. Bound on the least disturbed round (other work on a shared machine only adds): 1% of a core plus
    100 µs a sample (measured: about 20-50 µs a sample, docs/benchmarks.md)."""
    shares: list[float] = []

    def half_a_second():
        sampler = PowerSampler(NvmlSource(FakeNvml(), uuid="GPU-1234"), hz=hz)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sampler.start()
        time.sleep(0.5)
        sampler.stop()
        wall = time.perf_counter() - wall0
        assert sampler.trace.power and sampler.trace.dropped == 0
        shares.append((time.process_time() - cpu0) / wall)
        return getattr(sampler.trace, "power_samples", len(sampler.trace.power)) / wall

    rate = benchmark.pedantic(half_a_second, rounds=3, iterations=1)
    share = min(shares)
    benchmark.extra_info.update(share_of_one_core=share, cpu_ms_per_s=share * 1e3, samples_per_s=rate)
    assert share < 0.01 + hz * 100e-6, f"the {hz} Hz sampler used {share:.2%} of a core"
