"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``), or any object with its API.

* Energy: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded; Volta and newer) read at the
  window edges. It updates about every 100 ms, so shorter windows are refused.
* Power: the ``NVML_FI_DEV_POWER_INSTANT`` field (mW) polled for the trace and as the fallback where the counter
  is missing. ``nvmlDeviceGetPowerUsage`` is a 1-second average on Ampere and newer, so it is used only when the
  field is missing, and labelled so.
* Evidence per window: clock-event (throttle) reasons, SM clock, temperature, enforced power limit.

The probe exercises the real calls, not just ``nvmlInit``: NVML initialises on Jetson and on many vGPUs and then
answers NotSupported to every power query. NVML numbers GPUs ignoring ``CUDA_VISIBLE_DEVICES``, so the GPU is
found by the UUID torch reports. A MIG slice has no power of its own: the whole GPU's power is reported, labelled.
"""

from __future__ import annotations

import threading
from typing import Any

from npucheck.power.base import CounterReset, PowerReadError, PowerSource, PowerSourceError, plausible_watts

NVML_UNCERTAINTY = 0.05
"""Yang et al. (SC'24): NVML's steady-state error is proportional, about ±5%, board to board."""
COUNTER_UPDATE_S = 0.1
FIELD_POWER_INSTANT = 186  # NVML_FI_DEV_POWER_INSTANT, when the binding lacks the constant
CLOCK_EVENT_BITS = {
    0x1: "GpuIdle", 0x2: "ApplicationsClocksSetting", 0x4: "SwPowerCap", 0x8: "HwSlowdown", 0x10: "SyncBoost",
    0x20: "SwThermalSlowdown", 0x40: "HwThermalSlowdown", 0x80: "HwPowerBrakeSlowdown", 0x100: "DisplayClockSetting",
}
LIMITING = {"SwPowerCap", "HwSlowdown", "SwThermalSlowdown", "HwThermalSlowdown", "HwPowerBrakeSlowdown"}
"""Clock-event reasons that mean the GPU ran slower than it could (idle and app-clock settings do not)."""


def decode_clock_events(mask: int) -> list[str]:
    return [name for bit, name in CLOCK_EVENT_BITS.items() if mask & bit]


def _import_nvml() -> Any:
    try:
        import pynvml
    except ImportError as e:
        raise PowerSourceError("nvml: nvidia-ml-py is not installed") from e
    return pynvml


class NvmlSource(PowerSource):
    """Board power and energy of one NVIDIA GPU."""

    name = "nvml"
    scope = "board"
    uncertainty_rel = NVML_UNCERTAINTY

    def __init__(self, nvml: Any | None = None, uuid: str | None = None, index: int = 0):
        self._nvml = nvml if nvml is not None else _import_nvml()
        self._lock = threading.Lock()  # NVML calls from the sampler thread and the runner
        nv = self._nvml
        try:
            nv.nvmlInit()
        except Exception as e:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
            raise PowerSourceError(f"nvml: no NVIDIA driver: {_describe(e)}") from e
        self._open = True
        try:
            self._handle = (nv.nvmlDeviceGetHandleByUUID(uuid) if uuid else nv.nvmlDeviceGetHandleByIndex(index))
            self.device_name = _text(nv.nvmlDeviceGetName(self._handle))
        except Exception as e:  # noqa: BLE001
            self.close()
            raise PowerSourceError(f"nvml: GPU {uuid or index} not found: {_describe(e)}") from e
        self._counter = self._try(self._raw_energy_mj) is not None
        self._last_mj: int | None = None
        self._instant = self._try(self._instant_mw) is not None
        self._average = not self._instant and self._try(lambda: nv.nvmlDeviceGetPowerUsage(self._handle)) is not None
        if not (self._counter or self._instant or self._average):
            self.close()
            raise PowerSourceError(f"nvml: {self.device_name} answers NotSupported to every energy and power query "
                                   "(Jetson, vGPU or a pre-Volta board?)")
        self.quality = "Q2" if self._counter else "Q1"
        self.counter_update_s = COUNTER_UPDATE_S if self._counter else None
        self.power_update_s = 0.1 if self._instant else 1.0
        self.power_average_s = None if self._instant else 1.0  # nvmlDeviceGetPowerUsage: a 1 s average
        mig = self._try(lambda: nv.nvmlDeviceGetMigMode(self._handle))
        self.mig = bool(mig and mig[0])
        parts = [self.device_name, "energy counter" if self._counter else "no energy counter (power integrated)",
                 "instant power field" if self._instant else
                 "power from nvmlDeviceGetPowerUsage (a 1 s average on Ampere and newer)" if self._average else
                 "no power reading"]
        if self.mig:
            parts.append("MIG enabled: the whole GPU's power, not the slice's")
        self.detail = "; ".join(parts)

    # ------------------------------------------------------------------------------------------------ reads
    def _try(self, fn: Any) -> Any:
        try:
            with self._lock:
                return fn()
        except Exception:  # noqa: BLE001 - NotSupported and friends: the capability is absent
            return None

    def _raw_energy_mj(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def _instant_mw(self) -> int:
        nv = self._nvml
        field = getattr(nv, "NVML_FI_DEV_POWER_INSTANT", FIELD_POWER_INSTANT)
        (value,) = nv.nvmlDeviceGetFieldValues(self._handle, [field])
        if value.nvmlReturn != getattr(nv, "NVML_SUCCESS", 0):
            raise PowerReadError(f"nvml: power field returned error {value.nvmlReturn}")
        return int(value.value.uiVal)

    @property
    def has_counter(self) -> bool:
        return self._counter

    @property
    def has_power(self) -> bool:
        return self._instant or self._average

    def read_energy_j(self) -> float:
        try:
            with self._lock:
                raw = self._raw_energy_mj()
        except Exception as e:  # noqa: BLE001
            raise PowerReadError(f"nvml: energy read failed: {_describe(e)}") from e
        if self._last_mj is not None and raw < self._last_mj:
            message = f"nvml energy counter fell from {self._last_mj} to {raw} mJ (driver reload or GPU reset?)"
            self._last_mj = raw
            raise CounterReset(message)
        self._last_mj = raw
        return raw / 1e3

    def read_power_w(self) -> float:
        try:
            with self._lock:
                mw = self._instant_mw() if self._instant else int(self._nvml.nvmlDeviceGetPowerUsage(self._handle))
        except PowerReadError:
            raise
        except Exception as e:  # noqa: BLE001
            raise PowerReadError(f"nvml: power read failed: {_describe(e)}") from e
        return plausible_watts(mw / 1e3, "nvml")

    def context(self) -> dict[str, Any]:
        nv = self._nvml
        h = self._handle
        out: dict[str, Any] = {}
        mask = self._try(lambda: nv.nvmlDeviceGetCurrentClocksEventReasons(h))
        if mask is None:
            mask = self._try(lambda: nv.nvmlDeviceGetCurrentClocksThrottleReasons(h))
        if mask is not None:
            events = decode_clock_events(int(mask))
            out["clock_event_reasons"] = events
            out["throttle_reasons"] = [e for e in events if e in LIMITING]
        sm = self._try(lambda: nv.nvmlDeviceGetClockInfo(h, getattr(nv, "NVML_CLOCK_SM", 1)))
        if sm is not None:
            out["sm_clock_mhz"] = int(sm)
        temp = self._try(lambda: nv.nvmlDeviceGetTemperature(h, getattr(nv, "NVML_TEMPERATURE_GPU", 0)))
        if temp is not None:
            out["temperature_c"] = int(temp)
        limit = self._try(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h))
        if limit is not None:
            out["power_limit_w"] = int(limit) / 1e3
        return out

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(device=self.device_name, mig=self.mig,
                    power_field="instant" if self._instant else "average_1s" if self._average else None)
        return info

    def close(self) -> None:
        if getattr(self, "_open", False):
            self._open = False
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"
