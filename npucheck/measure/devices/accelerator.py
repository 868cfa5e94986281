"""An accelerator through ``torch.accelerator`` (CUDA, ROCm, XPU, MPS, out-of-tree backends): made current when
built, events recorded on its own current stream, described with its UUID, PCI address and visible-device
variables. Every torch call goes through the runtime seam (:mod:`npucheck.measure.devices.runtime`), which tests
replace with a fake that follows torch's documented semantics."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from npucheck.measure.devices.base import ACCELERATOR_FLUSH_MIN_BYTES, DEVICE_EVENTS, HOST_CLOCK, Device, _jsonable
from npucheck.measure.devices.runtime import TorchRuntime

__all__ = ["AcceleratorDevice", "pci_address", "VISIBLE_DEVICES_VARS"]


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
