"""Turn result profiles and verdicts into rich tables, Markdown or JSON text. Builds; never prints.

No torch here: ``show``, ``check`` and ``targets`` must start fast.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Literal

from npucheck.datasheets import ceiling_reason, percent_of_datasheet

from rich.markup import escape
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"PASS": "bold green", "FAIL": "bold red", "INCONCLUSIVE": "bold yellow", "ERROR": "bold magenta",
                "ok": "green", "error": "red", "skipped": "yellow"}


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


def _shape_text(shape: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in shape.items())


def _ci_text(m: dict[str, Any]) -> str:
    ci = m.get("tflops_ci")
    return f"{fmt_tflops(ci[0])}–{fmt_tflops(ci[1])}" if ci else "—"


def _spread_text(m: dict[str, Any]) -> str:
    stats = m.get("stats")
    return f"{stats['iqr_rel']:.1%}" if stats else "—"


def _note(m: dict[str, Any]) -> str:
    return m.get("error") or m.get("reason") or "; ".join(m.get("warnings") or [])


def measurement_rows(profile: dict[str, Any]) -> Iterable[list[str]]:
    for m in profile["measurements"]:
        yield [m["kernel"], m["dtype"], m["id"].split("/", 2)[2], m["status"], fmt_tflops(m.get("tflops")),
               _ci_text(m), _spread_text(m), str(len(m.get("samples_s") or [])), _note(m)]


MEASUREMENT_HEADERS = ["kernel", "dtype", "shape", "status", "TFLOPS", "95% CI", "IQR/med", "n", "note"]


def measurements_table(profile: dict[str, Any], title: str = "Measurements") -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for header in MEASUREMENT_HEADERS:
        table.add_column(header, justify="right" if header in ("TFLOPS", "95% CI", "IQR/med", "n") else "left",
                         overflow="fold")
    for row in measurement_rows(profile):
        table.add_row(*row[:3], Text(row[3], style=STATUS_STYLE.get(row[3], "")), *row[4:])
    return table


def _datasheet(profile: dict[str, Any]) -> dict[str, Any] | None:
    """The stored datasheet of the device, or None (old files have no key; unmatched devices store null)."""
    sheet = (profile.get("device") or {}).get("datasheet")
    return sheet if isinstance(sheet, dict) else None


def _percent_text(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction:.1%}"


def datasheet_cells(profile: dict[str, Any], dtype: str, tflops: float | None) -> tuple[str, str]:
    """("% of datasheet", "datasheet TFLOPS/W") for one dtype's peak; dashes when the datasheet lacks the figure."""
    sheet = _datasheet(profile)
    if sheet is None:
        return "—", "—"
    per_watt = (sheet.get("tflops_per_watt") or {}).get(dtype)
    percent = _percent_text(percent_of_datasheet(sheet, dtype, tflops))
    if ceiling_reason(sheet, dtype, tflops):
        percent += " (above the ceiling: not a valid result)"
    return percent, fmt_number(per_watt) if per_watt is not None else "—"


def _dtype_order(dtype: str) -> tuple[int, str]:
    return (("fp16", "bf16", "fp32").index(dtype) if dtype in ("fp16", "bf16", "fp32") else 9, dtype)


def summary_rows(profile: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the peak summary; two datasheet columns when the device has a datasheet."""
    summary = profile.get("summary") or {}
    peaks = summary.get("peak") or {}
    per_watt = summary.get("tflops_per_watt") or {}
    with_sheet = _datasheet(profile) is not None
    # the burst peak (timed calls), its independent confirmation (what the targets judge) and the sustained
    # figure of its energy window, each only when some dtype has it (files before npucheck 0.2 have neither)
    confirmed = any((p or {}).get("confirmation_status") for p in peaks.values())
    sustained = any((p or {}).get("sustained_tflops") is not None for p in peaks.values())
    headers = ["dtype", "peak TFLOPS", "95% CI", "case"]
    headers += ["confirmed"] if confirmed else []
    headers += ["sustained"] if sustained else []
    headers += ["TFLOPS/W"]
    if with_sheet:
        headers += ["% of datasheet", "datasheet TFLOPS/W"]
    rows = []
    for dtype in sorted(set(peaks) | set(per_watt), key=_dtype_order):
        peak = peaks.get(dtype)
        row = [dtype, fmt_tflops(peak["tflops"]) if peak else "—",
               f"{fmt_tflops(peak['ci_low'])}–{fmt_tflops(peak['ci_high'])}" if peak else "—",
               peak["case"].split("/", 2)[2] if peak else "no successful GEMM"]
        if confirmed:
            row.append(_confirmed_text(peak))
        if sustained:
            value = (peak or {}).get("sustained_tflops")
            row.append(fmt_tflops(value) if value is not None else "—")
        row.append(fmt_number(per_watt.get(dtype)) if per_watt.get(dtype) is not None else "not measured")
        if with_sheet:
            row += list(datasheet_cells(profile, dtype, peak["tflops"] if peak else None))
        rows.append(row)
    return headers, rows


def _confirmed_text(peak: dict[str, Any] | None) -> str:
    """The confirmation re-measure: its TFLOPS and interval, or why there is none."""
    if not peak or not peak.get("confirmation_status"):
        return "not confirmed"
    value, interval = peak.get("confirmed_tflops"), peak.get("confirmed_ci")
    if value is None:
        return peak["confirmation_status"]
    text = fmt_tflops(value)
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        text += f" [{fmt_tflops(interval[0])}–{fmt_tflops(interval[1])}]"
    return text


def datasheet_source_lines(profile: dict[str, Any]) -> list[str]:
    """Where each datasheet figure comes from (per part, as the file states it); empty without a datasheet."""
    sheet = _datasheet(profile)
    if sheet is None:
        return []
    lines = [f"{sheet.get('part')}: {sheet.get('match_reason') or 'matched by device name'}"]
    per_part = sheet.get("tflops_per_part") or {}
    sources = sheet.get("sources") or {}
    notes = sheet.get("notes") or {}
    for key, value in per_part.items():
        note = f" ({notes[key]})" if notes.get(key) else ""
        lines.append(f"{key}: {fmt_number(value)} TFLOPS per part — {sources.get(key, 'no source')}{note}")
    for key, unit in (("power_w", "W"), ("memory_bandwidth_gbps", "GB/s")):
        value = sheet.get(f"{key}_per_part")
        if value is not None:
            lines.append(f"{key}: {fmt_number(value)} {unit} per part — {sources.get(key, 'no source')}")
    if sheet.get("note"):
        lines.append(f"note: {sheet['note']}")
    return lines


def summary_table(profile: dict[str, Any]) -> Table:
    table = Table(title="Peak GEMM throughput (best median over sizes; the targets judge its confirmation)",
                  title_justify="left")
    headers, rows = summary_rows(profile)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    return table


def datasheet_line(profile: dict[str, Any]) -> str | None:
    """One line naming the matched datasheet and its headline figures; None for files from before datasheets."""
    device = profile.get("device") or {}
    if "datasheet" not in device and "datasheet_reason" not in device:
        return None
    sheet = _datasheet(profile)
    if sheet is None:
        return "datasheet: none" + (f" ({device['datasheet_reason']})" if device.get("datasheet_reason") else "")
    peaks = sheet.get("peak_tflops") or {}
    figures = ", ".join(f"{dtype} {fmt_tflops(peaks[dtype])}" for dtype in sorted(peaks, key=_dtype_order))
    per_device = sheet.get("devices_per_part") or 1
    text = f"datasheet: {sheet.get('part')} — peak TFLOPS per device: {figures or 'none given'}"
    if per_device > 1:
        text += f" (the part is {per_device} devices; figures are per device)"
    if sheet.get("power_w_per_part"):
        text += (f"; {fmt_number(sheet['power_w_per_part'])} W {sheet.get('power_kind') or ''} "
                 f"({sheet.get('power_covers') or 'coverage not stated'})").replace("  ", " ")
    if sheet.get("match_caveat"):
        text += f"; caveat: {sheet['match_caveat']}"
    return text


ENERGY_HEADERS = ["case", "window", "source", "scope", "quality", "avg W", "idle W", "TFLOPS", "TFLOPS/W",
                  "net TFLOPS/W", "counter/integrated", "note"]


def energy_rows(profile: dict[str, Any]) -> Iterable[list[str]]:
    """One row per energy window: every power figure beside its source, scope, quality and window length."""
    idle = (profile.get("power") or {}).get("idle")
    windows = ([("idle", idle)] if idle else []) + [
        (m["id"], m["energy"]) for m in profile.get("measurements", []) if m.get("energy")]
    for case, e in windows:
        note = e.get("reason") if not e.get("valid") else "; ".join(e.get("warnings") or [])
        label = case if case == "idle" else f"{case} ({e.get('kind', '')})"
        yield [label, f"{e.get('window_s') or 0:.1f} s", e["source"], e["scope"], e["quality"],
               fmt_number(e.get("avg_watts")), fmt_number(e.get("idle_watts")), fmt_tflops(e.get("tflops")),
               fmt_number(e.get("tflops_per_watt")), fmt_number(e.get("tflops_per_watt_net")),
               fmt_number(e.get("counter_vs_integrated")), note or ""]


def energy_table(profile: dict[str, Any]) -> Table | None:
    rows = list(energy_rows(profile))
    if not rows:
        return None
    table = Table(title="Energy windows (power over the same window as the sustained TFLOPS)", title_justify="left")
    for header in ENERGY_HEADERS:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def power_line(profile: dict[str, Any]) -> str:
    power = profile.get("power") or {}
    source = power.get("source")
    if source is None:
        return "power: none (" + ("; ".join(power.get("notes") or []) or "not measured") + ")"
    uncertainty = ("an estimate, uncertainty unknown" if source["quality"] == "Q0"
                   else f"±{source.get('uncertainty_rel', 0):.0%}")
    return (f"power: {source['name']} — {source.get('detail', '')}; quality {source['quality']}, scope "
            f"{source['scope']}, {uncertainty}")


def support_table(profile: dict[str, Any]) -> Table:
    table = Table(title="FP16 support on the device (terminal-chip criterion)", title_justify="left")
    for header in ("family", "supported", "checks", "reason"):
        table.add_column(header)
    for family, entry in profile.get("support", {}).items():
        supported = entry.get("supported")
        label = {True: Text("yes", style="green"), False: Text("no", style="red")}.get(supported, Text("unchecked"))
        checks = ", ".join(f"{c['name']} {c['rel_error']:.1e}" if c.get("rel_error") is not None else c["name"]
                           for c in entry.get("checks", []))
        table.add_row(family, label, checks, entry.get("reason") or "")
    return table


def verdicts_table(verdicts: list[dict[str, Any]]) -> Table:
    table = Table(title="Verdicts", title_justify="left", show_lines=True)
    for header in ("target", "status", "criterion", "measured [lower, upper]", "result", "reason"):
        table.add_column(header, overflow="fold")
    for verdict in verdicts:
        first = True
        for c in verdict["criteria"]:
            table.add_row(verdict["target"] if first else "",
                          Text(verdict["status"], style=STATUS_STYLE[verdict["status"]]) if first else "",
                          f"{c['metric']} {c['op']} {fmt_number(c['threshold'])} {c.get('unit', '')}".strip(),
                          _bounds_text(c), Text(c["status"], style=STATUS_STYLE[c["status"]]), c.get("reason") or "")
            first = False
    return table


def _bounds_text(c: dict[str, Any]) -> str:
    if c.get("measured") is None:
        return "not measured"
    return f"{fmt_number(c['measured'])} [{fmt_number(c.get('lower'))}, {fmt_number(c.get('upper'))}]"


def profile_label(path: Any, profile: dict[str, Any]) -> str:
    """How a profile is named in tables and legends: device and start time (and threads, on a CPU)."""
    extra = ""
    if profile["device"].get("backend") == "cpu":
        threads = ((profile.get("environment") or {}).get("threads") or {}).get("intra_op")
        extra = f", {threads} thread{'' if threads == 1 else 's'}" if threads else ""
    return f"{profile['device']['name']} ({profile['created_utc']}{extra})"


def header_lines(profile: dict[str, Any]) -> list[str]:
    device = profile["device"]
    env = profile["environment"]
    settings = profile["settings"]
    torch_info = env.get("torch", {})
    lines = [
        f"device: {device['name']} ({device['id']}), timing: {device.get('timing_method')}",
        f"host: {env.get('hostname')}, {env.get('os')}, torch {torch_info.get('version')}, "
        f"threads {env.get('threads', {}).get('intra_op')}",
        f"suite: {settings.get('suite')}, seed {settings.get('seed')}, created {profile['created_utc']}"
        + (", INTERRUPTED" if profile.get("interrupted") else ""),
        power_line(profile),
    ]
    sheet_line = datasheet_line(profile)
    if sheet_line:
        lines.append(sheet_line)
    return lines


def to_markdown(profile: dict[str, Any]) -> str:
    """The whole profile as Markdown: header, summary, support, verdicts, measurements, warnings."""
    out = [f"# npucheck result: {profile['device']['name']}", ""]
    out += [f"- {line}" for line in header_lines(profile)]
    headers, rows = summary_rows(profile)
    out += ["", "## Peak GEMM throughput", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    energy = list(energy_rows(profile))
    if energy:
        out += ["", "## Energy windows", "", "| " + " | ".join(ENERGY_HEADERS) + " |", "|" + "---|" * len(ENERGY_HEADERS)]
        out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in energy]
    out += ["", "## FP16 support", "", "| family | supported | reason |", "|---|---|---|"]
    for family, entry in profile.get("support", {}).items():
        supported = {True: "yes", False: "no"}.get(entry.get("supported"), "unchecked")
        out.append(f"| {family} | {supported} | {_md(entry.get('reason') or '')} |")
    out += ["", "## Verdicts", "", "| target | status | criterion | measured [lower, upper] | result | reason |",
            "|---|---|---|---|---|---|"]
    for verdict in profile.get("verdicts", []):
        for c in verdict["criteria"]:
            out.append(f"| {verdict['target']} | {verdict['status']} | {c['metric']} {_md(c['op'])} "
                       f"{fmt_number(c['threshold'])} | {_bounds_text(c)} | {c['status']} | {_md(c.get('reason') or '')} |")
    out += ["", "## Measurements", "", "| " + " | ".join(MEASUREMENT_HEADERS) + " |",
            "|" + "---|" * len(MEASUREMENT_HEADERS)]
    out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in measurement_rows(profile)]
    if profile.get("warnings"):
        out += ["", "## Warnings", ""] + [f"- {_md(w)}" for w in profile["warnings"]]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_json(data: Any) -> str:
    return json.dumps(data, indent=1)


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
        frame: The frame of ``npucheck.compare.compare_frames``.
        others: How many profiles were compared with the base; above one, an "other" column names each.

    Returns:
        A pandas frame of display strings (the input itself when it is empty).
    """
    import pandas as pd  # here, not at the top: ``show`` and ``check`` do not need pandas

    if frame.empty:
        return frame
    display = pd.DataFrame({"case": frame["case"],
                            "base TFLOPS": frame["base_tflops"].map(tflops_or_dash),
                            "TFLOPS": frame["other_tflops"].map(tflops_or_dash)})
    display["ratio [95% CI]"] = [
        "—" if is_missing(r) else f"{r:.3f} [{lo:.3f}, {hi:.3f}]"
        for r, lo, hi in zip(frame["ratio"], frame["ratio_low"], frame["ratio_high"])]
    if frame["tflops_per_watt_ratio"].notna().any() or frame["base_tflops_per_watt"].notna().any():
        display["TFLOPS/W base → other"] = [
            f"{fmt_tflops(None if is_missing(b) else b)} → {fmt_tflops(None if is_missing(o) else o)}"
            for b, o in zip(frame["base_tflops_per_watt"], frame["other_tflops_per_watt"])]
    display["verdict"] = frame["verdict"]
    display["note"] = frame["note"]
    if others > 1:
        display.insert(0, "other", frame["other"])
    return display


def comparison_summary_lines(summary: dict[str, Any], style: Literal["command", "report"] = "command",
                             counts: bool = True) -> list[str]:
    """The comparison summary as plain text lines; the one place every rendering of it takes its lines from.

    Lines come in this order: geometric-mean speed ratios, counts by verdict, target verdicts that changed.
    They are not escaped: the caller escapes them for its medium (rich markup, HTML).

    Args:
        summary: What ``npucheck.compare.summary`` returns.
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
            lines.append(f"{other}: geometric-mean speed ratio " + ", ".join(f"{family} {ratio:.3f}"
                                                                             for family, ratio in families.items()))
        else:
            lines += [f"{family}: geometric-mean speed ratio {ratio:.3f}" for family, ratio in families.items()]
    for other, verdict_counts in summary.get("counts", {}).items() if counts else ():
        if style == "command":
            lines.append(f"{other}: " + ", ".join(f"{verdict} {count}" for verdict, count in verdict_counts.items()))
        else:
            lines.append(", ".join(f"{verdict}: {count}" for verdict, count in verdict_counts.items()))
    for other, changes in summary.get("verdict_changes", {}).items():
        for change in changes:
            if style == "command":
                lines.append(f"{other}: verdict {change['target']} changed {change['base']} -> {change['other']}")
            else:
                lines.append(f"verdict change: {change['target']} {change['base']} → {change['other']}")
    return lines
