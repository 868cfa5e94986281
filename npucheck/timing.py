"""Time one kernel: warm-up, calibration, samples with a cache flush before each, statistics.

Procedure (measurement.md; mamf-finder, triton do_bench, torch.utils.benchmark):
1. Warm-up: at least ``min_warmup_calls`` calls and at least ``warmup_s`` seconds, each call timed alone; the
   fastest warm-up call estimates the per-call time (the first call often includes lazy initialisation).
2. Calibration: ``calls_per_sample`` back-to-back calls make one sample at least ``min_sample_s`` long, far
   above the timer's resolution and launch overhead.
3. Samples: flush the cache (outside the timed region), time ``calls_per_sample`` calls (device events where the
   backend has them, else host clock with a synchronize at both ends), record seconds per call. Stop once
   ``min_samples`` are taken and the time budget is used, or at ``max_samples``.
Every sample is kept; the median with its confidence interval is the headline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from npucheck.stats import Stats, instability_warnings, summarize


class Timeable(Protocol):
    timing_method: str

    def time_calls(self, fn: Callable[[], object], calls: int) -> float: ...


@dataclass(frozen=True)
class TimingSettings:
    budget_s: float
    min_samples: int = 6
    max_samples: int = 50
    min_sample_s: float = 0.002
    warmup_s: float = 0.0
    min_warmup_calls: int = 2
    confidence: float = 0.95


@dataclass
class TimingResult:
    samples_s: list[float]
    calls_per_sample: int
    warmup_calls: int
    timing_method: str
    stats: Stats
    warnings: list[str] = field(default_factory=list)


def time_kernel(run: Callable[[], object], device: Timeable, flush: Callable[[], None], settings: TimingSettings,
                clock: Callable[[], float] = time.perf_counter) -> TimingResult:
    """Measure seconds per call of ``run`` on ``device``.

    Raises:
        ValueError: a sample came back non-positive or non-finite (a broken timer must not become a figure).
    """
    started = clock()
    warmup_times = []
    while len(warmup_times) < settings.min_warmup_calls or clock() - started < settings.warmup_s:
        warmup_times.append(device.time_calls(run, 1))
    per_call = max(min(warmup_times), 1e-9)
    calls = max(1, math.ceil(settings.min_sample_s / per_call))

    samples: list[float] = []
    sampling_started = clock()
    while len(samples) < settings.max_samples:
        flush()
        elapsed = device.time_calls(run, calls)
        if not (math.isfinite(elapsed) and elapsed > 0):
            raise ValueError(f"timer returned {elapsed!r} s for {calls} calls")
        samples.append(elapsed / calls)
        if len(samples) >= settings.min_samples and clock() - sampling_started >= settings.budget_s:
            break
    stats = summarize(samples, settings.confidence)
    return TimingResult(samples_s=samples, calls_per_sample=calls, warmup_calls=len(warmup_times),
                        timing_method=device.timing_method, stats=stats, warnings=instability_warnings(stats))
