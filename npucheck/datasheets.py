"""Datasheet device profiles: the vendor's peak figures for a part, matched to the device under test by name.

A datasheet is data, not code: one TOML file per part in ``profiles/devices/`` (installed as
``npucheck.profiles/devices``), every figure with the document it comes from. Users add their own files in a
directory named by the ``NPUCHECK_DATASHEETS`` environment variable (several joined with ``os.pathsep``) or
passed as ``extra_dirs``; a user file wins over a built-in. No torch here: ``show`` and ``report`` use it too.

File format 1 (see ``docs/datasheets.md``)::

    format = 1
    part = "NVIDIA H100 SXM5 80GB"           # what the file describes
    vendor = "NVIDIA"                        # optional
    match = ["NVIDIA H100 80GB HBM3"]        # names torch reports; '*' matches any run of characters
    devices_per_part = 1                     # torch devices one part shows as (MI250X: 2 GCDs); default 1
    note = "..."                             # optional
    match_caveat = "..."                     # optional: what the name cannot tell apart
    power_w = 700.0                          # optional, with the three keys below
    power_kind = "TDP"                       # TDP | TBP | TGP | max power | module power ...
    power_covers = "board"                   # chip | board | module | package | ...
    power_source = "..."
    memory_bandwidth_gbps = 3350.0           # optional, GB/s, with memory_bandwidth_source
    memory_bandwidth_source = "..."
    [tflops.fp16]                            # fp16 | bf16 | fp32 | fp32_matrix | tf32, each optional
    value = 989.5                            # DENSE TFLOPS per part (halve a 2:4-sparsity figure)
    source = "..."                           # URL or document and table
    note = "..."                             # optional

Figures in a file are per *part*; :meth:`Datasheet.peak_tflops` and :meth:`Datasheet.to_dict` give them per
*torch device* (divided by ``devices_per_part``). Datasheet TFLOPS/W is derived here (TFLOPS / power_w) and can
never be typed in a file.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from npucheck.errors import UsageError
from npucheck.model import StoredDatasheet

__all__ = [
    "builtin_dir",
    "CEILING_FACTOR",
    "ceiling_from_dict",
    "ceiling_reason",
    "Datasheet",
    "DatasheetError",
    "ENV_VAR",
    "FIGURE_KEYS",
    "FORMAT",
    "load_datasheet",
    "load_datasheets",
    "match_datasheet",
    "MAX_FILE_BYTES",
    "MEASURED_DTYPES",
    "MIN_LITERAL_CHARS",
    "parse_datasheet",
    "pattern_matches",
    "peak_from_dict",
    "percent_of_datasheet",
    "specificity",
    "stored",
    "StoredSheet",
    "user_dirs",
]


ENV_VAR = "NPUCHECK_DATASHEETS"
FORMAT = 1
CEILING_FACTOR = 1.05  # a measurement above 1.05 x the datasheet peak is an error, never a PASS
MAX_FILE_BYTES = 256 * 1024
MIN_LITERAL_CHARS = 3  # a pattern like "*" or "A*" would match nearly anything
FIGURE_KEYS = ("fp16", "bf16", "fp32", "fp32_matrix", "tf32")
MEASURED_DTYPES = ("fp16", "bf16", "fp32")

_TOP_REQUIRED = ("format", "part", "match")
_TOP_OPTIONAL = (
    "vendor",
    "devices_per_part",
    "note",
    "match_caveat",
    "power_w",
    "power_kind",
    "power_covers",
    "power_source",
    "power_note",
    "memory_bandwidth_gbps",
    "memory_bandwidth_source",
    "tflops",
)
_POWER_KEYS = ("power_w", "power_kind", "power_covers", "power_source")
_FIGURE_REQUIRED = ("value", "source")
_FIGURE_OPTIONAL = ("note",)


class DatasheetError(UsageError):
    """A datasheet file (TOML) that is unreadable, malformed or invalid."""


def builtin_dir() -> Traversable:
    """The folder of the datasheets shipped with npucheck."""
    return files("npucheck.profiles") / "devices"


@dataclass(frozen=True)
class Datasheet:
    """One part's datasheet figures.

    Attributes:
        part: what the file describes, e.g. ``NVIDIA H100 SXM5 80GB``.
        file: where it was read from.
        builtin: True for a file shipped with npucheck.
        match: name patterns (``*`` is a wildcard), compared with the whole device name, case-insensitively.
        devices_per_part: how many torch devices one part shows as (2 for an MI250X: one per GCD).
        tflops_per_part: dense TFLOPS of the whole part by figure key (fp16, bf16, fp32, fp32_matrix, tf32).
        sources: the source of each figure, by key (figure keys, ``power_w``, ``memory_bandwidth_gbps``).
        notes: per-figure notes, by the same keys.
        power_w: the vendor's power figure for the whole part, watts, or None.
        power_kind: what kind of figure it is (TDP, TBP, module power, ...).
        power_covers: what it covers (board, module, package, ...).
        memory_bandwidth_gbps: peak memory bandwidth of the whole part, GB/s, or None.
        matched_pattern: the pattern that matched the device, once matched.
        match_reason: why this sheet was chosen, once matched.
    """

    part: str
    file: str
    builtin: bool
    match: tuple[str, ...]
    devices_per_part: int = 1
    vendor: str | None = None
    note: str | None = None
    match_caveat: str | None = None
    tflops_per_part: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    power_w: float | None = None
    power_kind: str | None = None
    power_covers: str | None = None
    power_note: str | None = None
    memory_bandwidth_gbps: float | None = None
    matched_pattern: str | None = None
    match_reason: str | None = None

    @property
    def stem(self) -> str:
        """The file name without ``.toml``: a user file with the same stem replaces the built-in."""
        return _stem(self.file)

    def figure(self, key: str) -> float | None:
        """A figure per torch device (TFLOPS), by figure key (fp16, bf16, fp32, fp32_matrix, tf32)."""
        value = self.tflops_per_part.get(key)
        return None if value is None else value / self.devices_per_part

    def peak_tflops(self, dtype: str) -> float | None:
        """Datasheet peak for a measured dtype, dense TFLOPS per torch device; None if the sheet has none.

        fp32 is the true-FP32 peak: the larger of the vector (non-tensor) figure and a separate FP32 matrix
        figure (AMD prints one). TF32 is not FP32 and is not included here; see :meth:`ceiling_tflops`.
        """
        if dtype == "fp32":
            values = [v for v in (self.figure("fp32"), self.figure("fp32_matrix")) if v is not None]
            return max(values) if values else None
        return self.figure(dtype)

    def ceiling_tflops(self, dtype: str) -> float | None:
        """The highest TFLOPS a correct measurement of ``dtype`` can reach on this device: CEILING_FACTOR times
        its peak. fp32 cases run in full IEEE fp32 (TF32 switched off, and the 1e-4 tolerance rejects TF32
        results), so the fp32 ceiling is the true-FP32 peak, not TF32's. None when the sheet has no figure."""
        peak = self.peak_tflops(dtype)
        return CEILING_FACTOR * peak if peak is not None else None

    def tflops_per_watt(self, key: str) -> float | None:
        """Datasheet TFLOPS/W for a figure key: the part's TFLOPS over its power figure (derived, never typed)."""
        tflops = (
            self.tflops_per_part.get(key)
            if key != "fp32"
            else _max_or_none(self.tflops_per_part.get("fp32"), self.tflops_per_part.get("fp32_matrix"))
        )
        if tflops is None or not self.power_w:
            return None
        return tflops / self.power_w

    def to_dict(self) -> dict[str, Any]:
        """JSON-able figures per torch device, stored as ``profile["device"]["datasheet"]``."""
        keys = [k for k in FIGURE_KEYS if k in self.tflops_per_part]
        per_device_w = self.power_w / self.devices_per_part if self.power_w else None
        return {
            "part": self.part,
            "vendor": self.vendor,
            "file": self.file,
            "builtin": self.builtin,
            "devices_per_part": self.devices_per_part,
            "tflops": {k: self.figure(k) for k in keys},
            "peak_tflops": {d: self.peak_tflops(d) for d in MEASURED_DTYPES if self.peak_tflops(d) is not None},
            "ceiling_tflops": {
                d: self.ceiling_tflops(d) for d in MEASURED_DTYPES if self.ceiling_tflops(d) is not None
            },
            "ceiling_factor": CEILING_FACTOR,
            "tflops_per_part": dict(self.tflops_per_part),
            "tflops_per_watt": {
                d: self.tflops_per_watt(d) for d in MEASURED_DTYPES + ("tf32",) if self.tflops_per_watt(d) is not None
            },
            "power_w": per_device_w,
            "power_w_per_part": self.power_w,
            "power_kind": self.power_kind,
            "power_covers": self.power_covers,
            "memory_bandwidth_gbps": (
                self.memory_bandwidth_gbps / self.devices_per_part if self.memory_bandwidth_gbps else None
            ),
            "memory_bandwidth_gbps_per_part": self.memory_bandwidth_gbps,
            "sources": dict(self.sources),
            "notes": dict(self.notes),
            "note": self.note,
            "match_caveat": self.match_caveat,
            "matched_pattern": self.matched_pattern,
            "match_reason": self.match_reason,
        }


def _max_or_none(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


# ---------------------------------------------------------------- reading stored dicts (profile files)


StoredSheet = StoredDatasheet | Mapping[str, Any] | None
"""A stored ``device.datasheet``: the model object, its JSON object, or None (no datasheet)."""


def stored(datasheet: StoredSheet) -> StoredDatasheet | None:
    """The stored datasheet as a model object (None when there is none)."""
    if datasheet is None or isinstance(datasheet, StoredDatasheet):
        return datasheet
    return StoredDatasheet.from_dict(datasheet) if isinstance(datasheet, Mapping) else None


def peak_from_dict(datasheet: StoredSheet, dtype: str) -> float | None:
    """The datasheet peak (TFLOPS per device) for a dtype from a stored ``device.datasheet``; None if absent."""
    sheet = stored(datasheet)
    return sheet.peak(dtype) if sheet is not None else None


def ceiling_from_dict(datasheet: StoredSheet, dtype: str) -> float | None:
    """The stored ceiling (TFLOPS per device) for a dtype; None if absent."""
    sheet = stored(datasheet)
    return sheet.ceiling(dtype) if sheet is not None else None


def percent_of_datasheet(datasheet: StoredSheet, dtype: str, tflops: float | None) -> float | None:
    """Achieved TFLOPS as a fraction of the datasheet peak (1.0 = 100%), or None when either is missing."""
    peak = peak_from_dict(datasheet, dtype)
    if peak is None or tflops is None:
        return None
    return tflops / peak


def ceiling_reason(datasheet: StoredSheet, dtype: str, tflops: float | None) -> str | None:
    """Why ``tflops`` cannot be right (it exceeds CEILING_FACTOR x the datasheet peak), or None if it can be.

    Works on what the profile stores, so the judge can check stored results without loading any file.
    """
    sheet = stored(datasheet)
    ceiling = sheet.ceiling(dtype) if sheet is not None else None
    if sheet is None or ceiling is None or tflops is None or tflops <= ceiling:
        return None
    peak = sheet.peak(dtype)
    factor = sheet.ceiling_factor if sheet.ceiling_factor is not None else CEILING_FACTOR
    peak_text = f"the datasheet peak {peak:.4g} TFLOPS" if peak is not None else "the datasheet's fastest path"
    return (
        f"{tflops:.4g} TFLOPS {dtype} exceeds {factor:g} x {peak_text} of {sheet.part} "
        f"(ceiling {ceiling:.4g} TFLOPS per device): a timing or FLOP-count error, not a result"
    )


# ---------------------------------------------------------------- loading


def user_dirs(extra_dirs: Iterable[Path | str] | None = None, environ: dict[str, str] | None = None) -> list[Path]:
    """Directories of user datasheets: those in NPUCHECK_DATASHEETS, then ``extra_dirs`` (later ones win).

    Raises:
        DatasheetError: a named directory does not exist.
    """
    env = os.environ if environ is None else environ
    dirs: list[tuple[Path, str]] = [(Path(p), f"{ENV_VAR}") for p in env.get(ENV_VAR, "").split(os.pathsep) if p]
    dirs += [(Path(p), "datasheet directory") for p in extra_dirs or ()]
    for path, origin in dirs:
        if not path.is_dir():
            raise DatasheetError(_one_line(f"{origin} names {str(path)!r}, which is not a directory"))
    return [path for path, _ in dirs]


def load_datasheets(
    extra_dirs: Iterable[Path | str] | None = None, environ: dict[str, str] | None = None
) -> list[Datasheet]:
    """Every datasheet: the built-ins, then the user files (NPUCHECK_DATASHEETS, then ``extra_dirs``).

    A user file with the same file name as a built-in (or as an earlier user file) replaces it.

    Raises:
        DatasheetError: a file is unreadable or invalid (one line naming the file and the key).
    """
    by_stem: dict[str, Datasheet] = {}
    for entry in sorted(builtin_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml") and entry.is_file():
            sheet = parse_datasheet(_read_text(entry, str(entry)), str(entry), builtin=True)
            by_stem[sheet.stem] = sheet
    for directory in user_dirs(extra_dirs, environ):
        for path in sorted(directory.glob("*.toml")):
            sheet = parse_datasheet(_read_text(path, str(path)), str(path), builtin=False)
            by_stem[sheet.stem] = sheet
    return list(by_stem.values())


def load_datasheet(path: Path | str) -> Datasheet:
    """Load one datasheet file (as a user file)."""
    return parse_datasheet(_read_text(Path(path), str(path)), str(path), builtin=False)


def _read_text(entry: Path | Traversable, origin: str) -> str:
    try:
        data = entry.read_bytes()
    except OSError as e:
        raise DatasheetError(_one_line(f"datasheet {origin}: cannot read it ({e.strerror or e})")) from e
    if len(data) > MAX_FILE_BYTES:
        raise DatasheetError(f"datasheet {origin}: {len(data)} bytes, more than {MAX_FILE_BYTES}; not a datasheet")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DatasheetError(f"datasheet {origin}: not UTF-8 text") from e


def parse_datasheet(text: str, origin: str, builtin: bool = False) -> Datasheet:
    """Parse and validate one datasheet file's text.

    Raises:
        DatasheetError: one line naming ``origin`` and the offending key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DatasheetError(_one_line(f"datasheet {origin}: not valid TOML ({e})")) from e
    except RecursionError as e:  # tomllib recurses into nested arrays: a hostile file can exhaust the stack
        raise DatasheetError(f"datasheet {origin}: not valid TOML (nested too deeply)") from e
    except ValueError as e:  # an integer past Python's digit limit (int() refuses it; not a TOMLDecodeError)
        raise DatasheetError(_one_line(f"datasheet {origin}: not valid TOML ({str(e).split(';')[0]})")) from e
    for key in data:
        if key == "tflops_per_watt":
            raise _error(origin, key, "is derived from tflops and power_w by npucheck; remove it")
        if key not in _TOP_REQUIRED + _TOP_OPTIONAL:
            raise _error(origin, key, f"is not a datasheet key (known: {', '.join(_TOP_REQUIRED + _TOP_OPTIONAL)})")
    for key in _TOP_REQUIRED:
        if key not in data:
            raise _error(origin, key, "is missing")
    if data["format"] != FORMAT or isinstance(data["format"], bool):
        raise _error(origin, "format", f"must be {FORMAT}, not {data['format']!r}")
    part = _required(origin, data, "part")
    match = data["match"]
    if not isinstance(match, list) or not match:
        raise _error(origin, "match", "must be a non-empty list of name patterns")
    for i, pattern in enumerate(match):
        if not isinstance(pattern, str) or len(_normalize(pattern).replace("*", "")) < MIN_LITERAL_CHARS:
            raise _error(
                origin,
                f"match[{i}]",
                f"must be a name pattern with at least {MIN_LITERAL_CHARS} characters besides '*'",
            )
    devices_per_part = data.get("devices_per_part", 1)
    if isinstance(devices_per_part, bool) or not isinstance(devices_per_part, int) or devices_per_part < 1:
        raise _error(origin, "devices_per_part", f"must be an integer >= 1, not {devices_per_part!r}")

    sources: dict[str, str] = {}
    notes: dict[str, str] = {}
    power_w = None
    if any(k in data for k in _POWER_KEYS):
        for key in _POWER_KEYS:
            if key not in data:
                raise _error(origin, key, f"is missing (a power figure needs all of {', '.join(_POWER_KEYS)})")
        power_w = _positive(origin, "power_w", data["power_w"])
        sources["power_w"] = _required(origin, data, "power_source")
    elif "power_note" in data:
        notes["power_w"] = _required(origin, data, "power_note")
    bandwidth = None
    if "memory_bandwidth_gbps" in data or "memory_bandwidth_source" in data:
        if "memory_bandwidth_gbps" not in data:
            raise _error(origin, "memory_bandwidth_gbps", "is missing (memory_bandwidth_source is given)")
        bandwidth = _positive(origin, "memory_bandwidth_gbps", data["memory_bandwidth_gbps"])
        sources["memory_bandwidth_gbps"] = _required(origin, data, "memory_bandwidth_source")

    tflops: dict[str, float] = {}
    table = data.get("tflops", {})
    if not isinstance(table, dict):
        raise _error(origin, "tflops", "must be a table of [tflops.<dtype>] tables")
    for key, figure in table.items():
        where = f"tflops.{key}"
        if key not in FIGURE_KEYS:
            raise _error(origin, where, f"is not a figure key (known: {', '.join(FIGURE_KEYS)})")
        if not isinstance(figure, dict):
            raise _error(origin, where, "must be a table with value and source")
        for sub in figure:
            if sub not in _FIGURE_REQUIRED + _FIGURE_OPTIONAL:
                raise _error(origin, f"{where}.{sub}", "is not a figure key (known: value, source, note)")
        if "value" not in figure:
            raise _error(origin, f"{where}.value", "is missing")
        tflops[key] = _positive(origin, f"{where}.value", figure["value"])
        sources[key] = _required(origin, figure, "source", where=f"{where}.source")
        if "note" in figure:
            notes[key] = _required(origin, figure, "note", where=f"{where}.note")
    if power_w is not None and "power_note" in data:
        notes["power_w"] = _required(origin, data, "power_note")
    return Datasheet(
        part=part,
        file=origin,
        builtin=builtin,
        match=tuple(match),
        devices_per_part=devices_per_part,
        vendor=_text(origin, data, "vendor"),
        note=_text(origin, data, "note"),
        match_caveat=_text(origin, data, "match_caveat"),
        tflops_per_part=tflops,
        sources=sources,
        notes=notes,
        power_w=power_w,
        power_kind=_text(origin, data, "power_kind"),
        power_covers=_text(origin, data, "power_covers"),
        power_note=_text(origin, data, "power_note"),
        memory_bandwidth_gbps=bandwidth,
    )


def _required(origin: str, data: dict[str, Any], key: str, where: str | None = None) -> str:
    """A non-empty string that must be there (DatasheetError otherwise)."""
    value = _text(origin, data, key, required=True, where=where)
    assert value is not None  # _text raises for a missing required key
    return value


def _text(origin: str, data: dict[str, Any], key: str, required: bool = False, where: str | None = None) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _error(origin, where or key, "must be a non-empty string" if key in data else "is missing")
    return value.strip()


def _positive(origin: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _error(origin, key, f"must be a finite number > 0, not {value!r}")
    return float(value)


def _error(origin: str, key: str, problem: str) -> DatasheetError:
    return DatasheetError(_one_line(f"datasheet {origin}: key {key} {problem}"))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _stem(path: str) -> str:
    name = re.split(r"[\\/]", path)[-1]
    return name[: -len(".toml")] if name.endswith(".toml") else name


# ---------------------------------------------------------------- matching


def _normalize(name: str) -> str:
    return " ".join(name.split()).casefold()


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(piece) for piece in _normalize(pattern).split("*")))


def pattern_matches(pattern: str, device_name: str) -> bool:
    """Whether a pattern matches the whole device name (case and runs of spaces ignored; ``*`` = anything)."""
    return _pattern_regex(pattern).fullmatch(_normalize(device_name)) is not None


def specificity(pattern: str) -> int:
    """How specific a pattern is: the number of characters it fixes (everything but ``*``)."""
    return len(_normalize(pattern).replace("*", ""))


def _best_pattern(sheet: Datasheet, device_name: str) -> tuple[int, str] | None:
    hits = [(specificity(p), p) for p in sheet.match if pattern_matches(p, device_name)]
    return max(hits) if hits else None


def match_datasheet(
    device_name: str, extra_dirs: Iterable[Path | str] | None = None, sheets: list[Datasheet] | None = None
) -> tuple[Datasheet | None, str]:
    """The datasheet for a device name as torch reports it, and why.

    User files are tried first: if any matches, built-ins are not considered. Within a tier, the most specific
    matching pattern wins; two different parts matching equally well give no datasheet (a wrong ceiling is
    worse than none). Returns ``(None, reason)`` when nothing matches or the match is ambiguous.

    Args:
        device_name: e.g. ``torch.cuda.get_device_name()``.
        extra_dirs: user datasheet directories besides NPUCHECK_DATASHEETS.
        sheets: datasheets to match against (default: :func:`load_datasheets`); for tests.

    Raises:
        DatasheetError: a datasheet file is invalid (the user must fix or remove it).
    """
    if not device_name or not device_name.strip():
        return None, "no device name to match a datasheet against"
    all_sheets = load_datasheets(extra_dirs) if sheets is None else sheets
    for tier, label in ((False, "user"), (True, "built-in")):
        candidates = []
        for sheet in all_sheets:
            if sheet.builtin == tier:
                best = _best_pattern(sheet, device_name)
                if best is not None:
                    candidates.append((best[0], best[1], sheet))
        if not candidates:
            continue
        top = max(score for score, _, _ in candidates)
        winners = [(pattern, sheet) for score, pattern, sheet in candidates if score == top]
        if len(winners) > 1:
            named = "; ".join(f"{sheet.part} ({sheet.file}, pattern {pattern!r})" for pattern, sheet in winners)
            return None, _one_line(
                f"device name {device_name!r} matches {len(winners)} {label} datasheets equally well: {named}; "
                f"no datasheet used (add your own file in ${ENV_VAR} to choose)"
            )
        pattern, sheet = winners[0]
        reason = f"device name {device_name!r} matched {label} datasheet {sheet.stem} by pattern {pattern!r}"
        if sheet.match_caveat:
            reason += f"; caveat: {sheet.match_caveat}"
        return replace(sheet, matched_pattern=pattern, match_reason=_one_line(reason)), _one_line(reason)
    return None, _one_line(
        f"no datasheet matches device name {device_name!r} ({len(all_sheets)} searched); "
        f"add your own file in ${ENV_VAR} (see docs/datasheets.md)"
    )
