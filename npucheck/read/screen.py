"""What ``show``, ``run``, ``check`` and ``results`` print: sized to the terminal, plain text when piped.

Rules (checked at 80, 120 and 200 columns in ``tests/test_screen.py``):

* The width is the terminal's; when output is not a terminal it is ``$COLUMNS``, else :data:`PIPE_WIDTH`. Piped
  output is plain text: no box drawing, no colour.
* Identifiers (case shapes, target names) and numbers are never broken: their columns do not wrap, and the
  columns shown are chosen to fit the width (the kernel and dtype become a group line above their rows when the
  width is narrow).
* Long texts (errors, warnings, reasons) are footnotes under the table, each written once however many rows
  refer to it (``[1]``, ``[2]``, …), wrapped at spaces.
* Skipped cases are folded into one line per kernel and dtype under the table (``--all-cases`` lists them all).
* A bottom line comes first and last: one line per target with its verdict and the criterion that decided it.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from npucheck.model import CriterionResult, Measurement, ResultProfile, Verdict
from npucheck.read.bandwidth_text import BANDWIDTH_HEADERS, BANDWIDTH_TITLE, bandwidth_rows, gbps_cells, is_memory
from npucheck.read.powercaps import power_cap_lines
from npucheck.read.text import (
    STATUS_STYLE,
    bottom_line,
    bottom_lines,
    bounds_text,
    ci_text,
    energy_rows,
    fmt_number,
    fmt_tflops,
    header_lines,
    measurement_note,
    spread_text,
    summary_rows,
    value_or,
)

__all__ = [
    "print_lines",
    "print_wrapped",
    "make_console",
    "PIPE_WIDTH",
    "print_profile",
    "print_table",
    "print_verdicts",
    "house_style",
    "results_table",
    "skipped_lines",
    "Footnotes",
]


PIPE_WIDTH = 100
"""Width of piped output when ``$COLUMNS`` is not set."""
WIDE = 110
"""At this width and above, the measurements table shows kernel, dtype, spread and sample count as columns."""


def make_console(err: bool = False, stream: IO[str] | None = None) -> Console:
    """A console for the commands: the terminal's width, or ``$COLUMNS`` (else PIPE_WIDTH) and plain text when the
    output is not a terminal."""
    out = stream if stream is not None else (sys.stderr if err else sys.stdout)
    terminal = hasattr(out, "isatty") and out.isatty()
    width = None
    if not terminal:
        try:
            width = max(40, int(os.environ.get("COLUMNS", "")))
        except ValueError:
            width = PIPE_WIDTH
    return Console(
        file=out,
        highlight=False,
        soft_wrap=False,
        width=width,
        force_terminal=terminal,
        no_color=not terminal,
        emoji=False,
    )


def _plain(console: Console) -> bool:
    return not console.is_terminal


def _table(console: Console, title: str | None = None) -> Table:
    """A table in the house style: a rule under the headers on a terminal, plain columns when piped."""
    return Table(
        title=title,
        title_justify="left",
        box=None if _plain(console) else box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        header_style="" if _plain(console) else "bold",
    )


@dataclass
class Footnotes:
    """Long texts written once under a table; rows carry their number."""

    texts: list[str] = field(default_factory=list)

    def mark(self, text: str | None) -> str:
        if not text:
            return ""
        if text not in self.texts:
            self.texts.append(text)
        return f"[{self.texts.index(text) + 1}]"

    def lines(self, width: int) -> list[str]:
        out = []
        for number, text in enumerate(self.texts, 1):
            out += _wrap(f"[{number}] {text}", width, indent=" " * (len(str(number)) + 3))
        return out


def _wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    """Wrap at spaces only: identifiers and numbers are never broken (a word longer than the width stays whole)."""
    return textwrap.wrap(
        text, width=max(20, width), subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    ) or [""]


def print_lines(console: Console, lines: Iterable[str]) -> None:
    for line in lines:
        console.print(escape(line), overflow="ignore", crop=False)


def print_wrapped(console: Console, lines: Iterable[str]) -> None:
    """Each line wrapped to the console's width at spaces (continuations indented)."""
    for line in lines:
        print_lines(console, _wrap(line, console.width))


def house_style(console: Console, table: Table) -> Table:
    """A table built elsewhere (a pandas frame, a target) in the house style: plain columns when piped, and no
    column narrower than its longest word, so that rich wraps between words and never inside one."""
    for column in table.columns:
        words = [str(column.header)] + [str(cell) for cell in column._cells]
        longest = max((len(word) for text in words for word in str(text).split()), default=1)
        column.min_width = max(column.min_width or 0, longest)
    if _plain(console):
        table.box = None
        table.show_edge = False
        table.header_style = ""
    return table


def print_table(console: Console, table: Table, notes: Footnotes | None = None) -> None:
    """The table in the house style; where its columns cannot fit without breaking a word, one block of lines per
    row instead (the first column's value, then ``header: value`` pairs wrapped at spaces)."""
    table = house_style(console, table)
    needed = sum((c.min_width or 1) + 2 for c in table.columns)
    if needed <= console.width:
        console.print(table)
    else:
        if table.title:
            print_wrapped(console, [str(table.title)])
        headers = [str(c.header) for c in table.columns]
        cells = [[str(cell) for cell in c._cells] for c in table.columns]
        for row in range(table.row_count):
            values = [cells[col][row] for col in range(len(headers))]
            print_wrapped(console, [values[0]])
            pairs = [f"{h}: {v}" for h, v in zip(headers[1:], values[1:]) if v.strip()]
            for line in _wrap("; ".join(pairs), console.width - 2, indent="  "):
                print_lines(console, ["  " + line if not line.startswith("  ") else line])
    if notes is not None and notes.texts:
        print_lines(console, notes.lines(console.width))


# ------------------------------------------------------------------------------------------------ measurements
def _shape(m: Measurement) -> str:
    return m.id.split("/", 2)[2]


def _status(console: Console, status: str) -> Text:
    return Text(status, style="" if _plain(console) else STATUS_STYLE.get(status, ""))


def measurements_table(
    console: Console, profile: ResultProfile, all_cases: bool = False
) -> tuple[Table, Footnotes, list[str]]:
    """The measurements, grouped by kernel and dtype, with notes as footnotes; the skipped cases folded into one
    line per kernel and dtype (returned) unless ``all_cases``."""
    wide = console.width >= WIDE
    notes = Footnotes()
    table = _table(console, "Measurements")
    columns = (["kernel", "dtype"] if wide else []) + ["shape", "status", "TFLOPS", "95% CI"]
    columns += ["IQR/med", "n"] if wide else []
    columns += ["note"]
    for name in columns:
        numeric = name in ("TFLOPS", "95% CI", "IQR/med", "n")
        table.add_column(name, no_wrap=True, justify="right" if numeric else "left")
    shown = [m for m in profile.measurements if all_cases or m.status != "skipped"]
    group = None
    for m in shown:
        if not wide and (m.kernel, m.dtype) != group:
            group = (m.kernel, m.dtype)
            table.add_row(Text(f"{m.kernel} {m.dtype}", style="" if _plain(console) else "bold"))
        note = measurement_note(m)
        cells: list[Any] = [m.kernel, m.dtype] if wide else []
        figure, interval = gbps_cells(m) if is_memory(m) else (fmt_tflops(m.tflops), ci_text(m))
        cells += [_shape(m), _status(console, m.status), figure, interval]
        if wide:
            cells += [spread_text(m), str(len(m.samples_s or ()))]
        cells.append(notes.mark(note))
        table.add_row(*cells)
    return table, notes, ([] if all_cases else skipped_lines(profile.measurements))


_BUDGET = re.compile(r"exceeds the case budget of ([0-9.eg+]+ s)")


def _skip_kind(reason: str) -> str:
    """A skip reason without its per-case figures, so that one line can stand for a kernel's skipped sizes."""
    budget = _BUDGET.search(reason)
    if budget:
        return f"predicted time exceeds the case budget of {budget.group(1)}"
    if reason.startswith("suite budget"):
        return "the suite budget ran out"
    return reason


def skipped_lines(measurements: Sequence[Measurement]) -> list[str]:
    """One line per kernel and dtype with skipped cases: how many, which, and why (per-case figures dropped)."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        if m.status == "skipped":
            groups.setdefault((m.kernel, m.dtype), []).append(m)
    lines = []
    for (kernel, dtype), skipped in groups.items():
        kinds = list(dict.fromkeys(_skip_kind(m.reason or "no reason recorded") for m in skipped))
        shapes = [_shape(m) for m in skipped]
        which = shapes[0] if len(shapes) == 1 else f"{shapes[0]} to {shapes[-1]}"
        lines.append(f"skipped {kernel} {dtype}: {len(skipped)} ({which}): {'; '.join(kinds)}")
    if lines:
        lines.append("(--all-cases lists each skipped case with its reason)")
    return lines


# ------------------------------------------------------------------------------------------------ verdicts
def _criterion(c: CriterionResult) -> str:
    return f"{c.metric} {c.op} {fmt_number(c.threshold)} {value_or(c, 'unit', '') or ''}".strip()


def _as_verdicts(verdicts: Iterable[Verdict | Any]) -> list[Verdict]:
    return [v if isinstance(v, Verdict) else Verdict.from_dict(v) for v in verdicts]


def verdicts_table(console: Console, verdicts: Iterable[Verdict | Any]) -> tuple[Table, Footnotes]:
    """One group line per target (name and verdict), its criteria under it; reasons as footnotes, each once."""
    notes = Footnotes()
    table = _table(console, "Verdicts")
    for name in ("criterion", "measured [lower, upper]", "result", "why"):
        table.add_column(name, no_wrap=name != "measured [lower, upper]")
    for verdict in _as_verdicts(verdicts):
        table.add_row(
            Text.assemble(
                (verdict.target, "" if _plain(console) else "bold"),
                ": ",
                (verdict.status, "" if _plain(console) else STATUS_STYLE[verdict.status]),
            )
        )
        for c in verdict.criteria:
            table.add_row("  " + _criterion(c), bounds_text(c), _status(console, c.status), notes.mark(c.reason))
    return table, notes


def print_verdicts(console: Console, verdicts: Sequence[Verdict | Any], bottom_first: bool = True) -> None:
    if not verdicts:
        return
    if bottom_first:
        print_lines(console, _bottom(console, verdicts))
    table, notes = verdicts_table(console, verdicts)
    print_table(console, table, notes)


def _bottom(console: Console, verdicts: Sequence[Verdict | Any]) -> list[str]:
    out = []
    for line in bottom_lines(verdicts):
        out += _wrap(bottom_line(*line), console.width, indent="    ")
    return out


# ------------------------------------------------------------------------------------------------ results
RESULT_COLUMNS = (
    ("file", "file", True),
    ("device", "device", True),
    ("suite", "suite", True),
    ("peak_fp16_tflops", "fp16 peak TFLOPS", True),
    ("fp16_tflops_per_watt", "fp16 TFLOPS/W", True),
    ("verdicts", "verdicts", True),
    ("dtypes", "dtypes", True),
    ("kernels", "kernels", True),
    ("threads", "threads", True),
    ("date", "date", False),
    ("power", "power", False),
    ("backend", "backend", False),
)
"""(frame column, header, shown at any width); the optional ones are added, in this order, while the table fits."""


def results_table(console: Console, frame: Any, title: str) -> list[str]:
    """The ``results`` listing as lines: readable headers and the columns that fit the width (file, device, suite,
    fp16 figures, dtypes, kernels and threads first; then date, power source and backend while they fit), the
    verdicts last, wrapped at spaces in the width left. Where even the first columns do not fit, one block of
    lines per profile."""
    records = frame.to_dict(orient="records")
    cells = {name: [_cell(name, r.get(name)) for r in records] for name, _, _ in RESULT_COLUMNS}
    cells["suite"] = [s + (" (interrupted)" if r.get("interrupted") else "") for s, r in zip(cells["suite"], records)]
    widths = {name: max([len(header)] + [len(c) for c in cells[name]]) for name, header, _ in RESULT_COLUMNS}
    chosen = [c for c in RESULT_COLUMNS if c[2] and c[0] != "verdicts"]
    verdicts_min = max([len("verdicts")] + [len(w) for c in cells["verdicts"] for w in c.split()])

    def width_of(columns: list[tuple[str, str, bool]]) -> int:
        return sum(widths[name] + 2 for name, _, _ in columns) + verdicts_min

    if width_of(chosen) > console.width:
        return _result_blocks(frame, title)
    for optional in [c for c in RESULT_COLUMNS if not c[2]]:
        if width_of([*chosen, optional]) <= console.width:
            chosen.append(optional)
    chosen = [c for c in RESULT_COLUMNS if c in chosen and c[0] != "verdicts"]
    left = console.width - sum(widths[name] + 2 for name, _, _ in chosen)
    lines = [title, "  ".join(header.ljust(widths[name]) for name, header, _ in chosen) + "  verdicts"]
    for index in range(len(records)):
        fixed = "  ".join(cells[name][index].ljust(widths[name]) for name, _, _ in chosen) + "  "
        wrapped = textwrap.wrap(cells["verdicts"][index], width=left, break_long_words=False) or [""]
        lines.append(fixed + wrapped[0])
        lines += [" " * len(fixed) + more for more in wrapped[1:]]
    return [line.rstrip() for line in lines]


def _cell(name: str, value: Any) -> str:
    value = _number(value)
    if name == "verdicts":
        return _verdicts_text(value)
    return fmt_number(value)


def _result_blocks(frame: Any, title: str) -> list[str]:
    lines = [title]
    for r in frame.to_dict(orient="records"):
        threads = (
            f", {r['threads']} threads" if r.get("threads") not in (None, "") and r["threads"] == r["threads"] else ""
        )
        lines += [
            f"{r['file']}",
            f"  {r['device']}, {r['suite']}{' (interrupted)' if r.get('interrupted') else ''} "
            f"({r['kernels']}; {r['dtypes']}){threads}, {r['date']}",
            f"  fp16 peak {fmt_number(_number(r['peak_fp16_tflops']))} TFLOPS, "
            f"fp16 TFLOPS/W {fmt_number(_number(r['fp16_tflops_per_watt']))}",
            f"  {_verdicts_text(r['verdicts'])}",
        ]
    return lines


def _number(value: Any) -> Any:
    return None if value is None or value != value else value


def _verdicts_text(value: Any) -> str:
    return (value or "no verdicts").replace(": ", " ")


# ------------------------------------------------------------------------------------------------ whole profile
def _summary_table(console: Console, profile: ResultProfile) -> Table:
    headers, rows = summary_rows(profile)
    table = _table(console, "Peak GEMM throughput (the targets judge the confirmed figure)")
    for header in headers:
        table.add_column(header, no_wrap=True)
    narrow = console.width < WIDE
    for row in rows:
        if narrow and "confirmed" in headers:  # the confirmed figure without its interval
            index = headers.index("confirmed")
            row = [*row[:index], row[index].split(" [")[0], *row[index + 1 :]]
        table.add_row(*row)
    return table


def _energy_table(console: Console, profile: ResultProfile) -> tuple[Table, Footnotes] | None:
    rows = list(energy_rows(profile))
    if not rows:
        return None
    notes = Footnotes()
    wide = console.width >= 150
    table = _table(console, "Energy windows (power over the same window as the sustained TFLOPS)")
    headers = ["case", "window", "avg W", "TFLOPS", "TFLOPS/W", "net", "note"]
    if wide:
        headers = ["case", "window", "source", "scope", "quality", "avg W", "idle W", "TFLOPS", "TFLOPS/W", "net"]
        headers += ["counter/integrated", "note"]
    for header in headers:
        table.add_column(header, no_wrap=True)
    for row in rows:
        (case, window, source, scope, quality, avg, idle, tflops, per_watt, net, agreement, note) = row
        if wide:
            cells = [case, window, source, scope, quality, avg, idle, tflops, per_watt, net, agreement]
        else:
            cells = [case.split(" (")[0].split("/", 2)[-1], window, avg, tflops, per_watt, net]
        table.add_row(*cells, notes.mark(note))
    return table, notes


def _support_lines(profile: ResultProfile) -> list[str]:
    lines = []
    for family, entry in (profile.support or {}).items():
        state = "supported" if entry.supported is True else "NOT supported" if entry.supported is False else "unchecked"
        lines.append(f"{family}: {state}" + (f" ({entry.reason})" if entry.reason else ""))
    return ["FP16 support (terminal-chip criterion): " + "; ".join(lines)] if lines else []


def print_profile(console: Console, profile: ResultProfile, all_cases: bool = False) -> None:
    """The whole profile: bottom line, header, measurements (skipped folded), peaks, energy, support, verdicts,
    warnings, and the bottom line again."""
    width = console.width
    if profile.verdicts:
        print_lines(console, _bottom(console, profile.verdicts))
        console.print()
    for line in header_lines(profile):
        print_lines(console, _wrap(line, width))
    table, notes, skipped = measurements_table(console, profile, all_cases)
    console.print()
    print_table(console, table, notes)
    for line in skipped:
        print_lines(console, _wrap(line, width))
    console.print()
    console.print(_summary_table(console, profile))
    bandwidth = bandwidth_rows(profile)
    if bandwidth:  # memory cases (npucheck.read.bandwidth_text): measured GB/s beside the datasheet's
        console.print()
        table = _table(console, BANDWIDTH_TITLE)
        for header in BANDWIDTH_HEADERS:
            table.add_column(header, no_wrap=True)
        for row in bandwidth:
            table.add_row(*row)
        print_table(console, table)
    energy = _energy_table(console, profile)
    if energy is not None:
        console.print()
        print_table(console, *energy)
    caps = power_cap_lines(profile)  # the power-cap sweep: evidence beside the verdicts
    if caps:
        console.print()
        for line in caps:
            console.print(line, markup=False, highlight=False, overflow="fold")
    console.print()
    for line in _support_lines(profile):
        print_lines(console, _wrap(line, width))
    if profile.verdicts:
        console.print()
        print_verdicts(console, profile.verdicts, bottom_first=False)
    for warning in profile.warnings:
        print_lines(console, _wrap(f"warning: {warning}", width))
    if profile.verdicts:
        console.print()
        print_lines(console, _bottom(console, profile.verdicts))
