"""What every power source is: a small class that turns vendor units into joules and watts at the adapter.

A source offers any of:

* ``read_energy_j()`` — a cumulative energy counter in joules, monotonic (the source unwraps its own counter);
* ``read_power_w()`` — the power now, in watts;
* ``log_samples(start, end)`` — for external meters, the (Unix time, watts) samples a log holds for a window;
* ``context()`` — facts worth recording at the window edges: clocks, temperature, throttle reasons, limits.

A read that fails raises :class:`PowerReadError`; the caller drops that sample (never turns it into 0). A counter
that went backwards without wrap semantics raises :class:`CounterReset`. Nothing here imports torch or a vendor
SDK: each source receives what it touches (a sysfs root, an NVML-like module, a file path) in its constructor.

Quality levels (after Green500 / EE HPC WG, see docs/power.md):
  Q0 estimated (a figure the user typed, a TDP): reported, never decides a verdict;
  Q1 sampled telemetry (instantaneous power polled and integrated);
  Q2 counter (a hardware energy counter read at the window edges);
  Q3 external meter (a log the user vouches for, with stated accuracy).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from npucheck.errors import UsageError
from npucheck.model import QUALITY_NAMES

__all__ = [
    "bus_id_coverage",
    "CounterReset",
    "device_label",
    "device_runtime",
    "MAX_PLAUSIBLE_WATTS",
    "measure_update_period",
    "normalize_bus_id",
    "plausible_watts",
    "PowerReadError",
    "PowerSource",
    "PowerSourceError",
    "UPDATE_PROBE_MAX_S",
]


# The vocabularies (scopes, qualities) live in npucheck.model, one place for every module.
UPDATE_PROBE_MAX_S = 1.0
"""Longest a source's opening waits to see its counter (or power reading) change twice."""
MAX_PLAUSIBLE_WATTS = 5000.0
"""A reading above this is a unit error (a vendor off by 1000x), not a power: it is dropped, never used."""


class PowerSourceError(UsageError):
    """A power source the user asked for cannot be used here (exit code 2 before any measuring starts)."""


class PowerReadError(Exception):
    """One reading failed (a transient I/O error, NotSupported mid-run, an implausible value)."""


class CounterReset(PowerReadError):
    """The energy counter went backwards in a way no wraparound explains (driver reload, GPU reset)."""


class PowerSource:
    """Base class. Subclasses set the attributes and override the reads they support."""

    name: str = "base"
    scope: str = "chip"
    quality: str = "Q1"
    uncertainty_rel: float = 0.05
    """Relative uncertainty of a power figure from this source (the judge widens the interval by it)."""
    counter_update_s: float | None = None
    """How often the energy counter changes, seconds; None when the source has no counter."""
    power_update_s: float | None = None
    """How often the power reading changes, seconds; None when unknown or no power reading."""
    power_average_s: float | None = None
    """When the power reading is an average over a trailing interval (NVML's 1 s average, hwmon
    ``power*_average``), that interval in seconds; None for instantaneous readings."""
    detail: str = ""
    covers_device: bool | None = None
    """Whether this source's power includes the device under test: True (found by UUID, PCI bus id, or the CPU
    package for a CPU), False (another device, or only part of it, or shared with others), None (cannot tell:
    judged INCONCLUSIVE). Set by :func:`npucheck.measure.power.open_source` from the device's ``describe()``."""
    coverage: str = "not decided: the source was not opened for a device"
    """How ``covers_device`` was decided, in words."""
    max_poll_s: float | None = None
    """The longest the sampler may wait between reads without missing a counter wrap; None when unbounded."""
    update_measured_s: float | None = None
    """The counter's (or power reading's) update period measured when the source opened; None if not seen."""
    update_note: str = ""

    def check_coverage(self, device: dict[str, Any]) -> tuple[bool | None, str]:
        """(covers the device under test?, how that was decided). Sources override this."""
        return None, f"{self.name}: whether it measures {device_label(device)} is unknown"

    @property
    def has_counter(self) -> bool:
        return False

    @property
    def has_power(self) -> bool:
        return False

    @property
    def is_log(self) -> bool:
        return False

    def read_energy_j(self) -> float:
        raise PowerReadError(f"{self.name} has no energy counter")

    def read_power_w(self) -> float:
        raise PowerReadError(f"{self.name} has no power reading")

    def log_samples(
        self, start_unix: float, end_unix: float, wait_s: float = 0.0
    ) -> tuple[list[tuple[float, float]], int]:
        """(Unix time, watts) samples in [start, end] and the count of malformed lines skipped."""
        raise PowerReadError(f"{self.name} has no log")

    def context(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "quality": self.quality,
            "quality_name": QUALITY_NAMES[self.quality],
            "uncertainty_rel": self.uncertainty_rel,
            "counter": self.has_counter,
            "counter_update_s": self.counter_update_s,
            "power_update_s": self.power_update_s,
            "power_average_s": self.power_average_s,
            "update_measured_s": self.update_measured_s,
            "update_note": self.update_note,
            "covers_device": self.covers_device,
            "covers_reason": self.coverage,
            "detail": self.detail,
        }

    def measure_update(
        self,
        max_wait_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Measure the counter's update period (else the power reading's) and keep the larger of measured and
        assumed in ``counter_update_s`` / ``power_update_s``: the window length, quantization and trial offsets
        all rest on it."""
        if self.has_counter and self.counter_update_s:
            attr, read = "counter_update_s", self.read_energy_j
        elif self.has_power and self.power_update_s and not self.is_log:
            attr, read = "power_update_s", self.read_power_w
        else:
            return
        assumed = float(getattr(self, attr))
        wait = UPDATE_PROBE_MAX_S if max_wait_s is None else max_wait_s
        measured, note = measure_update_period(read, assumed, wait, clock, sleep)
        self.update_note = f"{attr.replace('_s', '').replace('_', ' ')}: {note}"
        if measured is not None:
            self.update_measured_s = measured
            setattr(self, attr, max(assumed, measured))

    def close(self) -> None:
        """Release what the source holds (an NVML session, file handles)."""


def device_label(device: dict[str, Any] | None) -> str:
    """``cuda:1``, ``cpu``: how the device under test is named in coverage reasons."""
    device = device or {}
    return str(device.get("id") or device.get("backend") or "the device")


def device_runtime(device: dict[str, Any] | None) -> str:
    """``cuda`` (NVIDIA), ``rocm`` (AMD, torch.version.hip set), or the backend; old dicts lack ``runtime``."""
    device = device or {}
    return str(device.get("runtime") or device.get("backend") or "cpu")


def normalize_bus_id(text: Any) -> str | None:
    """``domain:bus:device.function`` in lowercase with a 4-digit domain, from any of NVML's
    (``00000000:3B:00.0``), amdsmi's (``0000:3b:00.0``), torch's or sysfs's spellings; None when unparsable."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if not isinstance(text, str):
        return None
    match = re.fullmatch(r"\s*(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])\s*", text)
    if not match:
        return None
    domain, bus, dev, fn = match.groups()
    return f"{int(domain or '0', 16):04x}:{int(bus, 16):02x}:{int(dev, 16):02x}.{int(fn)}"


def measure_update_period(
    read: Callable[[], float],
    assumed_s: float,
    max_wait_s: float = UPDATE_PROBE_MAX_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[float | None, str]:
    """How often ``read()``'s value changes: poll until it has changed twice and return the time between the two
    changes. Waits at most ``max_wait_s`` seconds; a failed read is skipped.

    Returns:
        (measured seconds or None, a note). When fewer than two changes were seen the note says so and the
        time waited is a lower bound, returned as the measurement only if it exceeds ``assumed_s``.
    """
    poll = max(min(assumed_s / 5, 0.01), 0.0002)
    deadline = clock() + max_wait_s
    changes: list[float] = []
    last: float | None = None
    start = clock()
    while clock() < deadline and len(changes) < 2:
        try:
            value = read()
        except Exception:  # noqa: BLE001 - a failed read tells nothing about the period
            value = None
        now = clock()
        if value is not None:
            if last is not None and value != last:
                changes.append(now)
            last = value
        if len(changes) < 2:
            sleep(poll)
    if len(changes) == 2:
        return changes[1] - changes[0], f"measured {changes[1] - changes[0]:.3g} s (assumed {assumed_s:g} s)"
    waited = clock() - (changes[0] if changes else start)
    note = (
        f"not measured: the reading changed {len(changes)} time(s) in {clock() - start:.2g} s, so the "
        f"period is at least {waited:.2g} s (assumed {assumed_s:g} s)"
    )
    return (waited if waited > assumed_s else None), note


def plausible_watts(watts: float, where: str) -> float:
    """``watts`` if it is a power a device could draw, else PowerReadError (never a made-up number)."""
    if not (0.0 <= watts <= MAX_PLAUSIBLE_WATTS):
        raise PowerReadError(f"{where}: {watts:g} W is outside 0..{MAX_PLAUSIBLE_WATTS:g} W (a unit error?)")
    return watts


def bus_id_coverage(where: str, ours: str | None, device: dict[str, Any] | None) -> tuple[bool, str] | None:
    """Coverage decided by PCI bus id: (True/False, why) when both the source's and the device's bus ids are
    known, else None (the caller falls back to what else it knows)."""
    theirs = normalize_bus_id(((device or {}).get("properties") or {}).get("pci_bus_id"))
    if not (theirs and ours):
        return None
    label = device_label(device)
    if theirs == ours:
        return True, f"{where} at PCI {ours} matches {label}"
    return False, f"{where} at PCI {ours} is not {label} (PCI {theirs})"
