"""Plots of stored result profiles, built with matplotlib's object API on the Agg canvas (no pyplot state,
no display needed). Reads JSON only: no torch.

Kinds:
* ``sweep``: GEMM TFLOPS against FLOPs per call, one series per dtype, the median's 95% interval as error bars;
* ``efficiency``: TFLOPS/W against FLOPs per call and against TFLOPS (the efficiency curves), with the targets'
  TFLOPS/W thresholds drawn and labelled;
* ``trace``: power over the run with each energy window shaded, SM clock and temperature where recorded;
* ``compare``: several profiles' GEMM sweeps on the same axes, a legend naming device and date.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from npucheck.errors import UsageError
from npucheck.store import write_atomic

KINDS = ("sweep", "efficiency", "trace", "compare")
FORMATS = ("png", "svg", "pdf")
DTYPE_ORDER = ("fp16", "bf16", "fp32")
COLOURS = {"fp16": "tab:red", "bf16": "tab:blue", "fp32": "tab:green"}


class NothingToPlot(UsageError):
    """The profiles hold no data for the plot asked for (e.g. no energy windows)."""


def _gemm_points(profile: dict[str, Any], dtype: str) -> list[dict[str, Any]]:
    points = [m for m in profile.get("measurements") or [] if m["kernel"] == "gemm" and m["dtype"] == dtype
              and m["status"] == "ok" and m.get("correct") is not False and m.get("tflops")]
    return sorted(points, key=lambda m: m["flops"])


def _dtypes(profile: dict[str, Any]) -> list[str]:
    present = {m["dtype"] for m in profile.get("measurements") or []}
    return [d for d in DTYPE_ORDER if d in present] + sorted(present - set(DTYPE_ORDER))


def _title(fig: Figure, text: str, profiles: list[dict[str, Any]]) -> None:
    if len(profiles) == 1:
        p = profiles[0]
        text += f"\n{p['device']['name']} ({p['device']['id']}), {p['settings'].get('suite')} suite, {p['created_utc']}"
    fig.suptitle(text, fontsize=11)


def _size_axes(ax: Any, ylabel: str) -> None:
    """Log-log axes of throughput against problem size (sizes span decades)."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("problem size (FLOPs per call)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def sweep(profiles: list[dict[str, Any]]) -> Figure:
    profile = profiles[0]
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    plotted = 0
    for dtype in _dtypes(profile):
        points = _gemm_points(profile, dtype)
        if not points:
            continue
        x = [m["flops"] for m in points]
        y = [m["tflops"] for m in points]
        low = [m["tflops"] - m["tflops_ci"][0] for m in points]
        high = [m["tflops_ci"][1] - m["tflops"] for m in points]
        ax.errorbar(x, y, yerr=[low, high], fmt="o", capsize=3, label=dtype, color=COLOURS.get(dtype))
        plotted += len(points)
    if not plotted:
        raise NothingToPlot("no correct GEMM measurement to plot")
    _size_axes(ax, "throughput (TFLOPS, median with 95% CI)")
    ax.legend(title="dtype")
    _title(fig, "GEMM throughput against problem size", profiles)
    return fig


def _windows(profile: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in profile.get("measurements") or []
            if (m.get("energy") or {}).get("valid") and m["energy"].get("tflops_per_watt")]


def efficiency(profiles: list[dict[str, Any]], thresholds: list[tuple[str, float]]) -> Figure:
    profile = profiles[0]
    windows = _windows(profile)
    if not windows:
        raise NothingToPlot("no valid energy window in the profile (run with a power source: npucheck run --power ...)")
    fig = Figure(figsize=(11, 5), layout="constrained")
    by_size, by_speed = fig.subplots(1, 2)
    for dtype in _dtypes(profile):  # GEMM sizes as a curve per dtype
        points = sorted((m for m in windows if m["dtype"] == dtype and m["kernel"] == "gemm"),
                        key=lambda m: m["flops"])
        if not points:
            continue
        per_watt = [m["energy"]["tflops_per_watt"] for m in points]
        by_size.plot([m["flops"] for m in points], per_watt, "o-", label=f"gemm {dtype}", color=COLOURS.get(dtype))
        by_speed.plot([m["energy"]["tflops"] for m in points], per_watt, "o", label=f"gemm {dtype}",
                      color=COLOURS.get(dtype))
    others = sorted({(m["kernel"], m["dtype"]) for m in windows if m["kernel"] != "gemm"})
    for index, (kernel, dtype) in enumerate(others):  # other kernels as single points, never joined to GEMM
        points = [m for m in windows if m["kernel"] == kernel and m["dtype"] == dtype]
        marker = "sD^v<>ph*"[index % 9]
        per_watt = [m["energy"]["tflops_per_watt"] for m in points]
        by_size.plot([m["flops"] for m in points], per_watt, marker, label=f"{kernel} {dtype}",
                     color=COLOURS.get(dtype), markerfacecolor="none")
        by_speed.plot([m["energy"]["tflops"] for m in points], per_watt, marker, label=f"{kernel} {dtype}",
                      color=COLOURS.get(dtype), markerfacecolor="none")
    for ax in (by_size, by_speed):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("efficiency (TFLOPS/W, gross)")
        ax.grid(True, which="both", alpha=0.3)
        for name, value in thresholds:
            ax.axhline(value, color="black", linestyle="--", linewidth=1)
            ax.annotate(f"{name} > {value:g}", xy=(0.01, value), xycoords=("axes fraction", "data"),
                        va="bottom", fontsize=8)
        ax.legend(title="kernel, dtype", fontsize=8)
    by_size.set_xlabel("problem size (FLOPs per call)")
    by_speed.set_xlabel("sustained throughput in the window (TFLOPS)")
    source = windows[0]["energy"]
    _title(fig, f"Efficiency curves (power: {source['source']}, scope {source['scope']}, quality "
                f"{source['quality']})", profiles)
    return fig


def trace(profiles: list[dict[str, Any]]) -> Figure:
    profile = profiles[0]
    windows = [((profile.get("power") or {}).get("idle"), "idle")] + [
        (m.get("energy"), m["id"]) for m in profile.get("measurements") or []]
    windows = [(e, name) for e, name in windows if e and e.get("trace") and e.get("start_unix")]
    if not windows:
        raise NothingToPlot("no power trace in the profile (run with a power source: npucheck run --power ...)")
    origin = min(e["start_unix"] for e, _ in windows)
    fig = Figure(figsize=(11, 5), layout="constrained")
    ax = fig.add_subplot()
    clock_ax = None
    temp_points: list[tuple[float, float]] = []
    clock_points: list[tuple[float, float]] = []
    for index, (energy, name) in enumerate(windows):
        start = energy["start_unix"] - origin
        ax.axvspan(start, start + energy.get("window_s", 0), alpha=0.12, color="tab:orange" if name != "idle"
                   else "tab:gray", label="energy window" if index == 1 else ("idle" if name == "idle" else None))
        points = energy["trace"]
        ax.plot([start + t for t, _ in points], [w for _, w in points], ".-", color="tab:blue", markersize=2,
                linewidth=0.8, label="power" if index == 0 else None)
        for t, context in energy.get("context_trace") or []:
            if "sm_clock_mhz" in context:
                clock_points.append((start + t, context["sm_clock_mhz"]))
            if "temperature_c" in context:
                temp_points.append((start + t, context["temperature_c"]))
    ax.set_xlabel("time since the first window (s)")
    ax.set_ylabel(f"power (W, {windows[0][0]['source']}, scope {windows[0][0]['scope']})")
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
    _title(fig, "Power over the run (energy windows shaded)", profiles)
    return fig


def compare(profiles: list[dict[str, Any]], labels: list[str]) -> Figure:
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    markers = "osD^v<>ph*"
    plotted = 0
    for index, (profile, name) in enumerate(zip(profiles, labels)):
        for dtype in _dtypes(profile):
            points = _gemm_points(profile, dtype)
            if points:
                ax.plot([m["flops"] for m in points], [m["tflops"] for m in points], marker=markers[index % 10],
                        linestyle="-", color=COLOURS.get(dtype), alpha=0.85, label=f"{dtype} — {name}")
                plotted += 1
    if not plotted:
        raise NothingToPlot("no correct GEMM measurement in any profile")
    _size_axes(ax, "throughput (TFLOPS, median)")
    ax.legend(fontsize=8)
    _title(fig, f"GEMM throughput of {len(profiles)} profile{'' if len(profiles) == 1 else 's'}", profiles)
    return fig


def build(kind: str, profiles: list[dict[str, Any]], labels: list[str],
          thresholds: list[tuple[str, float]] | None = None) -> Figure:
    if kind == "sweep":
        return sweep(profiles)
    if kind == "efficiency":
        return efficiency(profiles, thresholds or [])
    if kind == "trace":
        return trace(profiles)
    if kind == "compare":
        return compare(profiles, labels)
    raise UsageError(f"unknown plot kind {kind!r} (known: {', '.join(KINDS)})")


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
