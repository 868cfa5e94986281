"""Suites as data (``kernels/suites.toml``): load, validate, expand into cases."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from npucheck.errors import UsageError
from npucheck.kernels import DTYPE_NAMES, FLOAT_DTYPES, KERNELS, Case, lowp

__all__ = ["get_suite", "load_suites", "Suite"]


_SUITE_KEYS = {
    "description",
    "suite_budget_s",
    "case_budget_s",
    "case_target_s",
    "device_warmup_s",
    "accelerator_warmup_s",
    "min_samples",
    "max_samples",
    "min_sample_s",
    "power_window_s",
    "idle_s",
    "power_trials",
    "entries",
}
_ENTRY_KEYS = {"kernel", "shape_set", "where", "pick", "dtypes"}


@dataclass(frozen=True)
class Suite:
    """A named list of (kernel, shape set) entries with its time budgets."""

    name: str
    description: str
    suite_budget_s: float
    case_budget_s: float
    case_target_s: float
    device_warmup_s: float
    accelerator_warmup_s: float
    min_samples: int
    max_samples: int
    min_sample_s: float
    power_window_s: float
    idle_s: float
    power_trials: int
    entries: tuple[dict[str, Any], ...]

    def cases(self, kernels: list[str], dtypes: list[str]) -> list[Case]:
        """The suite's cases for the chosen kernels and dtypes.

        Ordered dtype by dtype (fp16 first: it is what the targets judge), then in file order, so that when the
        suite budget runs short it is the context dtypes that lose cases, not the plan's bench.
        """
        cases: list[Case] = []
        seen: set[str] = set()
        for dtype in dtypes:
            for entry in self.entries:
                # an entry without dtypes runs the float ones; int8/fp8 only where an entry names them
                if entry["kernel"] not in kernels or dtype not in entry.get("dtypes", FLOAT_DTYPES):
                    continue
                kernel = KERNELS[entry["kernel"]]
                for shape in _select(kernel.shape_sets[entry["shape_set"]], entry):
                    case = kernel.case(dtype, shape, entry["shape_set"])
                    if case.id not in seen:
                        seen.add(case.id)
                        cases.append(case)
        return cases

    def settings(self) -> dict[str, Any]:
        return {
            key: getattr(self, key)
            for key in (
                "suite_budget_s",
                "case_budget_s",
                "case_target_s",
                "device_warmup_s",
                "accelerator_warmup_s",
                "min_samples",
                "max_samples",
                "min_sample_s",
                "power_window_s",
                "idle_s",
                "power_trials",
            )
        }


def _select(shapes: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    if "pick" in entry:
        shapes = [shapes[i] for i in entry["pick"]]
    for key, allowed in entry.get("where", {}).items():
        shapes = [shape for shape in shapes if shape.get(key) in allowed]
    return shapes


def load_suites(text: str | None = None) -> dict[str, Suite]:
    """Parse and validate the suite file (the packaged one unless ``text`` is given)."""
    if text is None:
        text = resources.files("npucheck.kernels").joinpath("suites.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"suites.toml: {e}") from e
    return {name: _parse_suite(name, body) for name, body in data.items()}


def _parse_suite(name: str, body: Any) -> Suite:
    where = f"suite {name!r}"
    if not isinstance(body, dict):
        raise UsageError(f"{where}: must be a table")
    unknown = set(body) - _SUITE_KEYS
    missing = _SUITE_KEYS - set(body)
    if unknown or missing:
        raise UsageError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    for key in (
        "suite_budget_s",
        "case_budget_s",
        "case_target_s",
        "device_warmup_s",
        "accelerator_warmup_s",
        "min_sample_s",
        "power_window_s",
        "idle_s",
    ):
        if not isinstance(body[key], (int, float)) or isinstance(body[key], bool) or body[key] < 0:
            raise UsageError(f"{where}: {key} must be a non-negative number")
    if not (isinstance(body["power_trials"], int) and 1 <= body["power_trials"] <= 20):
        raise UsageError(f"{where}: power_trials must be an integer from 1 to 20")
    if not (isinstance(body["min_samples"], int) and 1 <= body["min_samples"] <= body["max_samples"]):
        raise UsageError(f"{where}: need 1 <= min_samples <= max_samples")
    for entry in body["entries"]:
        _check_entry(where, entry)
    return Suite(
        name=name,
        description=str(body["description"]),
        suite_budget_s=float(body["suite_budget_s"]),
        case_budget_s=float(body["case_budget_s"]),
        case_target_s=float(body["case_target_s"]),
        device_warmup_s=float(body["device_warmup_s"]),
        accelerator_warmup_s=float(body["accelerator_warmup_s"]),
        min_samples=int(body["min_samples"]),
        max_samples=int(body["max_samples"]),
        min_sample_s=float(body["min_sample_s"]),
        power_window_s=float(body["power_window_s"]),
        idle_s=float(body["idle_s"]),
        power_trials=int(body["power_trials"]),
        entries=tuple(body["entries"]),
    )


def _check_entry(where: str, entry: Any) -> None:
    if not isinstance(entry, dict) or set(entry) - _ENTRY_KEYS:
        raise UsageError(f"{where}: entry {entry!r} has unknown keys (allowed: {sorted(_ENTRY_KEYS)})")
    kernel = KERNELS.get(entry.get("kernel", ""))
    if kernel is None:
        raise UsageError(f"{where}: unknown kernel {entry.get('kernel')!r}")
    shapes = kernel.shape_sets.get(entry.get("shape_set", ""))
    if shapes is None:
        raise UsageError(
            f"{where}: kernel {kernel.name} has no shape set {entry.get('shape_set')!r} "
            f"(known: {', '.join(kernel.shape_sets)})"
        )
    if any(not isinstance(i, int) or not 0 <= i < len(shapes) for i in entry.get("pick", [])):
        raise UsageError(f"{where}: pick {entry['pick']} out of range for {kernel.name}/{entry['shape_set']}")
    _check_entry_dtypes(where, kernel.name, entry.get("dtypes", FLOAT_DTYPES))


def _check_entry_dtypes(where: str, kernel: str, dtypes: Any) -> None:
    """An entry's dtypes are known names; int8 and fp8 only on the kernels that have a path for them."""
    if not isinstance(dtypes, list | tuple) or any(d not in DTYPE_NAMES for d in dtypes):
        raise UsageError(f"{where}: dtypes {dtypes!r} must be a list of {', '.join(DTYPE_NAMES)}")
    low = [d for d in dtypes if d in lowp.LOW_PRECISION_DTYPES]
    if low and kernel not in lowp.KERNELS:
        raise UsageError(f"{where}: {kernel} has no {', '.join(low)} path (only {', '.join(lowp.KERNELS)})")


def get_suite(name: str) -> Suite:
    suites = load_suites()
    if name not in suites:
        raise UsageError(f"unknown suite {name!r}; known: {', '.join(suites)}")
    return suites[name]
