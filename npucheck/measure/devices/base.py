"""What every device offers the timing code: synchronize, time calls, flush caches, describe itself.

:class:`Device` is the base of :class:`~npucheck.measure.devices.cpu.CpuDevice` (the host clock) and
:class:`~npucheck.measure.devices.accelerator.AcceleratorDevice` (events on the device's stream).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from npucheck.kernels.lowp import LOW_PRECISION_DTYPES, support_reason

__all__ = [
    "ACCELERATOR_FLUSH_MIN_BYTES",
    "CPU_FLUSH_MAX_BYTES",
    "CPU_FLUSH_MIN_BYTES",
    "Device",
    "DEVICE_EVENTS",
    "DTYPES",
    "HOST_CLOCK",
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
        if dtype in LOW_PRECISION_DTYPES:  # int8 / fp8: torch._int_mm / torch._scaled_mm, with their own limits
            return support_reason(dtype, self.torch_device)
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
