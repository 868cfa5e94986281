"""Linux hwmon sensors: amdgpu and other drivers' power and energy files, and Jetson-style INA3221 rails.

Units (kernel Documentation/hwmon/sysfs-interface): ``power*_input`` / ``power*_average`` in µW,
``energy*_input`` cumulative µJ, ``in*_input`` mV, ``curr*_input`` mA (so mV × mA = µW).

Selection (``--power hwmon[:DRIVER[:LABEL]]``): the first hwmon device (or the one whose ``name`` is DRIVER)
with an energy counter, else a power reading; for a GPU driver (amdgpu, i915, xe) the one whose ``device`` link
is the PCI bus id of the device under test, and several with nothing to tell them apart are refused. Sensor files
sort by channel number (``power2`` before ``power10``). On an INA3221 (Jetson) the module's input rail
(``VDD_IN``, ``POM_5V_IN``) is used alone: its sub-rails are parts of it and are never added to it; ``LABEL``
picks another rail by its ``in*_label``, or a power file by its ``power*_label`` (amdgpu: ``PPT``, on APUs
``slowPPT``/``fastPPT``; ``slowPPT`` is an average and integrated as one). A driver npucheck does not know gets
scope ``unknown`` and is not judged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from npucheck.measure.power.base import (
    CounterReset,
    PowerReadError,
    PowerSource,
    PowerSourceError,
    bus_id_coverage,
    device_label,
    device_runtime,
    normalize_bus_id,
    plausible_watts,
)
from npucheck.model import PARTIAL_SCOPES

__all__ = [
    "ASSUMED_AVERAGE_S",
    "AVERAGED_LABELS",
    "DRIVER_SCOPES",
    "GPU_DRIVERS",
    "HWMON_UNCERTAINTY",
    "HwmonSource",
    "INPUT_RAILS",
    "pci_address",
]


HWMON_UNCERTAINTY = 0.10
"""hwmon drivers state no accuracy; we judge their figures with ±10%."""
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
DRIVER_SCOPES = {"amdgpu": "board", "i915": "board", "xe": "board", "ina3221": "module"}
GPU_DRIVERS = {"amdgpu": "rocm", "i915": "xpu", "xe": "xpu"}
"""hwmon drivers of a PCI GPU, with the runtime (``describe()["runtime"]``) of the devices they can cover."""
AVERAGED_LABELS = ("slowPPT",)
"""amdgpu on APUs (Van Gogh) labels its power "slowPPT": the slow package-power-tracking average, not a sample."""
ASSUMED_AVERAGE_S = 1.0


def _read(path: Path) -> str:
    return path.read_text().strip()


def _channel(path: Path) -> int:
    """``power10_input`` -> 10: sensor files sort by channel number (power2 before power10)."""
    match = re.match(r"[a-z]+(\d+)_", path.name)
    return int(match.group(1)) if match else 0


def _sorted(paths: Any) -> list[Path]:
    return sorted(paths, key=lambda p: (_channel(p), p.name))


def pci_address(path: Path) -> str | None:
    """The PCI bus id of the device a hwmon directory belongs to (its ``device`` link), or None."""
    try:
        return normalize_bus_id((path / "device").resolve().name)
    except OSError:
        return None


def _devices(root: Path) -> list[tuple[Path, str]]:
    base = root / "class/hwmon"
    found = []
    for path in sorted(base.glob("hwmon*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        try:
            found.append((path, _read(path / "name")))
        except OSError:
            continue
    return found


def _label(path: Path, sensor: Path) -> str | None:
    try:
        return _read(path / f"power{_channel(sensor)}_label")
    except OSError:
        return None


def _rails(path: Path) -> dict[str, str]:
    """INA3221-style rails: label -> channel number, for channels with both voltage and current."""
    rails = {}
    for label_file in _sorted(path.glob("in*_label")):
        channel = label_file.name[2 : -len("_label")]
        if (path / f"in{channel}_input").exists() and (path / f"curr{channel}_input").exists():
            try:
                rails[_read(label_file)] = channel
            except OSError:
                continue
    return rails


class HwmonSource(PowerSource):
    """One hwmon sensor: an energy counter (µJ), a power file (µW) or a voltage × current rail."""

    name = "hwmon"
    uncertainty_rel = HWMON_UNCERTAINTY

    def __init__(
        self, root: Path | str = "/sys", driver: str | None = None, label: str | None = None, bus_id: str | None = None
    ):
        base = Path(root) / "class/hwmon"
        if not base.is_dir():
            raise PowerSourceError(f"hwmon: {base} is not present")
        devices = [d for d in _devices(Path(root)) if driver is None or d[1] == driver]
        if not devices:
            raise PowerSourceError(
                f"hwmon: no device named {driver!r} under {base}" if driver else f"hwmon: no devices under {base}"
            )
        wanted = normalize_bus_id(bus_id)
        self.found_by = "the first sensor found"
        if wanted:
            matching = [d for d in devices if pci_address(d[0]) == wanted]
            if not matching:
                raise PowerSourceError(
                    f"hwmon: no {driver or 'hwmon'} device at PCI bus id {wanted} (found "
                    f"{', '.join(f'{n} {pci_address(p)}' for p, n in devices)})"
                )
            devices, self.found_by = matching, f"PCI bus id {wanted}"
        elif driver in GPU_DRIVERS:
            if len(devices) > 1:
                raise PowerSourceError(
                    f"hwmon: {len(devices)} {driver} devices "
                    f"({', '.join(str(pci_address(p)) for p, _ in devices)}) and no PCI bus id "
                    "to tell which is the device under test: ambiguous"
                )
            self.found_by = f"the only {driver} device"
        self._energy: Path | None = None
        self._power: Path | None = None
        self._rail: tuple[Path, Path] | None = None
        self._last_uj: int | None = None
        self._total_uj = 0
        self._rails_seen: list[str] = []
        for path, name in devices:
            if self._choose(path, name, label):
                self.device_path, self.driver = path, name
                break
        else:
            if self._rails_seen and not label:
                raise PowerSourceError(
                    f"hwmon: rails {', '.join(self._rails_seen)} but no module input rail "
                    f"({' or '.join(INPUT_RAILS)}); choose one with hwmon:DRIVER:LABEL"
                )
            raise PowerSourceError(
                f"hwmon: no power, energy or rail sensor{f' labelled {label!r}' if label else ''}"
                f" on {', '.join(n for _, n in devices)}"
                + (f" (rails: {', '.join(self._rails_seen)})" if self._rails_seen else "")
            )
        self.bus_id = pci_address(self.device_path)
        self.scope = DRIVER_SCOPES.get(self.driver, "unknown")  # an unknown driver's scope is not guessed
        if self._rail and self.rail_label not in INPUT_RAILS:
            self.scope = "soc-rail"
        self.quality = "Q2" if self._energy else "Q1"
        self.counter_update_s = 0.001 if self._energy else None
        self.power_update_s = None
        what = (
            f"energy counter {self._energy.name}"
            if self._energy
            else f"power file {self._power.name}"
            if self._power
            else f"rail {self.rail_label} (V x I)"
        )
        if self._power is not None and self.power_label:
            what += f" labelled {self.power_label!r}"
        if self._power is not None and self.power_average_s:
            what += f" (an average over {self.power_average_s:g} s)"
        self.detail = f"{self.driver} ({self.device_path.name}): {what}"

    def _choose(self, path: Path, name: str, label: str | None) -> bool:
        rails = _rails(path)
        if rails:
            wanted = label or next((r for r in INPUT_RAILS if r in rails), None)
            if wanted is None or wanted not in rails:
                self._rails_seen.extend(f"{name}:{r}" for r in rails)  # a Jetson may have several INA3221s
                return False
            channel = rails[wanted]
            self._rail = (path / f"in{channel}_input", path / f"curr{channel}_input")
            self.rail_label = wanted
            return True
        power = _sorted(path.glob("power*_input")) + _sorted(path.glob("power*_average"))
        labels = {p: _label(path, p) for p in power}
        if label:
            power = [p for p in power if labels[p] == label]  # hwmon:amdgpu:PPT picks a power file by its label
            if not power:
                return False
            energy = []
        else:
            energy = _sorted(path.glob("energy*_input"))
        if energy:
            self._energy = energy[0]
            try:
                self._last_uj = int(_read(self._energy))
            except PermissionError as e:
                raise PowerSourceError(f"hwmon: {self._energy}: permission denied") from e
            except (OSError, ValueError):
                self._energy = None
        self._power = power[0] if power else None  # beside a counter it is the cross-check
        self.power_label = labels.get(self._power) if self._power is not None else None
        if self._power is not None and (self._power.name.endswith("_average") or self.power_label in AVERAGED_LABELS):
            interval = path / f"power{_channel(self._power)}_average_interval"
            try:
                self.power_average_s = int(_read(interval)) / 1e3  # milliseconds
            except (OSError, ValueError):
                self.power_average_s = ASSUMED_AVERAGE_S  # not published: assume 1 s and say so in the detail
        return bool(self._energy or self._power)

    def check_coverage(self, device: dict[str, Any]) -> tuple[bool | None, str]:
        label = device_label(device)
        where = f"hwmon {self.driver} ({self.device_path.name})"
        if self.scope in PARTIAL_SCOPES:
            return False, f"{where}: rail {getattr(self, 'rail_label', '?')} is only part of {label}"
        if self.driver == "ina3221":
            return (
                True,
                f"{where}: the module input rail {getattr(self, 'rail_label', '')} covers the whole module, "
                f"{label} included",
            )
        runtime = GPU_DRIVERS.get(self.driver)
        if runtime is None:
            return None, f"{where}: a {self.driver} sensor; whether it measures {label} is unknown"
        if device_runtime(device) != runtime:
            return False, f"{where} measures a {self.driver} GPU, not {label} ({device_runtime(device)})"
        by_bus = bus_id_coverage(where, self.bus_id, device)
        if by_bus is not None:
            return by_bus
        if self.found_by == f"the only {self.driver} device" and runtime == "rocm":
            # amdgpu: torch reports the PCI bus id, so this is reached only for an old file or an odd build.
            # i915/xe are never matched this way: an integrated GPU may be xpu:0 while the only sensor is the
            # discrete card's, and torch's XPU properties carry no PCI address.
            return True, f"{where} is the only {self.driver} device, so it is {label}'s"
        return None, f"{where}: no PCI bus id to match with {label}"

    @property
    def has_counter(self) -> bool:
        return self._energy is not None

    @property
    def has_power(self) -> bool:
        return self._power is not None or self._rail is not None

    def read_energy_j(self) -> float:
        assert self._energy is not None
        try:
            raw = int(_read(self._energy))
        except (OSError, ValueError) as e:
            raise PowerReadError(f"hwmon: {self._energy.name}: {e}") from e
        if self._last_uj is not None and raw < self._last_uj:
            message = f"hwmon: {self._energy.name} fell from {self._last_uj} to {raw} uJ (no wrap range is published)"
            self._last_uj = raw
            raise CounterReset(message)
        self._total_uj += raw - (self._last_uj if self._last_uj is not None else raw)
        self._last_uj = raw
        return self._total_uj / 1e6

    def read_power_w(self) -> float:
        try:
            if self._rail is not None:
                millivolts, milliamps = (int(_read(p)) for p in self._rail)
                return plausible_watts(millivolts * milliamps / 1e6, f"hwmon {self.rail_label}")
            assert self._power is not None
            return plausible_watts(int(_read(self._power)) / 1e6, f"hwmon {self._power.name}")
        except (OSError, ValueError) as e:
            raise PowerReadError(f"hwmon: {e}") from e

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            driver=self.driver,
            path=str(self.device_path),
            pci_bus_id=self.bus_id,
            power_label=getattr(self, "power_label", None),
            found_by=self.found_by,
        )
        return info
