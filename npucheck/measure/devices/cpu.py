"""The CPU as a device: the host clock times calls, the flush zeroes twice the last-level cache, and sysfs and
/proc (roots injectable for tests) say what the CPU is."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from npucheck.measure.devices.base import CPU_FLUSH_MAX_BYTES, CPU_FLUSH_MIN_BYTES, HOST_CLOCK, Device, _safe

__all__ = ["cpu_caches", "cpu_model", "CpuDevice"]


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
