"""Time one kernel: warm-up, calibration, samples with a cache flush before each, statistics.

Procedure (measurement.md; mamf-finder, triton do_bench, torch.utils.benchmark):
1. Warm-up: at least ``min_warmup_calls`` calls and at least ``warmup_s`` seconds, each call timed alone; the
   fastest warm-up call estimates the per-call time (the first call often includes lazy initialisation).
2. Calibration: ``calls_per_sample`` back-to-back calls make one sample at least ``min_sample_s`` long, far
   above the timer's resolution and launch overhead.
3. Samples. Where the device times single calls with events (``device.per_call_events``), every sample is one
   call with its own event pair and a cache flush before it, as triton's ``do_bench`` and mamf-finder do: every
   call starts cold. Elsewhere (the CPU's host clock, accelerators without events) a sample batches
   ``calls_per_sample`` calls after one flush, so only its first call is cold: the samples are labelled so
   (``cache_state``). Stop once ``min_samples`` are taken and the time budget is used, or at ``max_samples``.
Every sample is kept; the median with its confidence interval is the headline. Minor page faults of the whole
process (every thread: oneDNN and OpenMP workers do the work) are counted over the samples, so that a case timed
while the allocator was mapping fresh pages is flagged.
"""

from __future__ import annotations

import functools
import math
import mmap
import time

__all__ = [
    "faults_are_counted",
    "MAX_CHUNK_CALLS",
    "minor_faults",
    "PER_CALL_CHUNK_S",
    "time_kernel",
    "Timeable",
    "TimingResult",
    "TimingSettings",
]


try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from npucheck.stats import Stats, instability_warnings, summarize


class Timeable(Protocol):
    timing_method: str

    def time_calls(self, fn: Callable[[], object], calls: int) -> float: ...


PER_CALL_CHUNK_S = 0.01
"""Single-call samples are queued in chunks lasting about this long between synchronizations."""
MAX_CHUNK_CALLS = 100
COLD, MIXED, WARM = "cold", "mixed", "warm"
"""``cache_state`` of the samples: every call started after a flush; only the first call of each sample did; no
flush at all."""


FAULT_PROBE_PAGES = 64


@functools.lru_cache(maxsize=1)
def faults_are_counted() -> bool:
    """Whether this OS reports minor page faults: touches ``FAULT_PROBE_PAGES`` fresh anonymous pages once and looks
    for any rise in ``ru_minflt``. An OS or sandbox that does not count them reports 0 forever, and a 0 from it
    must read "not counted", not "no faults"."""
    if resource is None:
        return False
    page = mmap.PAGESIZE
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with mmap.mmap(-1, FAULT_PROBE_PAGES * page) as fresh:
        for offset in range(0, FAULT_PROBE_PAGES * page, page):
            fresh[offset] = 1
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt > before


def minor_faults() -> int | None:
    """Minor page faults of this process so far (all threads), or None where the OS does not count them."""
    if resource is None or not faults_are_counted():
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


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
    per_call_events: bool = False
    timed_calls: int = 0
    minor_faults: int | None = None
    """Minor page faults of the process while the samples were taken (None where not counted)."""

    def cache_state(self, flushed: bool) -> str:
        if not flushed:
            return WARM
        return COLD if self.calls_per_sample == 1 else MIXED


def time_kernel(
    run: Callable[[], object],
    device: Timeable,
    flush: Callable[[], None],
    settings: TimingSettings,
    clock: Callable[[], float] = time.perf_counter,
) -> TimingResult:
    """Measure seconds per call of ``run`` on ``device``.

    Raises:
        ValueError: a sample came back non-positive or non-finite (a broken timer must not become a figure).
    """
    started = clock()
    warmup_times: list[float] = []
    while len(warmup_times) < settings.min_warmup_calls or clock() - started < settings.warmup_s:
        warmup_times.append(device.time_calls(run, 1))
    per_call = max(min(warmup_times), 1e-9)
    per_call_events = bool(getattr(device, "per_call_events", False))
    calls = 1 if per_call_events else max(1, math.ceil(settings.min_sample_s / per_call))
    chunk = max(1, min(MAX_CHUNK_CALLS, math.ceil(PER_CALL_CHUNK_S / per_call)))

    samples: list[float] = []
    faults_before = minor_faults()
    sampling_started = clock()
    while len(samples) < settings.max_samples:
        if per_call_events:
            taken = device.time_each_call(run, flush, min(chunk, settings.max_samples - len(samples)))  # type: ignore[attr-defined]
        else:
            flush()
            taken = [device.time_calls(run, calls) / calls]
        for seconds in taken:
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"timer returned {seconds!r} s per call")
        samples.extend(taken)
        if len(samples) >= settings.min_samples and clock() - sampling_started >= settings.budget_s:
            break
    faults_after = minor_faults()
    stats = summarize(samples, settings.confidence)
    return TimingResult(
        samples_s=samples,
        calls_per_sample=calls,
        warmup_calls=len(warmup_times),
        timing_method=device.timing_method,
        stats=stats,
        warnings=instability_warnings(stats),
        per_call_events=per_call_events,
        timed_calls=len(samples) * calls,
        minor_faults=None if faults_before is None or faults_after is None else faults_after - faults_before,
    )
