"""Energy over a window: counters read at the edges, power sampled in a background thread, integrated.

The caller synchronizes the device, enters the window, runs its sustained loop, synchronizes again and leaves
the window; the edges are read right there, so the energy covers exactly the work that was timed.

Integration is zero-order hold: each power sample holds until the next one (the last holds until the window
ends, the first is held back to the window's start). A trapezoid rule would invent values between samples; with
a counter present the counter decides and the integral is the cross-check (their ratio is reported).

Memory is bounded whatever the window's length (docs/power.md, "Long runs"): the integral is summed as the samples
come (``_Integral``, to the same bits as ``integrate_zoh`` / ``integrate_interval_averages`` over all of them),
throttle reasons are tallied, and only the stored trace is thinned while sampling (``_Series``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from npucheck.measure.power.base import CounterReset, PowerReadError, PowerSource

__all__ = [
    "combine_windows",
    "COUNTER_AGREEMENT",
    "DEFAULT_SAMPLE_HZ",
    "EDGE_SAMPLES",
    "EnergyWindow",
    "integrate_interval_averages",
    "integrate_zoh",
    "MAX_TRACE_POINTS",
    "MIN_COVERAGE",
    "MIN_METER_SAMPLES",
    "MIN_POLL_S",
    "PowerSampler",
    "QUALITY_ORDER",
    "TRACE_BUFFER",
]


DEFAULT_SAMPLE_HZ = 10.0
MAX_TRACE_POINTS = 600
"""Trace samples kept per window in the result (evenly thinned beyond this); the integral uses all of them."""
TRACE_BUFFER = 2 * MAX_TRACE_POINTS
"""Most samples of each series (power, counter, counter slope) the sampler holds for the stored trace: beyond
this it keeps every other one, its stride doubling each time, so a window of any length holds at most this many,
evenly spread by index. A window with no more samples than this stores the trace it stored when every sample was
kept. Context readings: the first MAX_TRACE_POINTS are kept (the context trace's length), the rest tallied."""
EDGE_SAMPLES = 64
"""Samples whose running sums the integral remembers (the last ones before the window closes, and those before
it opens): those the thread takes between the window's end and its close are taken back exactly. A window
needing more gets no integral, with the reason (``EnergyWindow`` closes right after its end: one or two)."""
MIN_COVERAGE = 0.5
"""A window whose power samples cover less than this share of it (sources without a counter) is invalid."""
MIN_METER_SAMPLES = 10
MIN_POLL_S = 0.001
"""The sampler never polls faster than this, even for a counter that wraps quickly."""
COUNTER_AGREEMENT = 0.10
"""A counter agrees with integrated power when their ratio is within 1 ± this."""


def integrate_zoh(samples: Sequence[tuple[float, float]], start: float, end: float) -> tuple[float, float]:
    """Energy in joules of a power trace over [start, end] by zero-order hold, and the share of the window the
    samples cover (from the first sample on).

    Args:
        samples: (time in seconds, watts), sorted by time, any clock as long as ``start``/``end`` use it.
        start: window start.
        end: window end.

    Returns:
        (joules, coverage); (0.0, 0.0) when no sample falls at or before ``end``.
    """
    if end <= start:
        return 0.0, 0.0
    inside = [(t, w) for t, w in samples if t <= end]
    if not inside:
        return 0.0, 0.0
    before = [s for s in inside if s[0] <= start]
    points = ([(start, before[-1][1])] if before else []) + [(t, w) for t, w in inside if t > start]
    first_t = points[0][0]
    joules = points[0][1] * (first_t - start)  # hold the first value back to the start
    for (t0, w0), (t1, _) in zip(points, points[1:]):
        joules += w0 * (t1 - t0)
    joules += points[-1][1] * (end - points[-1][0])
    coverage = (end - first_t) / (end - start)
    return joules, coverage


def integrate_interval_averages(
    samples: Sequence[tuple[float, float]], start: float, end: float, period_s: float
) -> tuple[float, float]:
    """Energy of samples that are averages over the ``period_s`` before their timestamp (meters, averaged
    telemetry). Each sample covers (max(t - period, previous t), t], so samples logged more often than their
    averaging period are not counted twice."""
    joules = 0.0
    covered = 0.0
    previous = -math.inf
    for t, watts in samples:
        lo, hi = max(t - period_s, previous, start), min(t, end)
        previous = t
        if hi > lo:
            joules += watts * (hi - lo)
            covered += hi - lo
    return joules, covered / (end - start) if end > start else 0.0


class _Series:
    """A bounded series of (time, value) samples for the stored trace: all of them up to TRACE_BUFFER, then every
    other one (the stride doubles whenever it fills), so at most TRACE_BUFFER, evenly spread by index."""

    __slots__ = ("points", "seen", "stride")

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []
        self.seen = 0
        self.stride = 1

    def append(self, point: tuple[float, float]) -> None:
        if self.seen % self.stride == 0:
            self.points.append(point)
            if len(self.points) > TRACE_BUFFER:
                del self.points[1::2]
                self.stride *= 2
        self.seen += 1

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return iter(self.points)

    def __len__(self) -> int:
        return len(self.points)


class _IntegralLost(Exception):
    """The samples an exact integral needs were not kept (more than EDGE_SAMPLES at an edge)."""


class _Integral:
    """Energy of the power samples as they come, in O(1) memory: to the same bits as ``integrate_zoh`` and
    ``integrate_interval_averages`` (when the source's readings are averages) over every sample in
    [start - 1 s, end + 1 s], the samples ``EnergyWindow`` integrated when it kept them all.

    The start is known before the window's samples come (``open``; the samples taken before it wait, the last
    EDGE_SAMPLES of them); the end only when the window closes (``close``). Until then each sample is summed as
    if it were inside, in the same order and with the same operations as the two functions, and the sums after
    each of the last EDGE_SAMPLES samples are remembered, so ``result`` starts again from the sums of the last
    sample at or before the end: a sample taken between the end and the close is left out exactly (a float sum
    cannot be un-added). After the close, a sample after the end is not summed; the first of them is kept (an
    averaged reading after the end still covers part of the window)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None
        self.average_s: float | None = None
        self._early: deque[tuple[float, float]] = deque(maxlen=EDGE_SAMPLES)
        self._early_dropped: float | None = None
        """Time of the latest sample taken before ``open`` and dropped from ``_early``."""
        self._edge: deque[tuple[float, float, float | None, float, float]] = deque(maxlen=EDGE_SAMPLES)
        """(t, watts, zero-order-hold joules after it or None before the start, average joules, covered s)."""
        self._summed = 0
        self._after: tuple[float, float] | None = None
        self._hold: float | None = None
        self._last: tuple[float, float] | None = None
        self._first_t = 0.0
        self._zoh = 0.0
        self._previous = -math.inf
        self._avg = 0.0
        self._covered = 0.0

    def open(self, start: float, average_s: float | None) -> None:
        self.start, self.average_s = start, average_s
        early = list(self._early)
        self._early.clear()
        for t, w in early:
            self.add(t, w)

    def close(self, end: float) -> None:
        self.end = end

    def add(self, t: float, w: float) -> None:
        if self.start is None:
            if len(self._early) == EDGE_SAMPLES:
                self._early_dropped = self._early[0][0]
            self._early.append((t, w))
            return
        if not self.start - 1.0 <= t:
            return
        if self.end is not None and t > self.end:
            if self._after is None:
                self._after = (t, w)
            return
        start = self.start
        self._summed += 1
        # zero-order hold, as integrate_zoh: the last sample at or before the start is held back to it
        zoh = None
        if t <= start:
            self._hold = w
        else:
            if self._last is not None:
                self._zoh += self._last[1] * (t - self._last[0])
            elif self._hold is not None:
                self._first_t = start
                self._zoh = self._hold * (start - start)
                self._zoh += self._hold * (t - start)
            else:
                self._first_t = t
                self._zoh = w * (t - start)
            self._last = (t, w)
            zoh = self._zoh
        # interval averages, as integrate_interval_averages, with hi = min(t, end) = t
        if self.average_s is not None:
            lo, hi = max(t - self.average_s, self._previous, start), t
            self._previous = t
            if hi > lo:
                self._avg += w * (hi - lo)
                self._covered += hi - lo
        self._edge.append((t, w, zoh, self._avg, self._covered))

    def result(self, end: float, average_s: float | None) -> tuple[float, float] | None:
        """(joules, coverage) over [start, end], by interval averages over ``average_s`` when it is set, else
        by zero-order hold; None when no sample lies in [start - 1 s, end + 1 s]."""
        if self.start is None:
            return None
        start = self.start
        if self._early_dropped is not None and self._early_dropped > start:
            raise _IntegralLost(f"over {EDGE_SAMPLES} power samples came before the window opened")
        if average_s != self.average_s:
            raise _IntegralLost("the source's averaging interval changed during the window")
        edge = list(self._edge)
        i = len(edge) - 1
        while i >= 0 and edge[i][0] > end:
            i -= 1
        if i < 0 and self._summed > len(edge):
            raise _IntegralLost(f"over {EDGE_SAMPLES} power samples came after the window's end")
        last = edge[i] if i >= 0 else None
        after = edge[i + 1][:2] if i + 1 < len(edge) else self._after
        if after is not None and not after[0] <= end + 1.0:
            after = None
        if last is None and after is None:
            return None
        if average_s is not None:
            joules, covered = (last[3], last[4]) if last is not None else (0.0, 0.0)
            if after is not None:  # the first sample after the end covers the window up to it
                t, w = after
                lo, hi = max(t - average_s, last[0] if last is not None else -math.inf, start), min(t, end)
                if hi > lo:
                    joules += w * (hi - lo)
                    covered += hi - lo
            return joules, covered / (end - start) if end > start else 0.0
        if end <= start or last is None:
            return 0.0, 0.0
        t, w, zoh = last[:3]
        if zoh is None:  # no sample inside yet: the one before the start holds over the whole window
            joules, first_t = w * (start - start), start
            joules += w * (end - start)
        else:
            joules, first_t = zoh + w * (end - t), self._first_t
        return joules, (end - first_t) / (end - start)


class _Trace:
    """What the sampler keeps: memory bounded whatever the run's length (see TRACE_BUFFER and EDGE_SAMPLES).

    ``power`` and ``energy`` (the counter's readings) and ``slope`` (watts between counter readings) hold the
    stored trace's samples; ``contexts`` the first MAX_TRACE_POINTS context readings. Counts, the throttle tally
    and the integral cover every sample."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.power = _Series()
        self.energy = _Series()
        self.slope = _Series()
        self.contexts: list[tuple[float, dict[str, Any]]] = []
        self.power_samples = 0
        self.energy_samples = 0
        self.context_samples = 0
        self.integral = _Integral()
        self.throttle_checks = 0
        self.throttled_checks = 0
        self.throttle_reasons: set[str] = set()
        self.dropped = 0
        self.errors: list[str] = []
        self.reset: str | None = None
        self._last_energy: tuple[float, float] | None = None

    def add_power(self, t: float, watts: float) -> None:
        self.power_samples += 1
        self.power.append((t, watts))
        self.integral.add(t, watts)

    def add_energy(self, t: float, joules: float) -> None:
        self.energy_samples += 1
        self.energy.append((t, joules))
        if self._last_energy is not None:
            # watts between consecutive counter readings; pairs closer than half a period are skipped
            # (dividing a counter step by a tiny interval gives absurd watts)
            t0, e0 = self._last_energy
            if t - t0 >= 0.5 * self.period_s and joules >= e0:
                self.slope.append((t, (joules - e0) / (t - t0)))
        self._last_energy = (t, joules)

    def add_context(self, t: float, context: dict[str, Any]) -> None:
        self.context_samples += 1
        if len(self.contexts) < MAX_TRACE_POINTS:
            self.contexts.append((t, context))
        if "throttle_reasons" in context:
            self.throttle_checks += 1
            self.throttle_reasons.update(context["throttle_reasons"])
            self.throttled_checks += 1 if context["throttle_reasons"] else 0


class PowerSampler:
    """Polls a source in a daemon thread: power (and the counter, which keeps wraparounds tracked)."""

    def __init__(self, source: PowerSource, hz: float = DEFAULT_SAMPLE_HZ, clock: Callable[[], float] = time.monotonic):
        if not hz > 0:
            raise ValueError("sample rate must be positive")
        self.source = source
        self.period_s = 1.0 / hz
        cap = getattr(source, "max_poll_s", None)
        if cap and cap < self.period_s:
            # a counter that can wrap must be read before it wraps twice, whatever --power-hz says
            self.period_s = max(cap, MIN_POLL_S)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.trace = _Trace(self.period_s)
        self.lock = threading.Lock()
        """Held around every read of the source, so the edges and the thread never read it at once."""

    def sample_once(self) -> None:
        """Take one sample of everything the source offers; a failed read is counted and dropped."""
        now = self._clock()
        for kind, has, read in (
            ("power", self.source.has_power, self.source.read_power_w),
            ("energy", self.source.has_counter, self.source.read_energy_j),
        ):
            if not has:
                continue
            try:
                value = read()
            except CounterReset as e:
                self.trace.reset = str(e)
                continue
            except Exception as e:  # noqa: BLE001 - PowerReadError, or anything a vendor library throws
                self.trace.dropped += 1
                if len(self.trace.errors) < 5:
                    self.trace.errors.append(str(e) if isinstance(e, PowerReadError) else f"{type(e).__name__}: {e}")
                continue
            if kind == "power":
                self.trace.add_power(now, value)
            else:
                self.trace.add_energy(now, value)

    def sample_context(self) -> None:
        """Clocks, temperature and throttle reasons (once a second: they matter between the edges too)."""
        context = _safe_context(self.source)
        if context:
            self.trace.add_context(self._clock(), context)

    def _loop(self) -> None:
        next_t = self._clock()
        every = max(1, round(1.0 / self.period_s))
        ticks = 0
        while not self._stop.is_set():
            with self.lock:
                self.sample_once()
                ticks += 1
                if ticks % every == 0:
                    self.sample_context()
            next_t += self.period_s
            delay = next_t - self._clock()
            if delay < 0:  # fell behind (a slow read): skip ahead rather than burst
                next_t = self._clock()
                delay = 0
            self._stop.wait(delay)

    def open(self, start_s: float, average_s: float | None) -> None:
        """The window starts at ``start_s`` (this sampler's clock); ``average_s``: the averaging interval of the
        source's power readings, None for instantaneous ones."""
        with self.lock:
            self.trace.integral.open(start_s, average_s)

    def close(self, end_s: float) -> None:
        """The window ended at ``end_s``: later samples are no longer integrated."""
        with self.lock:
            self.trace.integral.close(end_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="npucheck-power", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class EnergyWindow:
    """One measured window. Use as a context manager around work that starts and ends device-synchronized.

    Example::

        device.synchronize()
        with EnergyWindow(source) as window:
            ...  # sustained loop
            device.synchronize()
        energy = window.result()  # joules, watts and evidence; npucheck.measure.energy.efficiency adds TFLOPS/W
    """

    def __init__(
        self,
        source: PowerSource,
        hz: float = DEFAULT_SAMPLE_HZ,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.source = source
        self._clock = clock
        self._wall = wall_clock
        self._sampler = PowerSampler(source, hz, clock)
        self.start_s = self.end_s = 0.0
        self.start_unix = self.end_unix = 0.0
        self.edge_energy: list[float | None] = [None, None]
        self.edge_errors: list[str] = []
        self.context_before: dict[str, Any] = {}
        self.context_after: dict[str, Any] = {}

    def _edge(self, index: int) -> None:
        if not self.source.has_counter:
            return
        try:
            with self._sampler.lock:  # never read the counter at the same time as the sampler thread
                self.edge_energy[index] = self.source.read_energy_j()
        except Exception as e:  # noqa: BLE001 - a source failing must invalidate the window, not crash the run
            self.edge_errors.append(f"{'start' if index == 0 else 'end'} edge: {e}")

    def __enter__(self) -> EnergyWindow:
        self.context_before = _safe_context(self.source)
        self._sampler.sample_once()  # a power value at the start edge
        self._edge(0)
        self.start_s, self.start_unix = self._clock(), self._wall()
        self._sampler.open(self.start_s, self.source.power_average_s or None)
        self._sampler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end_s, self.end_unix = self._clock(), self._wall()
        self._edge(1)
        self._sampler.close(self.end_s)
        self._sampler.stop()
        with self._sampler.lock:
            self._sampler.sample_once()
        self.context_after = _safe_context(self.source)

    # ------------------------------------------------------------------------------------------------ result
    def result(self, meter_wait_s: float = 0.0) -> dict[str, Any]:
        """The power part of a measurement's ``energy`` object (see docs/result-profile.md): joules, watts,
        the counter and integration evidence, the trace and the context. The work's figures (flops, TFLOPS,
        TFLOPS/W, net of idle) are added outside the power package, by ``npucheck.measure.energy.efficiency``.
        Never raises for a bad reading: an unusable window comes back with ``valid: false`` and the reason, and
        no power figures."""
        window_s = self.end_s - self.start_s
        trace = self._sampler.trace
        src = self.source
        out: dict[str, Any] = {
            "source": src.name,
            "scope": src.scope,
            "quality": src.quality,
            "uncertainty_rel": src.uncertainty_rel,
            "covers_device": src.covers_device,
            "covers_reason": src.coverage,
            "window_s": window_s,
            "start_unix": self.start_unix,
            "valid": False,
            "reason": None,
            "joules": None,
            "joules_counter": None,
            "joules_integrated": None,
            "counter_vs_integrated": None,
            "avg_watts": None,
            "samples": trace.power_samples,
            "dropped_samples": trace.dropped,
            "coverage": None,
            "trace": [],
            "context_before": self.context_before,
            "context_after": self.context_after,
            "throttle": _throttle([self.context_before, self.context_after], trace),
            "context_trace": [[round(t - self.start_s, 3), c] for t, c in trace.contexts][:MAX_TRACE_POINTS],
            "warnings": [],
        }
        if out["throttle"].get("reasons"):
            out["warnings"].append("throttled during the window: " + ", ".join(out["throttle"]["reasons"]))
        if trace.dropped:
            out["warnings"].append(f"{trace.dropped} power readings failed and were dropped")
        out["trace"] = _thin(
            [[round(t - self.start_s, 4), w] for t, w in trace.power if self.start_s - 1.0 <= t <= self.end_s + 1.0]
        )
        out["trace_kind"] = "power readings" if src.has_power else None
        if not src.has_power and src.has_counter:
            # no power reading (RAPL): the trace is the counter's slope between polls, shown, not integrated
            out["trace"] = _thin(
                [[round(t - self.start_s, 4), w] for t, w in trace.slope if self.start_s <= t <= self.end_s]
            )
            out["trace_kind"] = "energy counter slope between polls"
        reasons = []
        if trace.reset:
            reasons.append(f"energy counter reset during the window ({trace.reset})")
        if self.edge_errors:
            reasons.append("; ".join(self.edge_errors))
        # ---- the counter, read at the edges
        if src.has_counter and not reasons:
            e0, e1 = self.edge_energy
            if e0 is not None and e1 is not None:
                if src.counter_update_s and window_s < src.counter_update_s:
                    reasons.append(
                        f"window of {window_s:.3g} s is shorter than the counter's update period "
                        f"({src.counter_update_s:g} s): its energy cannot be measured"
                    )
                elif e1 - e0 < 0:
                    reasons.append("energy counter went backwards")
                else:
                    out["joules_counter"] = e1 - e0
        # ---- integrated power (polled), or a meter's log
        if src.is_log:
            try:
                samples, malformed = src.log_samples(self.start_unix, self.end_unix, wait_s=meter_wait_s)
            except PowerReadError as e:
                reasons.append(str(e))
                samples, malformed = [], 0
            out["malformed_lines"] = malformed
            out["meter_error_samples"] = getattr(src, "error_samples", 0)
            if out["meter_error_samples"]:
                out["warnings"].append(
                    f"{out['meter_error_samples']} meter samples were the meter's error value "
                    "(negative watts) and were dropped"
                )
            out["samples"] = len(samples)
            out["trace"] = _thin([[round(t - self.start_unix, 4), w] for t, w in samples])
            if samples and not reasons:
                period = src.power_update_s or 1.0
                if getattr(src, "sample_type", "average") == "average":
                    joules, coverage = integrate_interval_averages(samples, self.start_unix, self.end_unix, period)
                else:
                    joules, coverage = integrate_zoh(samples, self.start_unix, self.end_unix)
                out["joules_integrated"], out["coverage"] = joules, coverage
                if coverage < 0.95:
                    reasons.append(f"the meter log covers only {coverage:.0%} of the window")
                if len(samples) < MIN_METER_SAMPLES:
                    out["warnings"].append(
                        f"only {len(samples)} meter samples in the window (Green500 level 1 "
                        f"asks for at least {MIN_METER_SAMPLES})"
                    )
            elif not reasons:
                reasons.append("the meter log has no sample inside the window")
        elif src.has_power:
            try:
                with self._sampler.lock:  # a sampler thread that outlived its stop may still add a sample
                    integral = trace.integral.result(self.end_s, src.power_average_s or None)
            except _IntegralLost as e:
                reasons.append(f"power could not be integrated exactly: {e}")
                integral = None
            if integral is not None:
                out["joules_integrated"], out["coverage"] = integral
        # ---- decide
        if out["joules_counter"] is not None:
            out["joules"] = out["joules_counter"]
            if out["joules_integrated"]:
                ratio = out["joules_counter"] / out["joules_integrated"]
                out["counter_vs_integrated"] = ratio
                if abs(ratio - 1) > COUNTER_AGREEMENT:
                    out["warnings"].append(f"energy counter and integrated power disagree: ratio {ratio:.3f}")
        elif out["joules_integrated"] is not None and not src.has_counter:
            if not src.is_log and (out["coverage"] or 0) < MIN_COVERAGE:
                reasons.append(f"power samples cover only {out['coverage']:.0%} of the window")
            else:
                out["joules"] = out["joules_integrated"]
        elif not reasons:
            reasons.append(
                f"{src.name} gave no usable reading during the window"
                + (f" ({'; '.join(trace.errors)})" if trace.errors else "")
            )
        if reasons:
            out["reason"] = "; ".join(reasons)
            out["joules"] = None
            return out
        out["valid"] = True
        out["avg_watts"] = out["joules"] / window_s
        out["uncertainty_rel"] = self._uncertainty(out)
        if out["avg_watts"] <= 0:
            out.update(valid=False, reason="average power is not positive", avg_watts=None, joules=None)
            return out
        return out

    def _uncertainty(self, out: dict[str, Any]) -> float:
        """The source's stated uncertainty plus what this window adds: counter quantization (up to one update
        at each edge), the lag of averaged readings, and any disagreement between counter and integrated power
        (which also drops a counter's quality from Q2 to Q1)."""
        src = self.source
        window_s = out["window_s"]
        terms = {"source": src.uncertainty_rel}
        if out["joules_counter"] is not None and src.counter_update_s:
            terms["counter quantization"] = 2 * src.counter_update_s / window_s
        elif out["joules_integrated"] is not None:
            averaged_s = src.power_average_s or (
                src.power_update_s if src.is_log and getattr(src, "sample_type", "") == "average" else None
            )
            if averaged_s:
                terms["averaging lag"] = averaged_s / window_s
        ratio = out["counter_vs_integrated"]
        if ratio is not None and abs(ratio - 1) > COUNTER_AGREEMENT:
            terms["counter disagreement"] = abs(ratio - 1)
            out["quality"] = "Q1" if out["quality"] == "Q2" else out["quality"]
        out["uncertainty_terms"] = terms
        return float(sum(terms.values()))


QUALITY_ORDER = ("Q0", "Q1", "Q2", "Q3")


def combine_windows(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The power part of one energy object from several trial windows of the same case: totals over all of
    them, the worst quality, each trial's power figures under ``trials`` and each uncertainty term at its worst.
    Invalid if any trial is. Keys it does not know (the work's figures) are the first trial's:
    ``npucheck.measure.energy.combine_trials`` adds the combined work figures and the trials' spread."""
    first = trials[0]
    out = dict(first)
    out["trials"] = [
        {key: t.get(key) for key in ("start_unix", "window_s", "valid", "reason", "avg_watts")} for t in trials
    ]
    out["warnings"] = sorted({w for t in trials for w in t.get("warnings") or []})
    bad = [(i, t) for i, t in enumerate(trials, 1) if not t.get("valid")]
    if bad:
        index, trial = bad[0]
        out.update(
            valid=False, reason=f"trial {index} of {len(trials)}: {trial.get('reason')}", joules=None, avg_watts=None
        )
        return out
    window_s = sum(t["window_s"] for t in trials)
    joules = sum(t["joules"] for t in trials)
    out.update(
        window_s=window_s,
        joules=joules,
        avg_watts=joules / window_s,
        samples=sum(t.get("samples") or 0 for t in trials),
        dropped_samples=sum(t.get("dropped_samples") or 0 for t in trials),
        coverage=min((t["coverage"] for t in trials if t.get("coverage") is not None), default=None),
        quality=min((t["quality"] for t in trials), key=QUALITY_ORDER.index),
        context_after=trials[-1].get("context_after"),
    )
    for key in ("joules_counter", "joules_integrated"):
        values = [t.get(key) for t in trials]
        out[key] = sum(values) if all(v is not None for v in values) else None
    out["counter_vs_integrated"] = (
        out["joules_counter"] / out["joules_integrated"] if out["joules_counter"] and out["joules_integrated"] else None
    )
    out["trace"] = _thin(
        [[round(t["start_unix"] - first["start_unix"] + x, 4), w] for t in trials for x, w in t.get("trace") or []]
    )
    out["context_trace"] = [
        [round(t["start_unix"] - first["start_unix"] + x, 3), c]
        for t in trials
        for x, c in t.get("context_trace") or []
    ][:MAX_TRACE_POINTS]
    out["throttle"] = _throttle(
        [
            {"throttle_reasons": t["throttle"]["reasons"]}
            for t in trials
            if (t.get("throttle") or {}).get("reasons") is not None
        ]
    )
    terms: dict[str, float] = {}
    for t in trials:  # each trial's own terms, at their worst
        for name, value in (t.get("uncertainty_terms") or {}).items():
            terms[name] = max(terms.get(name, 0.0), value)
    out["uncertainty_terms"] = terms
    out["uncertainty_rel"] = float(sum(terms.values()))
    return out


def _safe_context(source: PowerSource) -> dict[str, Any]:
    try:
        return source.context()
    except Exception as e:  # noqa: BLE001 - context is evidence, never a reason to lose the window
        return {"error": f"{type(e).__name__}: {e}"}


def _throttle(contexts: list[dict[str, Any]], trace: _Trace | None = None) -> dict[str, Any]:
    """Limiting clock-event reasons seen at the edges or in between (``trace``'s tally of the sampler's context
    readings); empty when the source cannot tell."""
    known = [c for c in contexts if "throttle_reasons" in c]
    checks = len(known) + (trace.throttle_checks if trace is not None else 0)
    if not checks:
        return {}
    reasons = sorted(
        {reason for c in known for reason in c["throttle_reasons"]}
        | (trace.throttle_reasons if trace is not None else set())
    )
    throttled = sum(1 for c in known if c["throttle_reasons"]) + (trace.throttled_checks if trace is not None else 0)
    return {"reasons": reasons, "seen": bool(reasons), "checks": checks, "throttled_checks": throttled}


def _thin(points: list[list[float]]) -> list[list[float]]:
    if len(points) <= MAX_TRACE_POINTS:
        return points
    step = len(points) / MAX_TRACE_POINTS
    return [points[int(i * step)] for i in range(MAX_TRACE_POINTS)]
