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

Opening the log (``measure_update``, which ``open_source`` calls) reads it before anything is measured:

* **Empty**: a logger that has just started may not have written yet, so the opening waits up to
  max(3 s, 2 stated periods), capped at 10 s, for the log to hold three samples (two spacings); a log that still
  holds no sample is refused (``PowerSourceError``: one line, exit code 2).
* **Period**: the median spacing of the newest samples (up to 20 spacings) is the log's sample period,
  ``update_measured_s``. Unless ``period=`` was stated it is the source's ``power_update_s``: the averaging
  interval of ``average`` samples, the sweep and kernel window length (50 periods), the meter wait after a window.
  A stated period wins, with a warning when it and the observed spacing differ by more than 2x either way. With
  fewer than two samples nothing is inferred and the stated period (else 1 s) is used, and the note says so.
* **Stale**: when the newest sample is older than max(5 periods, 2 s) the logger seems stopped: refused, saying
  how old the newest sample is. (Five periods tolerate a late write or two; 2 s keeps a fast logger from being
  refused for one hiccup.) A newest sample further ahead of this host's clock than that is a clock disagreement:
  warned about, not refused.
* **Sample type**: never inferred. A CSV line says nothing about it, and PTDaemon's log lines
  (``Time,...,Watts,...``) carry the analyzer's reading per update interval without saying whether it is an
  average over that interval (PTDaemon's documentation is distributed with SPEC's licensed software; it could not be
  checked here). So ``sample=`` as stated, else ``average`` (the conservative choice: it adds the averaging lag,
  one period ÷ window, to the uncertainty).

What was stated and what was inferred is recorded in ``describe()`` (``period_source``, ``period_stated_s``,
``period_inferred_s``, ``sample_type_source``, ``newest_sample_age_s``, ``log_format``, ``warnings``), in
``update_note`` and in ``detail`` (which the CLI prints before measuring and the report shows); the warnings are
in all three.

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
    "DEFAULT_METER_PERIOD_S",
    "DEFAULT_METER_UNCERTAINTY",
    "infer_period",
    "MeterErrorSample",
    "MeterLogSource",
    "parse_line",
    "parse_timestamp",
    "stale_after_s",
]


DEFAULT_METER_UNCERTAINTY = 0.05
DEFAULT_METER_PERIOD_S = 1.0
"""The sample period used when none was stated and the log holds too few samples to infer one."""
INFER_SPACINGS = 20
"""The sample period is the median of (up to) this many of the newest samples' spacings."""
OPEN_WAIT_S = 3.0
"""Shortest wait at opening for a log with fewer than three samples (a logger that has just started)."""
OPEN_WAIT_MAX_S = 10.0
STALE_PERIODS = 5
STALE_MIN_S = 2.0
"""A log whose newest sample is older than max(STALE_PERIODS periods, STALE_MIN_S) at opening is refused."""
PERIOD_DISAGREEMENT = 2.0
"""A stated period and the observed spacing more than this factor apart (either way) are warned about."""
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


def infer_period(samples: list[tuple[float, float]], spacings: int = INFER_SPACINGS) -> tuple[float | None, int]:
    """(median spacing of the newest samples, spacings used); (None, 0) with fewer than two distinct times."""
    times = [t for t, _ in samples[-(spacings + 1) :]]
    gaps = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
    if not gaps:
        return None, 0
    middle = len(gaps) // 2
    median = gaps[middle] if len(gaps) % 2 else (gaps[middle - 1] + gaps[middle]) / 2
    return median, len(gaps)


def stale_after_s(period_s: float) -> float:
    """How old the newest sample may be at opening before the logger is taken as stopped."""
    return max(STALE_PERIODS * period_s, STALE_MIN_S)


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
        sample_type: str | None = None,
        period_s: float | None = None,
        scope: str = "wall",
        offset_s: float = 0.0,
        local_time: bool = False,
        covers: bool | None = None,
        sleep: Callable[[float], object] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.path = Path(path)
        if not self.path.exists():
            raise PowerSourceError(f"meter: {self.path}: does not exist (start the meter's logger first)")
        if self.path.is_dir():
            raise PowerSourceError(f"meter: {self.path}: is a directory, not a log file")
        if sample_type is not None and sample_type not in ("average", "instant"):
            raise PowerSourceError(f"meter: sample must be 'average' or 'instant', not {sample_type!r}")
        if accuracy is not None and not (0 < accuracy < 1):
            raise PowerSourceError(f"meter: accuracy is a fraction between 0 and 1 (0.01 = 1%), not {accuracy}")
        if period_s is not None and not (math.isfinite(period_s) and period_s > 0):
            raise PowerSourceError("meter: period must be a positive number of seconds")
        if scope not in SCOPES:
            raise PowerSourceError(f"meter: unknown scope {scope!r} (known: {', '.join(SCOPES)})")
        if not math.isfinite(offset_s):  # offset=nan would make every sample's time NaN: no window would match
            raise PowerSourceError(f"meter: offset must be a finite number of seconds, not {offset_s}")
        self.accuracy_stated = accuracy is not None
        self.uncertainty_rel = accuracy if accuracy is not None else DEFAULT_METER_UNCERTAINTY
        self.sample_type = sample_type or "average"
        self.sample_type_source = "stated" if sample_type is not None else "default"
        self.period_stated_s = period_s
        self.period_inferred_s: float | None = None
        self.period_spacings = 0
        self.period_source = "stated" if period_s is not None else "default"
        self.power_update_s = period_s if period_s is not None else DEFAULT_METER_PERIOD_S
        self.newest_sample_age_s: float | None = None
        self.log_format: str | None = None
        self.warnings: list[str] = []
        self.scope = scope
        self.offset_s = offset_s
        self.local_time = local_time
        self.covers_stated = covers
        self.error_samples = 0
        self._ptd_lines = 0
        self._sleep = sleep
        self._wall = wall_clock
        self.detail = self._detail()

    def _detail(self) -> str:
        period = {
            "stated": "stated",
            "inferred": f"inferred: the median of the log's newest {self.period_spacings} spacings",
            "default": "assumed: not stated and not inferred",
        }[self.period_source]
        sample = "stated" if self.sample_type_source == "stated" else "assumed: the log does not say"
        accuracy = (
            f"±{self.uncertainty_rel:.2%} as stated"
            if self.accuracy_stated
            else f"not stated: ±{DEFAULT_METER_UNCERTAINTY:.0%} assumed"
        )
        text = (
            f"{self.path} ({self.sample_type} samples ({sample}) every {self.power_update_s:.3g} s ({period}), "
            f"accuracy {accuracy})"
        )
        return text + "".join(f"; WARNING: {w}" for w in self.warnings)

    def measure_update(
        self,
        max_wait_s: float | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Read the log before anything is measured: wait briefly for a logger that has just started, refuse an
        empty or stale log (PowerSourceError), infer the sample period from the samples' spacing and warn when a
        stated period disagrees with it. ``clock`` is a wall clock (Unix seconds) here, not a monotonic one."""
        wall = clock or self._wall
        pause = sleep or self._sleep
        stated = self.period_stated_s
        self.warnings = []
        wait = max_wait_s if max_wait_s is not None else min(max(OPEN_WAIT_S, 2 * (stated or 0.0)), OPEN_WAIT_MAX_S)
        deadline = wall() + wait
        while True:
            samples, malformed = self.read_all()
            now = wall()
            fresh = bool(samples) and now - samples[-1][0] <= stale_after_s(stated or DEFAULT_METER_PERIOD_S)
            if len(samples) >= 3 or (samples and not fresh) or now >= deadline:
                break
            pause(min(0.1, max(deadline - now, 0.0)))
        if not samples:
            raise PowerSourceError(
                f"meter: {self.path}: the log holds no sample after waiting {wait:g} s"
                + (f" ({malformed} line(s) could not be parsed)" if malformed else "")
                + ": is the meter's logger running, writing 'timestamp,watts' or PTDaemon lines?"
            )
        self.log_format = "ptdaemon" if self._ptd_lines == len(samples) + self.error_samples else "csv"
        if self._ptd_lines and self.log_format == "csv":
            self.log_format = "mixed"
        inferred, spacings = infer_period(samples)
        self.period_inferred_s, self.period_spacings = inferred, spacings
        self.update_measured_s = inferred
        if inferred is None:
            self.update_note = (
                f"meter period: not inferred (the log holds {len(samples)} sample{'s' if len(samples) > 1 else ''} "
                "at distinct times); "
                + (f"{stated:g} s as stated" if stated is not None else f"{DEFAULT_METER_PERIOD_S:g} s assumed")
            )
        elif stated is None:
            self.power_update_s = inferred
            self.period_source = "inferred"
            self.update_note = f"meter period: inferred {inferred:.3g} s (median of the newest {spacings} spacings)"
        else:
            self.update_note = (
                f"meter period: {stated:g} s as stated; the log's samples are {inferred:.3g} s apart "
                f"(median of the newest {spacings} spacings)"
            )
            ratio = stated / inferred
            if ratio > PERIOD_DISAGREEMENT or ratio < 1 / PERIOD_DISAGREEMENT:
                self.warnings.append(
                    f"period={stated:g} s was stated but the log's samples are {inferred:.3g} s apart (median of "
                    f"the newest {spacings} spacings); the stated period is used: check it (it sets the averaging "
                    "interval, the uncertainty and the sweep window length)"
                )
        age = wall() - samples[-1][0]
        self.newest_sample_age_s = age
        limit = stale_after_s(self.power_update_s)
        if age > limit:
            raise PowerSourceError(
                f"meter: {self.path}: the newest sample is {age:.1f} s old (more than max({STALE_PERIODS} periods "
                f"of {self.power_update_s:.3g} s, {STALE_MIN_S:g} s)): the meter's logger seems stopped; restart "
                "it (or correct a clock skew with offset=SECONDS)"
            )
        if -age > limit:
            self.warnings.append(
                f"the newest sample is {-age:.1f} s ahead of this host's clock: the clocks disagree (sync them "
                "with NTP, or give offset=SECONDS); samples are aligned with the windows by wall-clock time"
            )
        if self.warnings:
            self.update_note += "; WARNING: " + "; ".join(self.warnings)
        self.detail = self._detail()

    @property
    def is_log(self) -> bool:
        return True

    def read_all(self) -> tuple[list[tuple[float, float]], int]:
        """Every sample in the log and the count of malformed lines."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise PowerReadError(f"meter: {self.path}: {e.strerror or e}") from e
        samples, malformed, errors, ptd = [], 0, 0, 0
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
                ptd += 1
                continue
            except (ValueError, PowerReadError):
                malformed += 1
                continue
            if parsed is not None:
                samples.append((parsed[0] + self.offset_s, parsed[1]))
                ptd += line.startswith("Time,")
        samples.sort()
        self.error_samples = errors
        self._ptd_lines = ptd
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
            sample_type_source=self.sample_type_source,
            period_source=self.period_source,
            period_stated_s=self.period_stated_s,
            period_inferred_s=self.period_inferred_s,
            newest_sample_age_s=self.newest_sample_age_s,
            log_format=self.log_format,
            warnings=list(self.warnings),
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
