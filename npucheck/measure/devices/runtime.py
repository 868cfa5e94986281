"""The one place that calls torch's accelerator runtime: device count, the current device, streams, events.

:class:`AcceleratorDevice` talks to an accelerator only through an object with this interface, so tests can pass
a fake that models the documented semantics (``tests/fakes_accelerator.py``). The facts it encodes, read from
torch's own source (``torch/csrc/Event.cpp``, ``torch/accelerator/__init__.py``):

* ``torch.Event(device)`` keeps only the device *type* (``c10::Event(device->type(), …)``), not its index.
* ``Event.record()`` without a stream records on ``impl.getStream(impl.getDevice())``: the *current* device's
  current stream. A kernel on ``cuda:1`` runs on cuda:1's current stream whatever device is current, so an event
  recorded without a stream while cuda:0 is current times cuda:0's idle stream. Hence: make the device under test
  current, and record every event on that device's stream, explicitly.
* ``torch.accelerator.current_stream(device)`` returns the current stream of the given device.
* ``Event.elapsed_time`` is in milliseconds.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["TorchRuntime"]


class TorchRuntime:
    """The real runtime of one accelerator type (``cuda``, ``xpu``, ``npu``, …) through ``torch.accelerator``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._module = torch.get_device_module(kind)

    @property
    def rocm(self) -> bool:
        """True on a ROCm (HIP) build of torch, whose devices are also called ``cuda``."""
        return bool(torch.version.hip)

    def device_count(self) -> int:
        return int(torch.accelerator.device_count())

    def tensor_device(self, device: torch.device) -> torch.device:
        """Where tensors for ``device`` are built: the device itself."""
        return device

    def current_device_index(self) -> int:
        # torch 2.6 names it current_device_idx; 2.7 added current_device_index
        getter = getattr(torch.accelerator, "current_device_index", None) or torch.accelerator.current_device_idx
        return int(getter())

    def set_device_index(self, index: int) -> None:
        setter = getattr(torch.accelerator, "set_device_index", None) or torch.accelerator.set_device_idx
        setter(index)

    def current_stream(self, device: torch.device) -> Any:
        return torch.accelerator.current_stream(device)

    def event(self, device: torch.device) -> Any:
        return torch.Event(device, enable_timing=True)

    def synchronize(self, device: torch.device) -> None:
        torch.accelerator.synchronize(device)

    def device_name(self, device: torch.device) -> str | None:
        getter = getattr(self._module, "get_device_name", None)
        return None if getter is None else str(getter(device))

    def device_properties(self, device: torch.device) -> Any | None:
        getter = getattr(self._module, "get_device_properties", None)
        return None if getter is None else getter(device)

    def empty_cache(self) -> None:
        torch.accelerator.empty_cache()
