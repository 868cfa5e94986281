"""Compare stored result profiles case by case, and list a directory of them. Reads JSON only: no torch.

A difference in speed counts as real only when a bootstrap interval of the ratio of medians, computed from the
raw per-call samples both profiles keep, excludes 1; it counts as a regression (or improvement) only when it is
also larger than the threshold (asv's rule: a factor *and* statistical distinctness). Cases measured
differently (kernel version, FLOP convention, timing method, cache flushing) are marked incomparable rather
than compared; a case that failed its correctness check is not measured, however fast it ran; TFLOPS/W is
compared only between valid windows of the same power source and scope.

The case frame holds each value as the model holds it (``dtype=object``: Python bools, ints and None, never
numpy booleans or NaN), and every test of a value here reads it by truth or absence, never by identity with
``True``/``False``: a column pandas had turned into numpy booleans once made ``correct is False`` never true.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from npucheck.evidence import EDITED
from npucheck.model import Energy, ResultProfile
from npucheck.read.text import profile_label as label  # re-exported (in __all__) for callers of this module
from npucheck.read.verified import as_verified

__all__ = [
    "cases_frame",
    "classify",
    "compare_frames",
    "CONFIDENCE",
    "DEFAULT_THRESHOLD",
    "label",
    "ProfileLike",
    "ratio_interval",
    "RESAMPLES",
    "results_frame",
    "summary",
    "to_markdown",
]


ProfileLike = ResultProfile | Mapping[str, Any]
"""What the functions here accept: a :class:`ResultProfile` (used as given), or a loaded schema-v2 dict, whose
figures, summary and verdicts are re-derived from its raw evidence first (:func:`npucheck.read.verified.as_verified`):
an edited case is an error, never compared."""

DEFAULT_THRESHOLD = 0.05
RESAMPLES = 2000
CONFIDENCE = 0.95

REGRESSION, IMPROVEMENT, SMALL, NOISE = "regression", "improvement", "small change", "noise"
INCOMPARABLE, MISSING, NOT_MEASURED = "incomparable", "missing", "not measured"


# --------------------------------------------------------------------------------------------------- listing
def results_frame(entries: Sequence[tuple[Path, ProfileLike]]) -> pd.DataFrame:
    """One row per stored profile: file, device, date, suite, the kernels, dtypes and threads it ran, peak fp16
    TFLOPS, fp16 TFLOPS/W, verdicts."""
    rows = []
    for path, loaded in entries:
        profile = as_verified(loaded)
        source = profile.power.source
        rows.append(
            {
                "file": str(path),
                "device": profile.device.name,
                "backend": profile.device.backend,
                "date": profile.created_utc,
                "suite": profile.settings.suite,
                "kernels": ", ".join(profile.settings.kernels),
                "dtypes": ", ".join(profile.settings.dtypes),
                "threads": ((profile.environment.get("threads") or {}).get("intra_op")),
                "peak_fp16_tflops": _fp16(profile.summary.peak_tflops),
                "fp16_tflops_per_watt": _fp16(profile.summary.tflops_per_watt),
                "power": source.name if source is not None else None,
                "interrupted": bool(profile.interrupted),
                "verdicts": ", ".join(f"{v.target}: {v.status}" for v in profile.verdicts),
            }
        )
    columns = [
        "file",
        "device",
        "backend",
        "date",
        "suite",
        "kernels",
        "dtypes",
        "threads",
        "peak_fp16_tflops",
        "fp16_tflops_per_watt",
        "power",
        "interrupted",
        "verdicts",
    ]
    return pd.DataFrame(rows, columns=columns)


def _fp16(by_dtype: Mapping[str, Any] | None) -> Any:
    """The fp16 entry of a by-dtype summary figure, None when absent."""
    return by_dtype["fp16"] if by_dtype is not None and "fp16" in by_dtype else None


# --------------------------------------------------------------------------------------------------- cases
def cases_frame(profile: ProfileLike) -> pd.DataFrame:
    """The profile's measurements, one row per case id, with what decides comparability."""
    rows = []
    for m in as_verified(profile).measurements:
        energy: Energy | None = m.energy if m.energy is not None and m.energy.valid else None
        rows.append(
            {
                "id": m.id,
                "kernel": m.kernel,
                "family": m.family or m.kernel,
                "dtype": m.dtype,
                "flops": m.flops,
                "status": m.status,
                "error": m.error,
                "correct": m.correct,
                "tflops": m.tflops,
                "samples_s": list(m.samples_s),
                "kernel_version": m.kernel_version,
                "flop_convention": m.flop_convention,
                "timing_method": m.timing_method,
                "flushed": bool(m.cache_flush_bytes),
                "tflops_per_watt": energy.tflops_per_watt if energy is not None else None,
                "power_source": energy.source if energy is not None else None,
                "power_scope": energy.scope if energy is not None else None,
                "power_uncertainty": energy.uncertainty_rel if energy is not None else None,
                "power_invalid": m.energy.reason if m.energy is not None and not m.energy.valid else None,
            }
        )
    frame = pd.DataFrame(rows, dtype=object)  # values as the model holds them: no numpy bools, no NaN for None
    return frame.drop_duplicates("id").set_index("id") if not frame.empty else frame


def ratio_interval(
    base_s: list[float], other_s: list[float], seed: int = 0, resamples: int = RESAMPLES, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Speed ratio of ``other`` to ``base`` (median base time ÷ median other time; > 1 means faster) and a
    percentile-bootstrap interval of it from the raw per-call samples."""
    base = np.asarray(base_s, dtype=float)
    other = np.asarray(other_s, dtype=float)
    ratio = float(np.median(base) / np.median(other))
    rng = np.random.default_rng(seed)
    base_medians = np.median(base[rng.integers(0, base.size, (resamples, base.size))], axis=1)
    other_medians = np.median(other[rng.integers(0, other.size, (resamples, other.size))], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(base_medians / other_medians, [tail, 100 - tail])
    return ratio, float(low), float(high)


def _incomparable(base: pd.Series, other: pd.Series) -> str | None:
    for key, what in (
        ("kernel_version", "kernel version"),
        ("flop_convention", "FLOP convention"),
        ("timing_method", "timing method"),
        ("flushed", "cache flushing"),
    ):
        if not _same(base[key], other[key]):
            return f"{what} differs ({_shown(base[key])} vs {_shown(other[key])})"
    return None


def _same(a: Any, b: Any) -> bool:
    """Equal, counting two absent values (None or NaN) as the same and an absent one as unlike any value."""
    if _absent(a) or _absent(b):
        return _absent(a) and _absent(b)
    return bool(a == b)


def _shown(value: Any) -> str:
    return "unknown" if _absent(value) else str(value)


def classify(ratio: float, low: float, high: float, threshold: float) -> str:
    if high < 1 and ratio < 1 - threshold:
        return REGRESSION
    if low > 1 and ratio > 1 + threshold:
        return IMPROVEMENT
    if high < 1 or low > 1:
        return SMALL
    return NOISE


def compare_frames(
    base: ProfileLike, others: Sequence[tuple[str, ProfileLike]], threshold: float = DEFAULT_THRESHOLD, seed: int = 0
) -> pd.DataFrame:
    """One row per case and other profile: TFLOPS and TFLOPS/W of both, the speed ratio with its interval,
    and the verdict (regression, improvement, small change, noise, incomparable, missing, not measured)."""
    base_cases = cases_frame(base)
    rows = []
    for other_label, other in others:
        other_cases = cases_frame(other)
        ids = list(base_cases.index) + [i for i in other_cases.index if i not in base_cases.index]
        for case_id in ids:
            b = base_cases.loc[case_id] if case_id in base_cases.index else None
            o = other_cases.loc[case_id] if case_id in other_cases.index else None
            ref: pd.Series = b if b is not None else other_cases.loc[case_id]  # the id is in one of the two
            row: dict[str, Any] = {
                "other": other_label,
                "case": case_id,
                "kernel": ref["kernel"],
                "family": ref["family"],
                "dtype": ref["dtype"],
                "flops": ref["flops"],
                "base_tflops": _ok_tflops(b),
                "other_tflops": _ok_tflops(o),
                "ratio": None,
                "ratio_low": None,
                "ratio_high": None,
                "base_tflops_per_watt": None if b is None else b["tflops_per_watt"],
                "other_tflops_per_watt": None if o is None else o["tflops_per_watt"],
                "tflops_per_watt_ratio": None,
                "verdict": None,
                "note": "",
            }
            if b is None or o is None:
                row.update(verdict=MISSING, note="only in base" if o is None else "not in base")
            elif row["base_tflops"] is None or row["other_tflops"] is None:
                reasons = [
                    f"{side}: {reason}" for side, reason in (("base", _unusable(b)), ("other", _unusable(o))) if reason
                ]
                if b["status"] != "ok" or o["status"] != "ok":  # why only when it is the evidence's doing
                    reasons = [f"{side}: {c['error']}" for side, c in (("base", b), ("other", o)) if _edited(c)]
                row.update(
                    verdict=NOT_MEASURED,
                    note=f"status {b['status']} vs {o['status']}" + (f" ({'; '.join(reasons)})" if reasons else ""),
                )
            elif (why := _incomparable(b, o)) is not None:
                row.update(verdict=INCOMPARABLE, note=why)
            else:
                ratio, low, high = ratio_interval(b["samples_s"], o["samples_s"], seed)
                row.update(ratio=ratio, ratio_low=low, ratio_high=high, verdict=classify(ratio, low, high, threshold))
            _power_ratio(row, b, o)
            rows.append(row)
    return pd.DataFrame(rows)


def _ok_tflops(case: pd.Series | None) -> float | None:
    """The case's TFLOPS if it ran, was not found wrong and kept its raw samples; else None."""
    if case is None or _unusable(case) is not None:
        return None
    return float(case["tflops"])


def _unusable(case: pd.Series) -> str | None:
    """Why a case's speed cannot be compared (its status, a wrong answer, no TFLOPS, no raw samples); None if
    it can. ``correct`` is read by truth, not identity: ``is False`` misses a numpy ``False``."""
    if case["status"] != "ok":
        return f"status {case['status']}"
    if _wrong(case["correct"]):
        return "failed its correctness check"
    if _absent(case["tflops"]) or not math.isfinite(float(case["tflops"])):
        return "no TFLOPS"
    if not len(case["samples_s"]):
        return "no raw samples"  # nothing to judge a difference with
    return None


def _broke(case: pd.Series) -> bool:
    """An error (a failure, or figures its raw data does not give) or a failed correctness check."""
    return bool(case["status"] == "error" or _wrong(case["correct"]))


def _edited(case: pd.Series) -> bool:
    """Whether the case was made an error because its stored figures disagree with its raw data."""
    return case["status"] == "error" and str(case["error"] or "").startswith(EDITED)


def _wrong(correct: Any) -> bool:
    """Whether a correctness flag says wrong: False (Python's or numpy's), not True and not absent (unchecked)."""
    return not _absent(correct) and not bool(correct)


def _absent(value: Any) -> bool:
    """None, NaN or pd.NA (pandas turns a missing value into NaN in a numeric column)."""
    return value is None or bool(pd.isna(value))


def _power_ratio(row: dict[str, Any], b: pd.Series | None, o: pd.Series | None) -> None:
    if b is None or o is None:
        return
    sides = (("base", b), ("other", o))
    invalid = [
        f"{side}'s window invalid ({c['power_invalid']})" for side, c in sides if not _absent(c["power_invalid"])
    ]
    if invalid:
        row["note"] = (row["note"] + "; " if row["note"] else "") + "TFLOPS/W not compared: " + ", ".join(invalid)
        return
    if _absent(b["tflops_per_watt"]) or _absent(o["tflops_per_watt"]):
        return
    if (b["power_source"], b["power_scope"]) != (o["power_source"], o["power_scope"]):
        row["note"] = (row["note"] + "; " if row["note"] else "") + (
            f"TFLOPS/W not compared: {b['power_source']}/{b['power_scope']} vs {o['power_source']}/{o['power_scope']}"
        )
        return
    ratio = o["tflops_per_watt"] / b["tflops_per_watt"]
    row["tflops_per_watt_ratio"] = ratio
    uncertainty = max(
        0.0 if _absent(b["power_uncertainty"]) else b["power_uncertainty"],
        0.0 if _absent(o["power_uncertainty"]) else o["power_uncertainty"],
    )
    if abs(ratio - 1) <= uncertainty:
        row["note"] = (row["note"] + "; " if row["note"] else "") + f"TFLOPS/W change within ±{uncertainty:.0%}"


def to_markdown(frame: pd.DataFrame) -> str:
    """A Markdown table; missing values (None or NaN) as a dash, numbers to 4 significant digits."""
    cleaned = frame.astype(object).where(frame.notna(), None)
    return cleaned.to_markdown(index=False, floatfmt=".4g", missingval="—")


def summary(frame: pd.DataFrame, base: ProfileLike, others: Sequence[tuple[str, ProfileLike]]) -> dict[str, Any]:
    """Geometric-mean speed ratio per other profile and kernel family, counts by verdict, verdict changes, and
    ``broken``: the cases that ran and were right in the base but are an error or a wrong answer in the other (no
    speed to compare, so no regression; ``compare --fail-on-regression`` fails on them too)."""
    out: dict[str, Any] = {"geomean": {}, "counts": {}, "verdict_changes": {}, "broken": {}}
    if frame.empty:
        return out
    base_cases = cases_frame(base)
    usable = [case_id for case_id in base_cases.index if _unusable(base_cases.loc[case_id]) is None]
    for other_label, other in others:
        other_cases = cases_frame(other)
        out["broken"][other_label] = [
            case_id for case_id in usable if case_id in other_cases.index and _broke(other_cases.loc[case_id])
        ]
    compared = frame.dropna(subset=["ratio"])
    for other_label, group in compared.groupby("other", sort=False):
        out["geomean"][other_label] = {
            family: float(np.exp(np.log(g["ratio"].astype(float)).mean()))
            for family, g in group.groupby("family", sort=True)
        }
    for other_label, group in frame.groupby("other", sort=False):
        out["counts"][other_label] = {k: int(v) for k, v in group["verdict"].value_counts().items()}
    base_verdicts = {v.target: v.status for v in as_verified(base).verdicts}
    for other_label, other in others:
        changes = []
        for v in as_verified(other).verdicts:
            before = base_verdicts.get(v.target)
            if before is not None and before != v.status:
                changes.append({"target": v.target, "base": before, "other": v.status})
        out["verdict_changes"][other_label] = changes
    return out
