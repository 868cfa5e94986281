"""External meters and user-stated figures.

``meter:PATH`` reads a log that another program (a meter's logger, PTDaemon) appends to while npucheck runs.
Accepted lines:

* CSV ``timestamp,watts`` — the timestamp in Unix seconds (``1764072000.25``) or ISO 8601
  (``2026-11-25T12:00:00.250Z``; without an offset it is taken as UTC). A header line is skipped.
* PTDaemon ``Time,11-25-2026 12:00:00.250,Watts,231.4,Volts,...`` — month first (``%m-%d-%Y``); its local-time
  stamp is taken as UTC unless ``tz=local`` is given. A negative watts value is PTDaemon's error marker: dropped
  and counted apart (``error_samples``).

A line that parses as neither is skipped and counted (reported with the window). Samples are aligned with the
window by wall-clock time, so the meter's clock must agree with this host's (NTP); ``offset=SECONDS`` corrects a
known skew (added to the meter's timestamps). Options after the path, comma-separated:
``meter:PATH,accuracy=0.01,sample=average|instant,period=1,scope=wall,offset=0,tz=utc|local,covers=yes|no``.
Without a stated accuracy the figure is judged with ±5% and labelled so. Whether the meter measures the device
under test only the user knows: ``covers=yes`` says it does; without it (or with ``covers=no``) TFLOPS/W from
the meter is shown but INCONCLUSIVE.

``constant:WATTS`` is a figure the user types (a TDP, a spec sheet): quality Q0, reported but never deciding a
verdict.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from npucheck.measure.power.base import PowerReadError, PowerSource, PowerSourceError, device_label, plausible_watts
from npucheck.model import SCOPES

__all__ = [
    "ConstantSource",
    "DEFAULT_METER_UNCERTAINTY",
    "MeterErrorSample",
    "MeterLogSource",
    "parse_line",
    "parse_timestamp",
]


DEFAULT_METER_UNCERTAINTY = 0.05
_PTD = re.compile(r"^Time,(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}(?:\.\d+)?),Watts,([^,]+)")


class MeterErrorSample(ValueError):
    """A sample the meter itself marks as an error (PTDaemon writes a negative watts value): dropped, counted."""


def parse_timestamp(text: str, local: bool = False) -> float:
    """Unix seconds from Unix seconds or ISO 8601 text; naive times are UTC (or local with ``local``)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"timestamp {text!r} is not finite")
        return value
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.astimezone() if local else stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def parse_line(line: str, local: bool = False) -> tuple[float, float] | None:
    """(Unix time, watts) from one log line; None for a blank line or a header; ValueError if malformed."""
    line = line.strip()
    if not line or line.startswith("#") or line.lower().startswith(("timestamp", "time,watts", "time;")):
        return None
    match = _PTD.match(line)
    if match:
        # PTDaemon writes month first: "Time,11-25-2026 12:00:00.250,Watts,..."
        stamp = datetime.strptime(
            match.group(1), "%m-%d-%Y %H:%M:%S.%f" if "." in match.group(1) else "%m-%d-%Y %H:%M:%S"
        )
        stamp = stamp.astimezone() if local else stamp.replace(tzinfo=UTC)
        watts = float(match.group(2))
        if not math.isfinite(watts):
            raise ValueError("watts is not finite")
        if watts < 0:
            raise MeterErrorSample(f"PTDaemon reported {watts:g} W (its error value)")
        return stamp.timestamp(), watts
    parts = line.split(",")
    if len(parts) < 2:
        raise ValueError("expected timestamp,watts")
    watts = float(parts[1])
    if not math.isfinite(watts):
        raise ValueError("watts is not finite")
    return parse_timestamp(parts[0], local), watts


class MeterLogSource(PowerSource):
    """Power from an external meter's log file, aligned with the window by wall-clock time."""

    name = "meter"
    quality = "Q3"
    power_update_s: float  # always set, from ``period_s``

    def __init__(
        self,
        path: str | Path,
        accuracy: float | None = None,
        sample_type: str = "average",
        period_s: float = 1.0,
        scope: str = "wall",
        offset_s: float = 0.0,
        local_time: bool = False,
        covers: bool | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ):
        self.path = Path(path)
        if not self.path.exists():
            raise PowerSourceError(f"meter: {self.path}: does not exist (start the meter's logger first)")
        if self.path.is_dir():
            raise PowerSourceError(f"meter: {self.path}: is a directory, not a log file")
        if sample_type not in ("average", "instant"):
            raise PowerSourceError(f"meter: sample must be 'average' or 'instant', not {sample_type!r}")
        if accuracy is not None and not (0 < accuracy < 1):
            raise PowerSourceError(f"meter: accuracy is a fraction between 0 and 1 (0.01 = 1%), not {accuracy}")
        if not period_s > 0:
            raise PowerSourceError("meter: period must be positive")
        if scope not in SCOPES:
            raise PowerSourceError(f"meter: unknown scope {scope!r} (known: {', '.join(SCOPES)})")
        self.accuracy_stated = accuracy is not None
        self.uncertainty_rel = accuracy if accuracy is not None else DEFAULT_METER_UNCERTAINTY
        self.sample_type = sample_type
        self.power_update_s = period_s
        self.scope = scope
        self.offset_s = offset_s
        self.local_time = local_time
        self.covers_stated = covers
        self.error_samples = 0
        self._sleep = sleep
        self.detail = (
            f"{self.path} ({sample_type} samples every {period_s:g} s, accuracy "
            + (
                f"±{accuracy:.2%} as stated"
                if accuracy is not None
                else f"not stated: ±{DEFAULT_METER_UNCERTAINTY:.0%} assumed"
            )
            + ")"
        )

    @property
    def is_log(self) -> bool:
        return True

    def read_all(self) -> tuple[list[tuple[float, float]], int]:
        """Every sample in the log and the count of malformed lines."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise PowerReadError(f"meter: {self.path}: {e.strerror or e}") from e
        samples, malformed, errors = [], 0, 0
        lines = text.split("\n")
        if lines and not text.endswith("\n"):
            lines = lines[:-1]  # a line still being written
        for line in lines:
            try:
                parsed = parse_line(line, self.local_time)
                if parsed is not None:
                    plausible_watts(parsed[1], "meter")
            except MeterErrorSample:
                errors += 1
                continue
            except (ValueError, PowerReadError):
                malformed += 1
                continue
            if parsed is not None:
                samples.append((parsed[0] + self.offset_s, parsed[1]))
        samples.sort()
        self.error_samples = errors
        return samples, malformed

    def check_coverage(self, device: dict) -> tuple[bool | None, str]:
        label = device_label(device)
        if self.covers_stated is None:
            return None, (
                f"meter: whether it measures {label} was not stated (add covers=yes to the meter spec "
                "to have its TFLOPS/W judged)"
            )
        return self.covers_stated, f"meter: scope stated by the user (covers={'yes' if self.covers_stated else 'no'})"

    def log_samples(
        self, start_unix: float, end_unix: float, wait_s: float = 0.0
    ) -> tuple[list[tuple[float, float]], int]:
        """Samples covering [start, end]; waits up to ``wait_s`` for the logger to write past ``end``."""
        deadline = time.time() + wait_s
        while True:
            samples, malformed = self.read_all()
            if (samples and samples[-1][0] >= end_unix) or time.time() >= deadline:
                break
            self._sleep(min(0.2, self.power_update_s))
        slack = self.power_update_s if self.sample_type == "average" else 0.0
        inside = [(t, w) for t, w in samples if start_unix - self.power_update_s <= t <= end_unix + slack]
        return inside, malformed

    def describe(self) -> dict:
        info = super().describe()
        info.update(
            sample_type=self.sample_type,
            accuracy_stated=self.accuracy_stated,
            offset_s=self.offset_s,
            path=str(self.path),
            covers_stated=self.covers_stated,
        )
        return info


class ConstantSource(PowerSource):
    """A power figure the user states (TDP, datasheet): quality Q0, never decides a verdict."""

    name = "constant"
    quality = "Q0"
    scope = "user-stated"
    uncertainty_rel = 0.0

    def __init__(self, watts: float):
        if not (math.isfinite(watts) and 0 < watts <= 5000):
            raise PowerSourceError(f"constant: watts must be a number in (0, 5000], not {watts}")
        self.watts = float(watts)
        self.detail = f"{self.watts:g} W stated by the user (an estimate, not a measurement)"

    @property
    def has_power(self) -> bool:
        return True

    def read_power_w(self) -> float:
        return self.watts

    def check_coverage(self, device: dict) -> tuple[bool | None, str]:
        return None, f"a stated figure, not a measurement of {device_label(device)}"
