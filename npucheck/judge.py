"""Judge a result profile against targets: criteria in, verdicts with confidence bounds out.

Pure functions over the result profile as loaded from JSON (see docs/result-profile.md) and validated
:class:`~npucheck.targets.Target` objects. Nothing here measures, prints or exits.

The rule, for every criterion: PASS only when the whole confidence interval clears the threshold (its
lower bound for ``>=``/``>``, its upper bound for ``<=``/``<``), FAIL only when the whole interval misses
it, otherwise INCONCLUSIVE. A figure that was not measured is INCONCLUSIVE, never PASS; one whose every
case errored is ERROR.
"""

from __future__ import annotations

import math
from typing import Any

from npucheck.datasheets import ceiling_reason
from npucheck.model import PARTIAL_SCOPES, QUALITIES, SHARED_SCOPES, VERDICT_STATUSES
from npucheck.targets import Criterion, Target

PASS, FAIL, INCONCLUSIVE, ERROR = VERDICT_STATUSES
MEASURED_QUALITIES = tuple(q for q in QUALITIES if q != "Q0")
HOST_CLOCK_TOLERANCE = 1.15  # as npucheck.runner.HOST_CLOCK_TOLERANCE (the judge imports no measuring code)
INTERRUPTED_NOTE = " (run was interrupted: judged on the cases measured)"


def judge(profile: dict[str, Any], targets: list[Target]) -> list[dict[str, Any]]:
    """Verdicts of a result profile against each target, in the order given.

    Args:
        profile: a result profile dict (schema version 1).
        targets: validated targets.

    Returns:
        One dict per target: ``target``, ``title``, ``status`` and ``criteria`` (each with ``metric``, ``op``,
        ``threshold``, ``unit``, ``measured``, ``lower``, ``upper``, ``status``, ``reason``).
    """
    verdicts = []
    for target in targets:
        criteria = [judge_criterion(profile, criterion) for criterion in target.criteria]
        verdicts.append({"target": target.name, "title": target.title,
                         "status": _combine([c["status"] for c in criteria]), "criteria": criteria})
    return verdicts


def judge_criterion(profile: dict[str, Any], criterion: Criterion) -> dict[str, Any]:
    """The verdict of one criterion on a result profile (a ``verdicts[].criteria[]`` entry)."""
    evaluate = _METRICS.get(criterion.metric)
    if evaluate is None:
        raise ValueError(f"unknown metric {criterion.metric!r}")  # targets.py validates; this is a bug
    status, measured, lower, upper, reason = evaluate(profile, criterion)
    if profile.get("interrupted") and status != PASS:
        reason += INTERRUPTED_NOTE
    return {"metric": criterion.label, "op": criterion.op, "threshold": criterion.threshold,
            "unit": criterion.unit, "measured": measured, "lower": lower, "upper": upper, "status": status,
            "reason": reason}


def exit_code_for(verdicts: list[dict[str, Any]]) -> int:
    """``npucheck check``'s exit code: 0 every verdict PASS, 1 any FAIL, 3 otherwise (or no verdicts)."""
    statuses = [v["status"] for v in verdicts]
    if FAIL in statuses:
        return 1
    if statuses and all(s == PASS for s in statuses):
        return 0
    return 3


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


def _peak_tflops(profile: dict[str, Any], criterion: Criterion) -> Outcome:
    """The best GEMM case of the dtype is only the selection: the best of many intervals is biased upward, so a
    PASS needs the independent re-measurement of that case (``confirmations``). Without one only a FAIL (even the
    largest upper bound misses) or INCONCLUSIVE can come out. Any figure above the datasheet ceiling stored with
    the device is an error, never a peak."""
    dtype = criterion.dtype or ""
    cases = _gemm_cases(profile, dtype)
    if not cases:
        return INCONCLUSIVE, None, None, None, f"not measured: the run has no {dtype} GEMM case"
    datasheet = (profile.get("device") or {}).get("datasheet")
    good = [m for m in cases if m.get("status") == "ok" and m.get("correct") is not False
            and _number(m.get("tflops")) is not None]
    above = [m for m in good if ceiling_reason(datasheet, dtype, _number(m["tflops"]))]
    good = [m for m in good if m not in above]
    errored = [m for m in cases if _errored(m)] + above
    skipped = [m for m in cases if m.get("status") == "skipped"]
    if not good:
        if len(errored) == len(cases):
            why = f"; {ceiling_reason(datasheet, dtype, _number(above[0]['tflops']))}" if above else ""
            return ERROR, None, None, None, f"all {_cases(len(cases), f'{dtype} GEMM')} errored{why}"
        return (INCONCLUSIVE, None, None, None,
                f"not measured: no {dtype} GEMM case ran correctly "
                f"({len(errored)} errored, {len(skipped)} skipped)")

    best = max(good, key=lambda m: _number(m["tflops"]))
    largest_flops = max((_number(m.get("flops")) or 0.0) for m in good)
    larger = sum(1 for m in skipped if (_number(m.get("flops")) or 0.0) > largest_flops)
    notes = [f"{_cases(larger, 'larger')} skipped"] if larger else []
    if len(skipped) > larger:
        notes.append(f"{_cases(len(skipped) - larger, 'other')} skipped")
    if errored:
        notes.append(f"{len(errored)} errored" + (f", {len(above)} above the datasheet ceiling" if above else ""))
    suffix = f" ({', '.join(notes)})" if notes else ""
    selection = f"best of {_cases(len(good), f'{dtype} GEMM')}: {best.get('id')}"

    confirmation = next((c for c in profile.get("confirmations") or [] if c.get("confirms") == best.get("id")), None)
    if confirmation is not None:
        value = _number(confirmation.get("tflops"))
        if confirmation.get("status") == "ok" and confirmation.get("correct") is not False and value is not None:
            too_high = ceiling_reason(datasheet, dtype, value)
            if too_high:
                return ERROR, value, None, None, f"the confirmation of {best.get('id')}: {too_high}"
            lower, upper = _bounds(confirmation)
            status = decide(criterion.op, criterion.threshold, lower, upper)
            host_ratio = _number(confirmation.get("events_vs_host_clock"))
            doubt = None
            if host_ratio is not None and host_ratio > HOST_CLOCK_TOLERANCE:
                doubt = (f"device events read {host_ratio:.2f}x the host clock for the same calls (more than "
                         f"{HOST_CLOCK_TOLERANCE:g}x): the event timing is suspect")
            elif confirmation.get("correct") is not True:
                doubt = "the confirmation's result was not checked against a reference (unchecked)"
            if status == PASS and doubt:
                return (INCONCLUSIVE, value, lower, upper,
                        f"{_decision_reason(status, criterion, lower, upper)}, but {doubt}; confirmation "
                        f"re-measure of the {selection}{suffix}")
            return (status, value, lower, upper,
                    f"{_decision_reason(status, criterion, lower, upper)}; confirmation re-measure of the "
                    f"{selection}{suffix}")
        if confirmation.get("status") == "error":
            return (ERROR, None, None, None, f"the confirmation re-measure of {best.get('id')} errored: "
                    f"{confirmation.get('error')}")

    # No confirmation (an interrupted run, a file from before npucheck 0.2): the selection alone can only FAIL.
    bounds = [_bounds(m) for m in good]
    measured = _number(best["tflops"])
    lower, upper = max(b[0] for b in bounds), max(b[1] for b in bounds)
    status = decide(criterion.op, criterion.threshold, lower, upper)
    reason = f"{_decision_reason(status, criterion, lower, upper)}; {selection}{suffix}"
    if status == PASS:
        return (INCONCLUSIVE, measured, lower, upper,
                f"{reason}; not confirmed: the best of several cases is biased upward and no independent "
                "re-measure of it is stored")
    return status, measured, lower, upper, reason


def _tflops_per_watt(profile: dict[str, Any], criterion: Criterion) -> Outcome:
    dtype = criterion.dtype
    summary = profile.get("summary") or {}
    value = _number((summary.get("tflops_per_watt") or {}).get(dtype))
    if value is None:
        cases = _gemm_cases(profile, dtype)
        if cases and all(_errored(m) for m in cases):
            return (ERROR, None, None, None,
                    f"all {_cases(len(cases), f'{dtype} GEMM')} errored, so there is no throughput to divide")
        why = summary.get("power_note") or "no power source gave a reading"
        return INCONCLUSIVE, None, None, None, f"{dtype} TFLOPS/W is unknown: {why}"
    interval = _pair((summary.get("tflops_per_watt_ci") or {}).get(dtype))
    quality = (summary.get("tflops_per_watt_quality") or {}).get(dtype)
    scope = (summary.get("tflops_per_watt_scope") or {}).get(dtype)
    if quality == "Q0":
        # Green500 quality Q0 is a TDP or model estimate: reporting it is useful, judging on it is not honest
        return INCONCLUSIVE, value, None, None, "estimated power (Q0) never decides a verdict"
    if interval is None:
        # a figure without its uncertainty cannot clear a threshold (a stored file may lack it)
        return INCONCLUSIVE, value, value, value, f"{dtype} TFLOPS/W has no uncertainty interval"
    lower, upper = interval
    if quality not in MEASURED_QUALITIES:
        return INCONCLUSIVE, value, lower, upper, f"power quality {quality!r} is not a measured level (Q1-Q3)"
    if scope in PARTIAL_SCOPES:
        return (INCONCLUSIVE, value, lower, upper,
                f"power of scope {scope!r} covers only part of the device, so it cannot judge its efficiency")
    if scope in SHARED_SCOPES:
        return (INCONCLUSIVE, value, lower, upper,
                f"power of scope {scope!r} is shared with other devices (MIG slices), so it cannot judge this one")
    # does the power include the device under test? (summary written by npucheck.power.summary)
    if "tflops_per_watt_covers" in summary:
        covers = (summary.get("tflops_per_watt_covers") or {}).get(dtype)
        how = (summary.get("tflops_per_watt_covers_reason") or {}).get(dtype) or "coverage not recorded"
    elif isinstance(profile.get("power"), dict):
        # a file from before coverage was recorded: judged only where the old code could not pick the wrong
        # device (RAPL packages for a CPU, NVML found by the UUID torch reported)
        source = profile["power"].get("source") or {}
        device = profile.get("device") or {}
        uuid = (device.get("properties") or {}).get("uuid")
        covers = ((source.get("name") == "rapl" and source.get("scope") in ("package", "platform")
                   and device.get("backend") == "cpu")
                  or (source.get("name") == "nvml" and device.get("backend") == "cuda" and bool(uuid)
                      and not source.get("mig") and profile["power"].get("spec") in ("nvml", "auto"))) or None
        how = ("recorded before coverage was: " + (f"{source.get('name')} on a {device.get('backend')} device"
               if covers else "coverage not recorded"))
    else:
        covers, how = None, "coverage not recorded"
    if covers is not True:
        lead = ("the power source does not cover the device under test" if covers is False
                else "cannot tell whether the power source covers the device under test")
        return INCONCLUSIVE, value, lower, upper, f"{lead}: {how}"
    not_judged = (summary.get("tflops_per_watt_not_judged") or {}).get(dtype)
    if not_judged:
        return INCONCLUSIVE, value, lower, upper, f"not judged: {not_judged}"
    status = decide(criterion.op, criterion.threshold, lower, upper)
    return status, value, lower, upper, _decision_reason(status, criterion, lower, upper)


def _supported_families(profile: dict[str, Any], criterion: Criterion) -> Outcome:
    support = profile.get("support") or {}
    found: dict[bool | None, list[str]] = {True: [], False: [], None: []}
    for family in criterion.families or ():
        supported = (support.get(family) or {}).get("supported")
        found[supported if isinstance(supported, bool) else None].append(family)
    lower = len(found[True])
    upper = lower + len(found[None])
    status = decide(criterion.op, criterion.threshold, lower, upper)
    listing = "; ".join(f"{label}: {', '.join(found[key]) or 'none'}"
                        for key, label in ((True, "supported"), (False, "unsupported"), (None, "unchecked")))
    return status, lower, lower, upper, f"{_decision_reason(status, criterion, lower, upper)}; {listing}"


_METRICS = {"peak_tflops": _peak_tflops, "tflops_per_watt": _tflops_per_watt,
            "supported_families": _supported_families}


# --------------------------------------------------------------------------------------------------- helpers
def _gemm_cases(profile: dict[str, Any], dtype: str | None) -> list[dict[str, Any]]:
    measurements = profile.get("measurements") or []
    return [m for m in measurements if m.get("kernel") == "gemm" and m.get("dtype") == dtype]


def _errored(measurement: dict[str, Any]) -> bool:
    """The case failed to run, or ran and gave a wrong answer (a fast wrong answer is no throughput)."""
    status = measurement.get("status")
    return status == "error" or (status == "ok" and measurement.get("correct") is False)


def _number(value: Any) -> float | None:
    """A finite number from JSON, or None (null, bool, NaN and infinities never count as measured)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _pair(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    low, high = _number(value[0]), _number(value[1])
    return None if low is None or high is None else (min(low, high), max(low, high))


def _bounds(measurement: dict[str, Any]) -> tuple[float, float]:
    tflops = _number(measurement["tflops"])
    return _pair(measurement.get("tflops_ci")) or (tflops, tflops)


def _cases(count: int, kind: str) -> str:
    return f"{count} {kind} case{'' if count == 1 else 's'}"


def _fmt(value: float) -> str:
    return f"{value:.6g}"
