"""The energy seam. This version only *finds* power sources and says why others are missing; measuring energy
over a window (and so TFLOPS/W) is not implemented yet, and every TFLOPS/W criterion stays INCONCLUSIVE.

Probing touches no vendor library at import time; each probe receives what it reads (a sysfs root, an NVML-like
module) so tests can hand it fakes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SourceStatus:
    """Whether a power source is present here, and why not when it is not."""

    name: str
    found: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "found": self.found, "detail": self.detail}


def sysfs_root() -> Path:
    """``NPUCHECK_SYSFS_ROOT`` (default ``/sys``): lets tests and containers point at another sysfs."""
    return Path(os.environ.get("NPUCHECK_SYSFS_ROOT", "/sys"))


def probe_nvml(nvml: Any | None = None) -> SourceStatus:
    try:
        if nvml is None:
            import pynvml as nvml  # the nvidia-ml-py package
    except ImportError:
        return SourceStatus("nvml", False, "nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
    except Exception as e:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, …
        return SourceStatus("nvml", False, f"no NVIDIA driver: {type(e).__name__}: {e}")
    try:
        count = nvml.nvmlDeviceGetCount()
        return SourceStatus("nvml", count > 0, f"{count} NVIDIA GPU(s) visible to NVML")
    finally:
        nvml.nvmlShutdown()


def probe_rapl(root: Path | None = None) -> SourceStatus:
    base = (root or sysfs_root()) / "class/powercap"
    if not base.is_dir():
        return SourceStatus("rapl", False, f"{base} does not exist (no powercap driver, or masked in a container)")
    zones = sorted(p for p in base.glob("intel-rapl:*") if (p / "energy_uj").exists())
    if not zones:
        return SourceStatus("rapl", False, f"no RAPL zones with energy_uj under {base}")
    try:
        (zones[0] / "energy_uj").read_text()
    except PermissionError:
        return SourceStatus("rapl", False, f"{len(zones)} RAPL zone(s), but energy_uj is not readable "
                                           "(root only since Linux 5.10)")
    return SourceStatus("rapl", True, f"{len(zones)} readable RAPL zone(s): "
                        + ", ".join((z / "name").read_text().strip() for z in zones if (z / "name").exists()))


def probe_hwmon(root: Path | None = None) -> SourceStatus:
    base = (root or sysfs_root()) / "class/hwmon"
    if not base.is_dir():
        return SourceStatus("hwmon", False, f"{base} does not exist")
    sensors = [p for p in base.glob("hwmon*/*") if p.name.startswith(("power", "energy"))
               and p.name.endswith(("_input", "_average"))]
    if not sensors:
        return SourceStatus("hwmon", False, f"no power*_input/_average or energy*_input files under {base}")
    return SourceStatus("hwmon", True, f"{len(sensors)} power/energy sensor file(s)")


def probe_amdsmi() -> SourceStatus:
    try:
        import amdsmi  # noqa: F401 - the `amd` extra
    except ImportError:
        return SourceStatus("amdsmi", False, "amdsmi is not installed (pip install 'npucheck[amd]')")
    except Exception as e:  # noqa: BLE001 - amdsmi raises when its library is missing
        return SourceStatus("amdsmi", False, f"amdsmi cannot load: {e}")
    return SourceStatus("amdsmi", True, "amdsmi importable")


def probe_all() -> list[SourceStatus]:
    return [probe_nvml(), probe_rapl(), probe_hwmon(), probe_amdsmi()]


MEASUREMENT_STATUS = ("power measurement is not implemented in this version: sources are detected only, "
                      "and TFLOPS/W stays INCONCLUSIVE")
