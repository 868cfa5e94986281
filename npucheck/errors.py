"""One exception tree. The CLI maps each class to an exit code; library code never exits."""

from __future__ import annotations

__all__ = [
    "DeviceUnavailableError",
    "FleetError",
    "MeasurementError",
    "NpucheckError",
    "ResultFileError",
    "TargetProfileError",
    "UsageError",
]


class NpucheckError(Exception):
    """Base of every error npucheck raises on purpose."""

    exit_code = 4


class UsageError(NpucheckError):
    """Bad input from the user: an unknown device, dtype, kernel, suite or option value."""

    exit_code = 2


class TargetProfileError(UsageError):
    """A target profile (TOML) that is missing, malformed or invalid."""


class ResultFileError(UsageError):
    """A result profile (JSON) that is missing, corrupt, invalid or from a newer schema."""


class DeviceUnavailableError(UsageError):
    """The requested device does not exist here or cannot be used."""


class MeasurementError(NpucheckError):
    """A kernel failed to run, verify or time. The runner records it and goes on."""


class FleetError(NpucheckError):
    """A fleet run that could not gather every member: a rank's result is missing, or this rank's could not reach
    rank 0 (its profile stays on its own disk)."""

    exit_code = 5
