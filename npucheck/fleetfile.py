"""The fleet summary file (``DIR/fleet.json``) and the names of a fleet directory's files; shared by the fleet run
that writes them and ``npucheck fleet`` that reads them.

No torch and no pandas here, and jsonschema is imported only when a summary is first validated (as in
:mod:`npucheck.store`): reading commands must start fast. The file contract is
``npucheck/schema/fleet-v1.schema.json``; docs/fleet.md describes it.
"""

from __future__ import annotations

import functools
import json
import stat
from importlib import resources
from pathlib import Path
from typing import Any

from npucheck.atomic import write_atomic
from npucheck.errors import ResultFileError
from npucheck.store import parse_json, raise_schema_error, slug

__all__ = [
    "FLEET_FILE",
    "FLEET_SCHEMA",
    "FLEET_SCHEMA_FILE",
    "FLEET_SCHEMA_VERSION",
    "load_fleet_schema",
    "load_summary",
    "MAX_SUMMARY_BYTES",
    "MEMBER_STATUSES",
    "profile_stem",
    "validate_summary",
    "write_summary",
]

FLEET_SCHEMA = "npucheck.fleet-summary"
"""The ``schema`` key of every fleet summary: what the file is."""
FLEET_SCHEMA_VERSION = 1
"""The summary format this module reads and writes; a newer file is refused ("upgrade npucheck")."""
FLEET_FILE = "fleet.json"
"""The summary's name inside the fleet directory."""
FLEET_SCHEMA_FILE = f"fleet-v{FLEET_SCHEMA_VERSION}.schema.json"
MEMBER_STATUSES: tuple[str, ...] = ("ok", "interrupted", "error", "missing")
"""What became of a member (rank): ``ok`` a complete profile; ``interrupted`` a partial one; ``error`` its
measuring process failed; ``missing`` nothing arrived from it."""
MAX_SUMMARY_BYTES = 64 * 2**20
"""Larger files are refused rather than read: a summary of 10,000 members is a few MiB."""


def profile_stem(host: str, local_rank: int, device_id: str) -> str:
    """The file stem of a member's profile and log: ``<host>-<local_rank>-<device>``, e.g. ``gpu07-3-cuda3``.

    The host is slugged (:func:`npucheck.store.slug`: lowercase ``[a-z0-9-]``); the device id loses its ``:`` and
    is slugged the same way (``cuda:3`` → ``cuda3``).
    """
    if isinstance(local_rank, bool) or not isinstance(local_rank, int) or local_rank < 0:
        raise ValueError(f"local_rank {local_rank!r} is not a non-negative integer")
    return f"{slug(host)}-{local_rank}-{slug(device_id.replace(':', ''))}"


# --------------------------------------------------------------------------------------------------- schema
def load_fleet_schema() -> dict[str, Any]:
    """The JSON Schema of the fleet summary, as shipped in the ``npucheck.schema`` package."""
    text = resources.files("npucheck.schema").joinpath(FLEET_SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = load_fleet_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_summary(doc: Any, origin: str) -> None:
    """Check ``doc`` against the fleet summary schema.

    Raises:
        ResultFileError: one line, ``<origin>: <json path>: <message>``, for the most relevant error.
    """
    raise_schema_error(_validator(), doc, origin)


# --------------------------------------------------------------------------------------------------- load
def load_summary(path: str | Path) -> dict[str, Any]:
    """Read and validate a fleet summary.

    Raises:
        ResultFileError: one line saying what is wrong with the file, prefixed with its path (a newer format:
            "… upgrade npucheck").
    """
    path = Path(path)
    text = _read_text(path)
    try:
        doc = parse_json(text)
    except json.JSONDecodeError as e:
        where = "is empty" if not text.strip() else f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        raise ResultFileError(f"{path}: {where}") from e
    except (ValueError, RecursionError) as e:
        raise ResultFileError(f"{path}: invalid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ResultFileError(f"{path}: not a JSON object at the top level; not an npucheck fleet summary")
    if doc.get("schema") != FLEET_SCHEMA:
        raise ResultFileError(f'{path}: no "schema": "{FLEET_SCHEMA}"; not an npucheck fleet summary')
    version = doc.get("schema_version")
    if type(version) is not int:
        raise ResultFileError(f"{path}: schema_version must be an integer, not {json.dumps(version)}")
    if version > FLEET_SCHEMA_VERSION:
        raise ResultFileError(
            f"{path}: written by a newer npucheck (fleet summary schema {version} > {FLEET_SCHEMA_VERSION}); "
            "upgrade npucheck"
        )
    if version < FLEET_SCHEMA_VERSION:
        raise ResultFileError(f"{path}: fleet summary schema_version {version} is not a format npucheck knows")
    validate_summary(doc, str(path))
    return doc


def _read_text(path: Path) -> str:
    try:
        info = path.stat()
    except FileNotFoundError as e:
        raise ResultFileError(f"{path}: does not exist") from e
    except OSError as e:
        raise ResultFileError(f"{path}: cannot be read: {e.strerror or e}") from e
    if not stat.S_ISREG(info.st_mode):
        raise ResultFileError(f"{path}: is not a regular file")
    if info.st_size > MAX_SUMMARY_BYTES:
        raise ResultFileError(
            f"{path}: is {info.st_size / 2**20:.0f} MiB, larger than the {MAX_SUMMARY_BYTES / 2**20:.0f} MiB "
            "limit for a fleet summary"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ResultFileError(f"{path}: cannot be read: {e.strerror or e}") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ResultFileError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from e


# --------------------------------------------------------------------------------------------------- write
def write_summary(directory: str | Path, doc: dict[str, Any]) -> Path:
    """Validate ``doc`` and write it to ``directory/fleet.json``, replacing an older summary atomically (a reader
    sees the old file or the new one, never half of one).

    Returns:
        The path written.

    Raises:
        ValueError: ``doc`` holds a NaN or an infinity, or a value JSON cannot represent (TypeError).
        ResultFileError: ``doc`` does not match the schema; nothing is written.
        OSError: the directory or file could not be written.
    """
    path = Path(directory) / FLEET_FILE
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
    validate_summary(json.loads(text), f"fleet summary not written to {path}")
    return write_atomic(path, text.encode("utf-8"))
