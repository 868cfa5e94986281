"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``), or any object with its API.

* Energy: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded; Volta and newer) read at the
  window edges. It updates about every 100 ms, so shorter windows are refused.
* Power: the ``NVML_FI_DEV_POWER_INSTANT`` field (mW) polled for the trace and as the fallback where the counter
  is missing. ``nvmlDeviceGetPowerUsage`` is a 1-second average on Ampere and newer, so it is used only when the
  field is missing, and labelled so.
* Evidence per window: clock-event (throttle) reasons, SM clock, temperature, enforced power limit.

The probe exercises the real calls, not just ``nvmlInit``: NVML initialises on Jetson and on many vGPUs and then
answers NotSupported to every power query. NVML numbers GPUs in PCI order, ignoring ``CUDA_VISIBLE_DEVICES``, so
the GPU is found by the UUID torch reports (else its PCI bus id). A MIG slice has no power of its own: its parent
GPU's is read, with scope ``shared-board`` (shared with the other slices; never judged). On a C2C module
(GH200, GB200) the energy counter covers CPU, GPU and memory: the instant field is polled with module scope,
the scope is ``module``, and the GPU-only power is recorded beside it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from npucheck.measure.power.base import (
    CounterReset,
    PowerReadError,
    PowerSource,
    PowerSourceError,
    bus_id_coverage,
    device_label,
    device_runtime,
    normalize_bus_id,
    plausible_watts,
)

__all__ = [
    "CLOCK_EVENT_BITS",
    "COUNTER_UPDATE_S",
    "decode_clock_events",
    "driver_version",
    "FIELD_POWER_INSTANT",
    "gpu_processes",
    "handle_by_uuid",
    "LIMITING",
    "NVML_UNCERTAINTY",
    "NVML_VALUE_NOT_AVAILABLE",
    "NvmlSource",
]


NVML_UNCERTAINTY = 0.05
"""Yang et al. (SC'24): NVML's steady-state error is proportional, about ±5%, board to board."""
COUNTER_UPDATE_S = 0.1
FIELD_POWER_INSTANT = 186  # NVML_FI_DEV_POWER_INSTANT, when the binding lacks the constant
GPU_SCOPE, MODULE_SCOPE = 0, 1  # NVML_POWER_SCOPE_GPU / _MODULE: a field value's scopeId
CLOCK_EVENT_BITS = {
    0x1: "GpuIdle",
    0x2: "ApplicationsClocksSetting",
    0x4: "SwPowerCap",
    0x8: "HwSlowdown",
    0x10: "SyncBoost",
    0x20: "SwThermalSlowdown",
    0x40: "HwThermalSlowdown",
    0x80: "HwPowerBrakeSlowdown",
    0x100: "DisplayClockSetting",
    0x200: "BoardLimit",
    0x400: "Reliability",  # nvmlClocksThrottleReasonBoardLimit / ...Reliability
}
LIMITING = {
    "SwPowerCap",
    "HwSlowdown",
    "SwThermalSlowdown",
    "HwThermalSlowdown",
    "HwPowerBrakeSlowdown",
    "BoardLimit",
    "Reliability",
}
"""Clock-event reasons that mean the GPU ran slower than it could (idle and app-clock settings do not)."""


def decode_clock_events(mask: int) -> list[str]:
    """Names of the bits set in an NVML clock-event mask; a bit this version does not know is kept as
    ``Unknown(0x...)`` (a newer driver's reason must not vanish)."""
    names = [name for bit, name in CLOCK_EVENT_BITS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_EVENT_BITS)
    bit = 1
    while unknown:
        if unknown & bit:
            names.append(f"Unknown({bit:#x})")
            unknown &= ~bit
        bit <<= 1
    return names


def _import_nvml() -> Any:
    try:
        import pynvml
    except ImportError as e:
        raise PowerSourceError("nvml: nvidia-ml-py is not installed") from e
    return pynvml


class NvmlSource(PowerSource):
    """Board power and energy of one NVIDIA GPU (module power on a Grace-Hopper/Blackwell C2C module).

    Which GPU: ``uuid`` (torch's, with or without the ``GPU-``/``MIG-`` prefix; a MIG slice is followed to its
    parent GPU), else ``bus_id`` (PCI), else ``index`` (NVML's own order, which is PCI order, not CUDA's),
    else the only GPU NVML sees. Several GPUs and nothing to tell them apart is refused: guessing GPU 0 could
    measure an idle board.
    """

    name = "nvml"
    scope = "board"
    uncertainty_rel = NVML_UNCERTAINTY

    def __init__(
        self, nvml: Any | None = None, uuid: str | None = None, index: int | None = None, bus_id: str | None = None
    ):
        self._nvml = nvml if nvml is not None else _import_nvml()
        self._lock = threading.Lock()  # NVML calls from the sampler thread and the runner
        nv = self._nvml
        try:
            nv.nvmlInit()
        except Exception as e:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
            raise PowerSourceError(f"nvml: no NVIDIA driver: {_describe(e)}") from e
        self._open = True
        self.mig_slice: str | None = None
        try:
            handle, self.found_by = self._find(uuid, index, bus_id)
            if _flag(self._try(lambda: nv.nvmlDeviceIsMigDeviceHandle(handle))):
                # a MIG slice has no power or energy of its own: read its parent GPU, whose power it shares
                self.mig_slice = _prefixed(uuid, "MIG-") if uuid else "a MIG slice"
                handle = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
            self._handle = handle
            self.device_name = _text(nv.nvmlDeviceGetName(self._handle))
        except PowerSourceError:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001
            self.close()
            raise PowerSourceError(f"nvml: GPU {uuid or bus_id or index} not found: {_describe(e)}") from e
        self.uuid = _text(self._try(lambda: nv.nvmlDeviceGetUUID(self._handle)) or "") or None
        pci = self._try(lambda: nv.nvmlDeviceGetPciInfo(self._handle))
        self.bus_id = normalize_bus_id(getattr(pci, "busId", None))
        c2c = self._try(lambda: nv.nvmlDeviceGetC2cModeInfoV(self._handle))
        self.c2c = bool(getattr(c2c, "isC2cEnabled", 0))
        if self.c2c:
            # Grace-Hopper / Grace-Blackwell: the energy counter covers the module (CPU, GPU, memory), so the
            # polled power must too; the GPU alone is kept beside it as evidence
            self.scope = "module"
        self._counter = self._try(self._raw_energy_mj) is not None
        self._last_mj: int | None = None
        self._instant = self._try(self._instant_mw) is not None
        self._gpu_only = self.c2c and self._try(lambda: self._field_mw(GPU_SCOPE)) is not None
        self._average = (
            not self._instant
            and not self.c2c
            and self._try(lambda: nv.nvmlDeviceGetPowerUsage(self._handle)) is not None
        )
        if not (self._counter or self._instant or self._average):
            self.close()
            raise PowerSourceError(
                f"nvml: {self.device_name} answers NotSupported to every energy and power query "
                "(Jetson, vGPU or a pre-Volta board?)"
            )
        self.quality = "Q2" if self._counter else "Q1"
        self.counter_update_s = COUNTER_UPDATE_S if self._counter else None
        self.power_update_s = 0.1 if self._instant else 1.0
        self.power_average_s = None if self._instant else 1.0  # nvmlDeviceGetPowerUsage: a 1 s average
        mig = self._try(lambda: nv.nvmlDeviceGetMigMode(self._handle))
        self.mig = bool(self.mig_slice) or bool(mig and mig[0])
        if self.mig:
            self.scope = "shared-board"
        parts = [
            self.device_name,
            "energy counter" if self._counter else "no energy counter (power integrated)",
            ("module instant power field" if self.c2c else "instant power field")
            if self._instant
            else "power from nvmlDeviceGetPowerUsage (a 1 s average on Ampere and newer)"
            if self._average
            else "no power reading",
        ]
        if self.c2c:
            parts.append(
                "C2C module: energy and power cover the whole module (CPU, GPU, memory)"
                + ("; GPU-only power kept beside it" if self._gpu_only else "")
            )
        if self.mig:
            parts.append(
                f"MIG enabled ({self.mig_slice or 'slices'}): the whole GPU's power, shared with the "
                "other slices, never judged"
            )
        self.detail = "; ".join(parts)

    def _find(self, uuid: str | None, index: int | None, bus_id: str | None) -> tuple[Any, str]:
        nv = self._nvml
        if uuid:
            return handle_by_uuid(nv, str(uuid))
        if index is not None:
            return nv.nvmlDeviceGetHandleByIndex(index), f"NVML index {index}"
        count = int(nv.nvmlDeviceGetCount())
        if bus_id:
            wanted = normalize_bus_id(bus_id)
            for i in range(count):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                pci = self._try(lambda: nv.nvmlDeviceGetPciInfo(handle))  # noqa: B023 - called at once, inside this iteration
                if wanted and normalize_bus_id(getattr(pci, "busId", None)) == wanted:
                    return handle, f"PCI bus id {wanted}"
            raise PowerSourceError(f"nvml: no GPU at PCI bus id {bus_id}")
        if count == 1:
            return nv.nvmlDeviceGetHandleByIndex(0), "the only GPU NVML sees"
        raise PowerSourceError(
            f"nvml: {count} GPUs and no UUID or PCI bus id to tell which is the device under "
            "test; name one with nvml:INDEX (NVML's PCI order, not CUDA's)"
        )

    def check_coverage(self, device: dict[str, Any]) -> tuple[bool | None, str]:
        label = device_label(device)
        runtime = device_runtime(device)
        if device.get("backend") != "cuda" or runtime != "cuda":
            return False, f"NVML measures an NVIDIA GPU, not {label} ({runtime})"
        if self.mig:
            return False, (
                f"{label} is {self.mig_slice or 'a MIG slice'}: NVML has power only for the whole GPU "
                f"{self.uuid or ''}, shared with the other slices".replace("  ", " ")
            )
        props = device.get("properties") or {}
        theirs = _bare_uuid(props.get("uuid"))
        if theirs and self.uuid:
            if theirs == _bare_uuid(self.uuid):
                return True, f"NVML UUID {self.uuid} matches {label}" + (
                    " (module power: GPU, CPU and memory)" if self.c2c else ""
                )
            return False, f"NVML GPU {self.uuid} is not {label} (GPU-{theirs})"
        by_bus = bus_id_coverage("NVML GPU", self.bus_id, device)
        if by_bus is not None:
            return by_bus
        if self.found_by == "the only GPU NVML sees":
            return True, f"{label} is the only GPU NVML sees ({self.uuid or self.device_name})"
        return None, f"torch gave no UUID or PCI bus id for {label}: cannot tell whether NVML {self.found_by} is it"

    # ------------------------------------------------------------------------------------------------ reads
    def _try(self, fn: Any) -> Any:
        try:
            with self._lock:
                return fn()
        except Exception:  # noqa: BLE001 - NotSupported and friends: the capability is absent
            return None

    def _raw_energy_mj(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def _field_mw(self, scope: int | None) -> int:
        """The instant-power field; ``scope`` None asks plainly (GPU), else (field, scopeId) as pynvml takes it."""
        nv = self._nvml
        field = getattr(nv, "NVML_FI_DEV_POWER_INSTANT", FIELD_POWER_INSTANT)
        (value,) = nv.nvmlDeviceGetFieldValues(self._handle, [field if scope is None else (field, scope)])
        if value.nvmlReturn != getattr(nv, "NVML_SUCCESS", 0):
            raise PowerReadError(f"nvml: power field returned error {value.nvmlReturn}")
        return int(value.value.uiVal)

    def _instant_mw(self) -> int:
        return self._field_mw(MODULE_SCOPE if self.c2c else None)

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
            # an unknown reason may be a limiting one: flag it rather than hide it
            out["throttle_reasons"] = [e for e in events if e in LIMITING or e.startswith("Unknown")]
        sm = self._try(lambda: nv.nvmlDeviceGetClockInfo(h, getattr(nv, "NVML_CLOCK_SM", 1)))
        if sm is not None:
            out["sm_clock_mhz"] = int(sm)
        temp = self._try(lambda: nv.nvmlDeviceGetTemperature(h, getattr(nv, "NVML_TEMPERATURE_GPU", 0)))
        if temp is not None:
            out["temperature_c"] = int(temp)
        if self._gpu_only:
            gpu = self._try(lambda: self._field_mw(GPU_SCOPE))
            if gpu is not None:
                out["gpu_power_w"] = gpu / 1e3  # the GPU alone, beside the module power that is integrated
        limit = self._try(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h))
        if limit is not None:
            out["power_limit_w"] = int(limit) / 1e3
        return out

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            device=self.device_name,
            mig=self.mig,
            mig_slice=self.mig_slice,
            uuid=self.uuid,
            pci_bus_id=self.bus_id,
            found_by=self.found_by,
            c2c=self.c2c,
            power_field=("instant_module" if self.c2c else "instant")
            if self._instant
            else "average_1s"
            if self._average
            else None,
        )
        return info

    def close(self) -> None:
        if getattr(self, "_open", False):
            self._open = False
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001, S110 - a failed shutdown leaves nothing to undo
                pass


def handle_by_uuid(nv: Any, uuid: str) -> tuple[Any, str]:
    """The NVML handle of the GPU or MIG slice with torch's UUID, and how it was found. torch reports the UUID
    without NVML's ``GPU-``/``MIG-`` prefix (under MIG it is the slice's), so both are tried.

    Raises:
        PowerSourceError: no GPU or slice has that UUID.
    """
    names = [uuid] if uuid.startswith(("GPU-", "MIG-")) else [f"GPU-{uuid}", f"MIG-{uuid}"]
    for name in names:
        try:
            return nv.nvmlDeviceGetHandleByUUID(name), f"UUID {name}"
        except Exception as e:  # noqa: BLE001
            if not _not_found(nv, e):
                raise
    raise PowerSourceError(f"nvml: no GPU or MIG slice has UUID {uuid} (tried {', '.join(names)})")


NVML_VALUE_NOT_AVAILABLE = 2**64 - 1
"""What ``usedGpuMemory`` holds when NVML cannot tell (under MIG, on Windows WDDM)."""


def gpu_processes(uuid: str, nvml: Any | None = None, own_pid: int | None = None) -> list[dict[str, Any]] | None:
    """Compute processes other than this one on the GPU (or MIG slice) with torch's UUID, or None when NVML is
    missing or cannot tell (never "no other load")."""
    try:
        nv = nvml if nvml is not None else _import_nvml()
        nv.nvmlInit()
    except Exception:  # noqa: BLE001 - no library, no driver
        return None
    try:
        handle, _ = handle_by_uuid(nv, uuid)
        procs = nv.nvmlDeviceGetComputeRunningProcesses(handle)
    except Exception:  # noqa: BLE001 - not found, NotSupported: cannot tell
        return None
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:  # noqa: BLE001, S110 - a failed shutdown leaves nothing to undo
            pass
    me = os.getpid() if own_pid is None else own_pid
    return [
        {
            "pid": int(p.pid),
            "used_memory_bytes": None if p.usedGpuMemory in (None, NVML_VALUE_NOT_AVAILABLE) else int(p.usedGpuMemory),
        }
        for p in procs
        if p.pid != me
    ]


def driver_version(nvml: Any | None = None) -> str | None:
    """The NVIDIA driver version NVML reports, or None without NVML."""
    try:
        nv = nvml if nvml is not None else _import_nvml()
        nv.nvmlInit()
    except Exception:  # noqa: BLE001
        return None
    try:
        return _text(nv.nvmlSystemGetDriverVersion())
    except Exception:  # noqa: BLE001
        return None
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:  # noqa: BLE001, S110 - a failed shutdown leaves nothing to undo
            pass


def _flag(value: Any) -> bool:
    """pynvml returns some flags as ctypes ints (nvmlDeviceIsMigDeviceHandle gives a c_uint)."""
    return bool(getattr(value, "value", value))


def _bare_uuid(value: Any) -> str | None:
    if not value:
        return None
    text = _text(value).strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text or None


def _prefixed(uuid: str, prefix: str) -> str:
    return uuid if uuid.startswith(("GPU-", "MIG-")) else prefix + uuid


def _not_found(nv: Any, error: BaseException) -> bool:
    code = getattr(error, "value", None)
    return code == getattr(nv, "NVML_ERROR_NOT_FOUND", 6) or code == getattr(nv, "NVML_ERROR_INVALID_ARGUMENT", 2)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"
