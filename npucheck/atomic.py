"""Atomic file writing, apart from what is written: a reader sees a whole file or none, never half of one.

* :func:`write_new` creates a file under the first free name and never replaces an existing one (result profiles:
  a complete temporary file is hard-linked to its final name).
* :func:`write_atomic` replaces a file in one rename (plots and reports, which are regenerated).

Both fsync the data and the directory entry where the platform allows it.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["write_atomic", "write_new"]

_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def write_new(directory: Path, data: bytes, candidates: Iterator[Path]) -> Path | None:
    """Write ``data`` under the first candidate name that does not exist; None if all are taken.

    A complete temporary file is hard-linked to the final name, so a reader never sees a partial file and an
    existing file is never replaced (link fails with EEXIST, where rename would overwrite).
    """
    temporary = directory / f".npucheck-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    _write_synced(temporary, data)
    try:
        for candidate in candidates:
            try:
                os.link(temporary, candidate)
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno not in _LINK_UNSUPPORTED:
                    raise
                return _write_exclusive(data, candidate, candidates)
            _sync_directory(directory)
            return candidate
        return None
    finally:
        temporary.unlink(missing_ok=True)


def _write_exclusive(data: bytes, first: Path, rest: Iterator[Path]) -> Path | None:
    """Fallback for filesystems without hard links: O_EXCL still never overwrites, but a crash mid-write can
    leave a partial file."""
    for candidate in itertools.chain([first], rest):
        try:
            _write_synced(candidate, data)
        except FileExistsError:
            continue
        _sync_directory(candidate.parent)
        return candidate
    return None


def _write_synced(path: Path, data: bytes) -> None:
    """Create ``path`` (never an existing one), write ``data`` and fsync; remove it again if writing fails."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a synced temporary file and a rename, so that a reader sees the old file
    or the new one, never half of one. Unlike ``save_result`` this replaces an existing file (plots, reports)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    _write_synced(temporary, data)
    try:
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return path


def _sync_directory(directory: Path) -> None:
    # Makes the new name itself durable; not possible everywhere (Windows), and not worth failing a save over.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
