"""Linux hwmon sensors: amdgpu and other drivers' power and energy files, and Jetson-style INA3221 rails.

Units (kernel Documentation/hwmon/sysfs-interface): ``power*_input`` / ``power*_average`` in µW,
``energy*_input`` cumulative µJ, ``in*_input`` mV, ``curr*_input`` mA (so mV × mA = µW).

Selection (``--power hwmon[:DRIVER[:LABEL]]``): the first hwmon device (or the one whose ``name`` is DRIVER)
with an energy counter, else a power reading. On an INA3221 (Jetson) the module's input rail (``VDD_IN``,
``POM_5V_IN``) is used alone: its sub-rails are parts of it and are never added to it; ``LABEL`` picks another
rail by its ``in*_label``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from npucheck.power.base import CounterReset, PowerReadError, PowerSource, PowerSourceError, plausible_watts

HWMON_UNCERTAINTY = 0.10
"""hwmon drivers state no accuracy; we judge their figures with ±10%."""
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
DRIVER_SCOPES = {"amdgpu": "board", "i915": "board", "xe": "board", "ina3221": "module"}


def _read(path: Path) -> str:
    return path.read_text().strip()


def _devices(root: Path) -> list[tuple[Path, str]]:
    base = root / "class/hwmon"
    found = []
    for path in sorted(base.glob("hwmon*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        try:
            found.append((path, _read(path / "name")))
        except OSError:
            continue
    return found


def _rails(path: Path) -> dict[str, str]:
    """INA3221-style rails: label -> channel number, for channels with both voltage and current."""
    rails = {}
    for label_file in sorted(path.glob("in*_label")):
        channel = label_file.name[2:-len("_label")]
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

    def __init__(self, root: Path | str = "/sys", driver: str | None = None, label: str | None = None):
        base = Path(root) / "class/hwmon"
        if not base.is_dir():
            raise PowerSourceError(f"hwmon: {base} is not present")
        devices = [d for d in _devices(Path(root)) if driver is None or d[1] == driver]
        if not devices:
            raise PowerSourceError(f"hwmon: no device named {driver!r} under {base}" if driver
                                   else f"hwmon: no devices under {base}")
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
                raise PowerSourceError(f"hwmon: rails {', '.join(self._rails_seen)} but no module input rail "
                                       f"({' or '.join(INPUT_RAILS)}); choose one with hwmon:DRIVER:LABEL")
            raise PowerSourceError(f"hwmon: no power, energy or rail sensor{f' labelled {label!r}' if label else ''}"
                                   f" on {', '.join(n for _, n in devices)}"
                                   + (f" (rails: {', '.join(self._rails_seen)})" if self._rails_seen else ""))
        self.scope = DRIVER_SCOPES.get(self.driver, "chip")
        if self._rail and self.rail_label not in INPUT_RAILS:
            self.scope = "soc-rail"
        self.quality = "Q2" if self._energy else "Q1"
        self.counter_update_s = 0.001 if self._energy else None
        self.power_update_s = None
        what = (f"energy counter {self._energy.name}" if self._energy else
                f"power file {self._power.name}" if self._power else f"rail {self.rail_label} (V x I)")
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
        if label:
            return False
        energy = sorted(path.glob("energy*_input"))
        power = sorted(path.glob("power*_input")) + sorted(path.glob("power*_average"))
        if energy:
            self._energy = energy[0]
            try:
                self._last_uj = int(_read(self._energy))
            except PermissionError as e:
                raise PowerSourceError(f"hwmon: {self._energy}: permission denied") from e
            except (OSError, ValueError):
                self._energy = None
        self._power = power[0] if power else None  # beside a counter it is the cross-check
        if self._power is not None and self._power.name.endswith("_average"):
            interval = path / self._power.name.replace("_average", "_average_interval")
            try:
                self.power_average_s = int(_read(interval)) / 1e3  # milliseconds
            except (OSError, ValueError):
                self.power_average_s = 1.0  # not published: assume the common 1 s and say so in the detail
        return bool(self._energy or self._power)

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
        info.update(driver=self.driver, path=str(self.device_path))
        return info
