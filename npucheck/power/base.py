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

from typing import Any

from npucheck.errors import UsageError

QUALITY_NAMES = {"Q0": "estimated", "Q1": "sampled telemetry", "Q2": "energy counter", "Q3": "external meter"}
SCOPES = ("chip", "package", "board", "module", "platform", "soc-rail", "dram", "wall", "user-stated")
PARTIAL_SCOPES = ("soc-rail", "dram")
"""Scopes that cover only part of a device (one rail, the memory): shown, but never judged against a target."""
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

    def log_samples(self, start_unix: float, end_unix: float, wait_s: float = 0.0) -> tuple[list[tuple[float, float]], int]:
        """(Unix time, watts) samples in [start, end] and the count of malformed lines skipped."""
        raise PowerReadError(f"{self.name} has no log")

    def context(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "scope": self.scope, "quality": self.quality,
                "quality_name": QUALITY_NAMES[self.quality], "uncertainty_rel": self.uncertainty_rel,
                "counter": self.has_counter, "counter_update_s": self.counter_update_s,
                "power_update_s": self.power_update_s, "power_average_s": self.power_average_s,
                "detail": self.detail}

    def close(self) -> None:
        """Release what the source holds (an NVML session, file handles)."""


def plausible_watts(watts: float, where: str) -> float:
    """``watts`` if it is a power a device could draw, else PowerReadError (never a made-up number)."""
    if not (0.0 <= watts <= MAX_PLAUSIBLE_WATTS):
        raise PowerReadError(f"{where}: {watts:g} W is outside 0..{MAX_PLAUSIBLE_WATTS:g} W (a unit error?)")
    return watts
