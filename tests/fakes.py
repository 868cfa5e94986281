"""Fakes of power hardware that follow the real APIs' semantics and failure modes.

* ``make_zone`` / ``make_hwmon``: sysfs trees under a temporary root (NPUCHECK_SYSFS_ROOT).
* ``FakeNvml`` / ``FakeGpu``: the nvidia-ml-py (pynvml) API for one or several GPUs (UUIDs, PCI ids, NVML's PCI
  order, MIG slices, C2C module scope), with pynvml's own error classes, field and PCI structs.
* ``FakeAmdSmi``: the amdsmi API for one or several GPUs (PCI addresses, 6.x/7.x keys).
* ``write_atomic``: how a test advances a sysfs counter while npucheck reads it.
"""

from __future__ import annotations

import ctypes
import os
import time
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


def make_hwmon(root: Path, index: int, name: str, files: dict[str, str], pci: str | None = None) -> Path:
    """``class/hwmon/hwmon<index>``; with ``pci`` its ``device`` link points at that PCI function, as the kernel
    links a GPU's hwmon directory to the device it belongs to."""
    path = root / "class/hwmon" / f"hwmon{index}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(name + "\n")
    if pci is not None:
        target = root / "devices/pci0000:00" / pci
        target.mkdir(parents=True, exist_ok=True)
        (path / "device").symlink_to(target)
    for file, text in files.items():
        (path / file).write_text(text + "\n")
    return path


class FakeGpu:
    """One NVIDIA GPU inside FakeNvml (its handle is this object). ``None`` for a reading means NotSupported.

    ``update_s``: when set, the energy counter advances with wall time at ``instant_mw`` in steps of that period
    (what the real counter does, about every 100 ms); otherwise it holds ``energy_mj`` until a test changes it.
    ``c2c``: a Grace-Hopper/Blackwell module: the counter and the module-scope field cover CPU + GPU + memory
    (``module_mw``), the GPU-scope field the GPU alone. ``mig_slices``: MIG UUIDs of its slices (MIG mode on).
    """

    def __init__(
        self,
        uuid: str = "GPU-1234",
        bus_id: str = "00000000:3B:00.0",
        energy_mj: int | None = 1_000_000,
        instant_mw: int | None = 300_000,
        average_mw: int | None = 280_000,
        clock_events: int = 0,
        mig: bool = False,
        mig_slices: tuple[str, ...] = (),
        c2c: bool = False,
        module_mw: int | None = None,
        update_s: float | None = None,
        name: str = "NVIDIA H100 80GB HBM3",
    ):
        self.uuid, self.bus_id, self.name = uuid, bus_id, name
        self.energy_mj, self.instant_mw, self.average_mw = energy_mj, instant_mw, average_mw
        self.clock_events, self.c2c, self.module_mw, self.update_s = clock_events, c2c, module_mw, update_s
        self.mig = mig or bool(mig_slices)
        self.slices = [FakeMigSlice(self, u) for u in mig_slices]
        self._t0 = time.monotonic()

    def energy(self) -> int:
        if self.energy_mj is None:
            raise FakeNvml._not_supported()
        if self.update_s is None:
            return self.energy_mj
        steps = int((time.monotonic() - self._t0) / self.update_s)
        watts_mw = (self.module_mw if self.c2c and self.module_mw is not None else self.instant_mw) or 0
        return self.energy_mj + int(watts_mw * steps * self.update_s)


class FakeMigSlice:
    """A MIG device handle: NVML finds it by its ``MIG-`` UUID, but it answers NotSupported to power and energy."""

    def __init__(self, parent: FakeGpu, uuid: str):
        self.parent, self.uuid = parent, uuid


class FakeNvml:
    """NVML with one or several GPUs. ``FakeNvml(**kwargs)`` is one GPU built from ``kwargs``;
    ``FakeNvml(gpus=[FakeGpu(...), ...])`` several. NVML numbers them in PCI bus order (``nvmlDeviceGetHandleByIndex``),
    whatever order CUDA (``CUDA_VISIBLE_DEVICES``) shows them in. Attributes of GPU 0 (``energy_mj``,
    ``clock_events``, ...) can be set on the fake itself."""

    NVMLError = pynvml.NVMLError
    NVML_SUCCESS = pynvml.NVML_SUCCESS
    NVML_FI_DEV_POWER_INSTANT = pynvml.NVML_FI_DEV_POWER_INSTANT
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_ERROR_NOT_FOUND = pynvml.NVML_ERROR_NOT_FOUND
    NVML_ERROR_INVALID_ARGUMENT = pynvml.NVML_ERROR_INVALID_ARGUMENT
    _GPU0 = ("energy_mj", "instant_mw", "average_mw", "clock_events", "module_mw")

    def __init__(self, gpus: list[FakeGpu] | None = None, **gpu0):
        self.__dict__["gpus"] = list(gpus) if gpus is not None else [FakeGpu(**gpu0)]
        self.initialised = 0
        self.handles_by_uuid: list[str] = []

    def __getattr__(self, name: str):
        if name in FakeNvml._GPU0:
            return getattr(self.gpus[0], name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value) -> None:
        if name in FakeNvml._GPU0:
            setattr(self.gpus[0], name, value)
        else:
            self.__dict__[name] = value

    @staticmethod
    def _not_supported() -> pynvml.NVMLError:
        return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    @staticmethod
    def _gpu(handle) -> FakeGpu:
        if isinstance(handle, FakeMigSlice):
            raise FakeNvml._not_supported()  # a MIG device handle has no power or energy of its own
        return handle

    def _pci_order(self) -> list[FakeGpu]:
        return sorted(self.gpus, key=lambda g: g.bus_id)

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByUUID(self, uuid: str):
        self.handles_by_uuid.append(uuid)
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu
            for mig in gpu.slices:
                if mig.uuid == uuid:
                    return mig
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetHandleByIndex(self, index: int):
        gpus = self._pci_order()
        if not 0 <= index < len(gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpus[index]

    def nvmlDeviceIsMigDeviceHandle(self, handle):
        return ctypes.c_uint(1 if isinstance(handle, FakeMigSlice) else 0)  # pynvml returns the c_uint itself

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle):
        if not isinstance(handle, FakeMigSlice):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return handle.parent

    def nvmlDeviceGetUUID(self, handle) -> str:
        return handle.uuid

    def nvmlDeviceGetComputeRunningProcesses(self, handle) -> list:
        """pynvml's v3 process structs; ``processes`` on a GPU or slice: [(pid, used bytes or None)], where None
        is NVML_VALUE_NOT_AVAILABLE (what MIG and Windows WDDM report)."""
        out = []
        for pid, used in getattr(handle, "processes", ()):
            info = pynvml.c_nvmlProcessInfo_v3_t()
            info.pid, info.usedGpuMemory = pid, 2**64 - 1 if used is None else used
            out.append(info)
        return out

    def nvmlSystemGetDriverVersion(self) -> str:
        return "570.124.06"

    def nvmlDeviceGetPciInfo(self, handle):
        info = pynvml.nvmlPciInfo_t()
        info.busId = self._gpu(handle).bus_id.encode()  # NVML spells it 00000000:3B:00.0
        return info

    def nvmlDeviceGetC2cModeInfoV(self, handle):
        info = pynvml.c_nvmlC2cModeInfo_v1_t()
        info.isC2cEnabled = 1 if self._gpu(handle).c2c else 0
        return info

    def nvmlDeviceGetName(self, handle) -> str:
        return handle.parent.name + " MIG 1g.10gb" if isinstance(handle, FakeMigSlice) else handle.name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle) -> int:
        return self._gpu(handle).energy()

    def nvmlDeviceGetFieldValues(self, handle, field_ids: list):
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for value, field in zip(values, field_ids):
            try:  # as pynvml: a (fieldId, scopeId) pair or a bare fieldId (scope 0, the GPU)
                value.fieldId, value.scopeId = field
            except TypeError:
                value.fieldId = field
            gpu = None if isinstance(handle, FakeMigSlice) else handle
            reading = None
            if gpu is not None and value.fieldId == pynvml.NVML_FI_DEV_POWER_INSTANT:
                if value.scopeId == pynvml.NVML_POWER_SCOPE_MODULE:
                    reading = gpu.module_mw if gpu.c2c else None
                elif value.scopeId == pynvml.NVML_POWER_SCOPE_GPU:
                    reading = gpu.instant_mw
            if reading is not None:
                value.nvmlReturn = pynvml.NVML_SUCCESS
                value.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
                value.value.uiVal = reading
            else:
                value.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED  # per-field failure, call succeeds
        return values

    def nvmlDeviceGetPowerUsage(self, handle) -> int:
        gpu = self._gpu(handle)
        if gpu.average_mw is None:
            raise self._not_supported()
        return gpu.average_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle) -> int:
        return self._gpu(handle).clock_events

    def nvmlDeviceGetClockInfo(self, handle, kind: int) -> int:
        return 1980

    def nvmlDeviceGetTemperature(self, handle, sensor: int) -> int:
        return 61

    def nvmlDeviceGetEnforcedPowerLimit(self, handle) -> int:
        return 700_000

    def nvmlDeviceGetMigMode(self, handle) -> tuple[int, int]:
        return (1, 1) if self._gpu(handle).mig else (0, 0)


class FakeAmdSmi:
    """AMD GPUs as amdsmi shows them: an energy accumulator in 15.3 µJ steps and socket power in W.

    ``bdfs``: each GPU's PCI address as ``amdsmi_get_gpu_device_bdf`` formats it (amdsmi's handle order, which is
    not HIP's); every GPU reports the same readings. ``power_keys``: which keys ``amdsmi_get_power_info`` fills
    (``current_socket_power`` on MI300; ``socket_power`` in amdsmi 7.x; the rest "N/A"). ``energy_key``:
    ``energy_accumulator`` (ROCm 6.4+) or the older ``power``.
    """

    RESOLUTION_UJ = 15.3

    def __init__(
        self,
        watts: float | str = 400.0,
        counter_rate: float = 1.0,
        frozen: bool = False,
        bdfs: tuple[str, ...] = ("0000:03:00.0",),
        power_keys: tuple[str, ...] = ("current_socket_power",),
        energy_key: str = "energy_accumulator",
    ):
        self.watts = watts
        self.counter_rate = counter_rate
        self.frozen = frozen
        self.bdfs = bdfs
        self.power_keys = power_keys
        self.energy_key = energy_key
        self.accumulator = 1_000_000
        self.power_failures = 0
        """Calls of amdsmi_get_power_info to fail (after the first), as a busy SMU sometimes makes them."""
        self._power_calls = 0
        self.shut_down = 0

    def amdsmi_init(self) -> None:
        pass

    def amdsmi_shut_down(self) -> None:
        self.shut_down += 1

    def amdsmi_get_processor_handles(self) -> list[str]:
        return [f"gpu{i}" for i in range(len(self.bdfs))]

    def amdsmi_get_gpu_device_bdf(self, handle: str) -> str:
        return self.bdfs[int(handle[3:])]

    def amdsmi_get_energy_count(self, handle: str) -> dict:
        count = {"counter_resolution": self.RESOLUTION_UJ, "timestamp": 0}
        count[self.energy_key] = self.accumulator
        return count

    def amdsmi_get_power_info(self, handle: str) -> dict:
        self._power_calls += 1
        if self._power_calls > 1 and self.power_failures > 0:
            self.power_failures -= 1
            raise RuntimeError("AMDSMI_STATUS_BUSY")
        info = {key: "N/A" for key in ("socket_power", "current_socket_power", "average_socket_power")}
        info.update({key: self.watts for key in self.power_keys}, power_limit=750)
        return info

    def advance(self, seconds: float) -> None:
        """What the hardware does while the caller sleeps."""
        if not self.frozen and isinstance(self.watts, (int, float)):
            self.accumulator += int(self.watts * seconds * 1e6 * self.counter_rate / self.RESOLUTION_UJ)
