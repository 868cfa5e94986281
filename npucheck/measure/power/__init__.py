"""The energy seam: find power sources, say why others are missing, open the one that covers the device.

``--power SPEC``:

=========================  ==========================================================================
``auto`` (default)         the source that covers the device under test: NVML for an NVIDIA GPU, amdsmi
                           then hwmon (amdgpu) for an AMD GPU, RAPL packages for the CPU; none if absent
``none``                   measure no power
``nvml[:INDEX]``           NVIDIA GPU (default: the GPU under test, found by UUID, else PCI bus id)
``rapl[:package|psys|dram]``  Linux powercap RAPL zones, chosen by name
``hwmon[:DRIVER[:LABEL]]``   a hwmon sensor (amdgpu, ina3221 rails, ...)
``amdsmi[:INDEX]``         AMD GPU energy counter / socket power (default: found by PCI bus id)
``meter:PATH[,k=v...]``    an external meter's log (see npucheck.measure.power.meter); ``covers=yes`` to be judged
``constant:WATTS``         a figure you state (quality Q0: reported, never decides a verdict)
=========================  ==========================================================================

Every opened source states whether it covers the device under test (``covers_device``, ``coverage``): NVML
by UUID (or PCI bus id), amdsmi and amdgpu hwmon by PCI bus id, RAPL only for the CPU, a meter as the user states.
TFLOPS/W from a source that does not cover the device is shown but never judged.

Nothing is probed at import time; each source receives what it reads (a sysfs root, an NVML-like module).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npucheck.measure.power.base import PowerSource, PowerSourceError, device_runtime

__all__ = ["PowerSource", "PowerSourceError", "SourceStatus", "open_source", "probe_all", "sysfs_root"]


@dataclass(frozen=True)
class SourceStatus:
    """Whether a power source is usable here, and why not when it is not."""

    name: str
    found: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "found": self.found, "detail": self.detail}


def sysfs_root() -> Path:
    """``NPUCHECK_SYSFS_ROOT`` (default ``/sys``): lets tests and containers point at another sysfs."""
    return Path(os.environ.get("NPUCHECK_SYSFS_ROOT", "/sys"))


def _status(name: str, opener: Any) -> SourceStatus:
    """Open a source for real (the probe must exercise the actual reads), describe it, close it."""
    try:
        source = opener()
    except PowerSourceError as e:
        return SourceStatus(name, False, str(e).split(": ", 1)[-1])
    try:
        return SourceStatus(name, True, f"{source.detail} [{source.quality}, scope {source.scope}]")
    finally:
        source.close()


def probe_nvml(nvml: Any | None = None) -> SourceStatus:
    from npucheck.measure.power.nvml import NvmlSource

    return _status("nvml", lambda: NvmlSource(nvml, index=0))  # is NVML usable at all: its first GPU answers


def probe_rapl(root: Path | None = None) -> SourceStatus:
    from npucheck.measure.power.rapl import RaplSource

    return _status("rapl", lambda: RaplSource(root or sysfs_root()))


def probe_hwmon(root: Path | None = None) -> SourceStatus:
    from npucheck.measure.power.hwmon import HwmonSource

    return _status("hwmon", lambda: HwmonSource(root or sysfs_root()))


def probe_amdsmi(amdsmi: Any | None = None) -> SourceStatus:
    from npucheck.measure.power.amd import AmdSmiSource

    # the real half-second validation: with no wait a healthy counter would look frozen
    return _status("amdsmi", lambda: AmdSmiSource(amdsmi, index=0))


def probe_all() -> list[SourceStatus]:
    return [probe_nvml(), probe_rapl(), probe_hwmon(), probe_amdsmi()]


def open_source(
    spec: str,
    device: dict[str, Any] | None = None,
    root: Path | None = None,
    nvml: Any | None = None,
    amdsmi: Any | None = None,
    measure_update: bool = True,
) -> tuple[PowerSource | None, list[str]]:
    """Open the power source ``spec`` names for the device under test, and say whether it covers that device.

    Args:
        spec: a ``--power`` value.
        device: the device's ``describe()`` dict (backend, runtime, id, properties.uuid / pci_bus_id).
        root: the sysfs root (default ``sysfs_root()``).
        nvml, amdsmi: vendor modules to use instead of importing them (tests pass fakes).
        measure_update: measure the counter's update period now (waits for two changes, up to a second).

    Returns:
        (source, notes): the source, or None for ``none`` / nothing found by ``auto``, with one note per source
        tried and why it could not be used. The source's ``covers_device`` (True / False / None) and
        ``coverage`` (how that was decided) are set: only True lets its TFLOPS/W be judged.

    Raises:
        PowerSourceError: an explicitly named source cannot be used, or the spec is malformed.
    """
    spec = spec.strip()
    kind = spec.partition(":")[0].lower()
    device = device or {"backend": "cpu"}
    if kind == "none":
        return None, ["power measurement turned off (--power none)"]
    if kind == "auto":
        notes: list[str] = []
        for candidate in _auto_candidates(device):
            try:
                return open_source(candidate, device, root, nvml, amdsmi, measure_update)[0], notes
            except PowerSourceError as e:
                notes.append(str(e))
        return None, notes or [f"no power source is known for a {device.get('backend')} device"]
    source = _open(spec, device, root or sysfs_root(), nvml, amdsmi)
    try:
        source.covers_device, source.coverage = source.check_coverage(device)
        if measure_update:
            source.measure_update()
    except BaseException:
        source.close()
        raise
    return source, []


def _open(spec: str, device: dict[str, Any], root: Path, nvml: Any | None, amdsmi: Any | None) -> PowerSource:
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    props = device.get("properties") or {}
    on_gpu = device.get("backend") == "cuda"
    if kind == "rapl":
        from npucheck.measure.power.rapl import RaplSource

        return RaplSource(root, arg or "package")
    if kind == "hwmon":
        from npucheck.measure.power.hwmon import GPU_DRIVERS, HwmonSource

        driver, _, label = arg.partition(":")
        bus = (
            props.get("pci_bus_id") if driver in GPU_DRIVERS and device_runtime(device) == GPU_DRIVERS[driver] else None
        )
        return HwmonSource(root, driver or None, label or None, bus_id=bus)
    if kind == "nvml":
        from npucheck.measure.power.nvml import NvmlSource

        if arg:
            return NvmlSource(nvml, index=_index(arg, "nvml"))
        if on_gpu and device_runtime(device) == "cuda":
            return NvmlSource(nvml, uuid=props.get("uuid") or None, bus_id=props.get("pci_bus_id") or None)
        return NvmlSource(nvml)  # another device: the only GPU, or refused as ambiguous; never covers it
    if kind == "amdsmi":
        from npucheck.measure.power.amd import AmdSmiSource

        if arg:
            return AmdSmiSource(amdsmi, index=_index(arg, "amdsmi"))
        bus = props.get("pci_bus_id") if device_runtime(device) == "rocm" else None
        return AmdSmiSource(amdsmi, bus_id=bus or None)
    if kind == "meter":
        return _open_meter(arg)
    if kind == "constant":
        from npucheck.measure.power.meter import ConstantSource

        try:
            watts = float(arg)
        except ValueError as e:
            raise PowerSourceError(f"constant: expected watts, e.g. constant:350, not {arg!r}") from e
        return ConstantSource(watts)
    raise PowerSourceError(
        f"unknown power source {spec!r} (auto, none, nvml, rapl, hwmon, amdsmi, meter:PATH, constant:WATTS)"
    )


def _auto_candidates(device: dict[str, Any]) -> list[str]:
    """Sources that can cover the device, by its runtime (``rocm`` exactly when torch.version.hip is set): CUDA
    builds of torch fill ``gcnArchName`` too, so that property says nothing about the vendor."""
    runtime = device_runtime(device)
    if runtime == "rocm":
        return ["amdsmi", "hwmon:amdgpu"]
    if runtime == "cuda":
        return ["nvml"]
    if runtime == "cpu":
        return ["rapl:package"]
    return []


def _index(text: str, kind: str) -> int:
    try:
        return int(text)
    except ValueError as e:
        raise PowerSourceError(f"{kind}: expected a GPU index, not {text!r}") from e


def _yes_no(value: str) -> bool:
    if value.lower() in ("yes", "true", "1"):
        return True
    if value.lower() in ("no", "false", "0"):
        return False
    raise ValueError(value)


def _open_meter(arg: str) -> PowerSource:
    from npucheck.measure.power.meter import MeterLogSource

    path, *options = arg.split(",")
    if not path:
        raise PowerSourceError("meter: give the log's path, e.g. meter:/var/log/meter.csv")
    kwargs: dict[str, Any] = {}
    names: dict[str, tuple[str, Callable[[str], Any]]] = {
        "accuracy": ("accuracy", float),
        "sample": ("sample_type", str),
        "period": ("period_s", float),
        "scope": ("scope", str),
        "offset": ("offset_s", float),
        "tz": ("local_time", lambda v: v == "local"),
        "covers": ("covers", _yes_no),
    }
    for option in options:
        key, _, value = option.partition("=")
        if key not in names:
            raise PowerSourceError(f"meter: unknown option {key!r} (known: {', '.join(names)})")
        name, convert = names[key]
        try:
            kwargs[name] = convert(value)
        except ValueError as e:
            raise PowerSourceError(f"meter: {key}={value!r} is not valid") from e
    return MeterLogSource(path, **kwargs)
