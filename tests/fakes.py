"""Fakes of power hardware that follow the real APIs' semantics and failure modes.

* ``make_zone`` / ``make_hwmon``: sysfs trees under a temporary root (NPUCHECK_SYSFS_ROOT).
* ``FakeNvml``: the nvidia-ml-py (pynvml) API for one GPU, with pynvml's own error classes and field structs.
* ``FakeAmdSmi``: the amdsmi API for one GPU.
* ``write_atomic``: how a test advances a sysfs counter while npucheck reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pynvml


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_zone(root: Path, zone: str, name: str, energy_uj: int, max_uj: int | None = 262143328850) -> Path:
    """A powercap zone ``class/powercap/<zone>`` with ``name``, ``energy_uj`` and ``max_energy_range_uj``."""
    path = root / "class/powercap" / zone
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    if max_uj is not None:
        (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def make_hwmon(root: Path, index: int, name: str, files: dict[str, str]) -> Path:
    path = root / "class/hwmon" / f"hwmon{index}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(name + "\n")
    for file, text in files.items():
        (path / file).write_text(text + "\n")
    return path


class FakeNvml:
    """One GPU as NVML shows it. Set attributes to change what it reports; ``None`` means NotSupported."""

    NVMLError = pynvml.NVMLError
    NVML_SUCCESS = pynvml.NVML_SUCCESS
    NVML_FI_DEV_POWER_INSTANT = pynvml.NVML_FI_DEV_POWER_INSTANT
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(self, energy_mj: int | None = 1_000_000, instant_mw: int | None = 300_000,
                 average_mw: int | None = 280_000, uuid: str = "GPU-1234", clock_events: int = 0,
                 mig: bool = False):
        self.energy_mj = energy_mj
        self.instant_mw = instant_mw
        self.average_mw = average_mw
        self.uuid = uuid
        self.clock_events = clock_events
        self.mig = mig
        self.initialised = 0
        self.handles_by_uuid: list[str] = []

    @staticmethod
    def _not_supported() -> pynvml.NVMLError:
        return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        self.handles_by_uuid.append(uuid)
        if uuid != self.uuid:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return "handle"

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        if index != 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return "handle"

    def nvmlDeviceGetName(self, handle: str) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        if self.energy_mj is None:
            raise self._not_supported()
        return self.energy_mj

    def nvmlDeviceGetFieldValues(self, handle: str, field_ids: list[int]):
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for value, field in zip(values, field_ids):
            value.fieldId = field
            if field == pynvml.NVML_FI_DEV_POWER_INSTANT and self.instant_mw is not None:
                value.nvmlReturn = pynvml.NVML_SUCCESS
                value.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
                value.value.uiVal = self.instant_mw
            else:
                value.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED  # per-field failure, call succeeds
        return values

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        if self.average_mw is None:
            raise self._not_supported()
        return self.average_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        return self.clock_events

    def nvmlDeviceGetClockInfo(self, handle: str, kind: int) -> int:
        return 1980

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        return 61

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: str) -> int:
        return 700_000

    def nvmlDeviceGetMigMode(self, handle: str) -> tuple[int, int]:
        return (1, 1) if self.mig else (0, 0)


class FakeAmdSmi:
    """One AMD GPU as amdsmi shows it: an energy accumulator in 15.3 µJ steps and socket power in W."""

    RESOLUTION_UJ = 15.3

    def __init__(self, watts: float | str = 400.0, counter_rate: float = 1.0, frozen: bool = False):
        self.watts = watts
        self.counter_rate = counter_rate
        self.frozen = frozen
        self.accumulator = 1_000_000
        self.power_failures = 0
        """Calls of amdsmi_get_power_info to fail (after the first), as a busy SMU sometimes makes them."""
        self._power_calls = 0

    def amdsmi_init(self) -> None:
        pass

    def amdsmi_shut_down(self) -> None:
        pass

    def amdsmi_get_processor_handles(self) -> list[str]:
        return ["gpu0"]

    def amdsmi_get_energy_count(self, handle: str) -> dict:
        return {"energy_accumulator": self.accumulator, "counter_resolution": self.RESOLUTION_UJ, "timestamp": 0}

    def amdsmi_get_power_info(self, handle: str) -> dict:
        self._power_calls += 1
        if self._power_calls > 1 and self.power_failures > 0:
            self.power_failures -= 1
            raise RuntimeError("AMDSMI_STATUS_BUSY")
        return {"current_socket_power": self.watts, "average_socket_power": "N/A", "power_limit": 750}

    def advance(self, seconds: float) -> None:
        """What the hardware does while the caller sleeps."""
        if not self.frozen and isinstance(self.watts, (int, float)):
            self.accumulator += int(self.watts * seconds * 1e6 * self.counter_rate / self.RESOLUTION_UJ)
