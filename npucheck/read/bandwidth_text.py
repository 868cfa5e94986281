"""How ``show`` writes memory-bandwidth cases: GB/s in the measurements table, and a table of each dtype's best
memory case beside the datasheet's bandwidth. Reads stored profiles only (no torch)."""

from __future__ import annotations

from npucheck.bandwidth import MEMORY_FAMILY, datasheet_bandwidth, peak_memory_cases
from npucheck.model import Measurement, ResultProfile

__all__ = ["BANDWIDTH_HEADERS", "BANDWIDTH_TITLE", "bandwidth_rows", "gbps_cells", "is_memory"]

BANDWIDTH_TITLE = "Memory bandwidth (best copy or triad; bytes read + written)"
BANDWIDTH_HEADERS = ["dtype", "peak GB/s", "95% CI", "case", "datasheet GB/s", "% of datasheet"]


def is_memory(m: Measurement) -> bool:
    return m.family == MEMORY_FAMILY


def fmt_gbps(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def gbps_cells(m: Measurement) -> tuple[str, str]:
    """(figure, interval) cells of a memory case, in GB/s with the unit, for the TFLOPS and CI columns."""
    if m.gbps is None:
        return "—", "—"
    ci = f"{fmt_gbps(m.gbps_ci[0])}–{fmt_gbps(m.gbps_ci[1])} GB/s" if m.gbps_ci else "—"
    return f"{fmt_gbps(m.gbps)} GB/s", ci


def bandwidth_rows(profile: ResultProfile) -> list[list[str]]:
    """One row per dtype with a correct memory case: its best GB/s, interval and case, the datasheet's bandwidth
    per device and the measured share of it (dashes where the datasheet has none)."""
    sheet = datasheet_bandwidth(profile.device.datasheet)
    rows = []
    for dtype, m in sorted(peak_memory_cases(profile.measurements or ()).items()):
        low_high = f"{fmt_gbps(m.gbps_ci[0])}–{fmt_gbps(m.gbps_ci[1])}" if m.gbps_ci else "—"
        share = f"{(m.gbps or 0.0) / sheet:.0%}" if sheet else "—"
        case = f"{m.kernel} {m.id.split('/', 2)[2]}"
        rows.append([dtype, fmt_gbps(m.gbps), low_high, case, fmt_gbps(sheet), share])
    return rows
