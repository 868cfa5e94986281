"""Turn result profiles and verdicts into rich tables, Markdown or JSON text. Builds; never prints.

No torch here: ``show``, ``check`` and ``targets`` must start fast.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

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


def summary_table(profile: dict[str, Any]) -> Table:
    summary = profile.get("summary", {})
    table = Table(title="Peak GEMM throughput (best median over sizes)", title_justify="left")
    for header in ("dtype", "peak TFLOPS", "95% CI", "case", "TFLOPS/W"):
        table.add_column(header)
    peaks = summary.get("peak", {})
    per_watt = summary.get("tflops_per_watt", {})
    for dtype in sorted(set(peaks) | set(per_watt), key=lambda d: ("fp16", "bf16", "fp32").index(d)
                        if d in ("fp16", "bf16", "fp32") else 9):
        peak = peaks.get(dtype)
        table.add_row(dtype, fmt_tflops(peak["tflops"]) if peak else "—",
                      f"{fmt_tflops(peak['ci_low'])}–{fmt_tflops(peak['ci_high'])}" if peak else "—",
                      peak["case"].split("/", 2)[2] if peak else "no successful GEMM",
                      fmt_number(per_watt.get(dtype)) if per_watt.get(dtype) is not None else "not measured")
    return table


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
    return lines


def to_markdown(profile: dict[str, Any]) -> str:
    """The whole profile as Markdown: header, summary, support, verdicts, measurements, warnings."""
    out = [f"# npucheck result: {profile['device']['name']}", ""]
    out += [f"- {line}" for line in header_lines(profile)]
    out += ["", "## Peak GEMM throughput", "", "| dtype | peak TFLOPS | 95% CI | case | TFLOPS/W |", "|---|---|---|---|---|"]
    summary = profile.get("summary", {})
    for dtype, peak in summary.get("peak", {}).items():
        per_watt = summary.get("tflops_per_watt", {}).get(dtype)
        out.append(f"| {dtype} | {fmt_tflops(peak['tflops'])} | {fmt_tflops(peak['ci_low'])}–"
                   f"{fmt_tflops(peak['ci_high'])} | {_md(peak['case'])} | "
                   f"{fmt_number(per_watt) if per_watt is not None else 'not measured'} |")
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
