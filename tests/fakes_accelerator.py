"""A fake accelerator runtime at the device seam (``npucheck.measure.devices.runtime``) that models what torch
documents.

Semantics modelled, each from torch's source (``torch/csrc/Event.cpp``) or CUDA's documented behaviour:

* ``torch.Event(device)`` keeps only the device type: :class:`FakeEvent` remembers no index.
* ``Event.record()`` without a stream records on the *current* device's current stream; with a stream, on that
  stream (whose device type must match the event's).
* ``set_device_index`` changes which stream "current" means; kernels run on the stream of the device their
  tensors live on, whatever device is current (:meth:`FakeRuntime.launch` takes that device's index).
* A stream executes its work in order; an event's timestamp is when the stream reaches it; ``elapsed_time`` is in
  milliseconds and raises when either event was never recorded (CUDA: "Both events must be recorded").
* Several devices, each with a UUID and a PCI address, reported as CUDA does (``uuid`` without the ``GPU-``
  prefix; under MIG it is the MIG instance's UUID). A CUDA build of torch fills ``gcnArchName`` with the device
  name too, so it says nothing about AMD; only ``torch.version.hip`` does (``rocm=True`` here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "6b4c1f0e-0000-4000-8000-000000000000"
    pci: tuple[int, int, int] = (0, 0x1B, 0)
    total_memory: int = 80 * 2**30
    L2_cache_size: int = 50 * 2**20
    multi_processor_count: int = 132
    major: int = 9
    minor: int = 0


@dataclass
class FakeStream:
    device_type: str
    device_index: int
    tail_s: float = 0.0
    """When the work queued so far ends, on the device's timeline."""
    launches: int = 0


@dataclass
class FakeProps:
    name: str
    uuid: str
    pci_domain_id: int
    pci_bus_id: int
    pci_device_id: int
    total_memory: int
    L2_cache_size: int
    multi_processor_count: int
    major: int
    minor: int
    gcnArchName: str


class FakeEvent:
    def __init__(self, runtime: FakeRuntime, device_type: str):
        self._runtime = runtime
        self.device_type = device_type  # the index is dropped, as c10::Event(device->type(), ...) does
        self.stamp_s: float | None = None
        self.stream: FakeStream | None = None

    def record(self, stream: FakeStream | None = None) -> None:
        if stream is None:
            stream = self._runtime.streams[self._runtime.current]
        if stream.device_type != self.device_type:
            raise RuntimeError("Event device type does not match the stream's")
        self.stream = stream
        self.stamp_s = self._runtime.stamp(stream)

    def synchronize(self) -> None:
        if self.stream is not None:
            self._runtime.synchronized.append(self.stream.device_index)

    def elapsed_time(self, end: FakeEvent) -> float:
        if self.stamp_s is None or end.stamp_s is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        return (end.stamp_s - self.stamp_s) * 1e3


@dataclass
class FakeRuntime:
    """Several accelerators of one type; ``launch(index, seconds)`` is a kernel on device ``index``."""

    kind: str = "cuda"
    gpus: list[FakeGpu] = field(default_factory=lambda: [FakeGpu()])
    rocm: bool = False
    events: bool = True
    current: int = 0
    synchronized: list[int] = field(default_factory=list)
    host_device: int | None = None
    """For end-to-end runs: this device's tensors live on the host, its kernels are real (synchronous) CPU work,
    and its stream's timeline is the host clock; every other device stays idle (its timeline does not move)."""

    def __post_init__(self) -> None:
        self.streams = [FakeStream(self.kind, i) for i in range(len(self.gpus))]

    # --------------------------------------------------------------------------- what the device seam calls
    def tensor_device(self, device: torch.device) -> torch.device:
        return torch.device("cpu") if device.index == self.host_device else device

    def stamp(self, stream: FakeStream) -> float:
        """When the stream reaches an event recorded now."""
        host = time.perf_counter() if stream.device_index == self.host_device else 0.0
        return host + stream.tail_s

    def device_count(self) -> int:
        return len(self.gpus)

    def current_device_index(self) -> int:
        return self.current

    def set_device_index(self, index: int) -> None:
        if not 0 <= index < len(self.gpus):
            raise RuntimeError(f"invalid device ordinal {index}")
        self.current = index

    def current_stream(self, device: torch.device | None = None) -> FakeStream:
        index = self.current if device is None or device.index is None else device.index
        return self.streams[index]

    def event(self, device: torch.device) -> FakeEvent:
        if not self.events:
            raise RuntimeError(f"{self.kind} has no timing events")
        return FakeEvent(self, device.type)

    def synchronize(self, device: torch.device) -> None:
        self.synchronized.append(self.current if device.index is None else device.index)

    def device_name(self, device: torch.device) -> str:
        return self.gpus[device.index or 0].name

    def device_properties(self, device: torch.device) -> FakeProps:
        gpu = self.gpus[device.index or 0]
        domain, bus, dev = gpu.pci
        # CUDA builds fill gcnArchName with the device name; ROCm builds with the arch (gfx942:sramecc+:xnack-)
        arch = "gfx942:sramecc+:xnack-" if self.rocm else gpu.name
        return FakeProps(
            gpu.name,
            gpu.uuid,
            domain,
            bus,
            dev,
            gpu.total_memory,
            gpu.L2_cache_size,
            gpu.multi_processor_count,
            gpu.major,
            gpu.minor,
            arch,
        )

    def empty_cache(self) -> None:
        pass

    # --------------------------------------------------------------------------- what a test's kernel does
    def launch(self, index: int, seconds: float) -> None:
        """A kernel whose tensors live on device ``index``: it runs on that device's current stream."""
        stream = self.streams[index]
        stream.tail_s += seconds
        stream.launches += 1

    def kernel(self, index: int, seconds: float) -> Any:
        return lambda: self.launch(index, seconds)


def two_h100s(**kwargs: Any) -> FakeRuntime:
    """Two GPUs whose CUDA order (fastest first) differs from their PCI order."""
    return FakeRuntime(
        gpus=[
            FakeGpu(uuid="aaaaaaaa-0000-4000-8000-000000000001", pci=(0, 0xC3, 0)),
            FakeGpu(uuid="bbbbbbbb-0000-4000-8000-000000000002", pci=(0, 0x1B, 0)),
        ],
        **kwargs,
    )
