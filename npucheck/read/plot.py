"""Plots of stored result profiles, built with matplotlib's object API on the Agg canvas (no pyplot state,
no display needed). Reads JSON only: no torch.

Kinds, and how many profiles each takes (:data:`PROFILE_COUNTS`, checked by :func:`check_count`):
* ``sweep`` (exactly one): GEMM TFLOPS against the matrix size M·N·K, colour per dtype, marker per shape set
  (square, deepbench-*, matrix-vector shapes apart), the median's 95% interval as error bars, skipped and failed
  sizes as hollow markers at the size they would have had (at the series' last measured height, dotted);
* ``efficiency`` (exactly one): TFLOPS/W against FLOPs per call and against TFLOPS (the efficiency curves), with
  the targets' TFLOPS/W thresholds drawn and labelled;
* ``trace`` (exactly one): power over the run with each energy window shaded and labelled (case and window kind;
  numbered with a key below when there are many), SM clock and temperature where recorded;
* ``compare`` (two or more): the profiles' GEMM sweeps on the same axes, a marker per profile, each profile's
  points nudged sideways (dodge) so that equal points stay visible, a legend naming device and date;
* ``fleet`` (exactly one fleet directory, analysed by :func:`npucheck.read.fleet.analyse`): one panel per metric
  (peak fp16, bf16, fp32, fp16 TFLOPS/W) with each device's value and 95% interval, devices side by side by group,
  each group's median and its tolerance threshold (median × (1 − tolerance)) drawn, flagged devices in red and
  labelled; device labels are thinned when there are many (:data:`FLEET_LABELLED_DEVICES`).

Every function takes :class:`npucheck.model.ResultProfile` objects (used as given) or loaded schema-v2 dicts (their
figures re-derived from their raw evidence first, :func:`npucheck.read.verified.as_verified`: an edited case is an
error, never plotted).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from npucheck.atomic import write_atomic
from npucheck.errors import UsageError
from npucheck.model import Energy, Measurement, ResultProfile
from npucheck.read.verified import as_verified

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "build",
    "COLOURS",
    "compare",
    "count_rule",
    "DTYPE_ORDER",
    "efficiency",
    "fleet",
    "FLEET_ANNOTATED_FLAGS",
    "FLEET_LABELLED_DEVICES",
    "FLEET_MAX_SIZE",
    "FLEET_METRICS",
    "FORMATS",
    "KINDS",
    "check_count",
    "NothingToPlot",
    "PROFILE_COUNTS",
    "ProfileLike",
    "render",
    "save",
    "SHAPE_MARKERS",
    "sweep",
    "power_caps",
    "trace",
]


KINDS = ("sweep", "efficiency", "trace", "compare", "fleet", "roofline", "power-caps")
FORMATS = ("png", "svg", "pdf")
DTYPE_ORDER = ("fp16", "bf16", "fp32")
COLOURS = {"fp16": "tab:red", "bf16": "tab:blue", "fp32": "tab:green"}
SHAPE_MARKERS = {
    "square": "o",
    "deepbench-train": "s",
    "deepbench-server": "D",
    "deepbench-device": "^",
    "matrix-vector": "v",
}
"""The sweep's marker of each shape set (a set not named here gets one of ``_MORE_MARKERS``)."""
_MORE_MARKERS = "P*hX<>p"
PROFILE_MARKERS = "osD^v<>ph*"
SKIPPED_LABEL = "skipped (see reason)"
FAILED_LABEL = "failed: error or wrong result (see reason)"
_UNMEASURED = {SKIPPED_LABEL: "tab:gray", FAILED_LABEL: "k"}
SIZE_LABEL = "matrix size M·N·K (log scale)"
TRACE_LABELLED_WINDOWS = 12
"""Up to this many windows, the trace writes each window's label in it; beyond, it numbers them with a key."""

PROFILE_COUNTS: dict[str, tuple[int, int | None]] = {
    "sweep": (1, 1),
    "efficiency": (1, 1),
    "trace": (1, 1),
    "compare": (2, None),
    "fleet": (1, 1),
    "roofline": (1, None),
    "power-caps": (1, 1),
}
"""How many profiles each kind takes: (least, most; None = no limit). One rule for the command and the library.
(``fleet`` counts fleet directories, not profiles.)"""

ProfileLike = ResultProfile | Mapping[str, Any]
"""What the plots accept: a :class:`ResultProfile` (used as given), or a loaded schema-v2 dict (its figures
re-derived from its raw evidence first: :func:`npucheck.read.verified.as_verified`)."""


class NothingToPlot(UsageError):
    """The profiles hold no data for the plot asked for (e.g. no energy windows)."""


def _as_profiles(profiles: Sequence[ProfileLike]) -> list[ResultProfile]:
    return [as_verified(profile) for profile in profiles]


def count_rule(kind: str) -> str:
    """The rule of :data:`PROFILE_COUNTS` for ``kind`` in words, e.g. "exactly 1 result"."""
    least, most = PROFILE_COUNTS[kind]
    if kind == "fleet":
        return "exactly 1 fleet directory"
    if least == most:
        return f"exactly {least} result{'' if least == 1 else 's'}"
    if most is None:
        return f"{least} or more results"
    return f"{least} to {most} results"


def check_count(kind: str, count: int) -> None:
    """Raise :class:`UsageError` (one line) unless ``kind`` takes ``count`` profiles."""
    if kind not in KINDS:
        raise UsageError(f"unknown plot kind {kind!r} (known: {', '.join(KINDS)})")
    least, most = PROFILE_COUNTS[kind]
    if count < least or (most is not None and count > most):
        hint = "; use --kind compare to overlay several" if kind not in ("compare", "fleet") else ""
        raise UsageError(f"--kind {kind} takes {count_rule(kind)}, got {count}{hint}")


def _gemm_points(profile: ResultProfile, dtype: str) -> list[Measurement]:
    points = [
        m
        for m in profile.measurements
        if m.kernel == "gemm" and m.dtype == dtype and m.status == "ok" and m.correct is not False and m.tflops
    ]
    return sorted(points, key=_mnk)


def _mnk(m: Measurement) -> float:
    """The matrix size M·N·K of a GEMM case (FLOPs / 2 when its shape lacks a dimension)."""
    try:
        return float(int(m.shape["m"]) * int(m.shape["n"]) * int(m.shape["k"]))
    except (KeyError, TypeError, ValueError):
        return m.flops / 2


def _shape_group(m: Measurement) -> str:
    """The sweep's marker group: the shape set, with matrix-vector shapes (M or N of 1) apart."""
    name = m.shape_set or "other"
    if 1 in (m.shape.get("m"), m.shape.get("n")):
        return "matrix-vector" if name in ("matrix-vector", "gemv", "other") else f"{name}, matrix-vector"
    return name


def _group_markers(groups: list[str]) -> dict[str, str]:
    markers, spare = {}, iter(_MORE_MARKERS * 4)
    for group in groups:
        markers[group] = SHAPE_MARKERS.get(group) or next(spare, "o")
    return markers


def _group_order(group: str) -> tuple[int, str]:
    known = list(SHAPE_MARKERS)
    return (known.index(group) if group in known else len(known), group)


def _dtypes(profile: ResultProfile) -> list[str]:
    present: set[str] = {m.dtype for m in profile.measurements}
    return [d for d in DTYPE_ORDER if d in present] + sorted(present - set(DTYPE_ORDER))


def _title(fig: Figure, text: str, profiles: list[ResultProfile]) -> None:
    if len(profiles) == 1:
        p = profiles[0]
        text += f"\n{p.device.name} ({p.device.id}), {p.settings.suite} suite, {p.created_utc}"
    fig.suptitle(text, fontsize=11)


def _size_axes(ax: Any, ylabel: str) -> None:
    """Log-log axes of throughput against matrix size (sizes span decades)."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(SIZE_LABEL)
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
    check_count("sweep", len(loaded))
    profile = loaded[0]
    fig = Figure(figsize=(8.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    gemms = [m for m in profile.measurements if m.kernel == "gemm"]
    markers = _group_markers(sorted({_shape_group(m) for m in gemms}, key=_group_order))
    plotted = 0
    for dtype in _dtypes(profile):
        points = _gemm_points(profile, dtype)
        for group in markers:
            series = [m for m in points if _shape_group(m) == group]
            if not series:
                continue
            ax.errorbar(
                [_mnk(m) for m in series],
                [_tflops(m) for m in series],
                yerr=[[_error_bar(m)[0] for m in series], [_error_bar(m)[1] for m in series]],
                fmt=markers[group],
                linestyle="-" if group == "square" else "none",
                capsize=3,
                label=f"{dtype}, {group}",
                color=COLOURS.get(dtype),
            )
            plotted += len(series)
    if not plotted:
        raise NothingToPlot("no correct GEMM measurement to plot")
    proxies = _unmeasured(ax, profile, markers)
    _size_axes(ax, "throughput (TFLOPS, median with 95% CI)")
    handles, names = ax.get_legend_handles_labels()
    ax.legend([*handles, *proxies], names + [p.get_label() for p in proxies], title="dtype, shape set", fontsize=8)
    _title(fig, "GEMM throughput against matrix size", loaded)
    return fig


def _unmeasured(ax: Any, profile: ResultProfile, markers: dict[str, str]) -> list[Line2D]:
    """Skipped and failed sizes as hollow markers at the size they would have had, so that a curve that stops says
    why: at the height of the series' last measured size before them (joined by a dotted line), or on a baseline
    near the axis' bottom when the series has no measured size. Returns the legend's proxies (one per kind)."""
    baseline = ax.get_xaxis_transform()  # x in data, y in axes fraction
    proxies: dict[str, Line2D] = {}
    for dtype in _dtypes(profile):
        measured = _gemm_points(profile, dtype)
        gemms = [m for m in profile.measurements if m.kernel == "gemm" and m.dtype == dtype]
        kinds = (
            ([m for m in gemms if m.status == "skipped"], SKIPPED_LABEL, COLOURS.get(dtype, "tab:gray")),
            ([m for m in gemms if m.status == "error" or (m.status == "ok" and m.correct is False)], FAILED_LABEL, "k"),
        )
        for cases, label, colour in kinds:
            for group, marker in markers.items():
                x = sorted(_mnk(m) for m in cases if _shape_group(m) == group)
                if not x:
                    continue
                proxies.setdefault(
                    label,
                    Line2D(
                        [],
                        [],
                        marker=marker,
                        linestyle="none",
                        markerfacecolor="none",
                        color=_UNMEASURED[label],
                        label=label,
                    ),
                )
                style = {"marker": marker, "markerfacecolor": "none", "markersize": 7, "color": colour}
                series = [(_mnk(m), _tflops(m)) for m in measured if _shape_group(m) == group]
                if not series:
                    ax.plot(x, [0.03] * len(x), linestyle="none", transform=baseline, clip_on=False, **style)
                    continue
                for size in x:
                    before = [point for point in series if point[0] <= size] or series[:1]
                    last_x, last_y = before[-1]
                    ax.plot([last_x, size], [last_y, last_y], linestyle=":", markevery=[1], linewidth=1, **style)
    return [proxies[label] for label in (SKIPPED_LABEL, FAILED_LABEL) if label in proxies]


def _windows(profile: ResultProfile) -> list[tuple[Measurement, Energy]]:
    """The measurements with a valid energy window that has a TFLOPS/W, each with its window."""
    return [
        (m, m.energy)
        for m in profile.measurements
        if m.energy is not None and m.energy.valid and m.energy.tflops_per_watt
    ]


def efficiency(profiles: Sequence[ProfileLike], thresholds: list[tuple[str, float]]) -> Figure:
    loaded = _as_profiles(profiles)
    check_count("efficiency", len(loaded))
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


def window_label(m: Measurement | None, energy: Energy) -> str:
    """How the trace names a window: kernel, dtype, size and window kind, e.g. "gemm fp16 4096³ headline"."""
    if m is None:
        return "idle"
    shape = m.shape
    if m.kernel == "gemm" and all(isinstance(shape.get(d), int) for d in "mnk"):
        size = f"{shape['m']}³" if shape["m"] == shape["n"] == shape["k"] else f"{shape['m']}×{shape['n']}×{shape['k']}"
    else:
        size = m.id.split("/", 2)[-1]
    return f"{m.kernel} {m.dtype} {size} {energy.kind or 'window'}"


def trace(profiles: Sequence[ProfileLike]) -> Figure:
    loaded = _as_profiles(profiles)
    check_count("trace", len(loaded))
    profile = loaded[0]
    candidates: list[tuple[Energy | None, Measurement | None]] = [(profile.power.idle, None)]
    candidates += [(m.energy, m) for m in profile.measurements]
    windows = [
        (e, e.start_unix, window_label(m, e)) for e, m in candidates if e is not None and e.trace and e.start_unix
    ]
    if not windows:
        raise NothingToPlot("no power trace in the profile (run with a power source: npucheck run --power ...)")
    origin = min(start_unix for _, start_unix, _ in windows)
    numbered = len(windows) > TRACE_LABELLED_WINDOWS
    fig = Figure(figsize=(11, 5.5 + (0.16 * ((len(windows) + 3) // 4) if numbered else 0)), layout="constrained")
    ax = fig.add_subplot()
    clock_ax = None
    temp_points: list[tuple[float, float]] = []
    clock_points: list[tuple[float, float]] = []
    top = ax.get_xaxis_transform()  # x in data, y in axes fraction
    key: list[str] = []
    for index, (energy, start_unix, name) in enumerate(windows):
        start = start_unix - origin
        ax.axvspan(
            start,
            start + energy.window_s,
            alpha=0.12,
            color="tab:orange" if name != "idle" else "tab:gray",
            label="energy window" if index == 1 else ("idle" if name == "idle" else None),
        )
        middle = start + energy.window_s / 2
        if numbered:  # a number in the window, its label in the key below
            key.append(f"{index + 1}: {name}")
            ax.text(middle, 0.98 - 0.04 * (index % 2), str(index + 1), transform=top, ha="center", va="top", fontsize=7)
        else:  # the label itself, written upwards inside the window
            ax.text(middle, 0.97, name, transform=top, rotation=90, ha="center", va="top", fontsize=7, clip_on=True)
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
    ax.set_ylim(top=ax.get_ylim()[1] * 1.25)  # headroom for the window labels above the trace
    if clock_points or temp_points:
        clock_ax = ax.twinx()
        if clock_points:
            clock_ax.plot(*zip(*clock_points), "s", color="tab:purple", markersize=3, label="SM clock (MHz)")
        if temp_points:
            clock_ax.plot(*zip(*temp_points), "^", color="tab:red", markersize=3, label="temperature (°C)")
        clock_ax.set_ylabel("SM clock (MHz) / temperature (°C)")
        clock_ax.legend(loc="lower right")
    ax.legend(loc="lower left")
    if key:
        fig.legend(
            [Rectangle((0, 0), 0, 0, visible=False)] * len(key),
            key,
            loc="outside lower center",
            ncols=4,
            fontsize=7,
            handlelength=0,
            handletextpad=0,
            title="energy windows, by number",
            title_fontsize=8,
        )
    _title(fig, "Power over the run (energy windows shaded and labelled)", loaded)
    return fig


def _dodge(index: int, count: int) -> float:
    """The factor by which the ``index``-th of ``count`` profiles' sizes are nudged on the log axis (10% apart)."""
    return float(10 ** ((index - (count - 1) / 2) * 0.04))


def compare(profiles: Sequence[ProfileLike], labels: list[str]) -> Figure:
    loaded = _as_profiles(profiles)
    check_count("compare", len(loaded))
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    plotted = 0
    for index, (profile, name) in enumerate(zip(loaded, labels)):
        marker = PROFILE_MARKERS[index % len(PROFILE_MARKERS)]
        factor = _dodge(index, len(loaded))
        for dtype in _dtypes(profile):
            points = _gemm_points(profile, dtype)
            if points:
                ax.plot(
                    [_mnk(m) * factor for m in points],
                    [_tflops(m) for m in points],
                    marker=marker,
                    markerfacecolor="none" if index % 2 else COLOURS.get(dtype),
                    markersize=7,
                    linestyle=("-", "--", ":", "-.")[index % 4],
                    color=COLOURS.get(dtype),
                    alpha=0.8,
                    label=f"{dtype} — {name}",
                )
                plotted += 1
    if not plotted:
        raise NothingToPlot("no correct GEMM measurement in any profile")
    _size_axes(ax, "throughput (TFLOPS, median)")
    ax.set_xlabel(SIZE_LABEL + "; each profile's points nudged sideways to stay visible")
    ax.legend(fontsize=8, title="dtype — profile (marker)")
    _title(fig, f"GEMM throughput of {len(loaded)} profiles", loaded)
    return fig


FLEET_METRICS = (
    ("peak_fp16_tflops", "peak_fp16_ci_low", "peak_fp16_ci_high", "peak fp16 (TFLOPS)"),
    ("peak_bf16_tflops", "peak_bf16_ci_low", "peak_bf16_ci_high", "peak bf16 (TFLOPS)"),
    ("peak_fp32_tflops", "peak_fp32_ci_low", "peak_fp32_ci_high", "peak fp32 (TFLOPS)"),
    ("fp16_tflops_per_watt", "fp16_tflops_per_watt_ci_low", "fp16_tflops_per_watt_ci_high", "fp16 TFLOPS/W"),
)
"""The fleet plot's panels: (column, interval low, interval high, axis label); a panel is drawn when some device
has a value."""
FLEET_LABELLED_DEVICES = 60
"""Up to this many devices, every device is named on the x axis; beyond, about 40 names are shown, evenly spaced."""
FLEET_ANNOTATED_FLAGS = 25
"""Up to this many flagged devices are named beside their point in each panel; the rest are counted in a note."""
FLEET_MAX_SIZE = (24.0, 14.0)
"""The fleet figure's largest size in inches (width, height), whatever the number of devices."""
_GROUP_GAP = 1.5
_FLAG_COLOUR, _DEVICE_COLOUR = "tab:red", "tab:blue"


def _numbers(frame: pd.DataFrame, column: str) -> Any:
    """A frame column as floats (NaN where missing; an absent column is all NaN)."""
    import numpy as np
    import pandas as pd

    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _flags(frame: pd.DataFrame, column: str) -> Any:
    import numpy as np

    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return np.array(
        [value is True or (value is not None and value == value and bool(value)) for value in frame[column]]
    )


def _short(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[: max(1, most - 1)] + "…"


def _natural(text: str) -> list[tuple[int, Any]]:
    """Sort key that puts ``vm-2-cpu`` before ``vm-10-cpu``."""
    import re

    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def fleet(analysed: pd.DataFrame, tolerance: float = 0.10) -> Figure:
    """Each device's figures against its group: what :func:`npucheck.read.fleet.analyse` returns, drawn.

    Args:
        analysed: the analysed device frame (``group``, per metric M: M, its interval, ``M_flag``, ``M_ratio``);
            each device is named by :func:`npucheck.read.fleet.device_label` (its profile's stem).
        tolerance: the tolerance the frame was analysed with; the threshold line is group median × (1 − tolerance).

    Raises:
        NothingToPlot: no device has a value for any metric.
    """
    import numpy as np

    from npucheck.read.fleet import device_label

    if analysed is None or len(analysed) == 0:
        raise NothingToPlot("the fleet has no devices")
    panels = [spec for spec in FLEET_METRICS if np.isfinite(_numbers(analysed, spec[0])).any()]
    if not panels:
        raise NothingToPlot("no device of the fleet has a measured peak or TFLOPS/W (every member missing or failed?)")
    frame = analysed.assign(
        _group=[str(g) if g is not None and g == g else "—" for g in analysed.get("group", [None] * len(analysed))],
        _key=[device_label(row) for row in analysed.to_dict(orient="records")],
    )
    frame = frame.iloc[  # groups by name, devices without a profile last; in a group by name (rank 2 before 10)
        sorted(
            range(len(frame)),
            key=lambda i: (
                frame["_group"].iloc[i] == "no profile",
                frame["_group"].iloc[i],
                _natural(frame["_key"].iloc[i]),
            ),
        )
    ]
    groups = list(frame["_group"])
    count = len(frame)
    xs: list[float] = []
    x = -1.0
    for index, group in enumerate(groups):
        x += 1 + (_GROUP_GAP if index and group != groups[index - 1] else 0)
        xs.append(x)
    positions = np.array(xs)
    named_all = count <= FLEET_LABELLED_DEVICES
    width = min(FLEET_MAX_SIZE[0], max(8.0, 3.0 + 0.22 * count))
    height = min(FLEET_MAX_SIZE[1], 1.6 + 2.8 * len(panels) + (1.4 if named_all else 0.6))
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    marker_size = 5.0 if count <= 60 else 3.0 if count <= 300 else 1.5
    caps = 2 if count <= 60 else 0
    spans = _group_spans(groups, positions)
    keys = list(frame["_key"])
    for ax, (column, low_column, high_column, label) in zip(axes, panels):
        values = _numbers(frame, column)
        low, high = _numbers(frame, low_column), _numbers(frame, high_column)
        flagged = _flags(frame, f"{column}_flag") & np.isfinite(values)
        below = np.where(np.isfinite(low), np.clip(values - low, 0, None), 0.0)
        above = np.where(np.isfinite(high), np.clip(high - values, 0, None), 0.0)
        for mask, colour, name in (
            (np.isfinite(values) & ~flagged, _DEVICE_COLOUR, "device (median, 95% CI)"),
            (flagged, _FLAG_COLOUR, f"flagged: more than {tolerance:.0%} below its group"),
        ):
            if mask.any():
                ax.errorbar(
                    positions[mask],
                    values[mask],
                    yerr=[below[mask], above[mask]],
                    fmt="o",
                    markersize=marker_size,
                    capsize=caps,
                    elinewidth=0.8,
                    color=colour,
                    label=name,
                )
        absent = ~np.isfinite(values)
        if absent.any():
            ax.plot(
                positions[absent],
                [0.03] * int(absent.sum()),
                "x",
                color="tab:gray",
                markersize=marker_size + 1,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                label="no value (missing, error or not measured)",
            )
        drawn = False
        for index, (_group, start, end) in enumerate(spans):
            if index:
                ax.axvline(start - (1 + _GROUP_GAP) / 2, color="tab:gray", linewidth=0.6, alpha=0.5)
            inside = (positions >= start) & (positions <= end) & np.isfinite(values)
            if not inside.any():
                continue
            median = float(np.median(values[inside]))
            ax.hlines(
                median,
                start - 0.45,
                end + 0.45,
                color="black",
                linewidth=1.2,
                label=None if drawn else "group median",
            )
            ax.hlines(
                median * (1 - tolerance),
                start - 0.45,
                end + 0.45,
                color=_FLAG_COLOUR,
                linestyle="--",
                linewidth=1,
                label=None if drawn else f"threshold: group median × (1 − {tolerance:g})",
            )
            drawn = True
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0, top=max(float(np.nanmax(np.where(np.isfinite(high), high, values))), 1e-12) * 1.15)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
        _name_flagged(ax, positions, values, flagged, keys, frame, column)
    legend: dict[str, Any] = {}
    for ax in axes:  # one legend for every panel: each entry once, in the order of first appearance
        for handle, name in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(name, handle)
    order = sorted(legend, key=lambda name: (not name.startswith(("device", "flagged")), name))
    fig.legend(
        [legend[name] for name in order],
        order,
        loc="outside lower center",
        ncols=max(2, min(5, len(order), int(width / 3.2))),
        fontsize=8,
    )
    top, bottom = axes[0], axes[-1]
    if len(spans) <= 12:
        room = width * 11 / (positions[-1] - positions[0] + 2)  # characters of a group label per x unit
        for group, start, end in spans:
            top.text(
                (start + end) / 2,
                1.01,
                _short(group, int((end - start + 1 + _GROUP_GAP) * room)),
                transform=top.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    if named_all:
        bottom.set_xticks(positions, keys, rotation=90, fontsize=7)
        bottom.set_xlabel(
            "device (host-local rank-device), side by side by group"
            + (f"; {len(spans)} groups" if len(spans) > 1 else "")
        )
    else:
        step = -(-count // 40)
        bottom.set_xticks(positions[::step], keys[::step], rotation=90, fontsize=6)
        bottom.set_xlabel(
            f"{count} devices, side by side by group; every {step}th named (flagged devices are named in the panels)"
        )
    bottom.set_xlim(positions[0] - 1, positions[-1] + 1)
    hosts = frame["host"].nunique() if "host" in frame.columns else 0
    total_flagged = int(_flags(frame, "flagged").sum())
    fig.suptitle(
        f"Fleet: {count} device{'s' if count != 1 else ''} on {hosts} host{'s' if hosts != 1 else ''}, "
        f"{total_flagged} flagged (more than {tolerance:.0%} below the median of the others in its group)",
        fontsize=11,
    )
    return fig


def _group_spans(groups: list[str], positions: Any) -> list[tuple[str, float, float]]:
    """(group, first x, last x) for each run of one group along the axis."""
    spans: list[tuple[str, float, float]] = []
    for group, x in zip(groups, positions):
        if spans and spans[-1][0] == group:
            spans[-1] = (group, spans[-1][1], float(x))
        else:
            spans.append((group, float(x), float(x)))
    return spans


def _name_flagged(
    ax: Any, positions: Any, values: Any, flagged: Any, keys: list[str], frame: pd.DataFrame, column: str
) -> None:
    """Each flagged device's name and ratio to its group beside its point (up to FLEET_ANNOTATED_FLAGS)."""
    ratios = _numbers(frame, f"{column}_ratio")
    indices = [int(i) for i in flagged.nonzero()[0]]
    for order, index in enumerate(indices[:FLEET_ANNOTATED_FLAGS]):
        ratio = f" ({ratios[index]:.2f}×)" if ratios[index] == ratios[index] else ""
        ax.annotate(
            f"{keys[index]}{ratio}",
            (positions[index], values[index]),
            xytext=(5, -12 if order % 2 else 4),
            textcoords="offset points",
            fontsize=7,
            color=_FLAG_COLOUR,
        )
    if len(indices) > FLEET_ANNOTATED_FLAGS:
        ax.text(
            0.99,
            0.02,
            f"+{len(indices) - FLEET_ANNOTATED_FLAGS} more flagged (npucheck fleet DIR lists them)",
            transform=ax.transAxes,
            ha="right",
            fontsize=7,
            color=_FLAG_COLOUR,
        )


def power_caps(profiles: Sequence[ProfileLike]) -> Figure:
    """TFLOPS and TFLOPS/W of the headline window against the power cap (``run --power-caps``), recomputed from
    each window (:mod:`npucheck.read.powercaps`); the best TFLOPS/W and the limit at the start are marked."""
    from npucheck.read.powercaps import best_row, cap_rows

    loaded = _as_profiles(profiles)
    check_count("power-caps", len(loaded))
    caps = loaded[0].power_caps
    if caps is None:
        raise NothingToPlot("no power-cap sweep in the profile (npucheck run --power-caps 300,400,FULL ...)")
    rows = sorted((row for row in cap_rows(caps) if row["tflops"] is not None), key=lambda row: row["requested_w"])
    if not rows:
        raise NothingToPlot("the power-cap sweep has no cap with a valid window (see each cap's note in show)")
    fig = Figure(figsize=(8, 5), layout="constrained")
    speed = fig.subplots()
    per_watt = speed.twinx()
    watts = [row["requested_w"] for row in rows]
    speed.plot(watts, [row["tflops"] for row in rows], "o-", color="tab:blue", label="TFLOPS (sustained)")
    per_watt.plot(watts, [row["tflops_per_watt"] for row in rows], "s--", color="tab:red", label="TFLOPS/W")
    unjudged = [row for row in rows if not row["judgeable"]]
    if unjudged:  # shown, never named best: ringed in grey (the reason is in show)
        per_watt.plot(
            [row["requested_w"] for row in unjudged],
            [row["tflops_per_watt"] for row in unjudged],
            "o",
            markersize=14,
            markerfacecolor="none",
            color="0.5",
            label="not judged (see show)",
        )
    best = best_row(rows)
    if best is not None:
        per_watt.plot([best["requested_w"]], [best["tflops_per_watt"]], "*", color="tab:red", markersize=16)
        per_watt.annotate(
            f"best: {best['label']}",
            (best["requested_w"], best["tflops_per_watt"]),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
        )
    speed.axvline(caps.original_w, color="0.6", linestyle=":", linewidth=1)
    speed.set_xlabel(f"power cap, W ({caps.api}; limit at the start {caps.original_w:g} W dotted)")
    speed.set_ylabel("TFLOPS", color="tab:blue")
    per_watt.set_ylabel("TFLOPS/W", color="tab:red")
    speed.set_title(f"{loaded[0].device.name}: {caps.case or 'headline case'} at each power cap", fontsize=10)
    handles = speed.get_legend_handles_labels()[0] + per_watt.get_legend_handles_labels()[0]
    speed.legend(handles, [str(h.get_label()) for h in handles], loc="lower right", fontsize=8)
    return fig


def build(
    kind: str,
    profiles: Sequence[ProfileLike],
    labels: list[str],
    thresholds: list[tuple[str, float]] | None = None,
    analysed: pd.DataFrame | None = None,
    tolerance: float = 0.10,
) -> Figure:
    """The figure of ``kind``: from ``profiles``, or for ``fleet`` from the ``analysed`` fleet frame."""
    if kind == "fleet":
        if analysed is None:
            raise UsageError("--kind fleet plots a fleet directory: npucheck plot --kind fleet DIR -o fleet.png")
        return fleet(analysed, tolerance)
    check_count(kind, len(profiles))
    loaded = _as_profiles(profiles)
    if kind == "sweep":
        return sweep(loaded)
    if kind == "efficiency":
        return efficiency(loaded, thresholds or [])
    if kind == "trace":
        return trace(loaded)
    if kind == "power-caps":
        return power_caps(loaded)
    if kind == "roofline":  # npucheck.read.roofline: intensity vs TFLOPS under the measured ceilings
        from npucheck.read.roofline import roofline

        return roofline(loaded)
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
