"""Read and write result profiles: schema version, migrations, validation, atomic save that never overwrites.

No torch here, and jsonschema is imported only when a document is first validated: commands that only read
results must start fast.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from npucheck.atomic import write_new
from npucheck.errors import ResultFileError, UsageError
from npucheck.model import SCHEMA_VERSION, ResultProfile

__all__ = [
    "default_name",
    "iter_results",
    "load_result",
    "load_schema",
    "MAX_MESSAGE_CHARS",
    "MAX_RESULT_BYTES",
    "migrate",
    "MIGRATIONS",
    "output_path_available",
    "save_result",
    "SCHEMA_FILE",
    "slug",
    "SLUG_MAX_CHARS",
    "validate",
]


# Format history (bump SCHEMA_VERSION, add a one-step migration to MIGRATIONS and a new schema file):
#   1 - first format (npucheck 0.1)
#   2 - power: top-level `power`, `energy` on every measurement, summary TFLOPS/W with interval, quality, scope
# SCHEMA_VERSION itself is defined once, in npucheck.model (imported above).


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 files predate power measurement: no energy windows, no source."""
    for measurement in doc.get("measurements") or []:
        if isinstance(measurement, dict):
            measurement.setdefault("energy", None)
    doc.setdefault(
        "power",
        {
            "spec": None,
            "source": None,
            "notes": ["written by npucheck before it measured power (schema 1)"],
            "idle": None,
        },
    )
    return doc


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}
"""``MIGRATIONS[n]`` turns a version-n document into version n+1 content; ``migrate`` sets the version number."""

SCHEMA_FILE = f"result-v{SCHEMA_VERSION}.schema.json"
MAX_RESULT_BYTES = 512 * 2**20
"""Larger files are refused rather than read: a real profile is a few MiB at most."""
MAX_MESSAGE_CHARS = 200
"""jsonschema messages repr the offending value, which may be a whole measurement; keep the line readable."""
SLUG_MAX_CHARS = 40


# --------------------------------------------------------------------------------------------------- schema
def load_schema() -> dict[str, Any]:
    """The JSON Schema of the current result format, as shipped in the ``npucheck.schema`` package."""
    return json.loads(resources.files("npucheck.schema").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Any:
    # Built on first use, once per process: loading jsonschema and compiling the schema costs ~0.1 s.
    from jsonschema import Draft202012Validator

    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    # No format checker: what it checks depends on optional packages; the schema's patterns are enough.
    return Draft202012Validator(schema)


def validate(doc: dict[str, Any], origin: str) -> None:
    """Check ``doc`` against the current schema.

    Args:
        doc: a result profile at the current schema version.
        origin: where it came from or is going (a path), to start the message with.

    Raises:
        ResultFileError: one line, ``<origin>: <json path>: <message>``, for the most relevant error.
    """
    raise_schema_error(_validator(), doc, origin)


def raise_schema_error(validator: Any, doc: Any, origin: str) -> None:
    """The most relevant error of a jsonschema ``validator`` on ``doc`` as one line, ``<origin>: <json path>:
    <message>`` (a ResultFileError); nothing when ``doc`` is valid. Shared by every file format npucheck reads."""
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(doc))
    if error is None:
        return
    message = " ".join(error.message.split())
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    where = error.json_path.encode("unicode_escape").decode("ascii")  # a key with a line break stays one line
    raise ResultFileError(f"{origin}: {where[:MAX_MESSAGE_CHARS]}: {message}")


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` as npucheck reads its files: NaN and Infinity tokens, and numbers beyond a float (``1e999``)
    are refused with a ValueError (JSONDecodeError for bad syntax), since npucheck never writes them."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def migrate(
    doc: dict[str, Any],
    migrations: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
    target_version: int | None = None,
) -> dict[str, Any]:
    """Bring an older document up to ``target_version`` one step at a time.

    Args:
        doc: a document with an integer ``schema_version``; steps may change it in place.
        migrations: one-step migrations by source version (default ``MIGRATIONS``).
        target_version: the version to reach (default ``SCHEMA_VERSION``).

    Returns:
        The migrated document.

    Raises:
        ValueError: the document is newer than the target, or a step is missing.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    target_version = SCHEMA_VERSION if target_version is None else target_version
    version = doc["schema_version"]
    if version > target_version:
        raise ValueError(f"schema {version} is newer than {target_version}")
    while version < target_version:
        if version not in migrations:
            raise ValueError(f"no migration from schema {version} to {version + 1}")
        doc = migrations[version](doc)
        version += 1
        doc["schema_version"] = version
    return doc


# --------------------------------------------------------------------------------------------------- load
def load_result(path: str | Path) -> dict[str, Any]:
    """Read, upgrade and validate a result profile.

    Raises:
        ResultFileError: one line saying what is wrong with the file, prefixed with its path.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        # NaN/Infinity are Python extensions to JSON; a file holding them was not written by npucheck.
        doc = parse_json(text)
    except json.JSONDecodeError as e:
        raise ResultFileError(f"{path}: {_describe_json_error(e, text)}") from e
    except RecursionError as e:
        raise ResultFileError(f"{path}: invalid JSON: nested too deeply") from e
    except ValueError as e:  # _refuse_constant, _finite_float, or an integer beyond Python's digit limit
        raise ResultFileError(f"{path}: invalid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ResultFileError(
            f"{path}: not a JSON object at the top level (found {_json_type(doc)}); not an npucheck result profile"
        )
    if "schema_version" not in doc:
        raise ResultFileError(f"{path}: no schema_version; not an npucheck result profile")
    version = doc["schema_version"]
    if type(version) is not int:  # bool is an int subclass, and true is no version
        raise ResultFileError(f"{path}: schema_version must be an integer, not {_json_type(version)}")
    if version > SCHEMA_VERSION:
        raise ResultFileError(
            f"{path}: written by a newer npucheck (schema {version} > {SCHEMA_VERSION}); upgrade npucheck"
        )
    if version < SCHEMA_VERSION:
        if any(step not in MIGRATIONS for step in range(version, SCHEMA_VERSION)):
            raise ResultFileError(f"{path}: schema_version {version} is not a format npucheck knows")
        try:
            doc = migrate(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ResultFileError(f"{path}: cannot upgrade from schema {version}: {type(e).__name__}: {e}") from e
    validate(doc, str(path))
    try:  # what the readers will build from it: a value the schema allows but the model refuses is named here
        ResultProfile.from_dict(doc)
    except (ValueError, TypeError, KeyError) as e:
        raise ResultFileError(f"{path}: {' '.join(str(e).split())}") from e
    return doc


def _read_text(path: Path) -> str:
    try:
        info = path.stat()
    except FileNotFoundError as e:
        raise ResultFileError(f"{path}: does not exist") from e
    except OSError as e:
        raise ResultFileError(f"{path}: cannot be read: {e.strerror or e}") from e
    if stat.S_ISDIR(info.st_mode):
        raise ResultFileError(f"{path}: is a directory, not a result file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device could block or never end
        raise ResultFileError(f"{path}: is not a regular file")
    if info.st_size > MAX_RESULT_BYTES:
        raise ResultFileError(
            f"{path}: is {info.st_size / 2**20:.0f} MiB, larger than the "
            f"{MAX_RESULT_BYTES / 2**20:.0f} MiB limit for a result file"
        )
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RESULT_BYTES + 1)  # the file may have grown since stat
    except PermissionError as e:
        raise ResultFileError(f"{path}: cannot be read: permission denied") from e
    except OSError as e:
        raise ResultFileError(f"{path}: cannot be read: {e.strerror or e}") from e
    if len(data) > MAX_RESULT_BYTES:
        raise ResultFileError(f"{path}: larger than the {MAX_RESULT_BYTES / 2**20:.0f} MiB limit for a result file")
    try:
        return data.decode("utf-8-sig")  # tolerate a BOM added by an editor
    except UnicodeDecodeError as e:
        raise ResultFileError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from e


def _finite_float(text: str) -> float:
    """A JSON number as a float; ``1e999`` overflows to infinity, which no npucheck file holds: refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]}{'…' if len(text) > 20 else ''} is beyond the range of a float")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _describe_json_error(e: json.JSONDecodeError, text: str) -> str:
    if not text.strip():
        return "is empty"
    # Input that stops mid-document fails at its end, at the start of an unterminated string, or at the start
    # of a cut number or literal (`1.` `nu`): all of these mean the file is incomplete, not malformed.
    rest = text[e.pos :].rstrip()
    if (
        e.msg.startswith("Unterminated string")
        or re.fullmatch(r"[-+0-9.eE]*", rest)
        or any(literal.startswith(rest) for literal in ("true", "false", "null"))
    ):
        return (
            f"truncated JSON: the document ends at line {e.lineno}, column {e.colno} before it is complete "
            "(an interrupted copy?)"
        )
    return f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------------------------------- save
def save_result(
    doc: ResultProfile | dict[str, Any],
    path: str | Path | None = None,
    results_dir: str | Path = "results",
    create_folder: bool = True,
) -> Path:
    """Validate ``doc`` and write it atomically, never overwriting a file.

    Args:
        doc: a complete result profile at the current schema version (a model object, or its dict).
        path: the file to write (an explicit ``-o``); None for ``results_dir/<created>-<device>-<suite>.json``,
            where a numbered suffix (``-1``, ``-2``, …) is added while the name is taken.
        results_dir: directory for the default name; created if missing.
        create_folder: False when the folder was made (or checked) before the run: one that vanished since then
            is not silently made again (a removed folder, an unmounted share); the save fails with
            FileNotFoundError instead, and ``run`` keeps a copy elsewhere.

    Returns:
        The path written.

    Raises:
        ValueError: ``doc`` holds a NaN or an infinity (the runner must record those as errors, not figures).
        TypeError: ``doc`` holds a value JSON cannot represent.
        ResultFileError: ``doc`` does not match the schema; nothing is written.
        UsageError: an explicit ``path`` already exists.
        OSError: the directory or file could not be written.
    """
    if isinstance(doc, ResultProfile):
        doc = doc.to_dict()
    where = _find_non_finite(doc)
    if where is not None:
        raise ValueError(f"result not saved: {where} is not a finite number")
    text = json.dumps(doc, indent=1, sort_keys=False, allow_nan=False, ensure_ascii=False) + "\n"
    # Sealed with its content digest over exactly what will be on disk (tuples become arrays, float subclasses
    # become floats; JSON floats round-trip): npucheck.evidence.seal, checked by `check`, `show` and `verify`.
    from npucheck.evidence import seal

    text = json.dumps(seal(json.loads(text)), indent=1, sort_keys=False, allow_nan=False, ensure_ascii=False) + "\n"
    # Validate what will be on disk, not the Python object.
    validate(json.loads(text), f"result not saved to {path if path is not None else results_dir}")
    if path is not None:
        output_path_available(path)
        candidates: Iterator[Path] = iter([Path(path)])
    else:
        candidates = _numbered(Path(results_dir) / default_name(doc))
    first = next(candidates)
    if create_folder:
        first.parent.mkdir(parents=True, exist_ok=True)
    final = write_new(first.parent, text.encode("utf-8"), itertools.chain([first], candidates))
    if final is None:
        raise UsageError(f"{first}: already exists; npucheck never overwrites a result")
    return final


def default_name(doc: dict[str, Any]) -> str:
    """``<YYYYmmddTHHMMSSZ>-<device-slug>-<suite-slug>[-<kernels>][-<dtypes>].json`` from the run's start time,
    device and suite, and the kernels and dtypes when ``--kernels`` / ``--dtypes`` narrowed the suite (so a subset
    run is never mistaken for the whole suite)."""
    started = datetime.fromisoformat(doc["created_utc"]).astimezone(UTC)
    name = f"{started:%Y%m%dT%H%M%SZ}-{slug(doc['device']['name'])}-{slug(doc['settings']['suite'])}"
    selected = doc["settings"].get("selected") or {}
    for key in ("kernels", "dtypes"):
        if selected.get(key):
            name += "-" + slug("-".join(selected[key]))
    return name + ".json"


def slug(text: str) -> str:
    """Lowercase ``[a-z0-9-]`` form of ``text``, at most SLUG_MAX_CHARS characters (``unknown`` if nothing is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:SLUG_MAX_CHARS].rstrip("-") or "unknown"


def _numbered(path: Path) -> Iterator[Path]:
    yield path
    for number in range(1, 10_000):
        yield path.with_name(f"{path.stem}-{number}{path.suffix}")


def _find_non_finite(value: Any, where: str = "$") -> str | None:
    """JSON path of the first NaN or infinity in ``value``, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} ({value})"
    if isinstance(value, dict):
        items: Any = ((f"{where}.{key}", item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for item_where, item in items:
        found = _find_non_finite(item, item_where)
        if found is not None:
            return found
    return None


def output_path_available(path: str | Path) -> None:
    """Refuse an explicit output path that exists, before a run starts, so that no run is wasted.

    Raises:
        UsageError: ``path`` exists (a dangling symbolic link counts: it would block the save too).
    """
    if os.path.lexists(path):
        raise UsageError(f"{path}: already exists; npucheck never overwrites a result (choose another -o path)")


def check_output_folder(directory: str | Path, option: str = "-o") -> None:
    """Before a run measures anything, prove that a result can be written in ``directory``: it is created if
    missing (as the save would), and a file is created in it and removed again. No torch, no schema: cheap.

    Args:
        directory: the ``-o`` file's folder, the ``--results-dir``, or a fleet directory.
        option: the option that named it, for the message.

    Raises:
        UsageError: the folder cannot be created, is not a folder, or a file cannot be created in it (read-only,
            a pseudo-filesystem such as /proc or /sys, permission denied, disk full); one line with the reason.
    """
    import secrets

    folder = Path(directory) if str(directory) else Path(".")
    probe = folder / f".npucheck-probe-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    step = "the folder cannot be created"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        step = "no file can be created in it"
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, b"npucheck\n")  # a full disk can refuse the data after accepting the name
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as e:
        why = f"{step}: {e.strerror or type(e).__name__}"
        if isinstance(e, FileExistsError) and not folder.is_dir():
            why = "it is not a folder"
        raise UsageError(
            f"{folder}: a result cannot be written there ({why}); nothing was measured (choose another {option})"
        ) from e


# --------------------------------------------------------------------------------------------------- list
def iter_results(directory: str | Path) -> Iterator[tuple[Path, dict[str, Any] | ResultFileError]]:
    """Every ``*.json`` file directly in ``directory``, sorted by name, loaded or with the reason it could not be.
    A fleet directory's summary (``fleet.json``, :data:`npucheck.fleetfile.FLEET_FILE`) is not a result profile and
    is skipped.

    Raises:
        ResultFileError: ``directory`` is not a directory.
    """
    directory = Path(directory)
    if not directory.exists():
        hint = (
            " (npucheck run saves results there; run it first or name another folder)"
            if directory.name == "results"
            else ""
        )
        raise ResultFileError(f"{directory}: no such folder{hint}")
    if not directory.is_dir():
        raise ResultFileError(f"{directory}: is a file, not a folder of result profiles")
    from npucheck.fleetfile import FLEET_FILE  # here: fleetfile imports this module

    for path in sorted(p for p in directory.iterdir() if p.suffix == ".json" and p.name != FLEET_FILE):
        try:
            yield path, load_result(path)
        except ResultFileError as e:
            yield path, e
