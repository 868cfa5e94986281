"""The accelerator seam: find devices, synchronize, time a region, flush caches, describe the device.

Written against ``torch.accelerator`` (torch >= 2.6) so that CUDA, ROCm, XPU, MPS and out-of-tree backends
(Ascend ``npu``, ``mlu``, ``hpu``, …) share one code path; the CPU is a separate, simpler class because it has no
events and ``torch.accelerator`` raises on CPU-only builds.

Status: the CPU path is exercised by the test suite and by real runs. The accelerator path follows the
documented torch APIs but has not yet been run on real accelerator hardware by this project; it says so in
``describe()['validated']``.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from npucheck.errors import DeviceUnavailableError
from npucheck.measure.devices.runtime import TorchRuntime

__all__ = [
    "ACCELERATOR_FLUSH_MIN_BYTES",
    "accelerator_type",
    "AcceleratorDevice",
    "available_devices",
    "cpu_caches",
    "CPU_FLUSH_MAX_BYTES",
    "CPU_FLUSH_MIN_BYTES",
    "cpu_model",
    "CpuDevice",
    "Device",
    "DEVICE_EVENTS",
    "DTYPES",
    "HOST_CLOCK",
    "pci_address",
    "resolve_device",
    "VISIBLE_DEVICES_VARS",
]


DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

HOST_CLOCK = "host_clock_sync"
DEVICE_EVENTS = "device_events"

ACCELERATOR_FLUSH_MIN_BYTES = 256 * 2**20
"""mamf-finder and triton flush 256 MiB, 'the highest value so far across all recent accelerators'."""
CPU_FLUSH_MAX_BYTES = 256 * 2**20
"""On CPUs we zero 2 × the last-level cache but at most 256 MiB. Virtual machines often report the whole host's
L3 (504 MiB on our CI machine), and zeroing 1 GiB before every sample would cost more than most cases; the
bytes actually flushed are recorded with every measurement."""
CPU_FLUSH_MIN_BYTES = 32 * 2**20


class Device:
    """A device that kernels run on. Subclasses implement the backend specifics."""

    backend: str
    torch_device: torch.device
    timing_method: str

    @property
    def id(self) -> str:
        return str(self.torch_device)

    @property
    def name(self) -> str:
        raise NotImplementedError

    def synchronize(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def cache_flush_bytes(self) -> int:
        raise NotImplementedError

    def time_calls(self, fn: Callable[[], object], calls: int) -> float:
        """Seconds taken by ``calls`` back-to-back calls of ``fn``, synchronized at both ends."""
        self.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        self.synchronize()
        return time.perf_counter() - start

    def make_flush(self) -> Callable[[], None]:
        """A function that evicts caches by zeroing a buffer (allocated once, here)."""
        nbytes = self.cache_flush_bytes()
        if nbytes <= 0:
            return lambda: None
        buffer = torch.empty(nbytes // 4, dtype=torch.int32, device=self.torch_device)
        buffer.zero_()  # first touch outside any timed region

        def flush() -> None:
            buffer.zero_()

        return flush

    def dtype_support(self, dtype: str) -> str | None:
        """None if the device can run a matrix product in ``dtype``, else the reason it cannot."""
        try:
            a = torch.ones((8, 8), dtype=DTYPES[dtype], device=self.torch_device)
            (a @ a).sum().item()
        except Exception as e:  # noqa: BLE001 - any backend failure means "not supported"
            return f"{dtype} matmul is not supported on {self.id}: {type(e).__name__}: {_first_line(e)}"
        return None

    def foreign_processes(self) -> list[dict[str, Any]] | None:
        """Other processes using this device, or None when the backend cannot tell."""
        return None

    @property
    def per_call_events(self) -> bool:
        """True when :meth:`time_each_call` can time single calls (device events); else calls are batched."""
        return False

    def empty_cache(self) -> None:
        """Return cached device memory to the driver (nothing to do on the host)."""

    def time_each_call(self, fn: Callable[[], object], flush: Callable[[], None], calls: int) -> list[float]:
        raise NotImplementedError("only devices with timing events time single calls")


class CpuDevice(Device):
    """The host CPU, timed with the host clock (no events)."""

    backend = "cpu"
    timing_method = HOST_CLOCK

    def __init__(self, sysfs_root: str | os.PathLike[str] = "/sys", proc_root: str | os.PathLike[str] = "/proc"):
        self.torch_device = torch.device("cpu")
        self._sysfs = Path(sysfs_root)
        self._proc = Path(proc_root)

    @property
    def name(self) -> str:
        return cpu_model(self._proc) or platform.processor() or platform.machine()

    def synchronize(self) -> None:
        """CPU kernels are synchronous in torch."""

    def caches(self) -> list[dict[str, Any]]:
        return cpu_caches(self._sysfs)

    def cache_flush_bytes(self) -> int:
        llc = max((c["size_bytes"] for c in self.caches() if c.get("type") in ("Unified", "Data")), default=0)
        return int(min(max(2 * llc, CPU_FLUSH_MIN_BYTES), CPU_FLUSH_MAX_BYTES))

    def describe(self) -> dict[str, Any]:
        import psutil

        return {
            "backend": self.backend,
            "id": self.id,
            "name": self.name,
            "timing_method": self.timing_method,
            "validated": True,
            "properties": {
                "physical_cores": psutil.cpu_count(logical=False),
                "logical_cores": psutil.cpu_count(logical=True),
                "torch_threads": torch.get_num_threads(),
                "cpu_capability": _safe(torch.backends.cpu.get_cpu_capability),
                "caches": self.caches(),
                "memory_bytes": psutil.virtual_memory().total,
            },
            "datasheet": None,
        }


class AcceleratorDevice(Device):
    """A torch accelerator (cuda, xpu, mps, npu, …), timed with device events when the backend has them.

    The device under test is made current when the object is built, and every event is recorded on *its* current
    stream, explicitly (see :mod:`npucheck.measure.devices.runtime`): without that, ``--device cuda:1`` would time
    cuda:0's idle stream while the kernels ran on cuda:1.
    """

    def __init__(self, torch_device: torch.device, runtime: Any | None = None):
        self.backend = torch_device.type
        self.index = 0 if torch_device.index is None else int(torch_device.index)
        self.device = torch.device(self.backend, self.index)
        """The device under test, as the runtime's calls (events, streams, synchronize) name it."""
        self._runtime = runtime if runtime is not None else TorchRuntime(self.backend)
        self.torch_device = self._runtime.tensor_device(self.device)
        """Where the kernels' tensors are built: the device itself (a fake runtime may place them on the host)."""
        self._runtime.set_device_index(self.index)
        self.timing_method = DEVICE_EVENTS if self._events_work() else HOST_CLOCK

    @property
    def id(self) -> str:
        return str(self.device)

    def _stream(self) -> Any:
        """The device under test's current stream (where its kernels run), never the current device's."""
        return self._runtime.current_stream(self.device)

    def _events_work(self) -> bool:
        try:
            stream = self._stream()
            start = self._runtime.event(self.device)
            end = self._runtime.event(self.device)
            start.record(stream)
            end.record(stream)
            end.synchronize()
            start.elapsed_time(end)
        except Exception:  # noqa: BLE001 - backends without timing events raise various errors
            return False
        return True

    @property
    def name(self) -> str:
        try:
            return self._runtime.device_name(self.device) or self.id
        except Exception:  # noqa: BLE001
            return self.id

    def synchronize(self) -> None:
        self._runtime.synchronize(self.device)

    @property
    def per_call_events(self) -> bool:
        return self.timing_method == DEVICE_EVENTS

    def time_calls(self, fn: Callable[[], object], calls: int) -> float:
        if self.timing_method != DEVICE_EVENTS:
            return super().time_calls(fn, calls)
        stream = self._stream()
        start = self._runtime.event(self.device)
        end = self._runtime.event(self.device)
        start.record(stream)
        for _ in range(calls):
            fn()
        end.record(stream)
        end.synchronize()
        return start.elapsed_time(end) / 1e3  # elapsed_time is in milliseconds

    def time_each_call(self, fn: Callable[[], object], flush: Callable[[], None], calls: int) -> list[float]:
        """Seconds of each of ``calls`` calls, each with its own event pair and a cache flush before it (outside
        the pair), as triton's ``do_bench`` and mamf-finder do, so that every call starts cold. The flush is a
        long kernel (a memset of >= 256 MiB), so the host has queued the next start event and call before the
        device reaches them: the pair times the call, not the launch gap."""
        stream = self._stream()
        pairs = [(self._runtime.event(self.device), self._runtime.event(self.device)) for _ in range(calls)]
        for start, end in pairs:
            flush()
            start.record(stream)
            fn()
            end.record(stream)
        pairs[-1][1].synchronize()
        return [start.elapsed_time(end) / 1e3 for start, end in pairs]

    def _raw_properties(self) -> Any | None:
        try:
            return self._runtime.device_properties(self.device)
        except Exception:  # noqa: BLE001
            return None

    def _properties(self) -> dict[str, Any]:
        props = self._raw_properties()
        if props is None:
            return {}
        wanted = (
            "name",
            "total_memory",
            "multi_processor_count",
            "major",
            "minor",
            "L2_cache_size",
            "gcnArchName",
            "uuid",
            "max_compute_units",
            "gpu_eu_count",
        )
        out = {key: _jsonable(getattr(props, key)) for key in wanted if hasattr(props, key)}
        out["pci_bus_id"] = pci_address(props)
        return out

    def cache_flush_bytes(self) -> int:
        l2 = int(self._properties().get("L2_cache_size") or 0)
        return max(ACCELERATOR_FLUSH_MIN_BYTES, 2 * l2)

    def describe(self) -> dict[str, Any]:
        rocm = self.backend == "cuda" and self._runtime.rocm
        return {
            "backend": self.backend,
            "runtime": "rocm" if rocm else self.backend,
            "id": self.id,
            "index": self.index,
            "name": self.name,
            "timing_method": self.timing_method,
            "validated": False,
            "properties": self._properties(),
            "visible_devices": {name: os.environ[name] for name in VISIBLE_DEVICES_VARS if name in os.environ},
            "datasheet": None,
        }

    def empty_cache(self) -> None:
        self._runtime.empty_cache()

    def foreign_processes(self) -> list[dict[str, Any]] | None:
        if self.backend != "cuda" or self._runtime.rocm:
            return None
        uuid = self._properties().get("uuid")
        if not uuid:
            return None
        from npucheck.measure.power.nvml import gpu_processes  # NVML is opened only through npucheck.measure.power.nvml

        # NVML ignores CUDA_VISIBLE_DEVICES; the UUID maps torch's index to the right NVML handle
        return gpu_processes(str(uuid))


VISIBLE_DEVICES_VARS = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
    "ASCEND_RT_VISIBLE_DEVICES",
)


def pci_address(props: Any) -> str | None:
    """``domain:bus:device.function`` in lower-case hex (sysfs and amdsmi spelling) from torch's device properties
    (``pci_domain_id``, ``pci_bus_id``, ``pci_device_id``; function 0), or None when torch does not report them."""
    try:
        domain, bus, device = (int(getattr(props, key)) for key in ("pci_domain_id", "pci_bus_id", "pci_device_id"))
    except (AttributeError, TypeError, ValueError):
        return None
    return f"{domain:04x}:{bus:02x}:{device:02x}.0"


def accelerator_type() -> str | None:
    """The compiled-in accelerator type with at least one device present, or None."""
    try:
        if not torch.accelerator.is_available():
            return None
        accelerator = torch.accelerator.current_accelerator()
    except Exception:  # noqa: BLE001 - CPU-only builds raise rather than return None in older torch
        return None
    return accelerator.type if accelerator is not None else None


def available_devices() -> tuple[list[str], list[str]]:
    """Device ids usable here, and notes on accelerators that are not (for ``npucheck env``)."""
    ids: list[str] = []
    notes: list[str] = []
    kind = accelerator_type()
    if kind is None:
        notes.append(
            f"no torch accelerator: this torch {torch.__version__} build sees none "
            f"(CUDA compiled in: {torch.version.cuda or 'no'}, ROCm: {torch.version.hip or 'no'})"
        )
    else:
        ids.extend(f"{kind}:{i}" for i in range(torch.accelerator.device_count()))
    ids.append("cpu")
    return ids, notes


def resolve_device(spec: str = "auto", runtime: Any | None = None) -> Device:
    """Turn a ``--device`` value (auto, cpu, cuda, cuda:1, xpu:0, mps, npu:0, …) into a Device, made current.

    Args:
        spec: the ``--device`` value.
        runtime: an accelerator runtime to use instead of torch's (tests pass a fake; see
            :mod:`npucheck.measure.devices.runtime`).

    Raises:
        DeviceUnavailableError: the device type or index does not exist here.
    """
    spec = spec.strip().lower()
    kind = runtime.kind if runtime is not None else accelerator_type()
    if spec == "auto":
        spec = f"{kind}:0" if kind else "cpu"
    if spec == "cpu":
        return CpuDevice()
    try:
        torch_device = torch.device(spec)
    except (RuntimeError, ValueError) as e:
        raise DeviceUnavailableError(
            f"unknown device {spec!r}; available here: {', '.join(available_devices()[0])}"
        ) from e
    if torch_device.type != kind:
        raise DeviceUnavailableError(
            f"device {spec!r} is not available here; available: {', '.join(available_devices()[0])}"
        )
    index = 0 if torch_device.index is None else torch_device.index
    count = runtime.device_count() if runtime is not None else torch.accelerator.device_count()
    if index >= count:
        raise DeviceUnavailableError(f"device {spec!r} does not exist: {count} {kind} device(s) present")
    return AcceleratorDevice(torch.device(kind, index), runtime)


def cpu_model(proc_root: Path = Path("/proc")) -> str | None:
    try:
        for line in (proc_root / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_caches(sysfs_root: Path = Path("/sys")) -> list[dict[str, Any]]:
    """Caches of cpu0 from sysfs: level, type, size. Empty when sysfs does not say."""
    result = []
    base = sysfs_root / "devices/system/cpu/cpu0/cache"
    for index in sorted(base.glob("index*")):
        try:
            size_text = (index / "size").read_text().strip()
            result.append(
                {
                    "level": int((index / "level").read_text()),
                    "type": (index / "type").read_text().strip(),
                    "size_bytes": _parse_size(size_text),
                }
            )
        except (OSError, ValueError):
            continue
    return result


def _parse_size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    if text and text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
