"""Judge a result profile against targets: criteria in, verdicts with confidence bounds out.

Pure functions over a :class:`~npucheck.model.ResultProfile` (or a result-profile dict, read once into one with
:func:`~npucheck.model.as_profile`) and validated :class:`~npucheck.targets.Target` objects. Nothing here
measures, prints or exits. The verdicts come out as the dicts stored in ``verdicts[]``.

The rule, for every criterion: PASS only when the whole confidence interval clears the threshold (its
lower bound for ``>=``/``>``, its upper bound for ``<=``/``<``), FAIL only when the whole interval misses
it, otherwise INCONCLUSIVE. A figure that was not measured is INCONCLUSIVE, never PASS; one whose every
case errored is ERROR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from npucheck.bandwidth import MEMORY_FAMILY, bandwidth_ceiling_reason
from npucheck.datasheets import ceiling_reason
from npucheck.evidence import Audit, audit, by_case
from npucheck.model import (
    HOST_CLOCK_TOLERANCE,
    PARTIAL_SCOPES,
    QUALITIES,
    SHARED_SCOPES,
    VERDICT_STATUSES,
    Measurement,
    Record,
    ResultProfile,
)
from npucheck.targets import INT8_METRICS, Criterion, Target

__all__ = [
    "decide",
    "exit_code_for",
    "INTERRUPTED_NOTE",
    "judge",
    "judge_criterion",
    "MEASURED_QUALITIES",
    "Outcome",
]


PASS, FAIL, INCONCLUSIVE, ERROR = VERDICT_STATUSES
MEASURED_QUALITIES = tuple(q for q in QUALITIES if q != "Q0")
INTERRUPTED_NOTE = " (run was interrupted: judged on the cases measured)"


def judge(profile: ResultProfile | Mapping[str, Any], targets: list[Target]) -> list[dict[str, Any]]:
    """Verdicts of a result profile against each target, in the order given.

    Args:
        profile: a result profile, or its dict (schema version 2, as ``npucheck.store.load_result`` returns it).
        targets: validated targets.

    Returns:
        One dict per target: ``target``, ``title``, ``status`` and ``criteria`` (each with ``metric``, ``op``,
        ``threshold``, ``unit``, ``measured``, ``lower``, ``upper``, ``status``, ``reason``).

    Raises:
        ResultFileError: a dict that does not fit the model.
    """
    checked = audit(profile)
    verdicts = []
    for target in targets:
        criteria = [judge_criterion(checked.profile, criterion, checked) for criterion in target.criteria]
        verdicts.append(
            {
                "target": target.name,
                "title": target.title,
                "status": _combine([c["status"] for c in criteria]),
                "criteria": criteria,
            }
        )
    return verdicts


def judge_criterion(
    profile: ResultProfile | Mapping[str, Any], criterion: Criterion, checked: Audit | None = None
) -> dict[str, Any]:
    """The verdict of one criterion on a result profile (a ``verdicts[].criteria[]`` entry).

    The figures are recomputed from the raw data first (:func:`npucheck.evidence.audit`, or ``checked`` when the
    caller has done it): a case whose stored figures disagree with its raw samples is an error, and a criterion
    that depends on such a case, or a file modified since it was sealed, is INCONCLUSIVE at best."""
    evaluate = _METRICS.get(criterion.metric)
    if evaluate is None:
        raise ValueError(f"unknown metric {criterion.metric!r}")  # targets.py validates; this is a bug
    if checked is None:
        checked = audit(profile)
    result = checked.profile
    status, measured, lower, upper, reason = evaluate(result, criterion)
    status, reason = _distrust(checked, criterion, status, reason)
    if result.interrupted and status != PASS:
        reason += INTERRUPTED_NOTE
    return {
        "metric": criterion.label,
        "op": criterion.op,
        "threshold": criterion.threshold,
        "unit": criterion.unit,
        "measured": measured,
        "lower": lower,
        "upper": upper,
        "status": status,
        "reason": reason,
    }


def exit_code_for(verdicts: list[dict[str, Any]]) -> int:
    """``npucheck check``'s exit code: 0 every verdict PASS, 1 any FAIL, 3 otherwise (or no verdicts)."""
    statuses = [v["status"] for v in verdicts]
    if FAIL in statuses:
        return 1
    if statuses and all(s == PASS for s in statuses):
        return 0
    return 3


def _distrust(checked: Audit, criterion: Criterion, status: str, reason: str) -> tuple[str, str]:
    """A PASS that rests on edited or corrupt evidence, or on a file modified since it was sealed, becomes
    INCONCLUSIVE; the reason names what disagreed."""
    part = {"peak_tflops": "peak", "tflops_per_watt": "energy"}.get(
        INT8_METRICS.get(criterion.metric, criterion.metric)
    )
    findings = checked.affecting(part, criterion.dtype) if part else []
    if part == "energy":  # the headline case's timed median is compared with its window
        headline = {
            m.id
            for m in checked.profile.measurements or ()
            if m.dtype == criterion.dtype and m.energy is not None and m.energy.kind == "headline"
        }
        findings += [f for f in checked.affecting("peak", criterion.dtype) if f.case in headline]
    lines = by_case(findings)
    doubts = lines[:2] + ([f"{len(lines) - 2} more edited or corrupt"] if len(lines) > 2 else [])
    if checked.digest.state == "modified":
        doubts.append(checked.digest.message)
    if not doubts:
        return status, reason
    note = "; ".join(doubts)
    if status == PASS:
        return INCONCLUSIVE, f"{reason}, but {note}"
    return status, f"{reason}; {note}"


# -------------------------------------------------------------------------------------------------- decision
def decide(op: str, threshold: float, lower: float, upper: float) -> str:
    """PASS if all of [lower, upper] meets ``op threshold``, FAIL if none of it does, else INCONCLUSIVE."""
    lower, upper = min(lower, upper), max(lower, upper)  # a reversed interval must not PASS and FAIL at once
    if op == ">=":
        return PASS if lower >= threshold else FAIL if upper < threshold else INCONCLUSIVE
    if op == ">":
        return PASS if lower > threshold else FAIL if upper <= threshold else INCONCLUSIVE
    if op == "<=":
        return PASS if upper <= threshold else FAIL if lower > threshold else INCONCLUSIVE
    if op == "<":
        return PASS if upper < threshold else FAIL if lower >= threshold else INCONCLUSIVE
    raise ValueError(f"unknown op {op!r}")


def _decision_reason(status: str, criterion: Criterion, lower: float, upper: float) -> str:
    target = f"{criterion.op} {_fmt(criterion.threshold)}"
    upward = criterion.op in (">=", ">")
    if status == PASS:
        bound, value = ("lower", lower) if upward else ("upper", upper)
        return f"{bound} bound {_fmt(value)} clears {target}"
    if status == FAIL:
        bound, value = ("upper", upper) if upward else ("lower", lower)
        return f"{bound} bound {_fmt(value)} misses {target}"
    return f"interval [{_fmt(lower)}, {_fmt(upper)}] straddles the threshold ({target})"


def _combine(statuses: list[str]) -> str:
    for status in (FAIL, ERROR, INCONCLUSIVE):
        if status in statuses:
            return status
    return PASS


# --------------------------------------------------------------------------------------------------- metrics
Outcome = tuple[str, float | None, float | None, float | None, str]


def _peak_tflops(profile: ResultProfile, criterion: Criterion) -> Outcome:
    """The best GEMM case of the dtype is only the selection: the best of many intervals is biased upward, so a
    PASS needs the independent re-measurement of that case (``confirmations``). Without one only a FAIL (even the
    largest upper bound misses) or INCONCLUSIVE can come out. Any figure above the datasheet ceiling stored with
    the device is an error, never a peak."""
    dtype = criterion.dtype or ""
    cases = _gemm_cases(profile, dtype)
    if not cases:
        return INCONCLUSIVE, None, None, None, f"not measured: the run has no {dtype} GEMM case"
    datasheet = profile.device.datasheet
    # the model has checked every figure: a TFLOPS is a finite number or None
    good = [m for m in cases if m.status == "ok" and m.correct is not False and m.tflops is not None]
    above = [m for m in good if ceiling_reason(datasheet, dtype, _tflops(m))]
    good = [m for m in good if m not in above]
    errored = [m for m in cases if _errored(m)] + above
    skipped = [m for m in cases if m.status == "skipped"]
    if not good:
        if len(errored) == len(cases):
            why = f"; {ceiling_reason(datasheet, dtype, _tflops(above[0]))}" if above else ""
            return ERROR, None, None, None, f"all {_cases(len(cases), f'{dtype} GEMM')} errored{why}"
        return (
            INCONCLUSIVE,
            None,
            None,
            None,
            f"not measured: no {dtype} GEMM case ran correctly ({len(errored)} errored, {len(skipped)} skipped)",
        )

    best = max(good, key=_tflops)
    largest_flops = max(float(m.flops) for m in good)
    larger = sum(1 for m in skipped if float(m.flops) > largest_flops)
    notes = [f"{_cases(larger, 'larger')} skipped"] if larger else []
    if len(skipped) > larger:
        notes.append(f"{_cases(len(skipped) - larger, 'other')} skipped")
    if errored:
        notes.append(f"{len(errored)} errored" + (f", {len(above)} above the datasheet ceiling" if above else ""))
    suffix = f" ({', '.join(notes)})" if notes else ""
    selection = f"best of {_cases(len(good), f'{dtype} GEMM')}: {best.id}"

    confirmation = next((c for c in profile.confirmations or () if c.confirms == best.id), None)
    if confirmation is not None:
        value = _float(confirmation.tflops)
        if confirmation.status == "ok" and confirmation.correct is not False and value is not None:
            too_high = ceiling_reason(datasheet, dtype, value)
            if too_high:
                return ERROR, value, None, None, f"the confirmation of {best.id}: {too_high}"
            if confirmation.tflops_ci is None:  # as TFLOPS/W: a figure without its uncertainty cannot decide
                return (
                    INCONCLUSIVE,
                    value,
                    value,
                    value,
                    f"the confirmation re-measure of the {selection} has no interval{suffix}",
                )
            lower, upper = _bounds(confirmation)
            status = decide(criterion.op, criterion.threshold, lower, upper)
            host_ratio = confirmation.events_vs_host_clock
            doubt = None
            if host_ratio is not None and host_ratio > HOST_CLOCK_TOLERANCE:
                doubt = (
                    f"device events read {host_ratio:.2f}x the host clock for the same calls (more than "
                    f"{HOST_CLOCK_TOLERANCE:g}x): the event timing is suspect"
                )
            elif confirmation.correct is not True:
                doubt = "the confirmation's result was not checked against a reference (unchecked)"
            if status == PASS and doubt:
                return (
                    INCONCLUSIVE,
                    value,
                    lower,
                    upper,
                    f"{_decision_reason(status, criterion, lower, upper)}, but {doubt}; confirmation "
                    f"re-measure of the {selection}{suffix}",
                )
            return (
                status,
                value,
                lower,
                upper,
                f"{_decision_reason(status, criterion, lower, upper)}; confirmation re-measure of the "
                f"{selection}{suffix}",
            )
        if confirmation.status == "error":
            return (ERROR, None, None, None, f"the confirmation re-measure of {best.id} errored: {confirmation.error}")
        if confirmation.correct is False:  # ok (a skipped one is never checked): the same case, now wrong
            return (
                ERROR,
                None,
                None,
                None,
                f"the confirmation re-measure of {best.id} gave a wrong answer (it failed its correctness check, "
                "though the case itself passed)",
            )

    # No confirmation (an interrupted run, a file from before npucheck 0.2): the selection alone can only FAIL.
    measured = _tflops(best)
    if best.tflops_ci is None:
        return INCONCLUSIVE, measured, measured, measured, f"the peak has no interval; {selection}{suffix}"
    bounds = [_bounds(m) for m in good]
    lower, upper = max(b[0] for b in bounds), max(b[1] for b in bounds)
    status = decide(criterion.op, criterion.threshold, lower, upper)
    reason = f"{_decision_reason(status, criterion, lower, upper)}; {selection}{suffix}"
    if status == PASS:
        return (
            INCONCLUSIVE,
            measured,
            lower,
            upper,
            f"{reason}; not confirmed: the best of several cases is biased upward and no independent "
            "re-measure of it is stored",
        )
    return status, measured, lower, upper, reason


def _tflops_per_watt(profile: ResultProfile, criterion: Criterion) -> Outcome:
    dtype = criterion.dtype
    summary = profile.summary
    value = _float(_entry(summary.tflops_per_watt, dtype))
    if value is None:
        cases = _gemm_cases(profile, dtype)
        if cases and all(_errored(m) for m in cases):
            return (
                ERROR,
                None,
                None,
                None,
                f"all {_cases(len(cases), f'{dtype} GEMM')} errored, so there is no throughput to divide",
            )
        if not cases:  # the run did not measure this dtype at all: that, not the power source, is the cause
            ran = ", ".join(profile.settings.dtypes) or "no dtype"
            return INCONCLUSIVE, None, None, None, f"{dtype} TFLOPS/W is unknown: no {dtype} GEMM case ran ({ran} ran)"
        why = summary.power_note or "no power source gave a reading"
        return INCONCLUSIVE, None, None, None, f"{dtype} TFLOPS/W is unknown: {why}"
    interval = _entry(summary.tflops_per_watt_ci, dtype)
    quality = _entry(summary.tflops_per_watt_quality, dtype)
    scope = _entry(summary.tflops_per_watt_scope, dtype)
    if quality == "Q0":
        # Green500 quality Q0 is a TDP or model estimate: reporting it is useful, judging on it is not honest
        return INCONCLUSIVE, value, None, None, "estimated power (Q0) never decides a verdict"
    if interval is None:
        # a figure without its uncertainty cannot clear a threshold (a stored file may lack it)
        return INCONCLUSIVE, value, value, value, f"{dtype} TFLOPS/W has no uncertainty interval"
    lower, upper = _interval(interval)
    if quality not in MEASURED_QUALITIES:
        return INCONCLUSIVE, value, lower, upper, f"power quality {quality!r} is not a measured level (Q1-Q3)"
    if scope in PARTIAL_SCOPES:
        return (
            INCONCLUSIVE,
            value,
            lower,
            upper,
            f"power of scope {scope!r} covers only part of the device, so it cannot judge its efficiency",
        )
    if scope in SHARED_SCOPES:
        return (
            INCONCLUSIVE,
            value,
            lower,
            upper,
            f"power of scope {scope!r} is shared with other devices (MIG slices), so it cannot judge this one",
        )
    # does the power include the device under test? (summary written by npucheck.measure.power.summary)
    if _has(summary, "tflops_per_watt_covers"):
        covers = _entry(summary.tflops_per_watt_covers, dtype)
        how = _entry(summary.tflops_per_watt_covers_reason, dtype) or "coverage not recorded"
    else:
        # a file from before coverage was recorded: judged only where the old code could not pick the wrong
        # device (RAPL packages for a CPU, NVML found by the UUID torch reported)
        source, device = profile.power.source, profile.device
        uuid = _entry(device.properties, "uuid")
        covers = (
            source is not None
            and (
                (source.name == "rapl" and source.scope in ("package", "platform") and device.backend == "cpu")
                or (
                    source.name == "nvml"
                    and device.backend == "cuda"
                    and bool(uuid)
                    and not source.extra.get("mig")
                    and profile.power.spec in ("nvml", "auto")
                )
            )
        ) or None
        what = f"{source.name} ({source.scope}) on a {device.backend} device" if source is not None else "no source"
        how = (
            "written before coverage was recorded; without it only RAPL package or platform power of a CPU, or NVML "
            f"found by the device's UUID (no MIG), is judged (here: {what})"
        )
    if covers is not True:
        lead = (
            "the power source does not cover the device under test"
            if covers is False
            else "cannot tell whether the power source covers the device under test"
        )
        return INCONCLUSIVE, value, lower, upper, f"{lead}: {how}"
    not_judged = _entry(summary.tflops_per_watt_not_judged, dtype)
    if not_judged:
        return INCONCLUSIVE, value, lower, upper, f"not judged: {not_judged}"
    status = decide(criterion.op, criterion.threshold, lower, upper)
    return status, value, lower, upper, _decision_reason(status, criterion, lower, upper)


def _supported_families(profile: ResultProfile, criterion: Criterion) -> Outcome:
    found: dict[bool | None, list[str]] = {True: [], False: [], None: []}
    for family in criterion.families or ():
        checked = _entry(profile.support, family)
        found[checked.supported if checked is not None else None].append(family)  # the model: a bool or None
    lower = len(found[True])
    upper = lower + len(found[None])
    status = decide(criterion.op, criterion.threshold, lower, upper)
    listing = "; ".join(
        f"{label}: {', '.join(found[key]) or 'none'}"
        for key, label in ((True, "supported"), (False, "unsupported"), (None, "unchecked"))
    )
    return status, lower, lower, upper, f"{_decision_reason(status, criterion, lower, upper)}; {listing}"


def _peak_gbps(profile: ResultProfile, criterion: Criterion) -> Outcome:
    """The best memory case (copy or triad) of the dtype, or of any dtype when the criterion names none. PASS needs
    the lower end of its interval to clear the threshold; the upper bound is the largest upper end of all correct
    memory cases, so a FAIL means no case could reach it. Memory cases are few (copy and triad at one or two sizes)
    and not re-measured, so the selection is judged on its own interval, as the runner measured it. A case above
    1.1x the datasheet bandwidth is an error, never a peak; a case without an interval cannot PASS."""
    dtype = criterion.dtype
    what = f"{dtype} memory" if dtype else "memory"
    cases = [m for m in profile.measurements or () if m.family == MEMORY_FAMILY and dtype in (None, m.dtype)]
    if not cases:
        return INCONCLUSIVE, None, None, None, f"not measured: the run has no {what} case (copy, triad)"
    datasheet = profile.device.datasheet
    good = [m for m in cases if m.status == "ok" and m.correct is not False and m.gbps is not None]
    above = [m for m in good if bandwidth_ceiling_reason(datasheet, m.gbps)]
    good = [m for m in good if m not in above]
    errored = [m for m in cases if _errored(m)] + above
    if not good:
        if len(errored) == len(cases):
            why = f"; {bandwidth_ceiling_reason(datasheet, above[0].gbps)}" if above else ""
            return ERROR, None, None, None, f"all {_cases(len(cases), what)} errored{why}"
        skipped = len(cases) - len(errored)
        return (
            INCONCLUSIVE,
            None,
            None,
            None,
            f"not measured: no {what} case ran correctly ({len(errored)} errored, {skipped} skipped)",
        )
    best = max(good, key=lambda m: float(m.gbps or 0.0))
    measured = float(best.gbps or 0.0)
    selection = f"best of {_cases(len(good), what)}: {best.id}"
    if best.gbps_ci is None:
        return INCONCLUSIVE, measured, measured, measured, f"the bandwidth has no interval; {selection}"
    lower = max(_interval(m.gbps_ci)[0] for m in good if m.gbps_ci is not None)
    upper = max(_interval(m.gbps_ci)[1] if m.gbps_ci is not None else float(m.gbps or 0.0) for m in good)
    status = decide(criterion.op, criterion.threshold, lower, upper)
    reason = f"{_decision_reason(status, criterion, lower, upper)}; {selection}"
    if status == PASS and best.correct is not True:
        return INCONCLUSIVE, measured, lower, upper, f"{reason}, but its result was not checked (unchecked)"
    return status, measured, lower, upper, reason


_METRICS = {
    "peak_tflops": _peak_tflops,
    "tflops_per_watt": _tflops_per_watt,
    "supported_families": _supported_families,
    "peak_gbps": _peak_gbps,
    "peak_tops": lambda profile, criterion: _in_ops(_peak_tflops(profile, criterion)),
    "tops_per_watt": lambda profile, criterion: _in_ops(_tflops_per_watt(profile, criterion)),
}


def _in_ops(outcome: Outcome) -> Outcome:
    """An int8 outcome: the same rules and figures as the float metric (confirmation for a PASS of the peak, the
    headline energy window for the per-watt figure), in operations: its reason says TOPS, not TFLOPS."""
    status, measured, lower, upper, reason = outcome
    return status, measured, lower, upper, reason.replace("TFLOPS", "TOPS")


# --------------------------------------------------------------------------------------------------- helpers
_V = TypeVar("_V")


def _entry(by_key: Mapping[str, _V] | None, key: str | None) -> _V | None:
    """One entry of a by-dtype (or by-family) part of the profile; None where the part or its key is absent (a
    file may store such a part as null, which the model keeps)."""
    return by_key.get(key) if by_key and key is not None else None


def _has(record: Record, key: str) -> bool:
    """Whether ``record``'s JSON object has ``key`` (read from a file: the keys it had; built in code: the keys
    ``to_dict`` always writes)."""
    return key in (record.present_keys if record.present_keys is not None else record.ALWAYS)


def _gemm_cases(profile: ResultProfile, dtype: str | None) -> list[Measurement]:
    return [m for m in profile.measurements or () if m.kernel == "gemm" and m.dtype == dtype]


def _errored(measurement: Measurement) -> bool:
    """The case failed to run, or ran and gave a wrong answer (a fast wrong answer is no throughput)."""
    return measurement.status == "error" or (measurement.status == "ok" and measurement.correct is False)


def _float(value: float | None) -> float | None:
    """A figure the model has checked (finite, or None) as a float: a JSON integer is judged and stored as one."""
    return None if value is None else float(value)


def _tflops(measurement: Measurement) -> float:
    """The TFLOPS of a case known to have one."""
    assert measurement.tflops is not None
    return float(measurement.tflops)


def _interval(pair: tuple[float, float]) -> tuple[float, float]:
    """A [low, high] interval the model has checked (finite, low <= high), as floats."""
    return float(pair[0]), float(pair[1])


def _bounds(measurement: Measurement) -> tuple[float, float]:
    if measurement.tflops_ci is not None:
        return _interval(measurement.tflops_ci)
    tflops = _tflops(measurement)
    return tflops, tflops


def _cases(count: int, kind: str) -> str:
    return f"{count} {kind} case{'' if count == 1 else 's'}"


def _fmt(value: float) -> str:
    return f"{value:.6g}"
