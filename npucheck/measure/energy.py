"""Energy windows of measured cases: the sustained loop between synchronized edges, and the idle baseline.

Which cases get a window (after all cases are timed, so windows never eat the timing budget):
* each dtype's peak GEMM case: a headline window of the suite's ``power_window_s`` (``--power-window``); its
  TFLOPS/W is the figure the targets judge;
* every other correct fp16 GEMM of the ``square`` sweep: a short window (>= 1 s and >= 50 updates of the
  source), for the efficiency curves. Skipped, with the reason, when the source updates too slowly for that;
* the fastest correct fp16 case of every other kernel (conv2d, rnn_tanh, rnn_relu, lstm, gru): a short window
  too, so the terminal chip's CNN/RNN/LSTM efficiency is measured, not assumed from GEMM.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from npucheck.kernels import Case, build_workload
from npucheck.measure.devices import Device
from npucheck.measure.power.base import PowerSource
from npucheck.measure.power.window import EnergyWindow, combine_windows
from npucheck.model import Energy, EnergyKind, Measurement
from npucheck.summary import peak_gemm_cases

__all__ = [
    "combine_trials",
    "efficiency",
    "invalid_energy",
    "measure_idle",
    "meter_wait_s",
    "MIN_WINDOW_UPDATES",
    "net_tflops_per_watt",
    "NET_WARNING",
    "run_window",
    "SWEEP_DTYPE",
    "SWEEP_MIN_UPDATES",
    "SWEEP_MIN_WINDOW_S",
    "SWEEP_SHAPE_SET",
    "sweep_window_s",
    "window_batch",
    "WINDOW_BATCH_S",
    "WindowFactory",
    "window_plan",
    "window_too_short",
]


SWEEP_MIN_WINDOW_S = 1.0
SWEEP_MIN_UPDATES = 50
SWEEP_SHAPE_SET = "square"
SWEEP_DTYPE = "fp16"


def sweep_window_s(source: PowerSource, headline_s: float) -> tuple[float | None, str | None]:
    """Length of a sweep window for ``source``, or None and the reason when it would be too long."""
    period = source.counter_update_s or source.power_update_s or 0.0
    length = max(SWEEP_MIN_WINDOW_S, SWEEP_MIN_UPDATES * period)
    if length > max(headline_s, SWEEP_MIN_WINDOW_S):
        return None, (
            f"sweep energy windows skipped: {source.name} updates every {period:g} s, so "
            f"{SWEEP_MIN_UPDATES} updates take {length:g} s per size (longer than the headline window)"
        )
    return length, None


MIN_WINDOW_UPDATES = 10
"""A headline window must span at least this many updates of its source: fewer, and the quantization of the first
and last update alone is more than the source's own uncertainty."""


def window_too_short(source: PowerSource, window_s: float) -> str | None:
    """Why ``--power-window`` is too short for ``source`` (None when it is long enough): it must be positive, and at
    least MIN_WINDOW_UPDATES updates of the source where its update period is known. A stated figure (Q0) has no
    updates to span."""
    if source.quality == "Q0":
        return None
    if not window_s > 0:
        return f"--power-window must be more than 0 s with a power source ({source.name}); --power none turns it off"
    period = source.counter_update_s or source.power_update_s
    if period and window_s < MIN_WINDOW_UPDATES * period:
        return (
            f"--power-window {window_s:g} s is too short for {source.name}, which updates every {period:g} s: "
            f"use at least {MIN_WINDOW_UPDATES * period:g} s ({MIN_WINDOW_UPDATES} updates)"
        )
    return None


def meter_wait_s(source: PowerSource) -> float:
    """How long to wait after a window for an external logger to write past its end."""
    return 2 * (source.power_update_s or 1.0) + 1.0 if source.is_log else 0.0


def window_plan(
    measurements: Sequence[Measurement], sweep_s: float | None, headline_s: float
) -> list[tuple[Measurement, float, EnergyKind]]:
    """(measurement, window seconds, kind) for each case that gets an energy window, headline windows first."""
    peaks = peak_gemm_cases(measurements)
    plan: list[tuple[Measurement, float, EnergyKind]] = [(m, headline_s, "headline") for m in peaks.values()]
    if sweep_s is not None:
        chosen = {m.id for m in peaks.values()}
        ok = [m for m in measurements if m.status == "ok" and m.correct is not False and m.tflops]
        plan += [
            (m, sweep_s, "sweep")
            for m in ok
            if m.kernel == "gemm" and m.dtype == SWEEP_DTYPE and m.shape_set == SWEEP_SHAPE_SET and m.id not in chosen
        ]
        fastest: dict[str, Measurement] = {}
        for m in ok:
            best = fastest.get(m.kernel)
            if m.kernel != "gemm" and m.dtype == SWEEP_DTYPE and (best is None or (m.tflops or 0) > (best.tflops or 0)):
                fastest[m.kernel] = m
        plan += [(m, sweep_s, "kernel") for m in fastest.values()]
    return plan


WINDOW_BATCH_S = 0.01
"""Calls are queued in batches lasting about this long between synchronizations inside a window: single-call
samples (device events) would otherwise synchronize after every call and starve the device on short kernels."""


def window_batch(measurement: Measurement) -> int:
    """Calls per synchronization in the measurement's energy window."""
    median_s = measurement.stats.median_s if measurement.stats is not None else 0.0
    by_time = math.ceil(WINDOW_BATCH_S / median_s) if median_s > 0 else 1
    return max(1, measurement.calls_per_sample or 1, by_time)


def invalid_energy(source: PowerSource, reason: str) -> Energy:
    """The ``energy`` object of a window that could not run, with what the source says of itself."""
    return Energy.invalid(reason, source.describe())


WindowFactory = Callable[[PowerSource, float], EnergyWindow]
"""How a window is made from (source, sample rate): ``EnergyWindow``; tests give one on a simulated clock."""


def measure_idle(
    source: PowerSource,
    seconds: float,
    device: Device,
    hz: float,
    sleep: Callable[[float], None] = time.sleep,
    make_window: WindowFactory = EnergyWindow,
) -> dict[str, Any]:
    """Power with nothing running, over ``seconds``, with the same source as the windows."""
    device.synchronize()
    window = make_window(source, hz)
    with window:
        sleep(seconds)
    return efficiency(window.result(meter_wait_s=meter_wait_s(source)), flops=None, idle_watts=None)


def run_window(
    case: Case,
    batch: int,
    window_s: float,
    device: Device,
    source: PowerSource,
    hz: float,
    seed: int,
    idle_watts: float | None,
    clock: Callable[[], float] = time.perf_counter,
    make_window: WindowFactory = EnergyWindow,
) -> dict[str, Any]:
    """Run ``case`` back to back for ``window_s``, ``batch`` calls per synchronization, and measure the energy
    it used (``window_batch`` gives the batch of a timed measurement). Memory does not grow with ``window_s``
    (the sampler's is bounded, see ``npucheck.measure.power.window``)."""
    with torch.inference_mode():
        workload = build_workload(case, device.torch_device, seed)
        workload.run()  # lazy initialisation outside the window
        device.synchronize()
        calls = 0
        window = make_window(source, hz)
        with window:
            end = clock() + window_s
            while calls == 0 or clock() < end:
                for _ in range(batch):
                    workload.run()
                calls += batch
                device.synchronize()  # inside the window: the edge comes after the work has finished
        del workload
    energy = efficiency(window.result(meter_wait_s=meter_wait_s(source)), float(calls * case.flops), idle_watts)
    energy["calls"] = calls
    return energy


# ---------------------------------------------------------------------------------------------- efficiency
_WORK_KEYS = ("idle_watts", "flops", "tflops", "tflops_per_watt", "tflops_per_watt_net")
"""The keys ``efficiency`` adds to the power seam's energy object, right after ``avg_watts``."""
NET_WARNING = "no net TFLOPS/W"


def efficiency(
    energy: dict[str, Any], flops: float | None, idle_watts: float | None, trials: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The energy object with the work's figures: ``flops``, ``tflops`` (sustained over the window),
    ``tflops_per_watt`` and ``tflops_per_watt_net`` (above ``idle_watts``; None with a warning when that power
    is within the measurement's uncertainty). The one place TFLOPS/W is computed.

    Args:
        energy: the power part (``EnergyWindow.result`` or ``combine_windows``); not changed.
        flops: the work done inside the window; None for a window without work (idle).
        idle_watts: the idle power the net figure is taken above; None for no net figure.
        trials: the trial windows ``energy`` combines (each already through this function): half the range of
            their TFLOPS/W, relative to the combined figure, is added to the uncertainty before the net figure.
    """
    out: dict[str, Any] = {}
    for key, value in energy.items():
        out[key] = value
        if key == "avg_watts":
            for work_key in _WORK_KEYS:
                out[work_key] = energy.get(work_key)
    out.update(idle_watts=idle_watts, flops=flops)
    out["warnings"] = list(out.get("warnings") or [])
    if not out.get("valid"):
        out.update(tflops=None, tflops_per_watt=None, tflops_per_watt_net=None)
        return out
    if flops is None or not out["window_s"] > 0 or (trials and not flops):
        return out  # no work figures (a combination keeps its first trial's when no trial did any work)
    out["tflops"] = flops / out["window_s"] / 1e12
    out["tflops_per_watt"] = out["tflops"] / out["avg_watts"]
    if trials:
        per_watt = [t["tflops_per_watt"] for t in trials if t.get("tflops_per_watt")]
        terms = dict(out.get("uncertainty_terms") or {})
        if len(per_watt) > 1 and out["tflops_per_watt"]:
            terms["trial spread"] = (max(per_watt) - min(per_watt)) / 2 / out["tflops_per_watt"]
        out["uncertainty_terms"] = terms
        out["uncertainty_rel"] = float(sum(terms.values()))
    if out["tflops"]:
        out["warnings"] = [w for w in out["warnings"] if not w.startswith(NET_WARNING)]
        out["tflops_per_watt_net"] = net_tflops_per_watt(out, out["warnings"])
    return out


def combine_trials(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """One energy object from several trial windows of the same case (each from ``run_window``): the power
    totals of ``combine_windows``, then the work's figures over all of them, with the trials' spread of TFLOPS/W
    in the uncertainty. Invalid if any trial is."""
    if len(trials) == 1:
        return trials[0]
    combined = combine_windows(trials)
    for entry, trial in zip(combined["trials"], trials):
        entry.update(tflops=trial.get("tflops"), tflops_per_watt=trial.get("tflops_per_watt"))
    flops = sum(t["flops"] or 0.0 for t in trials)
    return efficiency(
        combined, flops if combined["valid"] else combined.get("flops"), combined.get("idle_watts"), trials=trials
    )


def net_tflops_per_watt(energy: dict[str, Any], warnings: list[str]) -> float | None:
    """TFLOPS per watt above idle, or None (with a warning) when the power above idle is no larger than the
    power's own uncertainty: dividing by noise would give any number at all."""
    idle = energy.get("idle_watts")
    if idle is None or not energy.get("tflops"):
        return None
    dynamic = energy["avg_watts"] - idle
    if dynamic <= (energy.get("uncertainty_rel") or 0.0) * energy["avg_watts"]:
        warnings.append(
            f"{NET_WARNING}: {energy['avg_watts']:.4g} W under load is within the measurement's "
            f"uncertainty of the {idle:.4g} W idle"
        )
        return None
    return energy["tflops"] / dynamic
