"""The ``summary`` of a result profile, from its measurements: each dtype's peak GEMM with its confirmation and
sustained figure, TFLOPS per watt from the headline energy windows, and case counts. Pure: no torch; reads the
model's objects (``npucheck.model``), so it runs on what a run built and on a loaded file alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from npucheck.bandwidth import peak_memory_cases
from npucheck.model import STATUSES, Energy, Measurement, Peak, PowerInfo, Summary

__all__ = ["counts", "peak_gbps", "peak_gemm_cases", "peaks", "summarize", "summarize_power"]


def peak_gemm_cases(measurements: Iterable[Measurement]) -> dict[str, Measurement]:
    """Per dtype, the correct GEMM case with the best finite median TFLOPS (the summary's peak, the case the
    confirmation re-measures, and the case whose energy window the targets judge)."""
    found: dict[str, Measurement] = {}
    for m in measurements:
        if m.kernel != "gemm" or m.status != "ok" or m.correct is False or m.tflops is None:
            continue
        best = found.get(m.dtype)
        if math.isfinite(m.tflops) and (best is None or m.tflops > (best.tflops or -1.0)):
            found[m.dtype] = m
    return found


def summarize(
    measurements: Sequence[Measurement],
    confirmations: Sequence[Measurement],
    dtypes: Sequence[str],
    power: PowerInfo,
) -> Summary:
    """The summary: peak GEMM TFLOPS per dtype (best median over correct cases, its independent confirmation, and
    the sustained figure of its energy window), TFLOPS/W per dtype, case counts."""
    best = peak_gemm_cases(measurements)
    peak = peaks(best, confirmations)
    return Summary(
        peak_tflops={dtype: m.tflops for dtype, m in best.items() if m.tflops is not None},
        peak=peak,
        **summarize_power(measurements, power, set(peak), list(dtypes) or sorted(best)),
        counts=counts(measurements),
        peak_gbps=peak_gbps(measurements),
    )


def peak_gbps(measurements: Iterable[Measurement]) -> dict[str, float]:
    """Per dtype, the best median GB/s of a correct memory case (``npucheck.bandwidth``)."""
    return {dtype: m.gbps for dtype, m in peak_memory_cases(measurements).items() if m.gbps is not None}


def peaks(best: Mapping[str, Measurement], confirmations: Sequence[Measurement]) -> dict[str, Peak]:
    """Each dtype's :class:`Peak` from its peak case (:func:`peak_gemm_cases`): its median and interval, its
    independent confirmation, and the sustained figure of its headline energy window."""
    by_case = {c.confirms: c for c in confirmations}
    peak = {}
    for dtype, m in best.items():
        confirmation = by_case.get(m.id)
        confirmed = confirmation is not None and confirmation.status == "ok"
        energy = m.energy
        # a run's ok case always has its interval; a loaded case with no raw samples has lost it (npucheck.evidence)
        low, high = m.tflops_ci if m.tflops_ci is not None else (None, None)
        peak[dtype] = Peak(
            case=m.id,
            tflops=m.tflops,
            ci_low=low,
            ci_high=high,
            confirmed_tflops=confirmation.tflops if confirmed and confirmation else None,
            confirmed_ci=confirmation.tflops_ci if confirmed and confirmation else None,
            confirmation_status=confirmation.status if confirmation else None,
            sustained_tflops=energy.tflops if energy and energy.kind == "headline" and energy.valid else None,
        )
    return peak


def counts(measurements: Iterable[Measurement]) -> dict[str, int]:
    """How many cases ended in each status."""
    statuses: list[str] = [m.status for m in measurements]
    return {status: statuses.count(status) for status in STATUSES}


def summarize_power(
    measurements: Sequence[Measurement], power: PowerInfo, peak_dtypes: set[str], dtypes: Sequence[str]
) -> dict[str, Any]:
    """The summary's power keys: ``tflops_per_watt`` (gross, from each dtype's headline window), its interval
    widened by the source's uncertainty, quality, scope, net-of-idle figure, ``tflops_per_watt_covers`` (True /
    False / None: does the power include the device under test?) with ``tflops_per_watt_covers_reason`` (how that
    was decided), ``tflops_per_watt_not_judged`` (why a figure must not decide a verdict, e.g. the window's
    sustained TFLOPS was more than 15% from the timed median) and ``power_note`` saying why a figure is missing."""
    headline: dict[str, Energy] = {
        m.dtype: m.energy for m in measurements if m.energy is not None and m.energy.kind == "headline"
    }
    out: dict[str, dict[str, Any]] = {
        "tflops_per_watt": {},
        "tflops_per_watt_ci": {},
        "tflops_per_watt_quality": {},
        "tflops_per_watt_scope": {},
        "tflops_per_watt_net": {},
        "tflops_per_watt_covers": {},
        "tflops_per_watt_covers_reason": {},
        "tflops_per_watt_not_judged": {},
        "power": {},
    }
    missing = []
    for dtype in dtypes:
        energy = headline.get(dtype)
        value = energy.tflops_per_watt if energy is not None and energy.valid else None
        out["tflops_per_watt"][dtype] = value
        if value is None:
            if power.source is None:
                missing.append(dtype)
            elif energy is None:
                why = "" if dtype in peak_dtypes else " (no correct GEMM)"
                missing.append(f"{dtype}: no energy window ran{why}")
            else:
                missing.append(f"{dtype}: {energy.reason}")
            continue
        assert energy is not None  # a figure comes only from a valid window
        u = float(energy.uncertainty_rel or 0.0)
        if energy.quality != "Q0":  # an estimate has no interval to give
            out["tflops_per_watt_ci"][dtype] = [value / (1 + u), value / (1 - u) if u < 1 else value * 1e9]
        out["tflops_per_watt_quality"][dtype] = energy.quality
        out["tflops_per_watt_scope"][dtype] = energy.scope
        # whether the power includes the device under test: only True lets the judge decide on the figure
        out["tflops_per_watt_covers"][dtype] = energy.covers_device
        out["tflops_per_watt_covers_reason"][dtype] = energy.covers_reason or "coverage not recorded"
        out["tflops_per_watt_net"][dtype] = energy.tflops_per_watt_net
        if energy.judgeable is False:  # e.g. the window's sustained TFLOPS disagrees with the timed median
            out["tflops_per_watt_not_judged"][dtype] = energy.not_judged_reason or "marked not judgeable"
        out["power"][dtype] = {
            "case": energy.case,
            "avg_watts": energy.avg_watts,
            "tflops": energy.tflops,
            "window_s": energy.window_s,
            "source": energy.source,
        }
    note = None
    if power.source is None:
        note = "no power source was used: " + ("; ".join(power.notes) or "no power source")
    elif missing:
        note = "; ".join(missing)
    return {**out, "power_note": note}
