"""What ``check``, ``compare`` and ``results`` print about a directory of result profiles (a fleet directory or any
folder of profiles). Builds lines and frames; never prints. Reads JSON only: no torch.

* :func:`check_directory`: every profile in the directory judged, one line per device, a bottom line, the exit
  code (1 any FAIL; 3 any INCONCLUSIVE or ERROR, a fleet member in error or missing, or an unreadable file; 0 all
  PASS);
* :func:`fleet_comparison`: two fleet directories compared device by device (``compare BASE OTHER`` with
  directories), through :func:`npucheck.read.fleet.compare_fleets`;
* :func:`summary_line` and :func:`fleet_subfolders`: what ``results`` says about a fleet summary and about fleet
  directories inside the folder it lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from npucheck.errors import NpucheckError, ResultFileError, UsageError
from npucheck.model import as_profile
from npucheck.targets import Target

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "check_directory",
    "DirectoryCheck",
    "fleet_comparison",
    "fleet_subfolders",
    "FleetComparison",
    "is_fleet",
    "natural_key",
    "require_same_kind",
    "summary_line",
]


EXIT_PASS, EXIT_FAIL, EXIT_UNDECIDED = 0, 1, 3
_PROBLEM_STATUSES = ("error", "missing")


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``gpu07-2-cuda2`` before ``gpu07-10-cuda10`` (numbers compared as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def is_fleet(directory: Path) -> bool:
    """Whether ``directory`` holds a fleet summary (``fleet.json``)."""
    from npucheck.fleetfile import FLEET_FILE

    return (directory / FLEET_FILE).is_file()


def require_same_kind(base: Path, others: Sequence[Path]) -> bool:
    """Whether ``compare`` compares directories (True) or files (False).

    Raises:
        ResultFileError: a path does not exist.
        UsageError: directories and files mixed (one line naming which is which).
    """
    paths = [base, *others]
    for path in paths:
        if not path.exists():
            raise ResultFileError(f"{path}: does not exist")
    folders = [p for p in paths if p.is_dir()]
    if not folders:
        return False
    if len(folders) != len(paths):
        files = [str(p) for p in paths if not p.is_dir()]
        raise UsageError(
            f"compare takes result files or fleet directories, not both: {', '.join(str(p) for p in folders)} "
            f"{'is a directory' if len(folders) == 1 else 'are directories'}, {', '.join(files)} "
            f"{'is not' if len(files) == 1 else 'are not'}"
        )
    if len(others) != 1:
        raise UsageError(f"compare of fleet directories takes exactly one BASE and one OTHER, got {len(paths)}")
    return True


# --------------------------------------------------------------------------------------------------- check
@dataclass
class DirectoryCheck:
    """What ``check DIR`` prints and returns."""

    device_lines: list[str] = field(default_factory=list)
    member_lines: list[str] = field(default_factory=list)
    """Fleet members in error or missing, with the reason: nothing of theirs could be judged."""
    unreadable: list[str] = field(default_factory=list)
    bottom: str = ""
    exit_code: int = EXIT_PASS


def _overall(statuses: list[str]) -> str:
    if "FAIL" in statuses:
        return "FAIL"
    if statuses and all(s == "PASS" for s in statuses):
        return "PASS"
    if "ERROR" in statuses:
        return "ERROR"
    return "INCONCLUSIVE"


def _device_label(path: Path, document: Any) -> str:
    profile = as_profile(document)
    host = profile.environment.get("hostname") or "?"
    label = f"{host}/{profile.device.id} ({path.name})"
    return label + (", INTERRUPTED" if profile.interrupted else "")


def check_directory(directory: Path, targets: list[Target]) -> DirectoryCheck:
    """Judge every result profile directly in ``directory`` against ``targets``.

    One line per device (``host/device (file): STATUS — target STATUS, …``); for a fleet (a ``fleet.json``, or
    profiles carrying a fleet block) the members in error or missing, with their reason; a bottom line; the exit
    code.

    Raises:
        ResultFileError: ``directory`` is not a folder, or it holds neither a readable profile nor a fleet member.
    """
    from npucheck import store
    from npucheck.read import judge as judging

    result = DirectoryCheck()
    judged: list[str] = []
    fleet_blocks = False
    entries = sorted(store.iter_results(directory), key=lambda entry: natural_key(entry[0].name))
    for path, loaded in entries:
        if isinstance(loaded, NpucheckError):
            result.unreadable.append(str(loaded))
            continue
        fleet_blocks = fleet_blocks or bool((loaded.get("environment") or {}).get("fleet"))
        verdicts = judging.judge(loaded, targets)
        statuses = [v["status"] for v in verdicts]
        overall = _overall(statuses)
        judged.append(overall)
        result.device_lines.append(
            f"{_device_label(path, loaded)}: {overall} — "
            + (", ".join(f"{v['target']} {v['status']}" for v in verdicts) or "no target judged")
        )
    if fleet_blocks or is_fleet(directory):
        result.member_lines = _problem_members(directory)
    if not judged and not result.member_lines:
        raise ResultFileError(
            f"{directory}: no readable result profile to judge"
            + (f" ({len(result.unreadable)} unreadable)" if result.unreadable else "")
        )
    problems = len(result.member_lines) + len(result.unreadable)
    if "FAIL" in judged:
        result.exit_code, word = EXIT_FAIL, "FAIL"
    elif problems or any(s != "PASS" for s in judged):
        result.exit_code, word = EXIT_UNDECIDED, "INCONCLUSIVE"
    else:
        result.exit_code, word = EXIT_PASS, "PASS"
    counts = [f"{judged.count(s)} {s}" for s in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR") if judged.count(s)]
    parts = [
        f"{len(judged)} device{'s' if len(judged) != 1 else ''} judged" + (": " + ", ".join(counts) if counts else "")
    ]
    if result.member_lines:
        parts.append(f"{len(result.member_lines)} fleet member(s) in error or missing")
    if result.unreadable:
        parts.append(f"{len(result.unreadable)} unreadable file(s)")
    names = ", ".join(t.name for t in targets)
    result.bottom = f"{directory}: {word} — " + "; ".join(parts) + f" (targets: {names})"
    return result


def _problem_members(directory: Path) -> list[str]:
    """``key: STATUS — reason`` for each fleet member in error or missing."""
    from npucheck.read.fleet import device_label, load_fleet

    devices = load_fleet(directory).devices
    lines = []
    for row in devices.to_dict(orient="records"):
        status = row.get("status")
        if status in _PROBLEM_STATUSES:
            reason = row.get("reason")
            reason = reason if isinstance(reason, str) and reason else "no reason recorded"
            lines.append(f"{device_label(row)}: {str(status).upper()} — {reason}")
    return sorted(lines, key=natural_key)


# --------------------------------------------------------------------------------------------------- results
def summary_line(directory: Path) -> str | None:
    """``results``' line naming the fleet summary in ``directory`` (None when there is none).

    Raises:
        ResultFileError: the summary exists but cannot be read (its one-line reason).
    """
    from npucheck.fleetfile import FLEET_FILE, load_summary

    path = directory / FLEET_FILE
    if not path.exists():
        return None
    summary = load_summary(path)
    members = summary.get("members") or []
    problems = sum(1 for m in members if isinstance(m, dict) and m.get("status") in _PROBLEM_STATUSES)
    return (
        f"fleet summary: {path} ({len(members)} member{'s' if len(members) != 1 else ''}"
        + (f", {problems} in error or missing" if problems else "")
        + f"; `npucheck fleet {directory}` for the fleet table)"
    )


def fleet_subfolders(directory: Path) -> list[Path]:
    """The folders directly in ``directory`` that hold a fleet summary (``results`` lists only files)."""
    try:
        return sorted((p for p in directory.iterdir() if p.is_dir() and is_fleet(p)), key=lambda p: natural_key(p.name))
    except OSError:
        return []


# --------------------------------------------------------------------------------------------------- compare
@dataclass
class FleetComparison:
    """Two fleets compared device by device."""

    frame: pd.DataFrame
    """What :func:`npucheck.read.fleet.compare_fleets` returns."""
    display: pd.DataFrame
    """One row per device and dtype: device, dtype, base, other, ratio [95% CI], verdict, note (strings)."""
    summary: str
    """The summary line, e.g. "2 devices slower, 1 missing, 5 unchanged"."""
    regressed: list[str]
    """The devices that got slower (a regression in some dtype), named as the fleet table names them."""


_DEVICE_WORDS = {
    "regression": "slower",
    "improvement": "faster",
    "missing": "missing (figures in base only)",
    "new": "new (in other only)",
    "small change": "changed less than the threshold",
    "noise": "unchanged (within noise)",
    "no raw samples": "without raw samples to compare",
    None: "measured in neither",
}
"""How the summary line counts devices by their overall verdict (:data:`npucheck.read.fleet.COMPARE_VERDICTS`)."""


def _cell(value: Any) -> Any:
    """None for a missing frame cell (None, NaN or pandas' NA), else the value."""
    import pandas as pd

    return None if value is None or value is pd.NA or (isinstance(value, float) and value != value) else value


def fleet_comparison(base: Any, other: Any, threshold: float) -> FleetComparison:
    """Two fleets (:class:`npucheck.read.fleet.FleetData`) compared device by device: which got slower.

    The display has one row per device and dtype that either fleet measured (a device measured in neither: one
    row saying so), with base and other peak TFLOPS, the speed ratio with its 95% interval, and the verdict.
    """
    import pandas as pd

    from npucheck.read.fleet import COMPARE_VERDICTS, DTYPES, compare_fleets, device_label
    from npucheck.read.text import fmt_tflops

    frame = compare_fleets(base, other, threshold)
    names = {  # each key (host and uuid or local rank) as the fleet table names it: its profile's stem, as of now
        row["key"]: device_label(row) for fleet in (base, other) for row in fleet.devices.to_dict(orient="records")
    }
    rows = []
    for r in frame.to_dict(orient="records"):
        statuses = (_cell(r.get("base_status")), _cell(r.get("other_status")))
        note = "" if statuses == ("ok", "ok") else f"status {statuses[0] or 'absent'} → {statuses[1] or 'absent'}"
        measured = [d for d in DTYPES if _cell(r.get(f"{d}_verdict")) is not None]
        for dtype in measured or ["—"]:
            ratio = _cell(r.get(f"{dtype}_ratio"))
            low, high = _cell(r.get(f"{dtype}_ratio_low")), _cell(r.get(f"{dtype}_ratio_high"))
            interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
            rows.append(
                {
                    "device": names.get(r["key"], str(r["key"])),
                    "dtype": dtype,
                    "base TFLOPS": fmt_tflops(_cell(r.get(f"{dtype}_base"))),
                    "TFLOPS": fmt_tflops(_cell(r.get(f"{dtype}_other"))),
                    "ratio [95% CI]": "—" if ratio is None else f"{ratio:.3f}{interval}",
                    "verdict": _cell(r.get(f"{dtype}_verdict")) or "not measured",
                    "note": note,
                }
            )
    display = pd.DataFrame(
        rows, columns=["device", "dtype", "base TFLOPS", "TFLOPS", "ratio [95% CI]", "verdict", "note"]
    )
    verdicts = [_cell(v) for v in frame["verdict"]] if not frame.empty else []
    order = [*COMPARE_VERDICTS, None]
    counts = [(v, verdicts.count(v)) for v in order if verdicts.count(v)]
    counts += [(v, verdicts.count(v)) for v in dict.fromkeys(verdicts) if v not in order]
    total = len(verdicts)
    summary = f"{total} device{'s' if total != 1 else ''} compared" + (
        ": " + ", ".join(f"{n} {_DEVICE_WORDS.get(v, str(v))}" for v, n in counts) if counts else ""
    )
    regressed = [names.get(k, str(k)) for k, v in zip(frame["key"], verdicts) if v == "regression"]
    if regressed:
        summary += (
            "; slower: "
            + ", ".join(regressed[:10])
            + (f" and {len(regressed) - 10} more" if len(regressed) > 10 else "")
        )
    return FleetComparison(frame=frame, display=display, summary=summary, regressed=regressed)
