"""The roofline plot (``npucheck plot --kind roofline RESULT…``): every measured case placed by its arithmetic
intensity (FLOPs per byte of its operands and result, ``Measurement.bytes``) against its achieved TFLOPS, log-log,
under the measured ceilings, and the datasheet's dashed where the device has one.

* measured compute ceiling: the best correct floating-point GEMM case's median TFLOPS (int8 counts operations,
  not FLOPs: its cases are left off and counted in the title);
* measured bandwidth ceiling: the best correct memory case's median GB/s (copy or triad);
* the roofline: min(compute, bandwidth × intensity), drawn from both ceilings (solid), and from the datasheet's
  peak TFLOPS (the fastest measured dtype's) and memory bandwidth (dashed) when both are known.

A case without ``bytes`` (a file written before npucheck stored them) or with no FLOPs (a copy) has no
intensity: it is not placed, and the figure says how many were left out. No torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from npucheck.bandwidth import datasheet_bandwidth, intensity, peak_memory_cases
from npucheck.model import Measurement, ResultProfile
from npucheck.summary import peak_gemm_cases

__all__ = ["FAMILY_MARKERS", "roofline", "RooflineData", "roofline_data"]

FAMILY_MARKERS = {"gemm": "o", "cnn": "s", "rnn": "^", "lstm": "v", "gru": "D", "memory": "*", "attention": "P"}
_COLOURS = {
    "fp16": "tab:red",
    "bf16": "tab:blue",
    "fp32": "tab:green",
    "fp8_e4m3": "tab:purple",
    "fp8_e5m2": "tab:pink",
}
INTEGER_DTYPES = ("int8",)
"""Dtypes whose work is integer operations (TOPS): left off a roofline drawn in TFLOPS, and said so in the title."""


class RooflineData:
    """What one profile contributes: placed points, ceilings (measured and datasheet), cases left out."""

    def __init__(self, profile: ResultProfile):
        measured = [m for m in profile.measurements or () if m.status == "ok" and m.correct is not False]
        self.points: list[tuple[Measurement, float, float]] = []
        self.left_out = 0
        self.integer = 0
        for m in measured:
            if m.dtype in INTEGER_DTYPES:  # operations, not floating-point operations: not on a TFLOPS roofline
                self.integer += 1
                continue
            ai = intensity(m)
            if ai is None or m.tflops is None or not m.tflops > 0:
                self.left_out += 1
                continue
            self.points.append((m, ai, float(m.tflops)))
        gemm = peak_gemm_cases(m for m in measured if m.dtype not in INTEGER_DTYPES)
        best_gemm = max(gemm.values(), key=lambda m: float(m.tflops or 0.0), default=None)
        self.compute_tflops = float(best_gemm.tflops) if best_gemm is not None and best_gemm.tflops else None
        self.compute_case = best_gemm.id if best_gemm is not None else None
        memory = peak_memory_cases(measured)
        best_memory = max(memory.values(), key=lambda m: float(m.gbps or 0.0), default=None)
        self.bandwidth_gbps = float(best_memory.gbps) if best_memory is not None and best_memory.gbps else None
        self.bandwidth_case = best_memory.id if best_memory is not None else None
        sheet = profile.device.datasheet
        self.sheet_gbps = datasheet_bandwidth(sheet)
        peaks = [sheet.peak(dtype) for dtype in gemm] if sheet is not None else []
        known = [p for p in peaks if p is not None]
        self.sheet_tflops = max(known) if known else None
        self.device = profile.device.name or "device"


def roofline_data(profile: ResultProfile) -> RooflineData:
    return RooflineData(profile)


def _roof(ax: object, compute: float, gbps: float, span: tuple[float, float], style: str, label: str) -> None:
    ridge = compute / (gbps / 1e3)  # FLOPs/byte where the two ceilings meet (TB/s x FLOPs/byte = TFLOPS)
    low, high = min(span[0], ridge / 10), max(span[1], ridge * 10)
    xs = [low, ridge, high]
    ys = [gbps / 1e3 * low, compute, compute]
    ax.plot(xs, ys, style, color="k", linewidth=1.2, label=label)  # type: ignore[attr-defined]


def roofline(profiles: Sequence[ResultProfile]) -> Figure:
    """The roofline figure of one or more profiles (each profile's ceilings; markers by family, colour by dtype)."""
    from npucheck.read.plot import NothingToPlot  # plot registers this module: import here, not at the top

    data = [RooflineData(p) for p in profiles]
    points = [point for d in data for point in d.points]
    if not points:
        left = sum(d.left_out for d in data)
        raise NothingToPlot(
            "nothing to place on a roofline: no correct case stores the bytes of its operands "
            f"({left} cases without bytes or FLOPs; files from before npucheck stored bytes have none)"
        )
    fig = Figure(figsize=(8.5, 5.5))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    xs = [ai for _, ai, _ in points]
    span = (min(xs) / 3, max(xs) * 3)
    for index, d in enumerate(data):
        tag = f" ({d.device})" if len(data) > 1 else ""
        if d.compute_tflops is not None and d.bandwidth_gbps is not None:
            _roof(ax, d.compute_tflops, d.bandwidth_gbps, span, "-", f"measured roofline{tag}")
        elif d.compute_tflops is not None:
            ax.axhline(d.compute_tflops, color="k", linewidth=1.2, label=f"measured compute ceiling{tag}")
        if d.sheet_tflops is not None and d.sheet_gbps is not None:
            _roof(ax, d.sheet_tflops, d.sheet_gbps, span, "--", f"datasheet roofline{tag}")
        if d.compute_tflops is not None:
            ax.annotate(
                f"{d.compute_tflops:.3g} TFLOPS ({d.compute_case})",
                (span[1], d.compute_tflops),
                ha="right",
                va="bottom",
                fontsize=7,
            )
        if d.bandwidth_gbps is not None:
            x = span[0] * 1.5
            ax.annotate(
                f"{d.bandwidth_gbps:.3g} GB/s ({d.bandwidth_case})",
                (x, d.bandwidth_gbps / 1e3 * x),
                rotation=0,
                ha="left",
                va="bottom",
                fontsize=7,
            )
        del index
    for m, ai, tflops in points:
        ax.scatter(
            [ai],
            [tflops],
            marker=FAMILY_MARKERS.get(m.family or "", "x"),
            color=_COLOURS.get(m.dtype, "tab:purple"),
            s=40 if m.family != "memory" else 90,
            edgecolors="k",
            linewidths=0.4,
            zorder=3,
        )
    handles = list(ax.get_legend_handles_labels()[0])
    families = sorted({m.family or "" for m, _, _ in points})
    dtypes = [d for d in _COLOURS if any(m.dtype == d for m, _, _ in points)]
    handles += [
        Line2D([], [], marker=FAMILY_MARKERS.get(f, "x"), linestyle="", color="gray", label=f) for f in families
    ]
    handles += [Line2D([], [], marker="o", linestyle="", color=_COLOURS[d], label=d) for d in dtypes]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.set_xlabel("arithmetic intensity, FLOPs per byte of operands and result (log scale)")
    ax.set_ylabel("achieved TFLOPS (median, log scale)")
    left = sum(d.left_out for d in data)
    integer = sum(d.integer for d in data)
    notes = [f"{_count(left, 'case')} without an intensity (copies, files without bytes)"] if left else []
    notes += [f"{_count(integer, 'int8 case')} (TOPS, not TFLOPS)"] if integer else []
    note = f"\nnot placed: {'; '.join(notes)}" if notes else ""
    ax.set_title(f"Roofline: {', '.join(dict.fromkeys(d.device for d in data))}{note}", fontsize=9)
    ax.grid(True, which="both", linewidth=0.3)
    lows = [tflops for _, _, tflops in points]
    top = max([*lows, *(d.compute_tflops or 0 for d in data), *(d.sheet_tflops or 0 for d in data)])
    ax.set_ylim(min(lows) / 3, top * 3 if math.isfinite(top) else None)
    fig.tight_layout()
    return fig


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")
