"""A self-contained report of one result profile (and its comparison with a base): HTML with the plots
embedded, or Markdown with the plot files beside it. Every string from a profile is escaped. Reads JSON only.

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
from npucheck.model import ResultProfile, as_profile
from npucheck.read import compare as comparing
from npucheck.read import plot as plotting
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
from npucheck.stats import is_unstable

__all__ = ["build", "CSS", "write"]


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
    profile = as_profile(profile)
    base = as_profile(base) if base is not None else None
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
    parts.append("<h2>Measurements</h2>" + _table_html(measurements))
    warnings = profile.warnings or ()
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
    out += ["## Measurements", "", _md_table(measurements), "## Warnings", ""]
    out += [f"- {w}" for w in profile.warnings or ()] or ["none"]
    return "\n".join(out) + "\n"


def write(path: Path, text: str, files: dict[str, bytes]) -> None:
    """Write the plot files, then the report, each atomically."""
    for name, data in files.items():
        write_atomic(path.parent / name, data)
    write_atomic(path, text.encode("utf-8"))
