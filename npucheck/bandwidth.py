"""Memory bandwidth figures and the roofline's inputs, from a result's measurements. No torch (a shared module).

A memory case (family ``memory``: ``copy`` and ``triad``, see ``npucheck.kernels.memory``) stores ``bytes`` (read
+ written per call) and ``gbps = bytes / median_s / 1e9`` with ``gbps_ci`` from the interval's slow and fast ends,
as TFLOPS is computed from FLOPs. The readers recompute both from the raw samples (``npucheck.evidence``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from npucheck.model import Measurement

__all__ = [
    "bandwidth_ceiling",
    "bandwidth_ceiling_reason",
    "bandwidth_figures",
    "BANDWIDTH_CEILING_FACTOR",
    "datasheet_bandwidth",
    "intensity",
    "MEMORY_FAMILY",
    "peak_memory_cases",
]

MEMORY_FAMILY = "memory"
BANDWIDTH_CEILING_FACTOR = 1.1
"""A measured bandwidth above this many times the datasheet's is a timing or byte-count error, never a result:
STREAM-like kernels reach 80-93% of HBM datasheet figures; 10% over leaves room for a datasheet that rounds down."""


def bandwidth_figures(nbytes: int | None, median_s: float, ci_low_s: float, ci_high_s: float) -> dict[str, Any]:
    """``gbps`` and ``gbps_ci`` of a case moving ``nbytes`` a call, from its median and interval (seconds a call):
    the slow end of the interval gives the low bandwidth. Empty without a byte count."""
    if not nbytes:
        return {}
    return {"gbps": nbytes / median_s / 1e9, "gbps_ci": (nbytes / ci_high_s / 1e9, nbytes / ci_low_s / 1e9)}


def peak_memory_cases(measurements: Iterable[Measurement]) -> dict[str, Measurement]:
    """Per dtype, the correct memory case with the best finite median GB/s (the summary's ``peak_gbps``)."""
    found: dict[str, Measurement] = {}
    for m in measurements:
        if m.family != MEMORY_FAMILY or m.status != "ok" or m.correct is False or m.gbps is None:
            continue
        best = found.get(m.dtype)
        if math.isfinite(m.gbps) and (best is None or m.gbps > (best.gbps or -1.0)):
            found[m.dtype] = m
    return found


def _sheet_value(datasheet: Any, key: str) -> float | None:
    if datasheet is None:
        return None
    value = datasheet.get(key) if isinstance(datasheet, Mapping) else getattr(datasheet, key, None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return None
    return float(value)


def datasheet_bandwidth(datasheet: Any) -> float | None:
    """The datasheet's memory bandwidth per torch device, GB/s (``device.datasheet.memory_bandwidth_gbps``)."""
    return _sheet_value(datasheet, "memory_bandwidth_gbps")


def bandwidth_ceiling(datasheet: Any) -> float | None:
    """The highest GB/s a correct measurement can reach: :data:`BANDWIDTH_CEILING_FACTOR` x the datasheet's."""
    sheet = datasheet_bandwidth(datasheet)
    return sheet * BANDWIDTH_CEILING_FACTOR if sheet is not None else None


def bandwidth_ceiling_reason(datasheet: Any, gbps: float | None) -> str | None:
    """Why ``gbps`` cannot be right (above the ceiling), or None."""
    ceiling = bandwidth_ceiling(datasheet)
    if ceiling is None or gbps is None or gbps <= ceiling:
        return None
    part = datasheet.get("part") if isinstance(datasheet, Mapping) else getattr(datasheet, "part", None)
    return (
        f"{gbps:.4g} GB/s exceeds {BANDWIDTH_CEILING_FACTOR:g} x the datasheet memory bandwidth "
        f"{datasheet_bandwidth(datasheet):.4g} GB/s of {part}: a timing or byte-count error, not a result"
    )


def intensity(m: Measurement) -> float | None:
    """A case's arithmetic intensity, FLOPs per byte of its operands and result; None without bytes or FLOPs."""
    if not m.bytes or not m.flops:
        return None
    return m.flops / m.bytes
