"""Turn result profiles and verdicts into rich tables, Markdown or JSON text. Builds; never prints.

The profile functions take a :class:`npucheck.model.ResultProfile` or a loaded dict (converted once with
:func:`npucheck.model.as_profile`) and read it through attributes; the frame helpers at the end take pandas frames
and comparison summaries.

No torch here: ``show``, ``check`` and ``targets`` must start fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from rich.markup import escape
from rich.table import Table

from npucheck.datasheets import ceiling_reason, percent_of_datasheet
from npucheck.model import (
    CriterionResult,
    Measurement,
    Peak,
    Record,
    ResultProfile,
    StoredDatasheet,
    Verdict,
    as_profile,
)

__all__ = [
    "ci_text",
    "measurement_note",
    "backend_text",
    "spread_text",
    "bounds_text",
    "bottom_line",
    "bottom_lines",
    "compare_display",
    "comparison_summary_lines",
    "datasheet_cells",
    "datasheet_line",
    "datasheet_source_lines",
    "ENERGY_HEADERS",
    "energy_rows",
    "fmt_number",
    "fmt_tflops",
    "frame_table",
    "header_lines",
    "is_missing",
    "MEASUREMENT_HEADERS",
    "measurement_rows",
    "power_line",
    "profile_label",
    "ProfileLike",
    "STATUS_STYLE",
    "summary_rows",
    "tflops_or_dash",
    "to_json",
    "to_markdown",
    "value_or",
    "written",
]


ProfileLike = ResultProfile | Mapping[str, Any]
"""What the profile functions accept: a model object, or a schema-v2 dict as ``store.load_result`` returns it."""

STATUS_STYLE = {
    "PASS": "bold green",
    "FAIL": "bold red",
    "INCONCLUSIVE": "bold yellow",
    "ERROR": "bold magenta",
    "ok": "green",
    "error": "red",
    "skipped": "yellow",
}


def fmt_tflops(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def fmt_number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def written(record: Record, name: str) -> bool:
    """Whether ``record``'s JSON object has the key ``name`` (what ``name in record.to_dict()`` says, without
    building the dict): a key the file had, or for an object built in code one it always writes or one whose value
    is set. Tells an absent key from a null one where a rendering shows them differently."""
    keys = type(record).ALWAYS if record.present_keys is None else record.present_keys
    return name in keys or getattr(record, name) is not None


def value_or(record: Record, name: str, default: Any) -> Any:
    """``record``'s value of ``name``, or ``default`` when its JSON object lacks the key (as ``dict.get``)."""
    return getattr(record, name) if written(record, name) else default


def ci_text(m: Measurement) -> str:
    ci = m.tflops_ci
    return f"{fmt_tflops(ci[0])}–{fmt_tflops(ci[1])}" if ci else "—"


def spread_text(m: Measurement) -> str:
    return f"{m.stats.iqr_rel:.1%}" if m.stats else "—"


def measurement_note(m: Measurement) -> str:
    note = m.error or m.reason or "; ".join(m.warnings or ())
    return "; ".join(part for part in (note, backend_text(m)) if part)


def backend_text(m: Measurement) -> str:
    """``SDPA backend flash_attention`` for an attention case that recorded it; "" otherwise."""
    name = (m.backend or {}).get("name")
    return f"{'SDPA ' if m.kernel == 'attention' else ''}backend {name}" if name else ""


def measurement_rows(profile: ProfileLike) -> Iterable[list[str]]:
    for m in as_profile(profile).measurements:
        yield [
            m.kernel,
            m.dtype,
            m.id.split("/", 2)[2],
            m.status,
            fmt_tflops(m.tflops),
            ci_text(m),
            spread_text(m),
            str(len(m.samples_s or ())),
            measurement_note(m),
        ]


MEASUREMENT_HEADERS = ["kernel", "dtype", "shape", "status", "TFLOPS", "95% CI", "IQR/med", "n", "note"]


def _datasheet(profile: ResultProfile) -> StoredDatasheet | None:
    """The stored datasheet of the device, or None (old files have no key; unmatched devices store null)."""
    return profile.device.datasheet


def _percent_text(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction:.1%}"


def datasheet_cells(profile: ProfileLike, dtype: str, tflops: float | None) -> tuple[str, str]:
    """("% of datasheet", "datasheet TFLOPS/W") for one dtype's peak; dashes when the datasheet lacks the figure."""
    sheet = _datasheet(as_profile(profile))
    if sheet is None:
        return "—", "—"
    per_watt = (sheet.tflops_per_watt or {}).get(dtype)
    percent = _percent_text(percent_of_datasheet(sheet, dtype, tflops))
    if ceiling_reason(sheet, dtype, tflops):
        percent += " (above the ceiling: not a valid result)"
    return percent, fmt_number(per_watt) if per_watt is not None else "—"


def _dtype_order(dtype: str) -> tuple[int, str]:
    order = ("fp16", "bf16", "fp32", "int8", "fp8_e4m3", "fp8_e5m2")
    return (order.index(dtype) if dtype in order else 9, dtype)


def dtype_label(dtype: str) -> str:
    """The dtype as a table row names it: int8 figures are tera-operations (TOPS, TOPS/W), so its row says so."""
    return f"{dtype} (TOPS)" if dtype == "int8" else dtype


def summary_rows(profile: ProfileLike) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the peak summary; two datasheet columns when the device has a datasheet."""
    profile = as_profile(profile)
    peaks: Mapping[str, Peak] = profile.summary.peak or {}
    per_watt: Mapping[str, float | None] = profile.summary.tflops_per_watt or {}
    with_sheet = _datasheet(profile) is not None
    # the burst peak (timed calls), its independent confirmation (what the targets judge) and the sustained
    # figure of its energy window, each only when some dtype has it (files before npucheck 0.2 have neither)
    confirmed = any(p.confirmation_status for p in peaks.values())
    sustained = any(p.sustained_tflops is not None for p in peaks.values())
    headers = ["dtype", "peak TFLOPS", "95% CI", "case"]
    headers += ["confirmed"] if confirmed else []
    headers += ["sustained"] if sustained else []
    headers += ["TFLOPS/W"]
    if with_sheet:
        headers += ["% of datasheet", "datasheet TFLOPS/W"]
    rows = []
    for dtype in sorted(set(peaks) | set(per_watt), key=_dtype_order):
        peak = _peak(peaks, dtype)
        row = [
            dtype_label(dtype),
            fmt_tflops(peak.tflops) if peak else "—",
            f"{fmt_tflops(peak.ci_low)}–{fmt_tflops(peak.ci_high)}" if peak else "—",
            _case_shape(peak) if peak else "no successful GEMM",
        ]
        if confirmed:
            row.append(_confirmed_text(peak))
        if sustained:
            value = peak.sustained_tflops if peak else None
            row.append(fmt_tflops(value) if value is not None else "—")
        watts = per_watt.get(dtype)
        row.append(fmt_number(watts) if watts is not None else "not measured")
        if with_sheet:
            row += list(datasheet_cells(profile, dtype, peak.tflops if peak else None))
        rows.append(row)
    return headers, rows


def _peak(peaks: Mapping[str, Peak], dtype: str) -> Peak | None:
    """The dtype's peak; None when there is none, or when its object is empty (as an empty dict read before)."""
    peak = peaks.get(dtype)
    return peak if peak is not None and peak.to_dict() else None


def _case_shape(peak: Peak) -> str:
    """The shape part of the peak's case id (``kernel/dtype/shape``)."""
    assert peak.case is not None, "a peak names its case"
    return peak.case.split("/", 2)[2]


def _confirmed_text(peak: Peak | None) -> str:
    """The confirmation re-measure: its TFLOPS and interval, or why there is none."""
    if not peak or not peak.confirmation_status:
        return "not confirmed"
    value, interval = peak.confirmed_tflops, peak.confirmed_ci
    if value is None:
        return peak.confirmation_status
    text = fmt_tflops(value)
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        text += f" [{fmt_tflops(interval[0])}–{fmt_tflops(interval[1])}]"
    return text


def datasheet_source_lines(profile: ProfileLike) -> list[str]:
    """Where each datasheet figure comes from (per part, as the file states it); empty without a datasheet."""
    sheet = _datasheet(as_profile(profile))
    if sheet is None:
        return []
    lines = [f"{sheet.part}: {sheet.match_reason or 'matched by device name'}"]
    sources = sheet.sources or {}
    notes = sheet.notes or {}
    for key, value in (sheet.tflops_per_part or {}).items():
        note = f" ({notes[key]})" if notes.get(key) else ""
        lines.append(f"{key}: {fmt_number(value)} TFLOPS per part — {sources.get(key, 'no source')}{note}")
    for key, unit, per_part in (
        ("power_w", "W", sheet.power_w_per_part),
        ("memory_bandwidth_gbps", "GB/s", sheet.memory_bandwidth_gbps_per_part),
    ):
        if per_part is not None:
            lines.append(f"{key}: {fmt_number(per_part)} {unit} per part — {sources.get(key, 'no source')}")
    if sheet.note:
        lines.append(f"note: {sheet.note}")
    return lines


def datasheet_line(profile: ProfileLike) -> str | None:
    """One line naming the matched datasheet and its headline figures; None for files from before datasheets."""
    profile = as_profile(profile)
    device = profile.device
    if not written(device, "datasheet") and not written(device, "datasheet_reason"):
        return None
    sheet = _datasheet(profile)
    if sheet is None:
        return "datasheet: none" + (f" ({device.datasheet_reason})" if device.datasheet_reason else "")
    peaks = sheet.peak_tflops or {}
    figures = ", ".join(f"{dtype} {fmt_tflops(peaks[dtype])}" for dtype in sorted(peaks, key=_dtype_order))
    per_device = sheet.devices_per_part or 1
    text = f"datasheet: {sheet.part} — peak TFLOPS per device: {figures or 'none given'}"
    if per_device > 1:
        text += f" (the part is {per_device} devices; figures are per device)"
    if sheet.power_w_per_part:
        text += (
            f"; {fmt_number(sheet.power_w_per_part)} W {sheet.power_kind or ''} "
            f"({sheet.power_covers or 'coverage not stated'})"
        ).replace("  ", " ")
    if sheet.match_caveat:
        text += f"; caveat: {sheet.match_caveat}"
    return text


ENERGY_HEADERS = [
    "case",
    "window",
    "source",
    "scope",
    "quality",
    "avg W",
    "idle W",
    "TFLOPS",
    "TFLOPS/W",
    "net TFLOPS/W",
    "counter/integrated",
    "note",
]


def energy_rows(profile: ProfileLike) -> Iterable[list[str]]:
    """One row per energy window: every power figure beside its source, scope, quality and window length."""
    profile = as_profile(profile)
    idle = profile.power.idle
    windows = ([("idle", idle)] if idle else []) + [(m.id, m.energy) for m in profile.measurements if m.energy]
    for case, e in windows:
        note = e.reason if not e.valid else "; ".join(e.warnings or ())
        label = case if case == "idle" else f"{case} ({value_or(e, 'kind', '')})"
        yield [
            label,
            f"{e.window_s or 0:.1f} s",
            e.source,
            e.scope,
            e.quality,
            fmt_number(e.avg_watts),
            fmt_number(e.idle_watts),
            fmt_tflops(e.tflops),
            fmt_number(e.tflops_per_watt),
            fmt_number(e.tflops_per_watt_net),
            fmt_number(e.counter_vs_integrated),
            note or "",
        ]


def power_line(profile: ProfileLike) -> str:
    power = as_profile(profile).power
    source = power.source
    if source is None:
        return "power: none (" + ("; ".join(power.notes or ()) or "not measured") + ")"
    uncertainty = (
        "an estimate, uncertainty unknown"
        if source.quality == "Q0"
        else f"±{value_or(source, 'uncertainty_rel', 0):.0%}"
    )
    return (
        f"power: {source.name} — {value_or(source, 'detail', '')}; quality {source.quality}, scope "
        f"{source.scope}, {uncertainty}"
    )


def _as_verdict(verdict: Verdict | Mapping[str, Any]) -> Verdict:
    """A verdict as the model object (``judge`` and stored files may give the dict)."""
    return verdict if isinstance(verdict, Verdict) else Verdict.from_dict(verdict)


_NEGATED = {">=": "<", ">": "≤", "<=": ">", "<": "≥", "==": "≠"}
_METRICS = {"peak_tflops": "peak", "tflops_per_watt": "TFLOPS/W", "peak_tops": "peak", "tops_per_watt": "TOPS/W"}


def _number(x: float) -> str:
    """A measured figure in a bottom line: three significant digits, never an exponent above 1000."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _metric_words(metric: str) -> str:
    """``peak_tflops.fp16`` → ``fp16 peak``; an unknown metric as it is."""
    name, _, dtype = metric.partition(".")
    return f"{dtype} {_METRICS.get(name, name)}".strip() if dtype else _METRICS.get(name, name)


def bottom_lines(verdicts: Iterable[Verdict | Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """One (target, status, detail) per target: its verdict and the criteria that decided it; as a line,
    ``miit-2020-cloud: FAIL — fp16 peak 0.0028 TFLOPS < 128`` (see :func:`bottom_line`). The one wording of the
    bottom line: the terminal (npucheck.read.screen) and the report both print it."""
    lines: list[tuple[str, str, str]] = []
    for verdict in map(_as_verdict, verdicts):
        deciding = [c for c in verdict.criteria if c.status == verdict.status] or list(verdict.criteria)
        parts = []
        for c in deciding:
            unit = value_or(c, "unit", "") or ""
            what = _metric_words(c.metric)
            if c.measured is None:
                parts.append(f"{what} not measured (needs {c.op} {c.threshold:g} {unit})".replace(" )", ")"))
            elif c.status == "FAIL":
                parts.append(
                    f"{what} {_number(c.measured)} {unit} {_NEGATED.get(c.op, 'misses ' + c.op)} {c.threshold:g}"
                )
            elif c.status == "PASS":
                parts.append(f"{what} {_number(c.measured)} {unit} {c.op} {c.threshold:g}")
            else:
                interval = (
                    f" [{_number(c.lower)}, {_number(c.upper)}]" if c.lower is not None and c.upper is not None else ""
                )
                parts.append(f"{what} {_number(c.measured)}{interval} {unit}, undecided against {c.threshold:g}")
        lines.append((verdict.target, verdict.status, "; ".join(parts)))
    return lines


def bottom_line(target: str, status: str, detail: str) -> str:
    return f"{target}: {status} — {detail}"


def bounds_text(c: CriterionResult) -> str:
    if c.measured is None:
        return "not measured"
    return f"{fmt_number(c.measured)} [{fmt_number(c.lower)}, {fmt_number(c.upper)}]"


def profile_label(path: Any, profile: ProfileLike) -> str:
    """How a profile is named in tables and legends: device and start time (and threads, on a CPU)."""
    profile = as_profile(profile)
    extra = ""
    if profile.device.backend == "cpu":
        threads = (profile.environment.get("threads") or {}).get("intra_op")
        extra = f", {threads} thread{'' if threads == 1 else 's'}" if threads else ""
    return f"{profile.device.name} ({profile.created_utc}{extra})"


def header_lines(profile: ProfileLike) -> list[str]:
    profile = as_profile(profile)
    device, env, settings = profile.device, profile.environment, profile.settings
    torch_info = env.get("torch", {})
    lines = [
        f"device: {device.name} ({device.id}), timing: {device.timing_method}",
        f"host: {env.get('hostname')}, {env.get('os')}, torch {torch_info.get('version')}, "
        f"threads {env.get('threads', {}).get('intra_op')}",
        f"suite: {settings.suite}, seed {settings.seed}, created {profile.created_utc}"
        + (", INTERRUPTED" if profile.interrupted else ""),
        power_line(profile),
    ]
    sheet_line = datasheet_line(profile)
    if sheet_line:
        lines.append(sheet_line)
    return lines


def to_markdown(profile: ProfileLike) -> str:
    """The whole profile as Markdown: header, summary, support, verdicts, measurements, warnings."""
    profile = as_profile(profile)
    out = [f"# npucheck result: {profile.device.name}", ""]
    out += [f"- {line}" for line in header_lines(profile)]
    headers, rows = summary_rows(profile)
    out += ["", "## Peak GEMM throughput", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    energy = list(energy_rows(profile))
    if energy:
        out += [
            "",
            "## Energy windows",
            "",
            "| " + " | ".join(ENERGY_HEADERS) + " |",
            "|" + "---|" * len(ENERGY_HEADERS),
        ]
        out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in energy]
    out += ["", "## FP16 support", "", "| family | supported | reason |", "|---|---|---|"]
    for family, entry in (profile.support or {}).items():
        supported = "yes" if entry.supported is True else "no" if entry.supported is False else "unchecked"
        out.append(f"| {family} | {supported} | {_md(entry.reason or '')} |")
    out += [
        "",
        "## Verdicts",
        "",
        "| target | status | criterion | measured [lower, upper] | result | reason |",
        "|---|---|---|---|---|---|",
    ]
    for verdict in profile.verdicts or ():
        for c in verdict.criteria:
            out.append(
                f"| {verdict.target} | {verdict.status} | {c.metric} {_md(c.op)} "
                f"{fmt_number(c.threshold)} | {bounds_text(c)} | {c.status} | {_md(c.reason or '')} |"
            )
    out += [
        "",
        "## Measurements",
        "",
        "| " + " | ".join(MEASUREMENT_HEADERS) + " |",
        "|" + "---|" * len(MEASUREMENT_HEADERS),
    ]
    out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in measurement_rows(profile)]
    if profile.warnings:
        out += ["", "## Warnings", ""] + [f"- {_md(w)}" for w in profile.warnings]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_json(data: Any) -> str:
    """``data`` as indented JSON; a model object (a :class:`ResultProfile`) as its JSON object."""
    return json.dumps(data.to_dict() if isinstance(data, Record) else data, indent=1)


# ------------------------------------------------------------------------------ frames: results and comparisons
def is_missing(value: Any) -> bool:
    """Whether a frame cell holds no value.

    Args:
        value: One cell of a pandas frame.

    Returns:
        True for None and NaN.
    """
    return value is None or (isinstance(value, float) and value != value)


def tflops_or_dash(value: Any) -> str:
    """A TFLOPS figure as :func:`fmt_tflops` writes it; a dash when the cell is missing.

    Args:
        value: One cell of a pandas frame.

    Returns:
        The formatted figure, or "—".
    """
    return fmt_tflops(None if is_missing(value) else value)


def frame_table(frame: Any, title: str) -> Table:
    """A rich table of a pandas frame: numbers to 4 significant digits, missing values as —.

    Args:
        frame: The pandas frame; its column names become the headers.
        title: The table's title.

    Returns:
        The table; cells are escaped, so no text from a profile is read as rich markup.
    """
    table = Table(title=title, title_justify="left")
    for column in frame.columns:  # a date or a case id cut in two is hard to read: those never wrap
        table.add_column(str(column), overflow="fold", no_wrap=str(column) in ("date", "case", "file"))
    for row in frame.itertuples(index=False):
        table.add_row(*(escape(fmt_number(None if is_missing(v) else v)) for v in row))
    return table


def compare_display(frame: Any, others: int) -> Any:
    """The comparison as a person reads it: one ratio column with its interval, TFLOPS/W only when measured.

    Args:
        frame: The frame of ``npucheck.read.compare.compare_frames``.
        others: How many profiles were compared with the base; above one, an "other" column names each.

    Returns:
        A pandas frame of display strings (the input itself when it is empty).
    """
    import pandas as pd  # here, not at the top: ``show`` and ``check`` do not need pandas

    if frame.empty:
        return frame
    display = pd.DataFrame(
        {
            "case": frame["case"],
            "base TFLOPS": frame["base_tflops"].map(tflops_or_dash),
            "TFLOPS": frame["other_tflops"].map(tflops_or_dash),
        }
    )
    display["ratio [95% CI]"] = [
        "—" if is_missing(r) else f"{r:.3f} [{lo:.3f}, {hi:.3f}]"
        for r, lo, hi in zip(frame["ratio"], frame["ratio_low"], frame["ratio_high"])
    ]
    if frame["tflops_per_watt_ratio"].notna().any() or frame["base_tflops_per_watt"].notna().any():
        display["TFLOPS/W base → other"] = [
            f"{fmt_tflops(None if is_missing(b) else b)} → {fmt_tflops(None if is_missing(o) else o)}"
            for b, o in zip(frame["base_tflops_per_watt"], frame["other_tflops_per_watt"])
        ]
    display["verdict"] = frame["verdict"]
    display["note"] = frame["note"]
    if others > 1:
        display.insert(0, "other", frame["other"])
    return display


def comparison_summary_lines(
    summary: dict[str, Any], style: Literal["command", "report"] = "command", counts: bool = True
) -> list[str]:
    """The comparison summary as plain text lines; the one place every rendering of it takes its lines from.

    Lines come in this order: geometric-mean speed ratios, counts by verdict, target verdicts that changed.
    They are not escaped: the caller escapes them for its medium (rich markup, HTML).

    Args:
        summary: What ``npucheck.read.compare.summary`` returns.
        style: "command" (``npucheck compare``, which may compare several profiles): each line begins with the
            other profile's label, and one line holds every family's ratio. "report" (a report compares one
            profile): no label, one line per family.
        counts: Whether to include the counts by verdict.

    Returns:
        The lines, without list markers.
    """
    lines = []
    for other, families in summary.get("geomean", {}).items():
        if style == "command":
            lines.append(
                f"{other}: geometric-mean speed ratio "
                + ", ".join(f"{family} {ratio:.3f}" for family, ratio in families.items())
            )
        else:
            lines += [f"{family}: geometric-mean speed ratio {ratio:.3f}" for family, ratio in families.items()]
    for other, verdict_counts in summary.get("counts", {}).items() if counts else ():
        if style == "command":
            lines.append(f"{other}: " + ", ".join(f"{verdict} {count}" for verdict, count in verdict_counts.items()))
        else:
            lines.append(", ".join(f"{verdict}: {count}" for verdict, count in verdict_counts.items()))
    for other, cases in summary.get("broken", {}).items():
        if cases:
            what = f"{len(cases)} case(s) right in the base are an error or a wrong answer now: {', '.join(cases)}"
            lines.append(f"{other}: {what}" if style == "command" else what)
    for other, changes in summary.get("verdict_changes", {}).items():
        for change in changes:
            if style == "command":
                lines.append(f"{other}: verdict {change['target']} changed {change['base']} -> {change['other']}")
            else:
                lines.append(f"verdict change: {change['target']} {change['base']} → {change['other']}")
    return lines
