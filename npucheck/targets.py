"""Target profiles: hand-written TOML files of criteria a result is judged against.

A target is data, not code, so a third party can read, audit and add one without touching npucheck. The
built-in targets live in the top-level ``profiles/`` folder, installed as the package ``npucheck.profiles``.
Every problem with a file raises :class:`~npucheck.errors.TargetProfileError` with one line naming the file
and the problem.

File format 1::

    format = 1
    name = "miit-2020-cloud"        # [a-z0-9][a-z0-9._-]*; equals the file stem for built-ins
    title = "..."
    source = "..."                  # optional: where the target comes from (quote it)
    description = "..."             # optional
    [[criteria]]                    # one or more
    metric = "peak_tflops"          # peak_tflops | tflops_per_watt | supported_families | peak_tops | tops_per_watt
    dtype = "fp16"                  # fp16 | bf16 | fp32 | fp8_e4m3 | fp8_e5m2 (TFLOPS metrics); int8 (TOPS metrics)
    families = ["cnn", "rnn"]       # only for supported_families: cnn | rnn | lstm | gru | transformer
    op = ">="                       # >= | > | <= | <
    threshold = 128.0               # finite, >= 0; for supported_families an integer 0..len(families)
    note = "..."                    # optional

The full reference, with worked examples, is docs/targets.md; ``npucheck targets --template`` prints
:data:`TEMPLATE`, a commented starting file.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from npucheck.errors import TargetProfileError

__all__ = [
    "BUILTIN_DIR",
    "builtin_names",
    "Criterion",
    "DTYPES",
    "FAMILIES",
    "FORMAT",
    "load_target",
    "load_targets",
    "MAX_FILE_BYTES",
    "METRICS",
    "NAME_PATTERN",
    "OPS",
    "parse_target",
    "Target",
    "TEMPLATE",
    "UNITS",
]


BUILTIN_DIR: Traversable = files("npucheck.profiles")

FORMAT = 1
MAX_FILE_BYTES = 256 * 1024  # a target is a few hundred bytes; anything this big is a mistake or hostile
METRICS = ("peak_tflops", "tflops_per_watt", "supported_families", "peak_gbps", "peak_tops", "tops_per_watt")
OPS = (">=", ">", "<=", "<")
DTYPES = ("fp16", "bf16", "fp32", "int8", "fp8_e4m3", "fp8_e5m2")
FAMILIES = ("cnn", "rnn", "lstm", "gru", "transformer")
UNITS = {"peak_tflops": "TFLOPS", "tflops_per_watt": "TFLOPS/W", "supported_families": "families", "peak_gbps": "GB/s"}
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
INT8_METRICS = {"peak_tops": "peak_tflops", "tops_per_watt": "tflops_per_watt"}
"""int8 work is integer operations, not FLOPs: its criteria are named in TOPS (tera-operations per second) and
read the same figures as the float metrics they map to (the summary keys its int8 figures by dtype)."""
UNITS.update({"peak_tops": "TOPS", "tops_per_watt": "TOPS/W"})

_TOP_REQUIRED = ("format", "name", "title", "criteria")
_TOP_OPTIONAL = ("source", "description")
_CRITERION_REQUIRED = ("metric", "op", "threshold")
_CRITERION_OPTIONAL = ("dtype", "families", "note")
# What a missing key should look like, for the one-line error that reports it.
_EXPECTED = {
    "format": f"format = {FORMAT}",
    "name": "name = \"my-target\" (lower-case letters, digits, '.', '_', '-')",
    "title": 'title = "a one-line title"',
    "criteria": "at least one [[criteria]] table with metric, op and threshold",
    "metric": "metric = one of " + ", ".join(f'"{m}"' for m in METRICS),
    "op": "op = one of " + ", ".join(f'"{o}"' for o in OPS),
    "threshold": "threshold = a number >= 0 in the metric's unit (TFLOPS, TFLOPS/W or a count of families)",
}


TEMPLATE = f"""\
# An npucheck target: criteria a result is judged against. Save this as e.g. my-target.toml, edit it, then
#   npucheck targets my-target.toml                          (check that it loads and see its criteria)
#   npucheck check results/RESULT.json --target my-target.toml
# A file is read as a path when it ends in .toml or contains a '/'; any other word is a built-in target's name.
# Reference: docs/targets.md. Every key below is required unless it says "optional".

# format: the version of this file format; this npucheck reads format {FORMAT} only.
format = {FORMAT}
# name: the short name shown in verdicts: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit.
# Targets judged together must have different names.
name = "my-target"
# title: a one-line title shown beside the name.
title = "My target: FP16 throughput, efficiency and model families"
# source (optional): where the numbers come from (a document, a contract, a purchase rule).
source = "written from npucheck targets --template; replace with your source"
# description (optional): how the criteria read the source, shown by `npucheck targets my-target.toml`.
description = "A device meets the target only if every criterion below is PASS."

# criteria: one [[criteria]] table per criterion, at least one; a device meets the target only if it meets
# every criterion. Keys of a criterion:
#   metric     (required) {" | ".join(METRICS)}
#                peak_tflops: best GEMM throughput of the dtype, judged on an independent re-measure (TFLOPS)
#                tflops_per_watt: the dtype's GEMM throughput / average power over the same window (TFLOPS/W)
#                peak_tops, tops_per_watt: the same for int8 (dtype = "int8" only), in TOPS and TOPS/W
#                supported_families: how many of `families` run on the device in fp16 and match a reference
#                peak_gbps: best device-memory bandwidth of a copy or triad (GB/s); dtype optional (any dtype)
#   dtype      (peak_tflops and tflops_per_watt only, required there) {" | ".join(DTYPES)}
#   families   (supported_families only, required there) a non-empty list of {" | ".join(FAMILIES)}, no repeats
#   op         (required) {" | ".join(OPS)}   measured value OP threshold
#   threshold  (required) a number >= 0 in the metric's unit; for supported_families an integer from 0 to
#              the number of families listed
#   note       (optional) free text shown beside the criterion
# PASS needs the whole confidence interval on the right side of the threshold, FAIL the whole interval on the
# wrong side; anything else, or a figure that was not measured, is INCONCLUSIVE.

[[criteria]]
metric = "peak_tflops"
dtype = "fp16"
op = ">="
threshold = 1.0
note = "at least 1 TFLOPS of FP16 GEMM"

[[criteria]]
metric = "tflops_per_watt"
dtype = "fp16"
op = ">"
threshold = 0.1
note = "more than 0.1 TFLOPS/W in FP16 (needs a power source that covers the device)"

[[criteria]]
metric = "supported_families"
families = ["cnn", "rnn", "lstm"]
op = ">="
threshold = 1
note = "at least one of CNN, RNN and LSTM runs on the device in FP16"

[[criteria]]
metric = "peak_gbps"
op = ">="
threshold = 10.0
note = "at least 10 GB/s of device-memory bandwidth (copy or triad, bytes read + written)"

[[criteria]]
metric = "peak_tops"
dtype = "int8"
op = ">="
threshold = 1.0
note = "at least 1 INT8 TOPS (int8 GEMM through torch._int_mm, checked exactly)"

[[criteria]]
metric = "tops_per_watt"
dtype = "int8"
op = ">="
threshold = 2.0
note = "at least 2 INT8 TOPS/W, how terminal NPUs are rated (needs a power source that covers the device)"
"""


@dataclass(frozen=True)
class Criterion:
    """One comparison of a measured figure with a threshold.

    Attributes:
        metric: ``peak_tflops``, ``tflops_per_watt`` or ``supported_families``.
        op: ``>=``, ``>``, ``<=`` or ``<``.
        threshold: in the metric's unit (TFLOPS, TFLOPS/W, or a count of families).
        dtype: the data type the figure is measured in; None for ``supported_families``.
        families: the families counted by ``supported_families``; None otherwise.
        note: free text shown beside the criterion.
    """

    metric: str
    op: str
    threshold: float
    dtype: str | None = None
    families: tuple[str, ...] | None = None
    note: str | None = None

    @property
    def label(self) -> str:
        """Short name, e.g. ``peak_tflops.fp16`` or ``supported_families(cnn,rnn,lstm)``."""
        if self.metric == "supported_families":
            return f"{self.metric}({','.join(self.families or ())})"
        if self.dtype is None:  # peak_gbps over every dtype
            return self.metric
        return f"{self.metric}.{self.dtype}"

    @property
    def unit(self) -> str:
        """Unit of the threshold and of the measured figure."""
        return UNITS.get(self.metric, "")


@dataclass(frozen=True)
class Target:
    """A named set of criteria; a device meets the target only if it meets every criterion."""

    name: str
    title: str
    source: str
    description: str
    criteria: tuple[Criterion, ...]
    path: str


def builtin_names() -> list[str]:
    """Names of the targets shipped with npucheck, sorted."""
    return sorted(
        entry.name[: -len(".toml")]
        for entry in BUILTIN_DIR.iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    )


def load_target(name_or_path: str) -> Target:
    """Load a built-in target by name, or a target file by path.

    Anything containing a path separator or ending in ``.toml`` is a path; everything else is a built-in name.

    Raises:
        TargetProfileError: the file is missing, unreadable or invalid, or the name is not a built-in.
    """
    if _looks_like_path(name_or_path):
        return parse_target(_read_text(Path(name_or_path), name_or_path), name_or_path)
    known = builtin_names()
    if name_or_path not in known:
        raise TargetProfileError(
            _one_line(
                f"unknown built-in target {_show(name_or_path)} (known: {', '.join(known) or 'none'}); "
                "give a path to a .toml file for your own target"
            )
        )
    origin = str(BUILTIN_DIR / f"{name_or_path}.toml")
    target = parse_target(_read_text(BUILTIN_DIR / f"{name_or_path}.toml", origin), origin)
    if target.name != name_or_path:  # the name a user types must be the name shown in the verdicts
        raise _error(origin, f"name {_show(target.name)} differs from the file name {_show(name_or_path)}")
    return target


def load_targets(names: Iterable[str] | None = None) -> list[Target]:
    """Load several targets; no names means every built-in, sorted by name.

    Raises:
        TargetProfileError: as :func:`load_target`, or two targets share a name (their verdicts would clash).
    """
    targets = [load_target(name) for name in (list(names or ()) or builtin_names())]
    seen: dict[str, str] = {}
    for target in targets:
        if target.name in seen:
            raise TargetProfileError(
                _one_line(f"two targets are named {_show(target.name)}: {seen[target.name]} and {target.path}")
            )
        seen[target.name] = target.path
    return targets


def parse_target(text: str, origin: str) -> Target:
    """Parse and validate the TOML text of a target.

    Args:
        text: the file's contents.
        origin: where it came from (a path), used in messages and kept as ``Target.path``.

    Raises:
        TargetProfileError: one line naming ``origin`` and the problem.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise _error(origin, f"larger than {MAX_FILE_BYTES // 1024} KiB; not a target profile")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _error(origin, f"not valid TOML: {str(e).split(';')[0]}") from e
    except RecursionError as e:  # tomllib recurses into nested arrays: a hostile file can exhaust the stack
        raise _error(origin, "not valid TOML: nested too deeply") from e
    except ValueError as e:  # an integer past Python's digit limit (int() refuses it; not a TOMLDecodeError)
        raise _error(origin, f"not valid TOML: {e}") from e

    _check_keys(data, _TOP_REQUIRED, _TOP_OPTIONAL, origin)
    fmt = data["format"]
    if type(fmt) is not int:
        raise _error(origin, f"'format' must be an integer, not {_type_name(fmt)}: expected {_EXPECTED['format']}")
    if fmt != FORMAT:
        raise _error(
            origin,
            f"format {fmt} is not supported (this npucheck reads format {FORMAT}): expected {_EXPECTED['format']}",
        )
    name = _string(data, "name", origin)
    if not NAME_PATTERN.fullmatch(name):
        raise _error(
            origin, f"name {_show(name)} must match {NAME_PATTERN.pattern} (lower-case letters, digits, '.', '_', '-')"
        )
    title = _string(data, "title", origin)
    if not title.strip():
        raise _error(origin, "'title' is empty")
    source = _string(data, "source", origin) if "source" in data else ""
    description = _string(data, "description", origin) if "description" in data else ""

    raw_criteria = data["criteria"]
    if not isinstance(raw_criteria, list):
        raise _error(origin, f"'criteria' must be an array of tables ([[criteria]]), not {_type_name(raw_criteria)}")
    if not raw_criteria:
        raise _error(origin, "no criteria; a target needs at least one [[criteria]]")
    criteria = tuple(_criterion(raw, f"{origin}: criteria[{i}]") for i, raw in enumerate(raw_criteria))
    return Target(name=name, title=title, source=source, description=description, criteria=criteria, path=origin)


# ------------------------------------------------------------------------------------------------- internals
def _criterion(raw: Any, where: str) -> Criterion:
    if not isinstance(raw, dict):
        raise _error(where, f"must be a table, not {_type_name(raw)}")
    _check_keys(raw, _CRITERION_REQUIRED, _CRITERION_OPTIONAL, where)
    metric = _choice(raw, "metric", METRICS, where)
    op = _choice(raw, "op", OPS, where)
    note = _string(raw, "note", where) if "note" in raw else None

    threshold = raw["threshold"]
    if type(threshold) not in (int, float):  # bool is an int in Python, but `threshold = true` is a mistake
        raise _error(where, f"'threshold' must be a number, not {_type_name(threshold)}")
    if not math.isfinite(threshold):
        raise _error(where, f"'threshold' must be finite, not {threshold}")
    if threshold < 0:
        raise _error(where, f"'threshold' must not be negative, not {threshold}")

    if metric == "supported_families":
        if "dtype" in raw:
            raise _error(where, "'dtype' does not apply to supported_families (support is checked in fp16)")
        if "families" not in raw:
            raise _error(
                where,
                f'supported_families needs \'families\', e.g. ["cnn", "rnn", "lstm"] (known: {", ".join(FAMILIES)})',
            )
        families = _families(raw["families"], where)
        if type(threshold) is not int or not 0 <= threshold <= len(families):
            raise _error(
                where,
                "'threshold' of supported_families must be an integer from 0 to "
                f"{len(families)} (the number of families listed), not {threshold!r}",
            )
        return Criterion(metric=metric, op=op, threshold=threshold, families=families, note=note)

    if "families" in raw:
        raise _error(where, f"'families' applies only to supported_families, not to {metric}")
    if metric == "peak_gbps" and "dtype" not in raw:  # bandwidth: the best memory case of any dtype
        return Criterion(metric=metric, op=op, threshold=float(threshold), note=note)
    if "dtype" not in raw:
        raise _error(where, f"{metric} needs 'dtype' (one of {', '.join(DTYPES)})")
    dtype = _choice(raw, "dtype", DTYPES, where)
    _check_int8_metric(metric, dtype, where)
    return Criterion(metric=metric, op=op, threshold=float(threshold), dtype=dtype, note=note)


def _check_int8_metric(metric: str, dtype: str, where: str) -> None:
    """int8 is judged in TOPS (peak_tops, tops_per_watt), every other dtype in TFLOPS: a mix-up is an error."""
    if metric in INT8_METRICS and dtype != "int8":
        raise _error(where, f"{metric} applies to int8 only; use {INT8_METRICS[metric]} for {dtype}")
    if dtype == "int8" and metric in INT8_METRICS.values():
        ops = next(name for name, flops in INT8_METRICS.items() if flops == metric)
        raise _error(where, f"int8 is counted in operations, not FLOPs: use {ops} instead of {metric}")


def _families(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _error(where, f"'families' must be an array of strings, not {_type_name(value)}")
    if not value:
        raise _error(where, f"'families' is empty; list at least one of {', '.join(FAMILIES)}")
    unknown = [item for item in value if item not in FAMILIES]
    if unknown:
        raise _error(where, f"unknown families {', '.join(_show(u) for u in unknown)} (known: {', '.join(FAMILIES)})")
    duplicates = sorted({item for item in value if value.count(item) > 1})
    if duplicates:
        raise _error(where, f"'families' lists {', '.join(duplicates)} more than once")
    return tuple(value)


def _check_keys(table: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(required) - set(optional))
    if unknown:
        raise _error(
            where, f"unknown keys {', '.join(_show(k) for k in unknown)} (allowed: {', '.join(required + optional)})"
        )
    missing = [key for key in required if key not in table]
    if missing:
        raise _error(where, "; ".join(f"missing key {k!r}: expected {_EXPECTED[k]}" for k in missing))


def _string(table: dict[str, Any], key: str, where: str) -> str:
    value = table[key]
    if not isinstance(value, str):
        raise _error(where, f"{key!r} must be a string, not {_type_name(value)}")
    return value


def _choice(table: dict[str, Any], key: str, allowed: tuple[str, ...], where: str) -> str:
    value = table[key]
    if not isinstance(value, str):
        raise _error(where, f"{key!r} must be a string, not {_type_name(value)} (known: {', '.join(allowed)})")
    if value not in allowed:
        raise _error(where, f"unknown {key} {_show(value)} (known: {', '.join(allowed)})")
    return value


def _read_text(path: Path | Traversable, origin: str) -> str:
    try:
        with path.open("rb") as stream:
            # read one byte past the limit rather than trust the size on disk: /dev/zero or a FIFO has none
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as e:
        raise _error(origin, "no such file") from e
    except IsADirectoryError as e:
        raise _error(origin, "is a directory, not a .toml file") from e
    except PermissionError as e:
        raise _error(origin, "permission denied") from e
    except OSError as e:
        raise _error(origin, f"cannot read: {e.strerror or e}") from e
    if len(data) > MAX_FILE_BYTES:
        raise _error(origin, f"larger than {MAX_FILE_BYTES // 1024} KiB; not a target profile")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _error(origin, f"not UTF-8 text (byte {e.start}: {e.reason})") from e


def _looks_like_path(name_or_path: str) -> bool:
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return name_or_path.endswith(".toml") or any(sep in name_or_path for sep in separators)


def _error(where: str, problem: str) -> TargetProfileError:
    return TargetProfileError(_one_line(f"{where}: {problem}"))


def _one_line(message: str) -> str:
    # file names and tomllib messages may hold line breaks; the CLI promises one line per error
    return " ".join(message.splitlines())


def _show(value: Any, limit: int = 60) -> str:
    """repr() for messages: escapes line breaks and control characters, and is cut short for hostile input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
