"""Setting a GPU's power limit, for the efficiency-vs-power-cap sweep (``npucheck run --power-caps``).

Only two APIs can set a limit, each through the handle of the power source already open on the device under test:

* NVML (:class:`NvmlCapControl`): ``nvmlDeviceSetPowerManagementLimit`` takes **milliwatts** and needs root
  (``NVML_ERROR_NO_PERMISSION`` otherwise); a value outside ``nvmlDeviceGetPowerManagementLimitConstraints``
  (milliwatts, [min, max]) is ``NVML_ERROR_INVALID_ARGUMENT``; a board without the feature answers
  ``NVML_ERROR_NOT_SUPPORTED``. The limit set is read back with ``nvmlDeviceGetPowerManagementLimit``, and the one
  the driver enforces after every limiter (out-of-band ones too) with ``nvmlDeviceGetEnforcedPowerLimit``. The
  default (what ``FULL`` means) is ``nvmlDeviceGetPowerManagementDefaultLimit``. NVML's limit does not persist
  across a driver reload or a reboot.
* amdsmi (:class:`AmdSmiCapControl`): ``amdsmi_set_power_cap(handle, sensor_ind, cap)`` takes **microwatts** as a
  Python ``int`` (amdsmi raises ``AmdSmiParameterException`` for anything else); ``amdsmi_get_power_cap_info``
  gives ``power_cap``, ``default_power_cap`` (``power_cap_default`` in older amdsmi), ``min_power_cap`` and
  ``max_power_cap``, microwatts on Linux bare metal. Without permission: ``AmdSmiLibraryException`` with
  ``err_code`` ``AMDSMI_STATUS_NO_PERM`` (10).

Every value crosses this module in watts. Nothing here is called at import time or outside a sweep the user asked
for; the permission probe writes back the limit just read (a write that changes nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from npucheck.errors import UsageError
from npucheck.measure.power.base import PowerSource

__all__ = [
    "AMDSMI_STATUS_NO_PERM",
    "AmdSmiCapControl",
    "CapControl",
    "CapPermissionError",
    "CapPlan",
    "FULL",
    "NVML_ERROR_NO_PERMISSION",
    "NvmlCapControl",
    "cap_control_for",
    "parse_caps",
    "plan_caps",
]

FULL = "FULL"
"""The cap label that means the board's default limit (``nvmlDeviceGetPowerManagementDefaultLimit``, amdsmi's
``default_power_cap``), not the maximum constraint: the verdict of a run at the default limit is the verdict."""
NVML_ERROR_NO_PERMISSION = 4
AMDSMI_STATUS_NO_PERM = 10
READ_BACK_TOLERANCE_W = 1.0
"""A limit read back within this many watts of the one set is the one set (NVML rounds to its own steps)."""


class CapPermissionError(UsageError):
    """This user may not set the device's power limit (NVML_ERROR_NO_PERMISSION, AMDSMI_STATUS_NO_PERM)."""


class CapControl(Protocol):
    """Read and set one device's power limit, in watts."""

    api: str

    def constraints_w(self) -> tuple[float, float]: ...
    def default_w(self) -> float: ...
    def limit_w(self) -> float: ...
    def enforced_w(self) -> float | None: ...
    def set_w(self, watts: float) -> None: ...
    def no_permission(self, error: BaseException) -> bool: ...


class NvmlCapControl:
    """NVML's power limit of the GPU an :class:`~npucheck.measure.power.nvml.NvmlSource` has open."""

    api = "nvml"

    def __init__(self, nvml: Any, handle: Any):
        self._nv, self._handle = nvml, handle

    def constraints_w(self) -> tuple[float, float]:
        low, high = self._nv.nvmlDeviceGetPowerManagementLimitConstraints(self._handle)
        return int(low) / 1e3, int(high) / 1e3

    def default_w(self) -> float:
        return int(self._nv.nvmlDeviceGetPowerManagementDefaultLimit(self._handle)) / 1e3

    def limit_w(self) -> float:
        return int(self._nv.nvmlDeviceGetPowerManagementLimit(self._handle)) / 1e3

    def enforced_w(self) -> float | None:
        return int(self._nv.nvmlDeviceGetEnforcedPowerLimit(self._handle)) / 1e3

    def set_w(self, watts: float) -> None:
        self._nv.nvmlDeviceSetPowerManagementLimit(self._handle, int(round(watts * 1e3)))

    def no_permission(self, error: BaseException) -> bool:
        code = getattr(self._nv, "NVML_ERROR_NO_PERMISSION", NVML_ERROR_NO_PERMISSION)
        return getattr(error, "value", None) == code


class AmdSmiCapControl:
    """amdsmi's power cap (sensor 0) of the GPU an :class:`~npucheck.measure.power.amd.AmdSmiSource` has open."""

    api = "amdsmi"
    SENSOR = 0

    def __init__(self, amdsmi: Any, handle: Any):
        self._amd, self._handle = amdsmi, handle

    def _info(self) -> dict[str, Any]:
        return dict(self._amd.amdsmi_get_power_cap_info(self._handle))

    def constraints_w(self) -> tuple[float, float]:
        info = self._info()
        return int(info["min_power_cap"]) / 1e6, int(info["max_power_cap"]) / 1e6

    def default_w(self) -> float:
        info = self._info()
        key = "default_power_cap" if "default_power_cap" in info else "power_cap_default"  # the older name
        return int(info[key]) / 1e6

    def limit_w(self) -> float:
        return int(self._info()["power_cap"]) / 1e6

    def enforced_w(self) -> float | None:
        return None  # amdsmi reports one cap; there is no separate enforced figure

    def set_w(self, watts: float) -> None:
        self._amd.amdsmi_set_power_cap(self._handle, self.SENSOR, int(round(watts * 1e6)))

    def no_permission(self, error: BaseException) -> bool:
        return getattr(error, "err_code", None) == AMDSMI_STATUS_NO_PERM


def cap_control_for(source: PowerSource | None, device: dict[str, Any]) -> CapControl:
    """The control of the device's power limit through its open power source.

    Raises:
        UsageError: a CPU device, no power source, or a source that cannot set a limit (exit 2, before measuring).
    """
    backend = device.get("backend")
    if backend == "cpu":
        raise UsageError(
            "--power-caps sets a GPU's power limit through NVML or amdsmi; the CPU's (RAPL) limits are not set by "
            "npucheck"
        )
    from npucheck.measure.power.amd import AmdSmiSource
    from npucheck.measure.power.nvml import NvmlSource

    name = source.name if source is not None else "none"
    if isinstance(source, (NvmlSource, AmdSmiSource)):
        # the limit is set on the source's handle: only when it is the device under test, whole (a MIG slice's
        # board is shared with other tenants; `--power nvml:N` is NVML's PCI order, not torch's device order)
        covers, why = source.check_coverage(device)
        if covers is not True:
            raise UsageError(f"--power-caps sets the limit of the GPU the power source reads, and {why}")
        if isinstance(source, NvmlSource):
            return NvmlCapControl(source._nvml, source._handle)
        return AmdSmiCapControl(source._amd, source._handle)
    raise UsageError(
        f"--power-caps needs --power nvml (NVIDIA) or amdsmi (AMD), the only sources that can set a power limit; "
        f"the power source here is {name}"
    )


def parse_caps(spec: str) -> list[str]:
    """The labels of ``--power-caps 300,400,FULL``: watts as written (positive numbers) and ``FULL``, in order.

    Raises:
        UsageError: an empty list, a repeated cap, or a value that is neither a positive number nor FULL.
    """
    labels: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            raise UsageError(f"--power-caps {spec!r}: an empty entry (give watts and FULL, comma-separated)")
        label = FULL if part.upper() == FULL else part
        if label != FULL:
            try:
                watts = float(label)
            except ValueError:
                raise UsageError(f"--power-caps: {part!r} is neither watts nor FULL") from None
            if not (math.isfinite(watts) and watts > 0):
                raise UsageError(f"--power-caps: {part!r} is not a positive number of watts")
            label = f"{watts:g}"
        if label in labels:
            raise UsageError(f"--power-caps: {label} is given twice")
        labels.append(label)
    if not labels:
        raise UsageError("--power-caps: no caps given")
    return labels


@dataclass(frozen=True)
class CapPlan:
    """What a sweep will do, known before measuring: the control, each cap in watts, and the device's limits."""

    control: CapControl
    caps: tuple[tuple[str, float], ...]
    """(label, watts) in the order given; FULL resolved to the default limit."""
    min_w: float
    max_w: float
    default_w: float
    original_w: float


def plan_caps(control: CapControl, labels: list[str]) -> CapPlan:
    """Read the device's limits, check every cap against them, and check that this user may set the limit (by
    writing back the limit just read, which changes nothing).

    Raises:
        UsageError: a cap outside the constraints (naming the allowed range), or limits that cannot be read.
        CapPermissionError: this user may not set the limit.
    """
    try:
        low, high = control.constraints_w()
        default = control.default_w()
        original = control.limit_w()
    except Exception as e:  # noqa: BLE001 - NotSupported and friends: this board has no settable limit
        raise UsageError(f"--power-caps: {control.api} cannot read this device's power limits ({_describe(e)})") from e
    caps = tuple((label, default if label == FULL else float(label)) for label in labels)
    outside = [label for label, watts in caps if not low - 1e-9 <= watts <= high + 1e-9]
    if outside:
        raise UsageError(
            f"--power-caps: {', '.join(outside)} W outside what this device allows: {low:g}-{high:g} W "
            f"(default {default:g} W)"
        )
    try:
        control.set_w(original)
    except Exception as e:  # noqa: BLE001 - the vendor's error classes; permission is told apart below
        if control.no_permission(e):
            raise CapPermissionError(
                f"--power-caps: not allowed to set the power limit through {control.api} ({_describe(e)}); it needs "
                "root (or the device's admin), and a machine whose settings are yours to change"
            ) from e
        raise UsageError(f"--power-caps: {control.api} cannot set this device's power limit ({_describe(e)})") from e
    return CapPlan(control=control, caps=caps, min_w=low, max_w=high, default_w=default, original_w=original)


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
