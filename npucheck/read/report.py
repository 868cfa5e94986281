"""A self-contained report of one result profile (and its comparison with a base), or of a fleet directory
(:func:`build_fleet`, and its comparison with an earlier fleet): HTML with the plots embedded, or Markdown with the
plot files beside it. Every string from a profile is escaped. Reads JSON only.

:func:`build` takes :class:`npucheck.model.ResultProfile` objects or loaded dicts (converted once with
:func:`npucheck.model.as_profile`) and reads them through attributes.

A report renders what exists and says what is missing: a profile with no power data gets no efficiency curve
and a line saying why; a profile whose cases all errored still shows its device, verdicts and errors.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

from npucheck.atomic import write_atomic
from npucheck.model import ResultProfile
from npucheck.read import compare as comparing
from npucheck.read import plot as plotting
from npucheck.read.powercaps import power_cap_lines
from npucheck.read.text import (
    ENERGY_HEADERS,
    MEASUREMENT_HEADERS,
    ProfileLike,
    bottom_line,
    bottom_lines,
    comparison_summary_lines,
    datasheet_source_lines,
    energy_rows,
    header_lines,
    measurement_rows,
    summary_rows,
    value_or,
)
from npucheck.read.verified import as_verified, verified
from npucheck.stats import is_unstable

__all__ = ["build", "build_fleet", "CSS", "FLEET_TABLE_COLUMNS", "fleet_table", "write"]


CSS = """body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1.5em;table-layout:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f3;overflow-wrap:normal}td.PASS,td.FAIL,td.INCONCLUSIVE,td.ERROR{white-space:nowrap}.PASS{color:#070;font-weight:bold}.FAIL{color:#b00;font-weight:bold}
.INCONCLUSIVE{color:#a60;font-weight:bold}.ERROR{color:#a0a;font-weight:bold}
.missing{color:#a60}img{max-width:100%;height:auto}code{background:#f3f3f3}
.bottom-line{border:1px solid #ccc;background:#fafafa;padding:0.5em 1em;margin:0 0 1em}
.bottom-line p{margin:0.2em 0;overflow-wrap:anywhere}"""
"""Every table fits the page: cells wrap anywhere (a long case id or reason breaks instead of widening its
column), so the automatic table layout can always shrink a table to the page's width; headers break only between
words and verdict cells not at all (short); nothing has a fixed width. tests/test_plot_report_layout.py checks
the rule, and in headless Chromium when it is installed."""


def _verdict_frame(profile: ResultProfile) -> pd.DataFrame:
    rows = []
    for verdict in profile.verdicts or ():
        for c in verdict.criteria:
            margin = None
            if c.measured is not None and c.threshold:
                margin = f"{c.measured / c.threshold:.3g} × threshold"
            rows.append(
                {
                    "target": verdict.target,
                    "target status": verdict.status,
                    "criterion": f"{c.metric} {c.op} {c.threshold:g} {value_or(c, 'unit', '')}",
                    "measured": c.measured,
                    "lower": c.lower,
                    "upper": c.upper,
                    "measured / threshold": margin,
                    "result": c.status,
                    "reason": c.reason,
                }
            )
    return pd.DataFrame(rows)


def _quality_lines(profile: ResultProfile) -> list[str]:
    measurements = profile.measurements or ()
    ok = [m for m in measurements if m.status == "ok"]
    unstable = [m for m in ok if m.stats is not None and is_unstable(m.stats.iqr_rel)]
    lines = [
        f"{len(ok)} of {len(measurements)} cases measured, "
        f"{sum(m.status == 'skipped' for m in measurements)} skipped, "
        f"{sum(m.status == 'error' for m in measurements)} errored",
        f"{len(unstable)} measured cases unstable (IQR > 10% of the median)",
        f"timing: {profile.device.timing_method}, confidence "
        f"{value_or(profile.settings, 'confidence', 0.95):.0%} intervals from raw samples",
        _load_line(profile),
    ]
    source = profile.power.source
    if source:
        lines.append(
            f"power: {source.name}, quality {source.quality} ({source.quality_name}), "
            f"scope {source.scope}, ±{value_or(source, 'uncertainty_rel', 0):.0%}"
        )
    else:
        lines.append("power: not measured (" + "; ".join(profile.power.notes or ()) + ")")
    return lines


def _load_line(profile: ResultProfile) -> str:
    cores = profile.load.during_max_foreign_cpu_cores if profile.load is not None else None
    if cores is None:
        return "other load during the cases: not measured"
    return f"other load: up to {cores:.2f} CPU cores used by other processes during a case"


def _plots(
    profile: ResultProfile, base: ResultProfile | None, thresholds: list[tuple[str, float]]
) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """(name, caption, PNG bytes) for each plot that has data, and a line for each that has not."""
    made, missing = [], []
    wanted: list[tuple[str, str, list[ResultProfile], list[str] | None]] = [
        ("sweep", "GEMM throughput against size", [profile], None),
        ("efficiency", "Efficiency curves", [profile], None),
        ("trace", "Power over the run", [profile], None),
    ]
    if base is not None:
        wanted.append(
            (
                "compare",
                "Comparison with the base",
                [base, profile],
                [comparing.label("", base), comparing.label("", profile)],
            )
        )
    for kind, caption, profiles, labels in wanted:
        try:
            fig = plotting.build(kind, profiles, labels or [], thresholds)
        except plotting.NothingToPlot as e:
            missing.append(f"{caption}: not drawn, {e}")
            continue
        made.append((kind, caption, plotting.render(fig, "png")))
    return made, missing


def _comparison(profile: ResultProfile, base: ResultProfile | None) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    if base is None:
        return None, {}
    others = [(comparing.label("", profile), profile)]
    frame = comparing.compare_frames(base, others)
    return frame, comparing.summary(frame, base, others)


def build(
    profile: ProfileLike,
    base: ProfileLike | None,
    fmt: str,
    thresholds: list[tuple[str, float]],
    plot_dir_name: str = "",
) -> tuple[str, dict[str, bytes]]:
    """The report's text and the plot files it links to (empty for HTML, whose plots are embedded).

    ``profile`` and ``base`` are :class:`ResultProfile` objects or loaded dicts.
    """
    # a loaded file is judged from its raw evidence, and what disagreed is listed with the warnings
    profile = verified(profile).shown
    base = as_verified(base) if base is not None else None
    plots, missing_plots = _plots(profile, base, thresholds)
    comparison, comparison_summary = _comparison(profile, base)
    measurements = pd.DataFrame(list(measurement_rows(profile)), columns=MEASUREMENT_HEADERS)
    energy = pd.DataFrame(list(energy_rows(profile)), columns=ENERGY_HEADERS)
    verdicts = _verdict_frame(profile)
    headers, rows = summary_rows(profile)
    summary = pd.DataFrame(rows, columns=headers)
    if fmt == "html":
        return _html(
            profile, base, plots, missing_plots, verdicts, measurements, energy, comparison, comparison_summary, summary
        ), {}
    files = {f"{plot_dir_name}/{kind}.png": data for kind, _, data in plots}
    return _markdown(
        profile,
        base,
        plots,
        missing_plots,
        verdicts,
        measurements,
        energy,
        comparison,
        comparison_summary,
        plot_dir_name,
        summary,
    ), files


def _table_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p class='missing'>none</p>"
    # Headers break only between words (CSS), so a snake_case name gets break opportunities after its underscores
    # (a zero-width space): the table can then shrink to the page.
    frame = frame.rename(columns=lambda name: str(name).replace("_", "_\u200b"))
    table = frame.to_html(index=False, escape=True, na_rep="—", border=0, float_format=lambda x: f"{x:.4g}")
    return f"<div class='scroll'>{table}</div>"  # the last resort; the CSS makes every table fit the page


def _html(
    profile: ResultProfile,
    base: ResultProfile | None,
    plots: list[tuple[str, str, bytes]],
    missing_plots: list[str],
    verdicts: pd.DataFrame,
    measurements: pd.DataFrame,
    energy: pd.DataFrame,
    comparison: pd.DataFrame | None,
    comparison_summary: dict[str, Any],
    summary: pd.DataFrame | None = None,
) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>npucheck report: {e(profile.device.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>npucheck report: {e(profile.device.name)}</h1>",
        _bottom_line_html(profile),
        "<h2>Device and environment</h2><ul>",
    ]
    parts += [f"<li>{e(line)}</li>" for line in header_lines(profile)]
    env = profile.environment or {}
    parts.append(
        f"<li>CPU: {e(str((env.get('cpu') or {}).get('model')))}, "
        f"driver: {e(str(env.get('driver') or 'none reported'))}, "
        f"npucheck {e(profile.npucheck_version)}</li></ul>"
    )
    parts.append("<h2>Verdicts</h2>")
    verdict_html = _table_html(verdicts)
    for status in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR"):
        verdict_html = verdict_html.replace(f"<td>{status}</td>", f"<td class='{status}'>{status}</td>")
    parts.append(verdict_html)
    if summary is not None:
        parts.append("<h2>Peak GEMM throughput</h2>" + _table_html(summary))
    sources = datasheet_source_lines(profile)
    if sources:
        parts.append("<h3>Datasheet figures</h3><ul>" + "".join(f"<li>{e(x)}</li>" for x in sources) + "</ul>")
    parts.append(
        "<h2>Measurement quality</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in _quality_lines(profile)) + "</ul>"
    )
    parts.append("<h2>Curves</h2>")
    for _kind, caption, data in plots:
        parts.append(
            f"<figure><img alt='{e(caption)}' src='data:image/png;base64,"
            f"{base64.b64encode(data).decode('ascii')}'><figcaption>{e(caption)}</figcaption></figure>"
        )
    parts += [f"<p class='missing'>{e(line)}</p>" for line in missing_plots]
    if comparison is not None:
        assert base is not None, "a comparison has a base"
        parts.append(f"<h2>Comparison with {e(comparing.label('', base))}</h2>")
        parts.append(_summary_html(comparison_summary))
        parts.append(_table_html(comparison.drop(columns=["other"])))
    parts.append("<h2>Energy windows</h2>")
    parts.append(
        _table_html(energy)
        if not energy.empty
        else "<p class='missing'>no energy windows: power was not measured in this run</p>"
    )
    caps = power_cap_lines(profile)
    if caps:  # the power-cap sweep, as show prints it: evidence beside the verdicts, never a verdict
        parts.append("<h2>Power caps</h2><pre>" + e("\n".join(caps)) + "</pre>")
    parts.append("<h2>Measurements</h2>" + _table_html(measurements))
    warnings = list(profile.warnings or ())  # with the evidence notes (read/verified.py)
    parts.append(
        "<h2>Warnings</h2>"
        + ("<ul>" + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul>" if warnings else "<p>none</p>")
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _bottom_line_html(profile: ResultProfile) -> str:
    lines = bottom_lines(profile.verdicts)
    if not lines:
        return "<div class='bottom-line'><p class='missing'>no target was judged in this run</p></div>"
    e = html.escape
    body = "".join(
        f"<p>{e(target)}: <span class='{e(status)}'>{e(status)}</span> — {e(detail)}</p>"
        for target, status, detail in lines
    )
    return f"<div class='bottom-line'><strong>Bottom line</strong>{body}</div>"


def _summary_html(summary: dict[str, Any]) -> str:
    return (
        "<ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in comparison_summary_lines(summary, style="report"))
        + "</ul>"
    )


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "none\n"
    return comparing.to_markdown(frame) + "\n"


def _markdown(
    profile: ResultProfile,
    base: ResultProfile | None,
    plots: list[tuple[str, str, bytes]],
    missing_plots: list[str],
    verdicts: pd.DataFrame,
    measurements: pd.DataFrame,
    energy: pd.DataFrame,
    comparison: pd.DataFrame | None,
    comparison_summary: dict[str, Any],
    plot_dir_name: str,
    summary: pd.DataFrame | None = None,
) -> str:
    out = [f"# npucheck report: {profile.device.name}", ""]
    out += [f"**{bottom_line(*line)}**  " for line in bottom_lines(profile.verdicts)] or [
        "no target was judged in this run"
    ]
    out += ["", "## Device and environment", ""]
    out += [f"- {line}" for line in header_lines(profile)]
    out += ["", "## Verdicts", "", _md_table(verdicts)]
    if summary is not None:
        out += ["## Peak GEMM throughput", "", _md_table(summary)]
    sources = datasheet_source_lines(profile)
    if sources:
        out += ["### Datasheet figures", ""] + [f"- {line}" for line in sources] + [""]
    out += ["## Measurement quality", ""]
    out += [f"- {line}" for line in _quality_lines(profile)]
    out += ["", "## Curves", ""]
    out += [f"![{caption}]({plot_dir_name}/{kind}.png)\n" for kind, caption, _ in plots]
    out += [f"- {line}" for line in missing_plots]
    if comparison is not None:
        assert base is not None, "a comparison has a base"
        out += ["", f"## Comparison with {comparing.label('', base)}", ""]
        out += [f"- {line}" for line in comparison_summary_lines(comparison_summary, style="report", counts=False)]
        out += ["", _md_table(comparison.drop(columns=["other"]))]
    out += [
        "",
        "## Energy windows",
        "",
        _md_table(energy) if not energy.empty else "no energy windows: power was not measured in this run\n",
    ]
    caps = power_cap_lines(profile)
    if caps:  # the power-cap sweep, as show prints it: evidence beside the verdicts, never a verdict
        out += ["## Power caps", "", "```", *caps, "```", ""]
    out += ["## Measurements", "", _md_table(measurements), "## Warnings", ""]
    out += [f"- {w}" for w in profile.warnings or ()] or ["none"]
    return "\n".join(out) + "\n"


def write(path: Path, text: str, files: dict[str, bytes]) -> None:
    """Write the plot files, then the report, each atomically."""
    for name, data in files.items():
        write_atomic(path.parent / name, data)
    write_atomic(path, text.encode("utf-8"))


# --------------------------------------------------------------------------------------------------- fleet
FLEET_TABLE_COLUMNS = (
    ("key", "device"),
    ("model", "model"),
    ("status", "status"),
    ("peak_fp16_tflops", "peak fp16 TFLOPS [95% CI]"),
    ("peak_fp16_tflops_ratio", "fp16 ÷ peers' median"),
    ("peak_bf16_tflops", "peak bf16 TFLOPS [95% CI]"),
    ("peak_bf16_tflops_ratio", "bf16 ÷ peers' median"),
    ("fp16_tflops_per_watt", "fp16 TFLOPS/W [95% CI]"),
    ("fp16_tflops_per_watt_ratio", "TFLOPS/W ÷ peers' median"),
    ("worst_verdict", "worst verdict"),
    ("flagged", "flagged"),
)
"""The report's fleet table: (analysed column, header); a figure column carries its interval, a column no device
has a value in is left out."""


def _cell_value(value: Any) -> Any:
    """None for a missing cell (None or NaN), else the value."""
    return None if value is None or (isinstance(value, float) and value != value) else value


def _lines_of(value: Any) -> list[str]:
    """A cell holding reasons or evidence as lines: a list as its items, a string as itself, nothing as none."""
    value = _cell_value(value)
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value if _cell_value(item) is not None]
    if isinstance(value, dict):
        return [f"{k}: {v}" for k, v in value.items()]
    return _split_outside_brackets(str(value))  # the fleet frame joins its reasons with "; "


def _split_outside_brackets(text: str) -> list[str]:
    """``text`` split at each "; " that is not inside brackets (a reason's own interval keeps its "; ")."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth <= 0 and text.startswith("; ", index):
            parts.append(text[start:index])
            start = index + 2
    parts.append(text[start:])
    return [part for part in parts if part.strip()]


def _figure_text(row: dict[str, Any], column: str) -> str:
    value = _cell_value(row.get(column))
    if value is None:
        return "—"
    low_column, high_column = (
        (column.replace("_tflops", "_ci_low"), column.replace("_tflops", "_ci_high"))
        if column.startswith("peak_")
        else (f"{column}_ci_low", f"{column}_ci_high")
    )
    low, high = _cell_value(row.get(low_column)), _cell_value(row.get(high_column))
    text = f"{float(value):.4g}"
    return text + (f" [{float(low):.4g}, {float(high):.4g}]" if low is not None and high is not None else "")


def fleet_table(analysed: pd.DataFrame) -> pd.DataFrame:
    """The fleet as a report shows it: one row per device, figures with their interval and ratio to the group."""
    present = [
        (column, header)
        for column, header in FLEET_TABLE_COLUMNS
        if column in analysed.columns and (column in ("key", "status", "flagged") or analysed[column].notna().any())
    ]
    from npucheck.read.fleet import device_label

    rows = []
    for row in analysed.to_dict(orient="records"):
        cells: dict[str, Any] = {}
        for column, header in present:
            value = _cell_value(row.get(column))
            if column == "key":
                cells[header] = device_label(row)
            elif column in ("peak_fp16_tflops", "peak_bf16_tflops", "fp16_tflops_per_watt"):
                cells[header] = _figure_text(row, column)
            elif column.endswith("_ratio"):
                cells[header] = "—" if value is None else f"{float(value):.3f}"
            elif column == "flagged":
                cells[header] = "FLAGGED" if value is True or (value is not None and bool(value)) else ""
            else:
                cells[header] = "—" if value is None else str(value)
        rows.append(cells)
    return pd.DataFrame(rows, columns=[header for _, header in present])


def _fleet_bottom_lines(fleet: Any, analysed: pd.DataFrame, tolerance: float) -> list[tuple[str, str]]:
    """(css class, line) of the fleet report's bottom line: devices and hosts, flagged, failed targets, missing."""
    status = analysed["status"].astype(str) if "status" in analysed.columns else pd.Series(dtype=str)
    hosts = analysed["host"].nunique() if "host" in analysed.columns else 0
    count = len(analysed)
    lines = [("", f"{count} device{'s' if count != 1 else ''} on {hosts} host{'s' if hosts != 1 else ''}: ")]
    lines[0] = ("", lines[0][1] + ", ".join(f"{n} {s}" for s, n in status.value_counts().items()))

    from npucheck.read.fleet import device_label

    def keys(mask: Any) -> str:
        names = [device_label(row) for row in analysed[mask].to_dict(orient="records")]
        return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")

    flagged = analysed["flagged"].fillna(False).astype(bool) if "flagged" in analysed.columns else status == ""
    lines.append(
        (
            "FAIL" if flagged.any() else "PASS",
            f"{int(flagged.sum())} flagged: more than {tolerance:.0%} below the "
            "median of the others in their group" + (f" ({keys(flagged)})" if flagged.any() else ""),
        )
    )
    failed = analysed["failed"].fillna(False).astype(bool) if "failed" in analysed.columns else status == ""
    lines.append(
        (
            "FAIL" if failed.any() else "PASS",
            f"{int(failed.sum())} failed a target" + (f" ({keys(failed)})" if failed.any() else ""),
        )
    )
    problem = status.isin(["missing", "error"])
    lines.append(
        (
            "INCONCLUSIVE" if problem.any() else "PASS",
            f"{int(problem.sum())} missing or in error" + (f" ({keys(problem)})" if problem.any() else ""),
        )
    )
    unreadable = list(getattr(fleet, "unreadable", None) or [])
    if unreadable:
        lines.append(("INCONCLUSIVE", f"{len(unreadable)} unreadable file(s) in the directory"))
    return lines


def _fleet_header_lines(fleet: Any, tolerance: float) -> list[str]:
    summary = getattr(fleet, "summary", None) or {}
    lines = [f"directory: {fleet.directory}"]
    if summary:
        settings = summary.get("settings") or {}
        lines.append(
            f"launcher: {summary.get('launcher')}, run id {summary.get('run_id') or '—'}, world size "
            f"{summary.get('world_size')}, hosts {', '.join(map(str, summary.get('hosts') or [])) or '—'}"
        )
        lines.append(
            f"started {summary.get('started_utc') or '—'}, summary written {summary.get('created_utc')}, "
            f"suite {settings.get('suite')}, npucheck {summary.get('npucheck_version')}"
        )
        if summary.get("command"):
            lines.append("command: " + " ".join(map(str, summary["command"])))
    else:
        lines.append("no fleet summary (fleet.json): the members come from the profiles alone")
    lines.append(
        f"a device is flagged when a figure is more than {tolerance:.0%} below the median of its peers (the other "
        "devices of its group: same model, driver and power limit) and significantly so (its 95% interval ends "
        "below the median of the peers' interval lows)"
    )
    return lines


def _status_classes(table: str) -> str:
    """A table's verdict cells coloured as the single report colours them."""
    for status in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR"):
        table = table.replace(f"<td>{status}</td>", f"<td class='{status}'>{status}</td>")
    return table


def _groups_table(groups: pd.DataFrame) -> pd.DataFrame:
    """The groups as a report shows them: devices, and each metric's median, range and spread (max ÷ min − 1)."""
    from npucheck.read.fleet import METRIC_WORDS, METRICS

    rows = []
    for g in groups.to_dict(orient="records"):
        row: dict[str, Any] = {"group": g["group"], "devices (ok)": f"{g['devices']} ({g['ok_devices']})"}
        for metric in METRICS:
            median = _cell_value(g.get(f"{metric}_median"))
            if f"{metric}_median" not in g:
                continue
            low, high = _cell_value(g.get(f"{metric}_min")), _cell_value(g.get(f"{metric}_max"))
            spread = _cell_value(g.get(f"{metric}_spread"))
            words = METRIC_WORDS[metric]
            row[f"{words} median"] = "—" if median is None else f"{median:.4g}"
            row[f"{words} range"] = "—" if low is None or high is None else f"{low:.4g}–{high:.4g}"
            row[f"{words} spread"] = "—" if spread is None else f"{spread:.1%}"
        rows.append(row)
    return pd.DataFrame(rows)


def _problem_frame(analysed: pd.DataFrame) -> pd.DataFrame:
    """The members in error, missing or interrupted: device, rank, host, device id, status, reason."""
    from npucheck.read.fleet import device_label

    rows = [
        {
            "device": device_label(row),
            "rank": _cell_value(row.get("rank")),
            "host": _cell_value(row.get("host")),
            "device id": _cell_value(row.get("device")),
            "status": row.get("status"),
            "reason": _cell_value(row.get("reason")) or "no reason recorded",
        }
        for row in analysed[analysed["status"].isin(["missing", "error", "interrupted"])].to_dict(orient="records")
    ]
    return pd.DataFrame(rows, columns=["device", "rank", "host", "device id", "status", "reason"])


def _flagged_items(analysed: pd.DataFrame) -> list[tuple[str, list[str], list[str]]]:
    """(device and its group, reasons, evidence) for each flagged device."""
    from npucheck.read.fleet import device_label

    if "flagged" not in analysed.columns:
        return []
    out = []
    for row in analysed[analysed["flagged"].fillna(False).astype(bool)].to_dict(orient="records"):
        title = device_label(row) + (f" ({row['group']})" if _cell_value(row.get("group")) else "")
        out.append((title, _lines_of(row.get("flag_reasons")), _lines_of(row.get("evidence"))))
    return out


def build_fleet(
    fleet: Any,
    base: Any | None,
    fmt: str,
    tolerance: float = 0.10,
    plot_dir_name: str = "",
    threshold: float = comparing.DEFAULT_THRESHOLD,
) -> tuple[str, dict[str, bytes]]:
    """A fleet report: the text and the plot files it links to (empty for HTML, whose plot is embedded).

    Args:
        fleet: a :class:`npucheck.read.fleet.FleetData` (``load_fleet(DIR)``).
        base: an earlier fleet to compare with (which devices got slower), or None.
        fmt: "html" or "markdown".
        tolerance: how far below its group a device is flagged (see :func:`npucheck.read.fleet.analyse`).
        plot_dir_name: the folder, beside a Markdown report, that its plot goes to.
        threshold: the smallest change the comparison with ``base`` counts.
    """
    from npucheck.read import fleet as fleets
    from npucheck.read.fleetlines import fleet_comparison

    analysed = fleets.analyse(fleet, tolerance)
    table = fleet_table(analysed)
    groups = _groups_table(fleets.groups_frame(analysed))
    problems = _problem_frame(analysed)
    flagged = _flagged_items(analysed)
    bottom = _fleet_bottom_lines(fleet, analysed, tolerance)
    header = _fleet_header_lines(fleet, tolerance)
    unreadable = [str(item) for item in (getattr(fleet, "unreadable", None) or [])]
    try:
        plot: bytes | None = plotting.render(plotting.fleet(analysed, tolerance), "png")
        plot_missing = ""
    except plotting.NothingToPlot as nothing:
        plot, plot_missing = None, f"Fleet plot: not drawn, {nothing}"
    comparison = fleet_comparison(base, fleet, threshold) if base is not None else None
    base_name = str(base.directory) if base is not None else ""
    name = Path(str(fleet.directory)).name or str(fleet.directory)
    caption = f"Each device against its group (tolerance {tolerance:.0%})"
    if fmt == "html":
        e = html.escape
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>npucheck fleet report: {e(name)}</title><style>{CSS}</style></head><body>",
            f"<h1>npucheck fleet report: {e(name)}</h1>",
            "<div class='bottom-line'><strong>Bottom line</strong>"
            + "".join(
                f"<p class='{cls}'>{e(line)}</p>" if cls != "PASS" else f"<p>{e(line)}</p>" for cls, line in bottom
            )
            + "</div>",
            "<h2>Fleet</h2><ul>" + "".join(f"<li>{e(line)}</li>" for line in header) + "</ul>",
            _status_classes(_table_html(table).replace("<td>FLAGGED</td>", "<td class='FAIL'>FLAGGED</td>")),
            "<h2>Groups</h2>" + _table_html(groups),
            "<h2>Flagged devices</h2>",
        ]
        if flagged:
            for title, reasons, evidence in flagged:
                parts.append(f"<h3>{e(title)}</h3><ul>")
                parts += [f"<li>{e(reason)}</li>" for reason in reasons] or ["<li>no reason recorded</li>"]
                parts.append("</ul>")
                if evidence:
                    parts.append("<p>evidence:</p><ul>" + "".join(f"<li>{e(x)}</li>" for x in evidence) + "</ul>")
        else:
            parts.append("<p>none</p>")
        parts.append("<h2>Missing, failed and interrupted members</h2>" + _table_html(problems))
        if unreadable:
            parts.append("<h3>Unreadable files</h3><ul>" + "".join(f"<li>{e(x)}</li>" for x in unreadable) + "</ul>")
        parts.append("<h2>Plot</h2>")
        if plot is not None:
            parts.append(
                f"<figure><img alt='{e(caption)}' src='data:image/png;base64,"
                f"{base64.b64encode(plot).decode('ascii')}'><figcaption>{e(caption)}</figcaption></figure>"
            )
        else:
            parts.append(f"<p class='missing'>{e(plot_missing)}</p>")
        if comparison is not None:
            parts.append(f"<h2>Comparison with {e(base_name)}</h2><p>{e(comparison.summary)}</p>")
            parts.append(
                _table_html(comparison.display).replace("<td>regression</td>", "<td class='FAIL'>regression</td>")
            )
        parts.append("</body></html>")
        return "\n".join(parts) + "\n", {}
    out = [f"# npucheck fleet report: {name}", ""]
    out += [f"**{line}**  " for _, line in bottom]
    out += ["", "## Fleet", ""] + [f"- {line}" for line in header] + ["", _md_table(table)]
    out += ["## Groups", "", _md_table(groups), "## Flagged devices", ""]
    for title, reasons, evidence in flagged:
        out += [f"### {title}", ""] + [f"- {reason}" for reason in reasons or ["no reason recorded"]]
        out += ["", "evidence:", ""] + [f"- {x}" for x in evidence] if evidence else []
        out.append("")
    if not flagged:
        out += ["none", ""]
    out += ["## Missing, failed and interrupted members", "", _md_table(problems)]
    if unreadable:
        out += ["### Unreadable files", ""] + [f"- {x}" for x in unreadable] + [""]
    out += ["## Plot", ""]
    files: dict[str, bytes] = {}
    if plot is not None:
        files[f"{plot_dir_name}/fleet.png"] = plot
        out.append(f"![{caption}]({plot_dir_name}/fleet.png)\n")
    else:
        out.append(f"- {plot_missing}\n")
    if comparison is not None:
        out += [f"## Comparison with {base_name}", "", comparison.summary, "", _md_table(comparison.display)]
    return "\n".join(out) + "\n", files
