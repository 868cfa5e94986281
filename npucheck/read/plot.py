"""Plots of stored result profiles, built with matplotlib's object API on the Agg canvas (no pyplot state,
no display needed). Reads JSON only: no torch.

Kinds:
* ``sweep``: GEMM TFLOPS against FLOPs per call, one series per dtype, the median's 95% interval as error bars;
* ``efficiency``: TFLOPS/W against FLOPs per call and against TFLOPS (the efficiency curves), with the targets'
  TFLOPS/W thresholds drawn and labelled;
* ``trace``: power over the run with each energy window shaded, SM clock and temperature where recorded;
* ``compare``: several profiles' GEMM sweeps on the same axes, a legend naming device and date.

Every function takes :class:`npucheck.model.ResultProfile` objects or loaded schema-v2 dicts (converted once with
:func:`npucheck.model.as_profile`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from npucheck.atomic import write_atomic
from npucheck.errors import UsageError
from npucheck.model import Energy, Measurement, ResultProfile, as_profile

__all__ = [
    "build",
    "COLOURS",
    "compare",
    "DTYPE_ORDER",
    "efficiency",
    "FORMATS",
    "KINDS",
    "NothingToPlot",
    "ProfileLike",
    "render",
    "save",
    "sweep",
    "trace",
]


KINDS = ("sweep", "efficiency", "trace", "compare")
FORMATS = ("png", "svg", "pdf")
DTYPE_ORDER = ("fp16", "bf16", "fp32")
COLOURS = {"fp16": "tab:red", "bf16": "tab:blue", "fp32": "tab:green"}

ProfileLike = ResultProfile | Mapping[str, Any]
"""What the plots accept: a :class:`ResultProfile`, or a loaded schema-v2 dict."""


class NothingToPlot(UsageError):
    """The profiles hold no data for the plot asked for (e.g. no energy windows)."""


def _as_profiles(profiles: Sequence[ProfileLike]) -> list[ResultProfile]:
    return [as_profile(profile) for profile in profiles]


def _gemm_points(profile: ResultProfile, dtype: str) -> list[Measurement]:
    points = [
        m
        for m in profile.measurements
        if m.kernel == "gemm" and m.dtype == dtype and m.status == "ok" and m.correct is not False and m.tflops
    ]
    return sorted(points, key=lambda m: m.flops)


def _dtypes(profile: ResultProfile) -> list[str]:
    present: set[str] = {m.dtype for m in profile.measurements}
    return [d for d in DTYPE_ORDER if d in present] + sorted(present - set(DTYPE_ORDER))


def _title(fig: Figure, text: str, profiles: list[ResultProfile]) -> None:
    if len(profiles) == 1:
        p = profiles[0]
        text += f"\n{p.device.name} ({p.device.id}), {p.settings.suite} suite, {p.created_utc}"
    fig.suptitle(text, fontsize=11)


def _size_axes(ax: Any, ylabel: str) -> None:
    """Log-log axes of throughput against problem size (sizes span decades)."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("problem size (FLOPs per call)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def _tflops(m: Measurement) -> float:
    """The TFLOPS of a point of :func:`_gemm_points` (which has them)."""
    if m.tflops is None:
        raise TypeError(f"{m.id}: a measured case without its TFLOPS")
    return m.tflops


def _error_bar(m: Measurement) -> tuple[float, float]:
    """How far the TFLOPS interval reaches below and above the median (a measured GEMM always has one)."""
    if m.tflops_ci is None:
        raise TypeError(f"{m.id}: a measured case without its TFLOPS interval")
    return _tflops(m) - m.tflops_ci[0], m.tflops_ci[1] - _tflops(m)


def sweep(profiles: Sequence[ProfileLike]) -> Figure:
    loaded = _as_profiles(profiles)
    profile = loaded[0]
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    plotted = 0
    for dtype in _dtypes(profile):
        points = _gemm_points(profile, dtype)
        if not points:
            continue
        x = [m.flops for m in points]
        y = [_tflops(m) for m in points]
        low = [_error_bar(m)[0] for m in points]
        high = [_error_bar(m)[1] for m in points]
        ax.errorbar(x, y, yerr=[low, high], fmt="o", capsize=3, label=dtype, color=COLOURS.get(dtype))
        plotted += len(points)
    if not plotted:
        raise NothingToPlot("no correct GEMM measurement to plot")
    _size_axes(ax, "throughput (TFLOPS, median with 95% CI)")
    ax.legend(title="dtype")
    _title(fig, "GEMM throughput against problem size", loaded)
    return fig


def _windows(profile: ResultProfile) -> list[tuple[Measurement, Energy]]:
    """The measurements with a valid energy window that has a TFLOPS/W, each with its window."""
    return [
        (m, m.energy)
        for m in profile.measurements
        if m.energy is not None and m.energy.valid and m.energy.tflops_per_watt
    ]


def efficiency(profiles: Sequence[ProfileLike], thresholds: list[tuple[str, float]]) -> Figure:
    loaded = _as_profiles(profiles)
    profile = loaded[0]
    windows = _windows(profile)
    if not windows:
        raise NothingToPlot("no valid energy window in the profile (run with a power source: npucheck run --power ...)")
    fig = Figure(figsize=(11, 5), layout="constrained")
    by_size, by_speed = fig.subplots(1, 2)
    for dtype in _dtypes(profile):  # GEMM sizes as a curve per dtype
        points = sorted(
            ((m, e) for m, e in windows if m.dtype == dtype and m.kernel == "gemm"), key=lambda point: point[0].flops
        )
        if not points:
            continue
        per_watt = [e.tflops_per_watt for _, e in points]
        by_size.plot([m.flops for m, _ in points], per_watt, "o-", label=f"gemm {dtype}", color=COLOURS.get(dtype))
        by_speed.plot([e.tflops for _, e in points], per_watt, "o", label=f"gemm {dtype}", color=COLOURS.get(dtype))
    others = sorted({(m.kernel, m.dtype) for m, _ in windows if m.kernel != "gemm"})
    for index, (kernel, dtype) in enumerate(others):  # other kernels as single points, never joined to GEMM
        points = [(m, e) for m, e in windows if m.kernel == kernel and m.dtype == dtype]
        marker = "sD^v<>ph*"[index % 9]
        per_watt = [e.tflops_per_watt for _, e in points]
        by_size.plot(
            [m.flops for m, _ in points],
            per_watt,
            marker,
            label=f"{kernel} {dtype}",
            color=COLOURS.get(dtype),
            markerfacecolor="none",
        )
        by_speed.plot(
            [e.tflops for _, e in points],
            per_watt,
            marker,
            label=f"{kernel} {dtype}",
            color=COLOURS.get(dtype),
            markerfacecolor="none",
        )
    for ax in (by_size, by_speed):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("efficiency (TFLOPS/W, gross)")
        ax.grid(True, which="both", alpha=0.3)
        for name, value in thresholds:
            ax.axhline(value, color="black", linestyle="--", linewidth=1)
            ax.annotate(
                f"{name} > {value:g}", xy=(0.01, value), xycoords=("axes fraction", "data"), va="bottom", fontsize=8
            )
        ax.legend(title="kernel, dtype", fontsize=8)
    by_size.set_xlabel("problem size (FLOPs per call)")
    by_speed.set_xlabel("sustained throughput in the window (TFLOPS)")
    source = windows[0][1]
    _title(fig, f"Efficiency curves (power: {source.source}, scope {source.scope}, quality {source.quality})", loaded)
    return fig


def trace(profiles: Sequence[ProfileLike]) -> Figure:
    loaded = _as_profiles(profiles)
    profile = loaded[0]
    candidates = [(profile.power.idle, "idle")] + [(m.energy, m.id) for m in profile.measurements]
    windows = [(e, e.start_unix, name) for e, name in candidates if e is not None and e.trace and e.start_unix]
    if not windows:
        raise NothingToPlot("no power trace in the profile (run with a power source: npucheck run --power ...)")
    origin = min(start_unix for _, start_unix, _ in windows)
    fig = Figure(figsize=(11, 5), layout="constrained")
    ax = fig.add_subplot()
    clock_ax = None
    temp_points: list[tuple[float, float]] = []
    clock_points: list[tuple[float, float]] = []
    for index, (energy, start_unix, name) in enumerate(windows):
        start = start_unix - origin
        ax.axvspan(
            start,
            start + energy.window_s,
            alpha=0.12,
            color="tab:orange" if name != "idle" else "tab:gray",
            label="energy window" if index == 1 else ("idle" if name == "idle" else None),
        )
        points = energy.trace
        ax.plot(
            [start + t for t, _ in points],
            [w for _, w in points],
            ".-",
            color="tab:blue",
            markersize=2,
            linewidth=0.8,
            label="power" if index == 0 else None,
        )
        for t, context in energy.context_trace:
            if "sm_clock_mhz" in context:
                clock_points.append((start + t, context["sm_clock_mhz"]))
            if "temperature_c" in context:
                temp_points.append((start + t, context["temperature_c"]))
    ax.set_xlabel("time since the first window (s)")
    ax.set_ylabel(f"power (W, {windows[0][0].source}, scope {windows[0][0].scope})")
    ax.grid(True, alpha=0.3)
    if clock_points or temp_points:
        clock_ax = ax.twinx()
        if clock_points:
            clock_ax.plot(*zip(*clock_points), "s", color="tab:purple", markersize=3, label="SM clock (MHz)")
        if temp_points:
            clock_ax.plot(*zip(*temp_points), "^", color="tab:red", markersize=3, label="temperature (°C)")
        clock_ax.set_ylabel("SM clock (MHz) / temperature (°C)")
        clock_ax.legend(loc="upper right")
    ax.legend(loc="upper left")
    _title(fig, "Power over the run (energy windows shaded)", loaded)
    return fig


def compare(profiles: Sequence[ProfileLike], labels: list[str]) -> Figure:
    loaded = _as_profiles(profiles)
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    markers = "osD^v<>ph*"
    plotted = 0
    for index, (profile, name) in enumerate(zip(loaded, labels)):
        for dtype in _dtypes(profile):
            points = _gemm_points(profile, dtype)
            if points:
                ax.plot(
                    [m.flops for m in points],
                    [_tflops(m) for m in points],
                    marker=markers[index % 10],
                    linestyle="-",
                    color=COLOURS.get(dtype),
                    alpha=0.85,
                    label=f"{dtype} — {name}",
                )
                plotted += 1
    if not plotted:
        raise NothingToPlot("no correct GEMM measurement in any profile")
    _size_axes(ax, "throughput (TFLOPS, median)")
    ax.legend(fontsize=8)
    _title(fig, f"GEMM throughput of {len(loaded)} profile{'' if len(loaded) == 1 else 's'}", loaded)
    return fig


def build(
    kind: str, profiles: Sequence[ProfileLike], labels: list[str], thresholds: list[tuple[str, float]] | None = None
) -> Figure:
    if kind not in KINDS:
        raise UsageError(f"unknown plot kind {kind!r} (known: {', '.join(KINDS)})")
    loaded = _as_profiles(profiles)
    if kind == "sweep":
        return sweep(loaded)
    if kind == "efficiency":
        return efficiency(loaded, thresholds or [])
    if kind == "trace":
        return trace(loaded)
    return compare(loaded, labels)


def render(fig: Figure, fmt: str = "png") -> bytes:
    """The figure as PNG, SVG or PDF bytes."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120)
    return buffer.getvalue()


def save(fig: Figure, path: Path) -> Path:
    """Write atomically (temporary file, then rename) in the format the extension names."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UsageError(f"{path}: the plot format comes from the extension: .png, .svg or .pdf")
    return write_atomic(path, render(fig, fmt))
