"""The accelerator seam: find devices, synchronize, time a region, flush caches, describe the device.

Written against ``torch.accelerator`` (torch >= 2.6) so that CUDA, ROCm, XPU, MPS and out-of-tree backends
(Ascend ``npu``, ``mlu``, ``hpu``, …) share one code path; the CPU is a separate, simpler class because it has no
events and ``torch.accelerator`` raises on CPU-only builds.

Status: the CPU path is exercised by the test suite and by real runs. The accelerator path follows the
documented torch APIs but has not yet been run on real accelerator hardware by this project; it says so in
``describe()['validated']``.

Layout: ``base`` (the Device interface and flush sizes), ``cpu``, ``accelerator``, ``runtime`` (the seam to
torch's accelerator API); this module finds the devices present and turns a ``--device`` value into one.
"""

from __future__ import annotations

from typing import Any

import torch

from npucheck.errors import DeviceUnavailableError
from npucheck.measure.devices.accelerator import VISIBLE_DEVICES_VARS, AcceleratorDevice, pci_address
from npucheck.measure.devices.base import (
    ACCELERATOR_FLUSH_MIN_BYTES,
    CPU_FLUSH_MAX_BYTES,
    CPU_FLUSH_MIN_BYTES,
    DEVICE_EVENTS,
    DTYPES,
    HOST_CLOCK,
    Device,
)
from npucheck.measure.devices.cpu import CpuDevice, cpu_caches, cpu_model

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
