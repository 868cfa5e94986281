"""The efficiency-vs-power-cap sweep (``npucheck run --power-caps 300,400,FULL``).

After the run's own energy windows, at the limit the device had when the run started (the figures the targets
judge), the headline energy window is run again at each cap: set the limit, read it back (and the limit the driver
enforces), let the device settle, run the window. The original limit is restored whatever ends the sweep: its
end, an error, Ctrl-C, SIGTERM or SIGHUP (:func:`npucheck.signals.deferred` keeps a signal from cutting the restore
short), and the restore is read back and recorded. A process killed outright (SIGKILL, power loss) cannot
restore anything: the original limit is printed before the sweep starts, and NVML's limit does not survive a
driver reload or a reboot.

The record (``power_caps`` in the result) is built as the sweep goes, so an interrupted sweep keeps the caps it
measured and its restore. No torch here: the window is a callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from npucheck import signals
from npucheck.measure.power.caps import READ_BACK_TOLERANCE_W, CapPlan, cap_control_for, parse_caps, plan_caps
from npucheck.model import Energy, PowerCaps, best_cap

__all__ = [
    "CapPlan",
    "RESTORE_ATTEMPTS",
    "SETTLE_S",
    "cap_control_for",
    "parse_caps",
    "plan_caps",
    "restore_failed_warning",
    "restore_limit",
    "run_sweep",
    "sweep_record",
    "to_model",
]

SETTLE_S = 5.0
"""Seconds between setting a cap and its window: the power controller and the clocks take a few of its 10-100 ms
control periods to settle on a new limit, and the GPU is idle meanwhile so the window starts from the same state
at every cap."""
RESTORE_ATTEMPTS = 3


def sweep_record(plan: CapPlan, case: str | None, dtype: str | None, settle_s: float) -> dict[str, Any]:
    """The ``power_caps`` record before the first cap: what the device allowed and had."""
    return {
        "api": plan.control.api,
        "case": case,
        "dtype": dtype,
        "min_w": plan.min_w,
        "max_w": plan.max_w,
        "default_w": plan.default_w,
        "original_w": plan.original_w,
        "full_means": "default",
        "settle_s": settle_s,
        "steps": [],
        "restore": None,
        "warnings": [],
    }


def run_sweep(
    plan: CapPlan,
    window: Callable[[], Energy],
    record: dict[str, Any],
    sleep: Callable[[float], None] = time.sleep,
    on_step: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """Run ``window`` at each cap of ``plan``, filling ``record`` (from :func:`sweep_record`) as it goes, and
    restore the original limit at the end, whatever ends it. A cap that cannot be set or read back is recorded
    with its error and skipped; a ``KeyboardInterrupt`` (Ctrl-C, SIGTERM, SIGHUP) is raised again after the
    restore. Returns ``record``."""
    control = plan.control
    # the limit to restore is the one just before the first write: the plan read it at start-up, and the suite
    # (minutes, an hour) ran since; an admin, DCGM or the BMC may have changed it meanwhile
    try:
        now = control.limit_w()
    except Exception:  # noqa: BLE001 - unreadable now: the start-up reading stands
        now = None
    if now is not None and abs(now - plan.original_w) > READ_BACK_TOLERANCE_W:
        record["warnings"].append(
            f"the power limit changed during the run, from {plan.original_w:g} W to {now:g} W: {now:g} W is restored"
        )
        plan = replace(plan, original_w=now)
        record["original_w"] = now
    try:
        for label, watts in plan.caps:
            if on_step is not None:
                on_step(label, watts)
            step: dict[str, Any] = {"label": label, "requested_w": watts}
            record["steps"].append(step)
            try:
                control.set_w(watts)
                step["read_back_w"] = control.limit_w()
                step["enforced_w"] = _enforced(control)
            except Exception as e:  # noqa: BLE001 - the vendor's errors: this cap is lost, the sweep goes on
                step.update(verified=False, error=f"could not set {watts:g} W: {_first_line(e)}")
                continue
            step["verified"] = abs(step["read_back_w"] - watts) <= READ_BACK_TOLERANCE_W
            if not step["verified"]:
                step["error"] = f"set {watts:g} W but read back {step['read_back_w']:g} W: window not run"
                continue
            enforced = step["enforced_w"]
            if enforced is not None and enforced < watts - READ_BACK_TOLERANCE_W:
                record["warnings"].append(
                    f"cap {label}: the driver enforces {enforced:g} W, below the {watts:g} W set (another limiter)"
                )
            sleep(record["settle_s"])
            try:
                step["energy"] = window()
            except Exception as e:  # noqa: BLE001 - a window that fails loses this cap only
                step["error"] = f"energy window failed: {_first_line(e)}"
    finally:
        try:
            with signals.deferred():  # a signal now would leave the device capped
                record["restore"] = restore_limit(plan, sleep)
        except KeyboardInterrupt:  # before the hold began, or no npucheck handler (a library caller): restore anyway
            if record.get("restore") is None:
                record["restore"] = restore_limit(plan, sleep)
            raise
    return record


def restore_limit(plan: CapPlan, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Set the original limit back and read it back, up to RESTORE_ATTEMPTS times; the record says whether it
    held (``verified``) and, if not, the last error."""
    control = plan.control
    out: dict[str, Any] = {"target_w": plan.original_w, "verified": False, "attempts": 0, "error": None}
    for attempt in range(1, RESTORE_ATTEMPTS + 1):
        out["attempts"] = attempt
        try:
            control.set_w(plan.original_w)
            out["read_back_w"] = control.limit_w()
            out["enforced_w"] = _enforced(control)
        except Exception as e:  # noqa: BLE001 - tried again, then reported loudly
            out["error"] = _first_line(e)
            sleep(0.5)
            continue
        if abs(out["read_back_w"] - plan.original_w) <= READ_BACK_TOLERANCE_W:
            out.update(verified=True, error=None)
            return out
        out["error"] = f"read back {out['read_back_w']:g} W, not {plan.original_w:g} W"
        sleep(0.5)
    return out


def restore_failed_warning(restore: dict[str, Any]) -> str:
    """The run's loud warning when the original limit could not be put back (the CLI also exits non-zero)."""
    return (
        f"POWER LIMIT NOT RESTORED: the device should be back at {restore['target_w']:g} W but "
        f"{restore.get('error') or 'the limit could not be verified'}; set it by hand (nvidia-smi -pl / amd-smi set "
        "--power-cap) before anyone else uses this device"
    )


def to_model(record: dict[str, Any]) -> PowerCaps:
    """The ``power_caps`` model object of a sweep record, with ``best`` computed from its steps."""
    doc = {
        **record,
        "steps": [
            {**step, "energy": step["energy"].to_dict()} if isinstance(step.get("energy"), Energy) else step
            for step in record["steps"]
        ],
    }
    caps: PowerCaps = PowerCaps.from_dict(doc)
    best = best_cap(caps)
    return PowerCaps.from_dict({**doc, "best": best.label if best is not None else None})


def _enforced(control: Any) -> float | None:
    try:
        return control.enforced_w()
    except Exception:  # noqa: BLE001 - evidence only
        return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
