"""A fleet directory read as one table: every device's peak figures, grouped by model, driver and power limit, and
the devices that fall short of their peers (the outliers), with the evidence their profiles hold. No torch.

What a fleet directory holds (``DIR/fleet.json`` and one result profile per device) is described in docs/fleet.md;
the summary file itself is :mod:`npucheck.fleetfile`.

Reading is built for fleets of thousands of devices (``npucheck fleet`` over 1,000 stored profiles must finish in
10 s on a 2-core machine, with bounded memory), so profiles are NOT read through :func:`npucheck.store.load_result`:
no JSON Schema validation and no :class:`npucheck.model.ResultProfile` per file, which together cost more than the
JSON parsing itself. Instead each file is parsed with :func:`json.loads`, its ``schema_version`` must be 2, and
the type of every field this module uses is checked where it is read (a file whose field has the wrong type is
listed in :attr:`FleetData.unreadable` with the JSON path and the reason, and is otherwise skipped); one row is
extracted and the document is dropped before the next file is read. Open-ended evidence (``device_state``, which
the schema leaves free-form) is read defensively: a value of an unexpected type there is ignored, not an error.
``npucheck show FILE`` still validates a single profile in full.

Per-device figures are recomputed from the raw samples: for each dtype the peak case named by
``summary.peak[dtype].case`` is found among the measurements, and its TFLOPS (FLOPs per call ÷ median per-call
seconds) and 95% interval of the median (:func:`npucheck.stats.summarize`) come from its ``samples_s``. Only when
a peak has no raw samples is the stored summary figure used, and the row's ``notes`` say so. A stored peak that its
samples do not give, and a stored fp16 TFLOPS/W that its headline window's joules and work do not give, are named in
the ``notes`` as "edited or corrupt" (:mod:`npucheck.evidence`); that TFLOPS/W is then not shown. The ``verdicts``
column is the stored verdicts (re-judging 10,000 profiles would cost the fast path its speed): ``npucheck check
DIR`` judges every device again from its raw samples.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from npucheck.errors import ResultFileError
from npucheck.evidence import EDITED, agrees, window_tflops_per_watt
from npucheck.fleetfile import FLEET_FILE, load_summary, profile_stem
from npucheck.model import SCHEMA_VERSION, VERDICT_STATUSES
from npucheck.stats import summarize
from npucheck.store import MAX_RESULT_BYTES, parse_json

__all__ = [
    "analyse",
    "analysis_record",
    "bottom_line",
    "compare_fleets",
    "COMPARE_VERDICTS",
    "DEFAULT_TOLERANCE",
    "device_label",
    "DEVICE_COLUMNS",
    "DTYPES",
    "evidence_lines",
    "exit_code",
    "EXTRA_COLUMNS",
    "FleetData",
    "fleet_table",
    "fleet_table_lines",
    "group_label",
    "group_lines",
    "groups_frame",
    "header_line",
    "load_fleet",
    "METRIC_WORDS",
    "METRICS",
    "missing_lines",
    "print_fleet",
    "to_json",
    "to_markdown",
]

DEVICE_COLUMNS: tuple[str, ...] = (
    "key",
    "rank",
    "local_rank",
    "host",
    "device",
    "backend",
    "model",
    "uuid",
    "driver",
    "power_limit_w",
    "status",
    "reason",
    "profile",
    "created_utc",
    "peak_fp16_tflops",
    "peak_fp16_ci_low",
    "peak_fp16_ci_high",
    "peak_bf16_tflops",
    "peak_bf16_ci_low",
    "peak_bf16_ci_high",
    "peak_fp32_tflops",
    "peak_fp32_ci_low",
    "peak_fp32_ci_high",
    "fp16_tflops_per_watt",
    "fp16_tflops_per_watt_ci_low",
    "fp16_tflops_per_watt_ci_high",
    "verdicts",
    "worst_verdict",
    "sm_clock_mhz",
    "throttle_reasons",
    "temperature_c",
    "avg_watts",
    "foreign_cpu_cores",
    "warnings",
    "interrupted",
)
"""The columns of :attr:`FleetData.devices`, in order (then :data:`EXTRA_COLUMNS`)."""
EXTRA_COLUMNS: tuple[str, ...] = ("suite", "notes")
"""Added after DEVICE_COLUMNS: the profile's suite, and notes on how its figures were read (a peak taken from the
stored summary because it had no raw samples; a profile not named in fleet.json)."""
METRICS: tuple[str, ...] = ("peak_fp16_tflops", "peak_bf16_tflops", "peak_fp32_tflops", "fp16_tflops_per_watt")
METRIC_WORDS: Mapping[str, str] = {
    "peak_fp16_tflops": "peak fp16",
    "peak_bf16_tflops": "peak bf16",
    "peak_fp32_tflops": "peak fp32",
    "fp16_tflops_per_watt": "fp16 TFLOPS/W",
}
DTYPES: tuple[str, ...] = ("fp16", "bf16", "fp32")
DEFAULT_TOLERANCE = 0.10
MAX_TFLOPS = 1e6
"""No device gives a million TFLOPS (an exaFLOPS, ~1000 times the largest today): a figure recomputed from a profile's
FLOP count and samples above it is a corrupt count or time, and the profile is listed as unreadable."""
COMPARED = ("ok", "interrupted")
"""Member statuses whose figures are compared with their peers (error and missing members have none)."""
_WORST = {"FAIL": 3, "ERROR": 2, "INCONCLUSIVE": 1, "PASS": 0}
_CI = {
    **{f"peak_{d}_tflops": (f"peak_{d}_ci_low", f"peak_{d}_ci_high") for d in DTYPES},
    "fp16_tflops_per_watt": ("fp16_tflops_per_watt_ci_low", "fp16_tflops_per_watt_ci_high"),
}
_NUMERIC = [c for c in DEVICE_COLUMNS if c.startswith(("peak_", "fp16_"))] + [
    "power_limit_w",
    "sm_clock_mhz",
    "temperature_c",
    "avg_watts",
    "foreign_cpu_cores",
]

Samples = Mapping[str, Mapping[str, tuple[float, np.ndarray]]]
"""``{profile file name: {dtype: (FLOPs per call, per-call seconds)}}``: the raw samples of each peak case."""


@dataclass(frozen=True)
class FleetData:
    """A fleet directory as read by :func:`load_fleet`.

    ``summary``: the validated fleet.json, or None when the directory has none. ``devices``: one row per member
    (or per profile, without fleet.json), columns :data:`DEVICE_COLUMNS` then :data:`EXTRA_COLUMNS`.
    ``unreadable``: one line per profile that could not be read (``<path>: <why>``). ``samples``: the raw samples
    of every row's peak cases, for :func:`compare_fleets`.
    """

    directory: Path
    summary: dict[str, Any] | None
    devices: pd.DataFrame
    unreadable: tuple[str, ...]
    samples: Samples = field(default_factory=dict, repr=False)


# ================================================================================================ reading
class _Unreadable(Exception):
    """A profile this module cannot use; the message is one line, without the path."""


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer"}
    return names.get(type(value), "a number" if isinstance(value, float) else "null" if value is None else "?")


def _get(container: Mapping[str, Any], key: str, where: str, types: tuple[type, ...], required: bool) -> Any:
    value = container.get(key)
    if value is None:
        if required:
            raise _Unreadable(f"{where}.{key}: missing")
        return None
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        wanted = "a number" if float in types else " or ".join(_kind(t()) for t in types)
        raise _Unreadable(f"{where}.{key}: expected {wanted}, found {_kind(value)}")
    return value


def _obj(c: Mapping[str, Any], key: str, where: str, required: bool = False) -> dict[str, Any] | None:
    value: dict[str, Any] | None = _get(c, key, where, (dict,), required)
    return value


def _list(c: Mapping[str, Any], key: str, where: str, required: bool = False) -> list[Any] | None:
    value: list[Any] | None = _get(c, key, where, (list,), required)
    return value


def _str(c: Mapping[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value: str | None = _get(c, key, where, (str,), required)
    return value


def _int(c: Mapping[str, Any], key: str, where: str) -> int | None:
    value: int | None = _get(c, key, where, (int,), False)
    return value


def _num(c: Mapping[str, Any], key: str, where: str) -> float | None:
    value = _get(c, key, where, (int, float), False)
    if value is None:
        return None
    number = _finite(value)
    if number is None:
        raise _Unreadable(f"{where}.{key}: {_short(value)} is not a finite number")
    return number


def _finite(value: int | float) -> float | None:
    """``value`` as a finite float, or None (an integer too large for a float counts as not finite)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _short(value: Any) -> str:
    text = (
        str(value)
        if not isinstance(value, int) or abs(value) < 10**30
        else f"an integer of {len(str(abs(value)))} digits"
    )
    return text if len(text) <= 40 else text[:39] + "…"


def _loose_number(value: Any) -> float | None:
    """A number from open-ended evidence, or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return _finite(value)


def _read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_RESULT_BYTES:
            raise _Unreadable(f"is {size / 2**20:.0f} MiB, larger than the {MAX_RESULT_BYTES / 2**20:.0f} MiB limit")
        data = path.read_bytes()
    except OSError as e:
        raise _Unreadable(f"cannot be read: {e.strerror or e}") from e
    if not data.strip():
        raise _Unreadable("is empty")
    try:
        return parse_json(data)
    except json.JSONDecodeError as e:
        if e.pos >= len(data.rstrip()) - 1 or e.msg.startswith("Unterminated string"):
            raise _Unreadable(f"truncated JSON: the document ends at line {e.lineno} before it is complete") from e
        raise _Unreadable(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise _Unreadable(f"not UTF-8 text (invalid byte at offset {e.start})") from e
    except RecursionError as e:
        raise _Unreadable("invalid JSON: nested too deeply") from e
    except ValueError as e:
        raise _Unreadable(f"invalid JSON: {e}") from e


def _state(value: Any) -> dict[str, Any]:
    """``device_state`` of a measurement (flat, or ``{"before": {...}, "after": {...}}`` as the runner writes it)
    as one reading: the clock at the end, every throttle reason seen, the hottest temperature, the power limit.
    ``throttle_reasons`` is "" when the source reported none and None when it reported nothing about them."""
    if not isinstance(value, dict):
        return {}
    edges = [value[k] for k in ("before", "after") if isinstance(value.get(k), dict)] or [value]
    out: dict[str, Any] = {}
    for edge in reversed(edges):  # "after" first: the state at the end of the case
        if "sm_clock_mhz" not in out and (clock := _loose_number(edge.get("sm_clock_mhz"))) is not None:
            out["sm_clock_mhz"] = clock
        if "power_limit_w" not in out and (limit := _loose_number(edge.get("power_limit_w"))) is not None:
            out["power_limit_w"] = limit
    temperatures = [t for e in edges if (t := _loose_number(e.get("temperature_c"))) is not None]
    if temperatures:
        out["temperature_c"] = max(temperatures)
    reasons: list[str] | None = None
    for edge in edges:
        listed = edge.get("throttle_reasons")
        if not isinstance(listed, list):
            listed = edge.get("clock_event_reasons")
        if isinstance(listed, list):
            reasons = (reasons or []) + [str(r) for r in listed if isinstance(r, str)]
    if reasons is not None:
        out["throttle_reasons"] = ", ".join(dict.fromkeys(reasons))
    return out


def _profile_row(path: Path) -> tuple[dict[str, Any], dict[str, tuple[float, np.ndarray]]]:
    """One row of DEVICE_COLUMNS (status, rank and member fields as the profile says) and the peak cases' raw
    samples, from one profile file.

    Raises:
        _Unreadable: why the file cannot be used (one line, without the path).
    """
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise _Unreadable(f"not a JSON object at the top level (found {_kind(doc)}); not an npucheck result profile")
    if "schema_version" not in doc:
        raise _Unreadable("no schema_version; not an npucheck result profile")
    version = doc["schema_version"]
    if type(version) is not int:
        raise _Unreadable(f"schema_version must be an integer, not {_kind(version)}")
    if version > SCHEMA_VERSION:
        raise _Unreadable(f"written by a newer npucheck (schema {version} > {SCHEMA_VERSION}); upgrade npucheck")
    if version < SCHEMA_VERSION:
        raise _Unreadable(
            f"schema {version}: a fleet is read from schema {SCHEMA_VERSION} profiles only (npucheck show reads it)"
        )
    device = _obj(doc, "device", "$", required=True)
    environment = _obj(doc, "environment", "$", required=True)
    summary = _obj(doc, "summary", "$", required=True)
    assert device is not None and environment is not None and summary is not None
    properties = _obj(device, "properties", "$.device") or {}
    fleet_info = _obj(environment, "fleet", "$.environment") or {}
    settings = _obj(doc, "settings", "$") or {}
    measurements = _list(doc, "measurements", "$", required=True) or []
    verdicts = _list(doc, "verdicts", "$", required=True) or []
    warnings = _list(doc, "warnings", "$") or []
    interrupted = _get(doc, "interrupted", "$", (bool,), True)
    row: dict[str, Any] = {
        "rank": _int(fleet_info, "rank", "$.environment.fleet"),
        "local_rank": _int(fleet_info, "local_rank", "$.environment.fleet"),
        "host": _str(environment, "hostname", "$.environment"),
        "device": _str(device, "id", "$.device", required=True),
        "backend": _str(device, "backend", "$.device", required=True),
        "model": _str(device, "name", "$.device", required=True),
        "uuid": _str(properties, "uuid", "$.device.properties"),
        "driver": _str(environment, "driver", "$.environment"),
        "status": "interrupted" if interrupted else "ok",
        "reason": "the run was interrupted: a partial profile" if interrupted else None,
        "profile": path.name,
        "created_utc": _str(doc, "created_utc", "$", required=True),
        "interrupted": interrupted,
        "warnings": len(warnings),
        "suite": _str(settings, "suite", "$.settings"),
    }
    notes: list[str] = []

    # the peak case of each dtype, then one pass over the measurements
    peaks = _obj(summary, "peak", "$.summary") or {}
    wanted: dict[str, list[str]] = {}
    stored: dict[str, tuple[float | None, float | None, float | None]] = {}
    for dtype in DTYPES:
        where = f"$.summary.peak.{dtype}"
        peak = _obj(peaks, dtype, "$.summary.peak")
        if not peak:
            continue
        case = _str(peak, "case", where)
        stored[dtype] = (_num(peak, "tflops", where), _num(peak, "ci_low", where), _num(peak, "ci_high", where))
        if case is not None:
            wanted.setdefault(case, []).append(dtype)
    found: dict[str, dict[str, Any]] = {}
    any_limit: float | None = None
    headline: dict[str, dict[str, Any]] = {}
    for index, m in enumerate(measurements):
        if not isinstance(m, dict):
            raise _Unreadable(f"$.measurements[{index}]: expected an object, found {_kind(m)}")
        case_id = m.get("id")
        if isinstance(case_id, str) and case_id in wanted and m.get("status") == "ok":
            for dtype in wanted[case_id]:
                found.setdefault(dtype, m)
        if any_limit is None:
            any_limit = _state(m.get("device_state")).get("power_limit_w")
        window = m.get("energy")
        if isinstance(window, dict) and window.get("kind") == "headline" and isinstance(m.get("dtype"), str):
            headline.setdefault(m["dtype"], window)

    samples: dict[str, tuple[float, np.ndarray]] = {}
    for dtype in DTYPES:
        value = low = high = None
        m = found.get(dtype)
        raw = _list(m, "samples_s", f"$.measurements[{m.get('id')}]") if m is not None else None
        if m is not None and raw:
            where = f"$.measurements[{m.get('id')}]"
            flops = _num(m, "flops", where)
            if flops is None or flops <= 0:
                raise _Unreadable(f"{where}.flops: expected a positive number")
            try:
                stats = summarize(raw)
            except (ValueError, TypeError, OverflowError) as e:  # OverflowError: an integer beyond a float
                raise _Unreadable(f"{where}.samples_s: {e}") from e
            value, low, high = (flops / s / 1e12 for s in (stats.median_s, stats.ci_high_s, stats.ci_low_s))
            if not all(math.isfinite(x) and 0 < x <= MAX_TFLOPS for x in (value, low, high)):
                raise _Unreadable(
                    f"{where}: {_short(value)} TFLOPS from its flops and samples_s is not a figure a device gives "
                    f"(more than {MAX_TFLOPS:g}, or not finite): a corrupt FLOP count or time"
                )
            samples[dtype] = (flops, np.asarray(raw, dtype=float))
            kept = stored.get(dtype, (None,))[0]
            if kept is not None and not agrees(kept, value):  # shown from the samples; the edit is named
                notes.append(f"peak {dtype}: {EDITED}: stored {kept:.6g}, raw samples give {value:.6g}")
        elif dtype in stored and stored[dtype][0] is not None:
            value, low, high = stored[dtype]
            notes.append(f"peak {dtype}: the stored summary's figure (its case has no raw samples)")
        row[f"peak_{dtype}_tflops"], row[f"peak_{dtype}_ci_low"], row[f"peak_{dtype}_ci_high"] = value, low, high

    per_watt = _obj(summary, "tflops_per_watt", "$.summary") or {}
    per_watt_ci = _obj(summary, "tflops_per_watt_ci", "$.summary") or {}
    row["fp16_tflops_per_watt"] = _num(per_watt, "fp16", "$.summary.tflops_per_watt")
    interval = _list(per_watt_ci, "fp16", "$.summary.tflops_per_watt_ci")
    if interval is not None:
        if len(interval) != 2 or not all(_loose_number(v) is not None for v in interval):
            raise _Unreadable("$.summary.tflops_per_watt_ci.fp16: expected [low, high], two numbers")
        row["fp16_tflops_per_watt_ci_low"], row["fp16_tflops_per_watt_ci_high"] = map(float, interval)
    edited = _edited_per_watt(row["fp16_tflops_per_watt"], headline.get("fp16"))
    if edited is not None:  # the stored figure is not what its window gives: no figure, and the row says why
        notes.append(edited)
        row["fp16_tflops_per_watt"] = row["fp16_tflops_per_watt_ci_low"] = row["fp16_tflops_per_watt_ci_high"] = None

    statuses = []
    for index, verdict in enumerate(verdicts):
        where = f"$.verdicts[{index}]"
        if not isinstance(verdict, dict):
            raise _Unreadable(f"{where}: expected an object, found {_kind(verdict)}")
        target, status = _str(verdict, "target", where, True), _str(verdict, "status", where, True)
        if status not in VERDICT_STATUSES:
            raise _Unreadable(f"{where}.status: {status!r} is not one of {', '.join(VERDICT_STATUSES)}")
        statuses.append((target, status))
    row["verdicts"] = ", ".join(f"{t}: {s}" for t, s in statuses)
    row["worst_verdict"] = max((s for _, s in statuses), key=_WORST.__getitem__) if statuses else None

    # evidence: the peak fp16 case, else the peak of any dtype
    evidence = next((found[d] for d in DTYPES if d in found), None)
    state = _state(evidence.get("device_state")) if evidence is not None else {}
    row["sm_clock_mhz"] = state.get("sm_clock_mhz")
    row["throttle_reasons"] = state.get("throttle_reasons")
    row["temperature_c"] = state.get("temperature_c")
    energy_of = next((d for d in DTYPES if d in found), None)
    energy: Any = evidence.get("energy") if evidence is not None else None
    if not (isinstance(energy, dict) and _loose_number(energy.get("avg_watts")) is not None) and energy_of:
        energy = headline.get(energy_of)
    row["avg_watts"] = _loose_number(energy.get("avg_watts")) if isinstance(energy, dict) else None
    limit = state.get("power_limit_w", any_limit)
    if limit is None:
        context = next((e.get("context_before") for e in headline.values() if isinstance(e, dict)), None)
        limit = _loose_number(context.get("power_limit_w")) if isinstance(context, dict) else None
    row["power_limit_w"] = limit
    row["foreign_cpu_cores"] = (
        _num(evidence, "foreign_cpu_cores", f"$.measurements[{evidence.get('id')}]") if evidence is not None else None
    )
    row["notes"] = "; ".join(notes)
    return row, samples


def _key(host: Any, uuid: Any, local_rank: Any, device: Any, rank: Any = None) -> str:
    if _missing(host) and not _missing(rank):  # a rank that never reported: only its rank is known
        return f"rank/{rank}"
    if isinstance(uuid, str) and uuid:
        return f"{host}/{uuid}"
    if local_rank is None or local_rank != local_rank:
        return f"{host}/{device}"
    return f"{host}/{local_rank}/{device}"


def _profiles(directory: Path) -> list[Path]:
    with os.scandir(directory) as entries:
        return sorted(
            Path(e.path)
            for e in entries
            if e.name.endswith(".json") and e.name != FLEET_FILE and not e.name.startswith(".")
        )


def load_fleet(directory: str | Path) -> FleetData:
    """Read a fleet directory: ``fleet.json`` when present (every member, error and missing ones included) and
    every other ``*.json`` profile directly in it.

    Without fleet.json the members are the profiles (status ok, or interrupted when the profile says so, ranks
    from their ``environment.fleet``). With it, a profile no member names is added as a row of its own (its notes
    say so), and a member whose profile is absent or unreadable is missing or error with the reason.

    Raises:
        ResultFileError: ``directory`` is not a folder, holds neither fleet.json nor any profile, or its fleet.json
            is invalid or from a newer npucheck (one line; exit code 2 in the CLI).
    """
    directory = Path(directory)
    if not directory.exists():
        raise ResultFileError(f"{directory}: no such folder")
    if not directory.is_dir():
        raise ResultFileError(f"{directory}: is a file, not a fleet folder (npucheck run --fleet DIR writes one)")
    summary_path = directory / FLEET_FILE
    summary = load_summary(summary_path) if summary_path.exists() else None
    paths = _profiles(directory)
    if summary is None and not paths:
        raise ResultFileError(f"{directory}: neither {FLEET_FILE} nor any result profile (*.json) here")
    rows: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    samples: dict[str, dict[str, tuple[float, np.ndarray]]] = {}
    for path in paths:
        try:
            row, found = _profile_row(path)
        except _Unreadable as e:
            failures[path.name] = str(e)
            continue
        rows[path.name] = row
        if found:
            samples[path.name] = found
    out: list[dict[str, Any]] = []
    if summary is not None:
        named: set[str] = set()
        for member in summary["members"]:
            out.append(_member_row(member, rows, failures, named))
        for name, row in rows.items():
            if name not in named:
                row["notes"] = "; ".join(filter(None, [row["notes"], f"not a member in {FLEET_FILE}"]))
                out.append(row)
    else:
        out = list(rows.values())
    for row in out:
        row["key"] = _key(row.get("host"), row.get("uuid"), row.get("local_rank"), row.get("device"), row.get("rank"))
    frame = _typed_frame(pd.DataFrame(out, columns=[*DEVICE_COLUMNS, *EXTRA_COLUMNS]))
    order = ["rank", "host", "local_rank", "device", "profile"]
    frame = frame.sort_values(order, na_position="last", kind="stable").reset_index(drop=True)
    unreadable = tuple(f"{directory / name}: {why}" for name, why in failures.items())
    shown = set(frame["profile"].dropna())
    kept = {name: found for name, found in samples.items() if name in shown}
    return FleetData(directory=directory, summary=summary, devices=frame, unreadable=unreadable, samples=kept)


def _member_row(
    member: Mapping[str, Any], rows: Mapping[str, dict[str, Any]], failures: Mapping[str, str], named: set[str]
) -> dict[str, Any]:
    """A member of fleet.json as a row: its profile's row when that was read, else the member's own fields."""
    profile = member.get("profile")
    status, reason = member["status"], member.get("reason")
    base = {
        "rank": member["rank"],
        "local_rank": member.get("local_rank"),
        "host": member.get("host"),  # null for a rank that never reported
        "device": member.get("device"),
        "status": status,
        "reason": reason,
        "profile": profile,
        "interrupted": status == "interrupted",
        "warnings": 0,
        "notes": "",
    }
    name = Path(profile).name if isinstance(profile, str) else None
    orphan = _orphan_profile(member, rows, named) if name is None and status == "missing" else None
    if orphan is not None:  # the rank was lost, but its measuring process saved what it measured on this host
        named.add(orphan)
        row = dict(rows[orphan])
        row.update(rank=member["rank"], profile=orphan)
        row["reason"] = "; ".join(
            filter(None, [reason, "its measuring process saved this profile itself after the rank was lost"])
        )
        row["notes"] = "; ".join(filter(None, [row["notes"], f"missing in {FLEET_FILE}; found in the folder"]))
        return row
    if name is not None and name in rows and status in COMPARED:
        named.add(name)
        row = dict(rows[name])
        row.update(rank=member["rank"], host=row["host"] or member.get("host"), profile=name)
        if row["local_rank"] is None:
            row["local_rank"] = member.get("local_rank")
        if status == "interrupted" or row["status"] == "interrupted":
            row.update(status="interrupted", interrupted=True, reason=reason or row["reason"])
        return row
    if name is not None and name in rows:  # error or missing, but a profile arrived: shown, never compared
        named.add(name)
        row = dict(rows[name])
        row.update(rank=member["rank"], status=status, reason=reason, profile=name)
        row["notes"] = "; ".join(filter(None, [row["notes"], f"status {status} in {FLEET_FILE}: not compared"]))
        return row
    if status in COMPARED:  # the summary says a profile arrived, but it is not here or cannot be read
        if name is not None and name in failures:
            base.update(status="error", reason=f"{name}: {failures[name]}")
        else:
            base.update(status="missing", reason=f"{profile or 'its profile'} is not in the folder")
    elif not reason:
        base["reason"] = "no reason recorded"
    return base


def _orphan_profile(member: Mapping[str, Any], rows: Mapping[str, dict[str, Any]], named: set[str]) -> str | None:
    """The profile a lost rank's measuring process saved under the member's own name (a rank killed mid-run:
    its measuring process is interrupted and saves), when it is in the folder and no member names it."""
    host, local_rank, device = member.get("host"), member.get("local_rank"), member.get("device")
    if not isinstance(host, str) or not isinstance(local_rank, int) or not isinstance(device, str):
        return None
    name = f"{profile_stem(host, local_rank, device)}.json"
    return name if name in rows and name not in named else None


def _typed_frame(frame: pd.DataFrame) -> pd.DataFrame:
    for column in _NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in ("rank", "local_rank"):
        frame[column] = pd.array(
            [None if v is None or v != v else int(v) for v in frame[column].tolist()], dtype="Int64"
        )
    frame["warnings"] = frame["warnings"].fillna(0).astype(int)
    frame["interrupted"] = frame["interrupted"].fillna(False).astype(bool)
    frame["notes"] = frame["notes"].fillna("").astype(str)
    return frame


# ================================================================================================ analysis
def group_label(model: Any, driver: Any, power_limit_w: Any) -> str:
    """``NVIDIA H200 · driver 550.54 · 700 W``: the devices that should perform alike."""
    if _missing(model):
        return "no profile"
    text = f"{model} · " + (f"driver {driver}" if not _missing(driver) else "no driver")
    return text + " · " + (f"{float(power_limit_w):g} W" if not _missing(power_limit_w) else "no limit")


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _edited_per_watt(stored: float | None, window: Mapping[str, Any] | None) -> str | None:
    """Why a stored fp16 TFLOPS/W is not what its headline window's joules, length and work give (as
    :func:`npucheck.evidence.window_tflops_per_watt` computes it), or None when it is (or nothing is stored)."""
    if stored is None:
        return None
    numbers = [_loose_number(window.get(key)) if window else None for key in ("flops", "joules", "window_s")]
    if not window or window.get("valid") is not True or any(n is None or n <= 0 for n in numbers):
        return f"fp16 TFLOPS/W: {EDITED}: stored {stored:.6g}, but no energy window gives it"
    flops, joules, window_s = (float(n) for n in numbers if n is not None)
    raw = window_tflops_per_watt(flops, joules, window_s)
    return None if agrees(stored, raw) else f"fp16 TFLOPS/W: {EDITED}: stored {stored:.6g}, its window gives {raw:.6g}"


def _leave_one_out_medians(values: np.ndarray) -> np.ndarray:
    """For each element, the median of all the others (NaN when there are none); O(n log n)."""
    n = values.size
    out = np.full(n, np.nan)
    if n < 2:
        return out
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    position = np.empty(n, dtype=int)
    position[order] = np.arange(n)
    rest = n - 1

    def at(rank: int) -> np.ndarray:  # the rank-th smallest of the others: skip the element's own position
        ranks = np.full(n, rank)
        result: np.ndarray = ordered[np.where(ranks < position, ranks, ranks + 1)]
        return result

    if rest % 2:
        return at(rest // 2)
    return (at(rest // 2 - 1) + at(rest // 2)) / 2


def _peer_medians(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """For each index in ``members``, the median of ``values`` over the OTHER members that have one (NaN none)."""
    out = np.full(members.size, np.nan)
    have = ~np.isnan(values[members])
    if have.sum() == 0:
        return out
    with_value = members[have]
    out[have] = _leave_one_out_medians(values[with_value])
    out[~have] = float(np.median(values[with_value]))  # an element without a value is not among its own peers
    return out


def analyse(fleet: FleetData, tolerance: float = DEFAULT_TOLERANCE) -> pd.DataFrame:
    """The device frame with groups, each device's leave-one-out reference per metric, and the outliers.

    For each metric M and each ok or interrupted device with a value, its peers are the OTHER ok devices of its
    group with a value (an interrupted profile is judged, but never part of another device's reference: its peak
    may come from fewer cases). ``M_ref`` is the median of the peers' values, ``M_ref_low`` the median of their
    95% CI lows, and the device is flagged (``M_flag``) when ``value < M_ref·(1 − tolerance)`` and its own CI high
    is below ``M_ref_low``: short by more than the tolerance, and significantly so from the raw samples. A device
    without peers (alone in its group) is not compared; error and missing members are never flagged (they have
    no figures).

    Raises:
        ValueError: ``tolerance`` not in (0, 1).
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance {tolerance!r} must be in (0, 1)")
    frame = fleet.devices.copy()
    frame["group"] = [group_label(*r) for r in zip(frame["model"], frame["driver"], frame["power_limit_w"])]
    compared = frame["status"].isin(COMPARED).to_numpy()
    complete = (frame["status"] == "ok").to_numpy()
    groups = [np.asarray(idx) for idx in frame.groupby("group", sort=False).indices.values()]
    reasons: list[list[str]] = [[] for _ in range(len(frame))]
    notes: list[list[str]] = [[n] if n else [] for n in frame["notes"]]
    measured = np.zeros(len(frame), dtype=bool)
    had_peers = np.zeros(len(frame), dtype=bool)
    for metric in METRICS:
        if frame[metric].isna().all():
            continue
        values = frame[metric].to_numpy(dtype=float)
        low_col, high_col = _CI[metric]
        lows, highs = frame[low_col].to_numpy(dtype=float), frame[high_col].to_numpy(dtype=float)
        ref, ref_low, peers = np.full(len(frame), np.nan), np.full(len(frame), np.nan), np.zeros(len(frame), int)
        peer_values = np.where(complete, values, np.nan)  # interrupted profiles are judged, never a reference
        peer_lows = np.where(complete & ~np.isnan(values), lows, np.nan)
        for idx in groups:
            members = idx[compared[idx] & ~np.isnan(values[idx])]
            measured[members] = True
            count = members.size - int(np.isnan(peer_values[members]).sum())  # complete devices with a value
            others = count - (~np.isnan(peer_values[members])).astype(int)
            judged = members[others > 0]
            if judged.size == 0:
                continue
            ref[judged] = _peer_medians(peer_values, members)[others > 0]
            ref_low[judged] = _peer_medians(peer_lows, members)[others > 0]
            peers[judged] = others[others > 0]
            had_peers[judged] = True
        ratio = values / ref
        with np.errstate(invalid="ignore"):
            short = values < ref * (1 - tolerance)
            flag = compared & short & (highs < ref_low)
        frame[f"{metric}_ref"] = ref
        frame[f"{metric}_ref_low"] = ref_low
        frame[f"{metric}_ratio"] = ratio
        frame[f"{metric}_flag"] = flag
        words = METRIC_WORDS[metric]
        for i in np.flatnonzero(short & compared):
            below = f"{words} {1 - ratio[i]:.0%} below its {peers[i]} peer{'s' if peers[i] != 1 else ''}"
            if flag[i]:
                reasons[i].append(f"{below} ({ratio[i]:.2f}×; 95% CI {lows[i] / ref[i]:.2f}–{highs[i] / ref[i]:.2f}×)")
            elif math.isnan(highs[i]):
                notes[i].append(f"{below}, but it has no interval to test: not flagged")
            else:
                notes[i].append(f"{below}, but not significantly (its interval reaches the peers'): not flagged")
    frame["flagged"] = frame[[c for c in frame.columns if c.endswith("_flag")]].any(axis=1) if len(frame) else False
    for i in np.flatnonzero(compared & measured & ~had_peers):
        reasons[i].append("alone in its group: not compared")
    frame["flag_reasons"] = ["; ".join(r) for r in reasons]
    frame["notes"] = ["; ".join(n) for n in notes]
    frame["evidence"] = _evidence(frame, groups, compared, complete)
    frame["failed"] = (frame["worst_verdict"] == "FAIL").astype(bool)
    frame["flagged"] = frame["flagged"].astype(bool)
    return frame


def _evidence(
    frame: pd.DataFrame, groups: Sequence[np.ndarray], compared: np.ndarray, complete: np.ndarray
) -> list[str]:
    clocks = frame["sm_clock_mhz"].to_numpy(dtype=float)
    peer_clocks = np.where(complete, clocks, np.nan)  # the peers' clocks: complete profiles only, as for figures
    peer_clock = np.full(len(frame), np.nan)
    for idx in groups:
        members = idx[compared[idx]]
        if members.size >= 2:
            peer_clock[members] = _peer_medians(peer_clocks, members)
    lines = []
    for i, row in enumerate(frame.itertuples(index=False)):
        if _missing(row.profile) or row.status not in COMPARED:
            lines.append("")
            continue
        parts = []
        if not math.isnan(clocks[i]):
            parts.append(
                f"clock {clocks[i]:.0f} MHz"
                + (f" vs peers' median {peer_clock[i]:.0f} MHz" if not math.isnan(peer_clock[i]) else "")
            )
        if isinstance(row.throttle_reasons, str):
            parts.append(f"throttle reasons: {row.throttle_reasons}" if row.throttle_reasons else "not throttled")
        if not _missing(row.temperature_c):
            parts.append(f"{row.temperature_c:.0f} °C")
        if not _missing(row.avg_watts):
            limit = f" of a {row.power_limit_w:g} W limit" if not _missing(row.power_limit_w) else ""
            parts.append(f"power {row.avg_watts:.0f} W{limit}")
        elif not _missing(row.power_limit_w):
            parts.append(f"power limit {row.power_limit_w:g} W")
        if not _missing(row.foreign_cpu_cores):
            parts.append(f"other load {row.foreign_cpu_cores:.2g} cores")
        if row.warnings:
            parts.append(f"{row.warnings} warning{'s' if row.warnings != 1 else ''}")
        lines.append("; ".join(parts) or "no evidence recorded")
    return lines


def groups_frame(analysed: pd.DataFrame) -> pd.DataFrame:
    """One row per group: ``group``, ``devices``, ``ok_devices`` (status ok), and for each metric with a value
    its ``_median``, ``_min``, ``_max`` and ``_spread`` over the ok or interrupted devices, where the spread is
    ``max / min − 1`` (how much faster the best device is than the worst; 0 for one device)."""
    metrics = [m for m in METRICS if m in analysed and analysed[m].notna().any()]
    rows = []
    for group, g in analysed.groupby("group", sort=False):
        row: dict[str, Any] = {"group": group, "devices": len(g), "ok_devices": int((g["status"] == "ok").sum())}
        compared = g[g["status"].isin(COMPARED)]
        for metric in metrics:
            values = compared[metric].dropna()
            low, high = (float(values.min()), float(values.max())) if len(values) else (math.nan, math.nan)
            row[f"{metric}_median"] = float(values.median()) if len(values) else math.nan
            row[f"{metric}_min"], row[f"{metric}_max"] = low, high
            row[f"{metric}_spread"] = high / low - 1 if len(values) and low > 0 else math.nan
        rows.append(row)
    columns = ["group", "devices", "ok_devices"]
    columns += [f"{m}_{s}" for m in metrics for s in ("median", "min", "max", "spread")]
    return pd.DataFrame(rows, columns=columns)


COMPARE_VERDICTS = ("regression", "missing", "new", "improvement", "small change", "noise", "no raw samples")
"""A device's overall verdict in :func:`compare_fleets` is the first of these that any of its dtypes has."""


def compare_fleets(base: FleetData, other: FleetData, threshold: float = 0.05) -> pd.DataFrame:
    """One row per device key present in either fleet: for each dtype's peak, base and other TFLOPS, the speed
    ratio (other ÷ base, > 1 faster) with its 95% bootstrap interval from both peak cases' raw samples
    (:func:`npucheck.read.compare.ratio_interval` over seconds per FLOP, so a peak that moved to another shape
    still compares), and the verdict (:func:`npucheck.read.compare.classify`: regression, improvement, small
    change, noise), or missing (in base only), new (in other only), no raw samples. ``verdict``: the device's
    worst (see :data:`COMPARE_VERDICTS`). A key measured twice in one fleet counts its latest profile."""
    from npucheck.read.compare import classify, ratio_interval

    def latest(fleet: FleetData) -> dict[str, dict[str, Any]]:
        frame = fleet.devices.sort_values("created_utc", na_position="first", kind="stable")
        return {r["key"]: r for r in frame.to_dict(orient="records")}

    before, after = latest(base), latest(other)
    rows = []
    for key in [*before, *(k for k in after if k not in before)]:
        b, o = before.get(key), after.get(key)
        ref = b if b is not None else o
        assert ref is not None
        row: dict[str, Any] = {
            "key": key,
            "host": ref["host"],
            "device": ref["device"],
            "model": ref["model"],
            "base_status": b["status"] if b is not None else None,
            "other_status": o["status"] if o is not None else None,
        }
        verdicts = []
        for dtype in DTYPES:
            metric = f"peak_{dtype}_tflops"
            bv = None if b is None or _missing(b[metric]) else float(b[metric])
            ov = None if o is None or _missing(o[metric]) else float(o[metric])
            cells: dict[str, Any] = {"base": bv, "other": ov, "ratio": None, "ratio_low": None, "ratio_high": None}
            if bv is None and ov is None:
                verdict = None
            elif ov is None:
                verdict = "missing"
            elif bv is None:
                verdict = "new"
            else:
                bs = base.samples.get(b["profile"] if b is not None else "", {}).get(dtype)
                os_ = other.samples.get(o["profile"] if o is not None else "", {}).get(dtype)
                cells["ratio"] = ov / bv
                if bs is None or os_ is None:
                    verdict = "no raw samples"
                else:
                    ratio, low, high = ratio_interval(list(bs[1] / bs[0]), list(os_[1] / os_[0]))
                    cells.update(ratio=ratio, ratio_low=low, ratio_high=high)
                    verdict = classify(ratio, low, high, threshold)
            cells["verdict"] = verdict
            row.update({f"{dtype}_{name}": value for name, value in cells.items()})
            if verdict is not None:
                verdicts.append(verdict)
        row["verdict"] = next((v for v in COMPARE_VERDICTS if v in verdicts), None)
        rows.append(row)
    columns = ["key", "host", "device", "model", "base_status", "other_status"]
    columns += [f"{d}_{n}" for d in DTYPES for n in ("base", "other", "ratio", "ratio_low", "ratio_high", "verdict")]
    return pd.DataFrame(rows, columns=[*columns, "verdict"])


def exit_code(analysed: pd.DataFrame, fail_on_outlier: bool) -> int:
    """``npucheck fleet``'s exit code: 1 with ``--fail-on-outlier`` when any device is flagged, failed a target,
    or is error or missing; else 0."""
    if not fail_on_outlier or analysed.empty:
        return 0
    bad = analysed["flagged"] | analysed["failed"] | analysed["status"].isin(["error", "missing"])
    return 1 if bool(bad.any()) else 0


# ================================================================================================ rendering
def device_label(row: Mapping[str, Any]) -> str:
    """How a device is named in lines: its profile's stem (``gpu07-3-cuda3``), else built the same way."""
    profile = row.get("profile")
    if isinstance(profile, str) and profile:
        return Path(profile).stem
    local_rank: Any = row.get("local_rank")
    if _missing(row.get("host")) and not _missing(row.get("rank")):
        return f"rank {row['rank']}"  # a rank that never reported: its host and device are unknown
    host, device = str(row.get("host") or "?"), str(row.get("device") or "?")
    if not _missing(local_rank):
        return profile_stem(host, int(local_rank), device)
    return f"{host}-{device}"


def _when(fleet: FleetData) -> str | None:
    summary = fleet.summary or {}
    if summary.get("started_utc") or summary.get("created_utc"):
        return str(summary.get("started_utc") or summary.get("created_utc"))
    times = fleet.devices["created_utc"].dropna()
    return str(times.min()) if len(times) else None


def header_line(fleet: FleetData, analysed: pd.DataFrame) -> str:
    """``fleet DIR: 8 devices on 1 host, launcher torchrun, suite quick, 2026-11-25T22:00:00Z``."""
    summary = fleet.summary or {}
    hosts = analysed["host"].dropna().nunique()
    suites = [s for s in dict.fromkeys(analysed["suite"].dropna()) if s]
    suite = (summary.get("settings") or {}).get("suite") or ", ".join(suites) or "unknown"
    launcher = summary.get("launcher") or f"unknown (no {FLEET_FILE})"
    when = _when(fleet)
    return (
        f"fleet {fleet.directory}: {len(analysed)} device{'s' if len(analysed) != 1 else ''} on {hosts} "
        f"host{'s' if hosts != 1 else ''}, launcher {launcher}, suite {suite}" + (f", {when}" if when else "")
    )


def _tflops(value: Any) -> str:
    from npucheck.read.text import fmt_tflops

    return fmt_tflops(None if _missing(value) else float(value))


def _flag_word(row: Mapping[str, Any]) -> str:
    words = []
    if row["flagged"]:
        words.append("OUTLIER")
    if row["failed"]:
        words.append("FAIL")
    if row["status"] != "ok":
        words.append(row["status"])
    if row["flag_reasons"].startswith("alone"):
        words.append("alone")
    return ", ".join(words)


def _verdict_counts(text: Any) -> str:
    if _missing(text) or not text:
        return "—"
    statuses = [part.rsplit(": ", 1)[-1] for part in str(text).split(", ")]
    worst = max(statuses, key=lambda s: _WORST.get(s, -1))
    return f"{worst} {statuses.count(worst)}/{len(statuses)}"


def _short_uuid(value: Any) -> str:
    if _missing(value) or not value:
        return "—"
    text = str(value)
    return text if len(text) <= 13 else text[:12] + "…"


_TABLE = (
    # (header, cell of a row, shown at any width, right-aligned)
    ("device", device_label, True, False),
    ("model", lambda r: "—" if _missing(r["model"]) else str(r["model"]), False, False),
    ("uuid", lambda r: _short_uuid(r["uuid"]), False, False),
    ("driver", lambda r: "—" if _missing(r["driver"]) else str(r["driver"]), False, False),
    ("limit W", lambda r: "—" if _missing(r["power_limit_w"]) else f"{r['power_limit_w']:g}", False, True),
    ("fp16 TFLOPS", lambda r: _tflops(r["peak_fp16_tflops"]), True, True),
    ("bf16 TFLOPS", lambda r: _tflops(r["peak_bf16_tflops"]), False, True),
    ("TFLOPS/W", lambda r: _tflops(r["fp16_tflops_per_watt"]), False, True),
    ("verdicts", lambda r: _verdict_counts(r["verdicts"]), False, False),
    ("flag", _flag_word, True, False),
)
_PRIORITY = ("bf16 TFLOPS", "TFLOPS/W", "verdicts", "limit W", "driver", "model", "uuid")
"""The optional columns, added in this order while the table fits the width."""
_SOURCE = {
    "model": "model",
    "uuid": "uuid",
    "driver": "driver",
    "limit W": "power_limit_w",
    "bf16 TFLOPS": "peak_bf16_tflops",
    "TFLOPS/W": "fp16_tflops_per_watt",
    "verdicts": "verdicts",
}


def _table_columns(
    analysed: pd.DataFrame, width: int
) -> tuple[list[tuple[str, bool]], dict[str, list[str]], dict[str, int]]:
    """The columns that fit ``width`` (name, right-aligned), every column's cells, and their widths."""
    records = analysed.to_dict(orient="records")
    present = {h for h, source in _SOURCE.items() if analysed[source].notna().any()}
    columns = [c for c in _TABLE if c[2] or c[0] in present]
    cells = {c[0]: [c[1](r) for r in records] for c in columns}
    widths = {name: max([len(name)] + [len(v) for v in values]) for name, values in cells.items()}
    chosen = {c[0] for c in columns if c[2]}
    for name in _PRIORITY:  # each column also takes two spaces between it and the next
        if name in cells and sum(widths[n] + 2 for n in chosen) + widths[name] <= width:
            chosen.add(name)
    return [(c[0], c[3]) for c in columns if c[0] in chosen], cells, widths


def fleet_table(console: Console, analysed: pd.DataFrame) -> Table:
    """The fleet table as a rich table in the house style, with the columns :func:`fleet_table_lines` shows at
    the console's width."""
    shown, cells, _ = _table_columns(analysed, console.width)
    plain = not console.is_terminal
    table = Table(
        title=_title(analysed),
        title_justify="left",
        box=None if plain else box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        header_style="" if plain else "bold",
    )
    for name, right in shown:
        table.add_column(name, no_wrap=True, justify="right" if right else "left")
    for index in range(len(analysed)):
        table.add_row(*(cells[name][index] for name, _ in shown))
    return table


def _title(analysed: pd.DataFrame) -> str:
    return f"Fleet: {len(analysed)} device{'s' if len(analysed) != 1 else ''}"


def fleet_table_lines(analysed: pd.DataFrame, width: int) -> list[str]:
    """The fleet table as plain lines no wider than ``width``: device (its profile's stem: host, local rank, device
    id), fp16 peak and flag always; then, while they fit, bf16 peak, fp16 TFLOPS/W, verdicts (the worst and how
    many targets gave it), power limit, driver, model and uuid (shortened). Columns no device has a value for are
    left out; cells never wrap. Where even the first three do not fit, one block of lines per device. (Lines, not
    a rich table: rich lays out 10,000 rows in seconds, these take milliseconds.)"""
    shown, cells, widths = _table_columns(analysed, width)
    lines = [_title(analysed)]
    if sum(widths[name] + 2 for name, _ in shown) - 2 > width:
        for index in range(len(analysed)):
            lines.append(cells["device"][index])
            pairs = [f"{name}: {cells[name][index]}" for name, _ in shown[1:] if cells[name][index].strip()]
            current = ""
            for pair in pairs:  # wrapped between pairs only: a header and its value stay together
                if current and len(current) + 2 + len(pair) > width:
                    lines.append(current + ";")
                    current = ""
                current = f"{current}; {pair}" if current else f"  {pair}"
            lines += [current] if current else []
        return lines

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(widths[name]) if right else v.ljust(widths[name]) for (name, right), v in zip(shown, values)
        ).rstrip()

    lines.append(line([name for name, _ in shown]))
    lines += [line([cells[name][index] for name, _ in shown]) for index in range(len(analysed))]
    return lines


def group_lines(groups: pd.DataFrame) -> list[str]:
    """One line per group: its devices, and each metric's median and spread (max ÷ min − 1)."""
    lines = []
    for g in groups.to_dict(orient="records"):
        parts = []
        for metric in METRICS:
            median = g.get(f"{metric}_median")
            if median is None or _missing(median):
                continue
            spread = g[f"{metric}_spread"]
            unit = "" if metric.endswith("per_watt") else " TFLOPS"
            parts.append(f"{METRIC_WORDS[metric]} median {_tflops(median)}{unit} (spread {spread:.1%})")
        devices = f"{g['devices']} device{'s' if g['devices'] != 1 else ''} ({g['ok_devices']} ok)"
        lines.append(f"{g['group']}: {devices}" + (": " + "; ".join(parts) if parts else ""))
    return lines


def evidence_lines(analysed: pd.DataFrame) -> list[str]:
    """Each flagged device: why, then the evidence its profile holds."""
    lines = []
    for r in analysed[analysed["flagged"]].to_dict(orient="records"):
        lines.append(f"{device_label(r)} ({r['group']}): {r['flag_reasons']}")
        lines.append(f"  evidence: {r['evidence']}")
    return lines


def missing_lines(analysed: pd.DataFrame) -> list[str]:
    """Each error or missing member with its reason."""
    bad = analysed[analysed["status"].isin(["error", "missing"])]
    return [f"{device_label(r)}: {r['status']}: {r['reason'] or 'no reason recorded'}" for r in bad.to_dict("records")]


def _short_reason(reasons: str) -> str:
    """``peak fp16 31% below its 7 peers (0.69×; …); …`` → ``peak fp16 31% below its peers``."""
    first = reasons.split("; ")[0]
    return first.split(" below ")[0] + " below its peers" if " below " in first else first


def bottom_line(analysed: pd.DataFrame, listed: int = 5) -> str:
    """``3 devices, 1 flagged: vm-1-cpu (peak bf16 48% below its peers); 0 missing``."""
    total = len(analysed)
    flagged = analysed[analysed["flagged"]].to_dict(orient="records")
    text = f"{total} device{'s' if total != 1 else ''}, {len(flagged)} flagged"
    if flagged:
        names = [f"{device_label(r)} ({_short_reason(r['flag_reasons'])})" for r in flagged[:listed]]
        text += ": " + ", ".join(names) + (f" and {len(flagged) - listed} more" if len(flagged) > listed else "")
    failed = int(analysed["failed"].sum())
    if failed:
        text += f"; {failed} failed a target"
    text += f"; {int((analysed['status'] == 'missing').sum())} missing"
    errors = int((analysed["status"] == "error").sum())
    if errors:
        text += f", {errors} error{'s' if errors != 1 else ''}"
    return text


def print_fleet(console: Console, fleet: FleetData, analysed: pd.DataFrame, tolerance: float) -> None:
    """The ``npucheck fleet`` screen: header, fleet table, groups, outliers with evidence, missing and error
    members, and the bottom line. Lines wrap at spaces to the console's width, continuations indented."""

    def say(lines: list[str], indent: str = "") -> None:
        for line in lines:
            inner = indent + " " * (len(line) - len(line.lstrip(" "))) + "  "
            _say(console, indent + line, inner)

    say([header_line(fleet, analysed)])
    console.print()
    console.print(Text("\n".join(fleet_table_lines(analysed, console.width))), overflow="ignore", no_wrap=True)
    console.print()
    say(["Groups (model · driver · power limit): median and spread (max ÷ min − 1)"])
    say(group_lines(groups_frame(analysed)), "  ")
    console.print()
    say(
        [
            f"Outliers: more than {tolerance:.0%} below the median of the other devices of their group, and "
            "significantly (the device's 95% interval ends below the median of the peers' interval lows)"
        ]
    )
    say(evidence_lines(analysed) or ["none"], "  ")
    missing = missing_lines(analysed)
    if missing:
        console.print()
        say(["Missing and failed members"])
        say(missing, "  ")
    console.print()
    say([bottom_line(analysed)])


def _say(console: Console, line: str, indent: str) -> None:
    from npucheck.read.screen import print_lines

    width = max(20, console.width)
    wrapped = textwrap.wrap(line, width=width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    print_lines(console, wrapped or [""])


def _display(analysed: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device": [device_label(r) for r in analysed.to_dict(orient="records")],
            "model": analysed["model"],
            "uuid": analysed["uuid"],
            "driver": analysed["driver"],
            "limit W": analysed["power_limit_w"],
            "fp16 TFLOPS": analysed["peak_fp16_tflops"],
            "bf16 TFLOPS": analysed["peak_bf16_tflops"],
            "TFLOPS/W": analysed["fp16_tflops_per_watt"],
            "verdicts": analysed["verdicts"],
            "status": analysed["status"],
            "flag": [_flag_word(r) for r in analysed.to_dict(orient="records")],
        }
    )


def to_markdown(fleet: FleetData, analysed: pd.DataFrame, tolerance: float) -> str:
    """The fleet as Markdown: header, device table, groups, outliers with evidence, missing members, bottom line."""
    from npucheck.read.compare import to_markdown as table_markdown

    out = [f"# {header_line(fleet, analysed)}", "", table_markdown(_display(analysed)), "", "## Groups", ""]
    out += [f"- {line}" for line in group_lines(groups_frame(analysed))]
    out += ["", f"## Outliers (tolerance {tolerance:.0%}, significant from the raw samples)", ""]
    out += [f"- {line.strip()}" for line in evidence_lines(analysed)] or ["none"]
    missing = missing_lines(analysed)
    if missing:
        out += ["", "## Missing and failed members", ""] + [f"- {line}" for line in missing]
    out += ["", f"**{bottom_line(analysed)}**", ""]
    return "\n".join(out)


def to_json(fleet: FleetData, analysed: pd.DataFrame, tolerance: float) -> str:
    """The fleet as JSON: header fields, the tolerance, devices (every analysed column), groups, unreadable files,
    the bottom line."""
    summary = fleet.summary or {}
    doc = {
        "directory": str(fleet.directory),
        "launcher": summary.get("launcher"),
        "run_id": summary.get("run_id"),
        "started_utc": _when(fleet),
        "tolerance": tolerance,
        "devices": json.loads(analysed.to_json(orient="records")),
        "groups": json.loads(groups_frame(analysed).to_json(orient="records")),
        "unreadable": list(fleet.unreadable),
        "bottom_line": bottom_line(analysed),
    }
    return json.dumps(doc, indent=1)


def analysis_record(analysed: pd.DataFrame, tolerance: float) -> dict[str, Any]:
    """What the analysis found, as fleet.json keeps it for the record (``analysis``; readers recompute it)."""
    flagged = analysed[analysed["flagged"]]
    return {
        "tolerance": tolerance,
        "outliers": [f"{device_label(row)}: {row['flag_reasons']}" for _, row in flagged.iterrows()],
        "failed_targets": [device_label(row) for _, row in analysed[analysed["failed"]].iterrows()],
    }
