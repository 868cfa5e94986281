"""Fakes of the power-limit APIs, following the real ones' units and failure modes.

NVML (nvidia-ml-py 12.x, ``pynvml.py``; NVML API reference):

* ``nvmlDeviceSetPowerManagementLimit(handle, limit)``: ``limit`` in **milliwatts**, passed as ``c_uint(limit)``
  (a float raises ``TypeError`` in ctypes); root only (``NVML_ERROR_NO_PERMISSION``); outside the constraints
  ``NVML_ERROR_INVALID_ARGUMENT``; a board without the feature (or a MIG slice) ``NVML_ERROR_NOT_SUPPORTED``.
* ``nvmlDeviceGetPowerManagementLimitConstraints`` -> ``[min_mW, max_mW]``; ``...DefaultLimit``, ``...Limit``,
  ``nvmlDeviceGetEnforcedPowerLimit`` -> mW (the enforced one after every limiter: ``other_limit_mw``).

amdsmi (``py-interface/amdsmi_interface.py``; ``amdsmi.h``):

* ``amdsmi_set_power_cap(handle, sensor_ind, cap)``: ``cap`` in **microwatts**, a Python ``int`` (anything else:
  ``AmdSmiParameterException``); no permission: ``AmdSmiLibraryException`` with ``err_code`` 10
  (``AMDSMI_STATUS_NO_PERM``); out of range: ``err_code`` 1 (``AMDSMI_STATUS_INVAL``).
* ``amdsmi_get_power_cap_info(handle)`` -> ``power_cap``, ``default_power_cap``, ``dpm_cap`` (MHz),
  ``min_power_cap``, ``max_power_cap`` (µW on Linux bare metal).

The board's draw follows the limit: ``instant_mw`` is ``min(natural draw, limit)``, so lower caps show higher
TFLOPS/W at the same (fake) speed.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from typing import Any

import pynvml

from tests.fakes import FakeAmdSmi, FakeGpu, FakeNvml


class CappableNvml(FakeNvml):
    """FakeNvml whose GPU 0 has a settable power limit (an H100 SXM: 200-700 W, default 700 W)."""

    NVML_ERROR_NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION

    def __init__(
        self,
        root: bool = True,
        min_mw: int = 200_000,
        max_mw: int = 700_000,
        default_mw: int = 700_000,
        limit_mw: int | None = None,
        natural_mw: int = 650_000,
        supported: bool = True,
        **gpu0: Any,
    ):
        super().__init__(gpus=[FakeGpu(instant_mw=natural_mw, **gpu0)])
        self.root, self.supported = root, supported
        self.min_mw, self.max_mw, self.default_mw = min_mw, max_mw, default_mw
        self.limit_mw = default_mw if limit_mw is None else limit_mw
        self.natural_mw = natural_mw
        self.other_limit_mw: int | None = None
        """A limiter outside NVML's (out of band): the enforced limit is the lower of the two."""
        self.sets: list[int] = []
        self.fail_set: Callable[[int], BaseException | None] = lambda mw: None
        """Called with each value set: an exception to raise instead of setting it (failure injection)."""
        self.ignore_set: Callable[[int], bool] = lambda mw: False
        """True: the call succeeds but the limit does not change (a driver that drops the write)."""

    def _check(self, handle: Any) -> None:
        if not isinstance(handle, FakeGpu) or not self.supported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> list[int]:
        self._check(handle)
        return [self.min_mw, self.max_mw]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        self._check(handle)
        return self.default_mw

    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        self._check(handle)
        return self.limit_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        self._check(handle)
        return min(self.limit_mw, self.other_limit_mw or self.limit_mw)

    def nvmlDeviceSetPowerManagementLimit(self, handle: Any, limit: Any) -> None:
        value = ctypes.c_uint(limit).value  # as pynvml: a float is a TypeError here, never a limit
        self._check(handle)
        if not self.root:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)
        if not self.min_mw <= value <= self.max_mw:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        failure = self.fail_set(value)
        if failure is not None:
            raise failure
        self.sets.append(value)
        if not self.ignore_set(value):
            gpu = self.gpus[0]
            if gpu.update_s is not None:  # the energy so far stays counted: the counter never goes back
                gpu.energy_mj, gpu._t0 = gpu.energy(), time.monotonic()
            self.limit_mw = value
            gpu.instant_mw = min(self.natural_mw, self.nvmlDeviceGetEnforcedPowerLimit(handle))


class AmdSmiParameterException(Exception):
    """amdsmi's: a parameter of the wrong type."""


class AmdSmiLibraryException(Exception):
    """amdsmi's: the library returned an error; ``err_code`` is its amdsmi_status_t."""

    def __init__(self, err_code: int):
        super().__init__(f"Error code:\n\t{err_code}")
        self.err_code = err_code


class CappableAmdSmi(FakeAmdSmi):
    """FakeAmdSmi with amdsmi's power cap (an MI300X: 0-750 W... here 300-750 W, default 750 W), in µW."""

    AMDSMI_STATUS_INVAL = 1
    AMDSMI_STATUS_NO_PERM = 10

    def __init__(
        self,
        root: bool = True,
        min_uw: int = 300_000_000,
        max_uw: int = 750_000_000,
        default_uw: int = 750_000_000,
        natural_w: float = 700.0,
        default_key: str = "default_power_cap",
        **kwargs: Any,
    ):
        super().__init__(watts=natural_w, **kwargs)
        self.root, self.min_uw, self.max_uw, self.default_uw = root, min_uw, max_uw, default_uw
        self.cap_uw = default_uw
        self.natural_w = natural_w
        self.default_key = default_key
        self.sets: list[int] = []

    def amdsmi_get_power_cap_info(self, handle: str) -> dict[str, int]:
        return {
            "power_cap": self.cap_uw,
            self.default_key: self.default_uw,
            "dpm_cap": 2100,
            "min_power_cap": self.min_uw,
            "max_power_cap": self.max_uw,
        }

    def amdsmi_set_power_cap(self, handle: str, sensor_ind: int, cap: Any) -> None:
        if not isinstance(sensor_ind, int) or not isinstance(cap, int) or isinstance(cap, bool):
            raise AmdSmiParameterException(cap, int)
        if not self.root:
            raise AmdSmiLibraryException(self.AMDSMI_STATUS_NO_PERM)
        if not self.min_uw <= cap <= self.max_uw:
            raise AmdSmiLibraryException(self.AMDSMI_STATUS_INVAL)
        self.sets.append(cap)
        self.cap_uw = cap
        self.watts = min(self.natural_w, cap / 1e6)
