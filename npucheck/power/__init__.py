"""The energy seam: find power sources, say why others are missing, open the one that covers the device.

``--power SPEC``:

=========================  ==========================================================================
``auto`` (default)         the source that covers the device under test: NVML for an NVIDIA GPU, amdsmi
                           then hwmon (amdgpu) for an AMD GPU, RAPL packages for the CPU; none if absent
``none``                   measure no power
``nvml[:INDEX]``           NVIDIA GPU (default: the GPU under test, found by UUID)
``rapl[:package|psys|dram]``  Linux powercap RAPL zones, chosen by name
``hwmon[:DRIVER[:LABEL]]``   a hwmon sensor (amdgpu, ina3221 rails, ...)
``amdsmi[:INDEX]``         AMD GPU energy counter / socket power
``meter:PATH[,k=v...]``    an external meter's log (see npucheck.power.meter)
``constant:WATTS``         a figure you state (quality Q0: reported, never decides a verdict)
=========================  ==========================================================================

Nothing is probed at import time; each source receives what it reads (a sysfs root, an NVML-like module).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npucheck.power.base import PowerSource, PowerSourceError

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
    from npucheck.power.nvml import NvmlSource

    return _status("nvml", lambda: NvmlSource(nvml))


def probe_rapl(root: Path | None = None) -> SourceStatus:
    from npucheck.power.rapl import RaplSource

    return _status("rapl", lambda: RaplSource(root or sysfs_root()))


def probe_hwmon(root: Path | None = None) -> SourceStatus:
    from npucheck.power.hwmon import HwmonSource

    return _status("hwmon", lambda: HwmonSource(root or sysfs_root()))


def probe_amdsmi(amdsmi: Any | None = None) -> SourceStatus:
    from npucheck.power.amd import AmdSmiSource

    # the real half-second validation: with no wait a healthy counter would look frozen
    return _status("amdsmi", lambda: AmdSmiSource(amdsmi))


def probe_all() -> list[SourceStatus]:
    return [probe_nvml(), probe_rapl(), probe_hwmon(), probe_amdsmi()]


def open_source(spec: str, device: dict[str, Any] | None = None, root: Path | None = None,
                nvml: Any | None = None, amdsmi: Any | None = None) -> tuple[PowerSource | None, list[str]]:
    """Open the power source ``spec`` names for the device under test.

    Args:
        spec: a ``--power`` value.
        device: the device's ``describe()`` dict (backend, properties.uuid), for ``auto`` and ``nvml``.
        root: the sysfs root (default ``sysfs_root()``).
        nvml, amdsmi: vendor modules to use instead of importing them (tests pass fakes).

    Returns:
        (source, notes): the source, or None for ``none`` / nothing found by ``auto``, with one note per source
        tried and why it could not be used.

    Raises:
        PowerSourceError: an explicitly named source cannot be used, or the spec is malformed.
    """
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    root = root or sysfs_root()
    device = device or {"backend": "cpu"}
    if kind == "none":
        return None, ["power measurement turned off (--power none)"]
    if kind == "auto":
        notes = []
        for candidate in _auto_candidates(device):
            try:
                return open_source(candidate, device, root, nvml, amdsmi)[0], notes
            except PowerSourceError as e:
                notes.append(str(e))
        return None, notes or [f"no power source is known for a {device.get('backend')} device"]
    if kind == "rapl":
        from npucheck.power.rapl import RaplSource

        return RaplSource(root, arg or "package"), []
    if kind == "hwmon":
        from npucheck.power.hwmon import HwmonSource

        driver, _, label = arg.partition(":")
        return HwmonSource(root, driver or None, label or None), []
    if kind == "nvml":
        from npucheck.power.nvml import NvmlSource

        if arg:
            return NvmlSource(nvml, index=_index(arg, "nvml")), []
        uuid = (device.get("properties") or {}).get("uuid")
        if device.get("backend") == "cuda" and uuid:
            uuid = str(uuid)
            return NvmlSource(nvml, uuid=uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"), []
        return NvmlSource(nvml, index=0), []
    if kind == "amdsmi":
        from npucheck.power.amd import AmdSmiSource

        return AmdSmiSource(amdsmi, index=_index(arg, "amdsmi") if arg else 0), []
    if kind == "meter":
        return _open_meter(arg), []
    if kind == "constant":
        from npucheck.power.meter import ConstantSource

        try:
            watts = float(arg)
        except ValueError as e:
            raise PowerSourceError(f"constant: expected watts, e.g. constant:350, not {arg!r}") from e
        return ConstantSource(watts), []
    raise PowerSourceError(f"unknown power source {spec!r} (auto, none, nvml, rapl, hwmon, amdsmi, meter:PATH, "
                           "constant:WATTS)")


def _auto_candidates(device: dict[str, Any]) -> list[str]:
    backend = device.get("backend")
    props = device.get("properties") or {}
    if backend == "cuda" and props.get("gcnArchName"):
        return ["amdsmi", "hwmon:amdgpu"]
    if backend == "cuda":
        return ["nvml"]
    if backend == "cpu":
        return ["rapl:package"]
    return []


def _index(text: str, kind: str) -> int:
    try:
        return int(text)
    except ValueError as e:
        raise PowerSourceError(f"{kind}: expected a GPU index, not {text!r}") from e


def _open_meter(arg: str) -> PowerSource:
    from npucheck.power.meter import MeterLogSource

    path, *options = arg.split(",")
    if not path:
        raise PowerSourceError("meter: give the log's path, e.g. meter:/var/log/meter.csv")
    kwargs: dict[str, Any] = {}
    names = {"accuracy": ("accuracy", float), "sample": ("sample_type", str), "period": ("period_s", float),
             "scope": ("scope", str), "offset": ("offset_s", float), "tz": ("local_time", lambda v: v == "local")}
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
