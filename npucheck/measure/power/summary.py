"""TFLOPS per watt per dtype from a profile's energy windows. Pure: no torch, used by readers too."""

from __future__ import annotations

from typing import Any

__all__ = ["summarize_power"]


def summarize_power(profile: dict[str, Any], peak: dict[str, dict[str, Any]], dtypes: list[str]) -> dict[str, Any]:
    """The summary's power keys: ``tflops_per_watt`` (gross, from each dtype's headline window), its interval
    widened by the source's uncertainty, quality, scope, net-of-idle figure, ``tflops_per_watt_covers`` (True /
    False / None: does the power include the device under test?) with ``tflops_per_watt_covers_reason`` (how that
    was decided), ``tflops_per_watt_not_judged`` (why a figure must not decide a verdict, e.g. the window's
    sustained TFLOPS was more than 15% from the timed median) and ``power_note`` saying why a figure is missing."""
    power = profile.get("power") or {}
    headline: dict[str, dict[str, Any]] = {
        m["dtype"]: m.get("energy")
        for m in profile.get("measurements", [])
        if (m.get("energy") or {}).get("kind") == "headline"
    }
    out: dict[str, Any] = {
        "tflops_per_watt": {},
        "tflops_per_watt_ci": {},
        "tflops_per_watt_quality": {},
        "tflops_per_watt_scope": {},
        "tflops_per_watt_net": {},
        "tflops_per_watt_covers": {},
        "tflops_per_watt_covers_reason": {},
        "tflops_per_watt_not_judged": {},
        "power": {},
    }
    missing = []
    for dtype in dtypes:
        energy = headline.get(dtype)
        value = (energy or {}).get("tflops_per_watt")
        out["tflops_per_watt"][dtype] = value if (energy or {}).get("valid") else None
        if out["tflops_per_watt"][dtype] is None:
            if power.get("source") is None:
                missing.append(dtype)
            elif energy is None:
                missing.append(f"{dtype}: no energy window ran" + ("" if dtype in peak else " (no correct GEMM)"))
            else:
                missing.append(f"{dtype}: {energy.get('reason')}")
            continue
        assert energy is not None and value is not None  # a figure comes only from a valid window
        u = float(energy.get("uncertainty_rel") or 0.0)
        if energy["quality"] != "Q0":  # an estimate has no interval to give
            out["tflops_per_watt_ci"][dtype] = [value / (1 + u), value / (1 - u) if u < 1 else value * 1e9]
        out["tflops_per_watt_quality"][dtype] = energy["quality"]
        out["tflops_per_watt_scope"][dtype] = energy["scope"]
        # whether the power includes the device under test: only True lets the judge decide on the figure
        covers = energy.get("covers_device")
        out["tflops_per_watt_covers"][dtype] = covers if isinstance(covers, bool) else None
        out["tflops_per_watt_covers_reason"][dtype] = energy.get("covers_reason") or "coverage not recorded"
        out["tflops_per_watt_net"][dtype] = energy.get("tflops_per_watt_net")
        if energy.get("judgeable") is False:  # e.g. the window's sustained TFLOPS disagrees with the timed median
            out["tflops_per_watt_not_judged"][dtype] = energy.get("not_judged_reason") or "marked not judgeable"
        out["power"][dtype] = {
            "case": energy.get("case"),
            "avg_watts": energy["avg_watts"],
            "tflops": energy["tflops"],
            "window_s": energy["window_s"],
            "source": energy["source"],
        }
    if power.get("source") is None:
        notes = "; ".join(power.get("notes") or []) or "no power source"
        out["power_note"] = f"no power source was used: {notes}"
    elif missing:
        out["power_note"] = "; ".join(missing)
    return out
