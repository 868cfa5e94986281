"""Reading the efficiency-vs-power-cap sweep (``power_caps``, from ``npucheck run --power-caps``).

Each cap's TFLOPS and TFLOPS/W are recomputed from its window's work, energy and length (as
:mod:`npucheck.evidence` does for every window); a cap whose stored figure disagrees is shown as edited and never
used. The best cap is recomputed here, whatever the file says. Whether any cap clears a target's TFLOPS/W
criterion is evidence beside the verdict, never the verdict: the verdict is judged at the run's own limit. A cap
clears a criterion when its whole interval (TFLOPS/W widened by the window's uncertainty) meets it, as the judge
decides (:func:`npucheck.read.judge.decide`); a stated figure (Q0) or a source that does not cover the device
never clears anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from npucheck.evidence import agrees, window_tflops_per_watt
from npucheck.model import PowerCaps, PowerCapStep, ResultProfile, Verdict
from npucheck.read.judge import PASS, decide

__all__ = ["CapRow", "best_row", "cap_rows", "power_cap_lines", "target_evidence"]

CapRow = dict[str, Any]


def cap_rows(caps: PowerCaps) -> list[CapRow]:
    """One row per cap: label, limits (W), verified, TFLOPS, TFLOPS/W and average watts recomputed from the
    window (None when there is none), uncertainty, whether it may be judged, and why not / the error."""
    return [_row(step) for step in caps.steps]


def _row(step: PowerCapStep) -> CapRow:
    row: CapRow = {
        "label": step.label,
        "requested_w": step.requested_w,
        "read_back_w": step.read_back_w,
        "enforced_w": step.enforced_w,
        "verified": bool(step.verified),
        "tflops": None,
        "tflops_per_watt": None,
        "avg_watts": None,
        "uncertainty_rel": None,
        "judgeable": False,
        "note": step.error,
    }
    energy = step.energy
    if not step.verified or energy is None:
        return row
    if not energy.valid or energy.joules is None or not energy.window_s or energy.flops is None:
        row["note"] = f"window not valid: {energy.reason or 'no work or energy recorded'}"
        return row
    tflops = energy.flops / energy.window_s / 1e12
    per_watt = window_tflops_per_watt(energy.flops, energy.joules, energy.window_s)
    if not (agrees(energy.tflops, tflops) and agrees(energy.tflops_per_watt, per_watt)):
        row["note"] = "edited: the stored figures disagree with the window's work and energy; not used"
        return row
    row.update(
        tflops=tflops,
        tflops_per_watt=per_watt,
        avg_watts=energy.joules / energy.window_s,
        uncertainty_rel=energy.uncertainty_rel or 0.0,
    )
    if energy.quality == "Q0":
        row["note"] = "a stated power figure (Q0): shown, never judged"
    elif energy.covers_device is False:
        row["note"] = "the power source does not cover the device: shown, never judged"
    elif energy.judgeable is False:
        row["note"] = energy.not_judged_reason or "not judgeable"
    else:
        row["judgeable"] = True
    return row


def best_row(rows: Iterable[CapRow]) -> CapRow | None:
    """The judgeable cap with the highest recomputed TFLOPS/W, or None when no cap has one (a window whose figure
    is not judged, e.g. sustained and timed TFLOPS far apart, is shown but never named best)."""
    measured = [row for row in rows if row["tflops_per_watt"] is not None and row["judgeable"]]
    return max(measured, key=lambda row: row["tflops_per_watt"]) if measured else None


def target_evidence(caps: PowerCaps, verdicts: Iterable[Verdict]) -> list[dict[str, Any]]:
    """For each verdict's TFLOPS/W criterion of the sweep's dtype: the caps whose whole interval clears it. One
    entry per criterion: target, criterion (metric, op, threshold), the verdict at the run's own limit, and the
    caps that clear it (labels; empty: none does)."""
    rows = cap_rows(caps)
    out: list[dict[str, Any]] = []
    for verdict in verdicts:
        for criterion in verdict.criteria:
            if criterion.metric != f"tflops_per_watt.{caps.dtype}":
                continue
            clearing = []
            for row in rows:
                if not row["judgeable"]:
                    continue
                spread = row["tflops_per_watt"] * row["uncertainty_rel"]
                lower, upper = row["tflops_per_watt"] - spread, row["tflops_per_watt"] + spread
                if decide(criterion.op, criterion.threshold, lower, upper) == PASS:
                    clearing.append(row["label"])
            out.append(
                {
                    "target": verdict.target,
                    "metric": criterion.metric,
                    "op": criterion.op,
                    "threshold": criterion.threshold,
                    "verdict": criterion.status,
                    "clearing": clearing,
                }
            )
    return out


def power_cap_lines(profile: ResultProfile) -> list[str]:
    """The cap table and what it says, as lines for ``show`` (empty without a sweep)."""
    caps = profile.power_caps
    if caps is None:
        return []
    lines = [
        f"power caps ({caps.api}; {caps.case or 'no case'}): limit at the start {caps.original_w:g} W, allowed "
        f"{caps.min_w:g}-{caps.max_w:g} W, FULL = the default {caps.default_w:g} W",
        f"  {'cap':>6}  {'set W':>7}  {'read W':>7}  {'enforced':>8}  {'TFLOPS':>9}  {'TFLOPS/W':>9}  "
        f"{'avg W':>7}  note",
    ]
    rows = cap_rows(caps)
    for row in rows:
        lines.append(
            f"  {row['label']:>6}  {row['requested_w']:>7g}  {_num(row['read_back_w']):>7}  "
            f"{_num(row['enforced_w']):>8}  {_num(row['tflops'], 4):>9}  {_num(row['tflops_per_watt'], 4):>9}  "
            f"{_num(row['avg_watts'], 4):>7}  {row['note'] or ''}".rstrip()
        )
    best = best_row(rows)
    lines.append(
        f"  best TFLOPS/W: cap {best['label']} ({best['tflops_per_watt']:.4g} TFLOPS/W at {best['tflops']:.4g} TFLOPS)"
        if best is not None
        else "  best TFLOPS/W: none (no cap has a valid window)"
    )
    for entry in target_evidence(caps, profile.verdicts):
        what = f"{entry['metric']} {entry['op']} {entry['threshold']:g}"
        clears = f"caps {', '.join(entry['clearing'])} clear it" if entry["clearing"] else "no cap clears it"
        lines.append(
            f"  power-cap evidence (not a verdict): {entry['target']} {what}: {clears}; the verdict, at the "
            f"run's own limit, is {entry['verdict']}"
        )
    restore = caps.restore
    if restore is None:
        lines.append(
            "  restore: not needed (the sweep never changed the limit)" if not caps.steps else "  restore: NOT RUN"
        )
    elif restore.verified:
        lines.append(f"  restore: {restore.target_w:g} W set back and read back ({_num(restore.read_back_w)} W)")
    else:
        lines.append(f"  restore: FAILED, the limit should be {restore.target_w:g} W: {restore.error}")
    lines += [f"  warning: {w}" for w in caps.warnings]
    return lines


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if digits else f"{value:g}"
