"""Walk a suite on a device and build the result profile (a :class:`npucheck.model.ResultProfile`). Never prints:
progress goes to a callback.

Each case becomes a :class:`~npucheck.model.Measurement` when it finishes, so a bad value fails at that case and
not when the file is saved. A case that raises, runs out of memory, returns NaN/Inf or a wrong answer is recorded
as ``error`` with the reason and the run goes on; a case whose tensors would not fit in the free memory is skipped
before anything is allocated (on the CPU the OOM killer would otherwise end the whole run). Ctrl-C (and, in
``npucheck run``, SIGTERM or SIGHUP: see :mod:`npucheck.signals`) stops the run; what was measured is returned,
marked interrupted with the signal's name.
What each case may cost (rate prediction, budgets, pilot calls) is decided by
:mod:`npucheck.measure.planning`; the summary is computed by :mod:`npucheck.summary`.
"""

from __future__ import annotations

import gc
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import torch

from npucheck import __version__
from npucheck import signals as stopping
from npucheck.bandwidth import bandwidth_ceiling_reason, bandwidth_figures
from npucheck.datasheets import ceiling_reason, match_datasheet
from npucheck.errors import UsageError
from npucheck.kernels import KERNELS, Case, NonFiniteOutput, build_workload, select_dtypes, select_kernels
from npucheck.kernels.lowp import PROBE_LAYOUT, PROBE_START, UnsupportedCase
from npucheck.kernels.memory import FitsInCache
from npucheck.kernels.precision import fp32_precision_state, full_fp32_precision
from npucheck.measure import capsweep, environment
from npucheck.measure import energy as energy_windows
from npucheck.measure.allocator import settle_malloc
from npucheck.measure.devices import Device, resolve_device
from npucheck.measure.family_support import check_support
from npucheck.measure.host_load import FOREIGN_CORES_WARNING, LoadMonitor, busy_processes, describe_busy
from npucheck.measure.planning import CasePlanner, host_available_bytes, memory_skip_reason
from npucheck.measure.power import PowerSource, open_source
from npucheck.measure.power.window import DEFAULT_SAMPLE_HZ
from npucheck.measure.suites import Suite, get_suite
from npucheck.measure.timing import TimingSettings, time_kernel
from npucheck.model import (
    HOST_CLOCK_TOLERANCE,
    SCHEMA_VERSION,
    Check,
    DeviceInfo,
    Energy,
    EnergyKind,
    Load,
    Measurement,
    PowerInfo,
    ResultProfile,
    Settings,
    SourceInfo,
    Stats,
    SupportFamily,
)
from npucheck.stats import is_unstable
from npucheck.summary import peak_gemm_cases, summarize

__all__ = [
    "CONFIDENCE",
    "CONFIRM_SEED_OFFSET",
    "DEVICE_STATE_KEYS",
    "EventCallback",
    "FAULTS_PER_CALL_WARNING",
    "HOST_CLOCK_MAX_CALLS",
    "HOST_CLOCK_S",
    "PROBE_MAX_SIZE",
    "PROBE_MIN_CALL_S",
    "available_memory_bytes",
    "Runner",
    "RunOptions",
    "TIMED_SUSTAINED_TOLERANCE",
    "WARMUP_CLOCK_EVERY_S",
    "WARMUP_DTYPE",
    "WARMUP_FRACTION",
    "WARMUP_MAX_FACTOR",
    "WARMUP_SETTLED_DROP",
    "WARMUP_SETTLED_READINGS",
]


CONFIDENCE = 0.95
PROBE_MIN_CALL_S = 0.02
PROBE_MAX_SIZE = 16384
WARMUP_FRACTION = 0.2
"""Share of a case's target time spent warming it up (at least two calls)."""
WARMUP_DTYPE = "fp16"
"""The device is warmed up with the fp16 probe GEMM (the plan's bench) where fp16 runs."""
WARMUP_MAX_FACTOR = 3.0
WARMUP_CLOCK_EVERY_S = 1.0
WARMUP_SETTLED_READINGS = 3
WARMUP_SETTLED_DROP = 0.01
"""The clock has stopped falling when the last WARMUP_SETTLED_READINGS readings (one a second) are within this
fraction of the first of them."""
DEVICE_STATE_KEYS = ("sm_clock_mhz", "throttle_reasons", "clock_event_reasons", "temperature_c", "power_limit_w")
TIMED_SUSTAINED_TOLERANCE = 0.15
HOST_CLOCK_S = 0.2
HOST_CLOCK_MAX_CALLS = 10_000
CONFIRM_SEED_OFFSET = 7919
"""The confirmation of each dtype's peak builds fresh inputs from the run's seed plus this."""
FAULTS_PER_CALL_WARNING = 1.0
"""A timed case averaging at least this many minor page faults per call was measured while the allocator mapped
fresh memory (see npucheck.measure.allocator); it is flagged."""

EventCallback = Callable[[str, dict[str, Any]], None]


@dataclass
class RunOptions:
    device: str = "auto"
    suite: str = "standard"
    kernels: list[str] | None = None
    dtypes: list[str] | None = None
    threads: int | None = None
    seed: int = 0
    flush: bool = True
    warmup_s: float | None = None
    target_names: list[str] = field(default_factory=list)
    power: str = "auto"
    power_window_s: float | None = None
    idle_s: float | None = None
    power_hz: float = DEFAULT_SAMPLE_HZ
    power_trials: int | None = None
    min_sample_s: float | None = None
    """``--min-sample-time``: each timed sample lasts at least this long (default: the suite's)."""
    power_caps: list[str] | None = None
    """``--power-caps``: the caps (watts as written, or FULL) of the efficiency-vs-power-cap sweep
    (npucheck.measure.capsweep); None for no sweep."""
    power_caps_settle_s: float | None = None
    """Seconds between setting a cap and its window (default: npucheck.measure.capsweep.SETTLE_S)."""
    fleet: dict[str, Any] | None = None
    """Set when this run is one rank of a fleet (npucheck.measure.fleet): rank, host, cores, sibling processes;
    stored as ``environment.fleet``."""


@dataclass
class _Draft:
    """The profile while the run goes on: model objects for the parts that are done, lists the runner appends to.
    ``build`` makes the :class:`ResultProfile` (verdicts are added by the caller)."""

    created_utc: str
    device: DeviceInfo
    environment: dict[str, Any]
    settings: Settings
    power: PowerInfo
    load_before: dict[str, Any] | None = None
    measurements: list[Measurement] = field(default_factory=list)
    confirmations: list[Measurement] = field(default_factory=list)
    support: dict[str, SupportFamily] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    power_caps: dict[str, Any] | None = None

    def build(self, wall_s: float) -> ResultProfile:
        foreign = [m.foreign_cpu_cores for m in self.measurements if m.foreign_cpu_cores is not None]
        return ResultProfile(
            schema_version=SCHEMA_VERSION,
            npucheck_version=__version__,
            created_utc=self.created_utc,
            finished_utc=_utc_now(),
            interrupted=self.interrupted,
            command=tuple(sys.argv),
            device=self.device,
            environment=self.environment,
            settings=self.settings,
            power=self.power,
            load=Load(before=self.load_before, during_max_foreign_cpu_cores=max(foreign) if foreign else None),
            measurements=tuple(self.measurements),
            confirmations=tuple(self.confirmations),
            support=self.support,
            # a dtype chosen but with no case in the suite (fp8 in quick) gets no row in the summary
            summary=summarize(
                self.measurements,
                self.confirmations,
                [d for d in self.settings.dtypes if any(m.dtype == d for m in self.measurements)],
                self.power,
            ),
            verdicts=(),
            warnings=tuple(self.warnings),
            wall_s=wall_s,
            power_caps=capsweep.to_model(self.power_caps) if self.power_caps is not None else None,
        )


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


class Runner:
    """Runs one suite on one device. ``run()`` returns the :class:`ResultProfile` (verdicts are added by the
    caller)."""

    def __init__(
        self,
        options: RunOptions,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] = time.perf_counter,
        suite: Suite | None = None,
        power_source: PowerSource | None = None,
        runtime: Any | None = None,
        available_memory: Callable[[], int | None] | None = None,
    ):
        """``available_memory``: bytes free where the kernels' tensors live, read before each case (None: unknown,
        no check); default :func:`available_memory_bytes` of the device. Tests pass a figure."""
        self.options = options
        self._emit = on_event or (lambda kind, data: None)
        self._clock = clock
        # Validate everything the user typed before any measuring starts.
        self.suite: Suite = suite or get_suite(options.suite)
        if options.min_sample_s is not None:
            if not (math.isfinite(options.min_sample_s) and 0 < options.min_sample_s <= 10):
                raise UsageError(f"--min-sample-time must be in (0, 10] seconds, got {options.min_sample_s}")
            self.suite = replace(self.suite, min_sample_s=options.min_sample_s)
        self.kernels = select_kernels(options.kernels)
        self.dtypes = select_dtypes(options.dtypes)
        if options.threads is not None and options.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {options.threads}")
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        self.device: Device = resolve_device(options.device, runtime)  # runtime: tests pass a fake accelerator
        self._available_memory = available_memory or (lambda: available_memory_bytes(self.device))
        sheet, self._datasheet_reason = match_datasheet(self.device.name)
        self._datasheet: dict[str, Any] | None = sheet.to_dict() if sheet is not None else None
        self.cases: list[Case] = self.suite.cases(self.kernels, self.dtypes)
        if not self.cases:  # e.g. --kernels conv2d --dtypes int8: int8 and fp8 run on GEMM only
            raise UsageError(
                f"suite {self.suite.name} has no case for kernels {', '.join(self.kernels)} in dtypes "
                f"{', '.join(self.dtypes)} (int8 and fp8 run on gemm only)"
            )
        self.planner = CasePlanner(self.suite)
        self._probe_notes: dict[str, str] = {}
        self._monitor = LoadMonitor()
        if options.fleet is not None:
            self.join_fleet(options.fleet)
        for name in ("power_window_s", "idle_s"):
            value = getattr(options, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise UsageError(f"--{name[:-2].replace('_', '-')} must be a non-negative number of seconds")
        if not (math.isfinite(options.power_hz) and 0 < options.power_hz <= 100):
            raise UsageError("--power-hz must be in (0, 100]")
        self._trials = self.suite.power_trials if options.power_trials is None else options.power_trials
        if not 1 <= self._trials <= 20:
            raise UsageError(f"--power-trials must be from 1 to 20, got {self._trials}")
        # An explicitly named source that cannot be used is bad input: refuse it before measuring anything
        # (opened last, so that no other bad option can leave it open).
        self.power: PowerSource | None
        self.power_notes: list[str]
        if power_source is not None:
            self.power, self.power_notes = power_source, []
        else:
            self.power, self.power_notes = open_source(options.power, self.device.describe())
        self._window_s = self.suite.power_window_s if options.power_window_s is None else options.power_window_s
        self._idle_s = self.suite.idle_s if options.idle_s is None else options.idle_s
        short = energy_windows.window_too_short(self.power, self._window_s) if self.power is not None else None
        if short and options.power_window_s is None:  # the suite's default: lengthened to fit the source, said so
            assert self.power is not None
            period = self.power.counter_update_s or self.power.power_update_s or 0.0
            self._window_s = energy_windows.MIN_WINDOW_UPDATES * period
            self.power_notes.append(
                f"headline energy window lengthened from the suite's {self.suite.power_window_s:g} s to "
                f"{self._window_s:g} s: {energy_windows.MIN_WINDOW_UPDATES} updates of {self.power.name}"
            )
        elif short:  # an explicit --power-window the source cannot fill: refused before measuring
            assert self.power is not None
            self.power.close()
            raise UsageError(short)
        self._idle_watts: float | None = None
        self._allocator: dict[str, Any] | None = None
        self._phase_rng = random.Random(options.seed)
        self.cap_plan = self._plan_power_caps() if options.power_caps else None

    def _plan_power_caps(self) -> capsweep.CapPlan:
        """``--power-caps`` checked before anything is measured: not in a fleet, a GPU whose power source can set
        its limit, every cap within the device's range, and permission to set it (see npucheck.measure.capsweep).
        Anything else closes the power source and raises UsageError (exit 2)."""
        try:
            if self.options.fleet is not None:
                raise UsageError("--power-caps is refused in a fleet run: measure one device at a time")
            labels = capsweep.parse_caps(",".join(self.options.power_caps or ()))
            control = capsweep.cap_control_for(self.power, self.device.describe())
            return capsweep.plan_caps(control, labels)
        except UsageError:
            if self.power is not None:
                self.power.close()
            raise

    def join_fleet(self, fleet: dict[str, Any]) -> None:
        """This run is one rank of a fleet: recorded as ``environment.fleet``; the sibling ranks' measuring
        processes on this host (``siblings``) are not other load, and on a CPU slice (``cpu_cores``) only those
        cores' time counts (see npucheck.measure.host_load.LoadMonitor)."""
        self.options.fleet = dict(fleet)
        self._monitor = LoadMonitor(cores=fleet.get("cpu_cores"), siblings=fleet.get("siblings"))

    # ----------------------------------------------------------------------------------------------- profile
    def _start(self) -> _Draft:
        """The draft profile before anything is measured: the device, the environment, the settings, the power
        source."""
        warmup = self._device_warmup_s = self._warmup_s()
        described = self.device.describe()  # the device seam's description: a JSON object, checked here
        source = self.power.describe() if self.power else None
        return _Draft(
            created_utc=_utc_now(),
            device=DeviceInfo.from_dict(
                {**described, "datasheet": self._datasheet, "datasheet_reason": self._datasheet_reason}
            ),
            environment={
                **environment.capture(),
                "allocator": self._allocator,
                **({"fleet": self.options.fleet} if self.options.fleet is not None else {}),
            },
            settings=Settings(
                suite=self.suite.name,
                seed=self.options.seed,
                kernels=self.kernels,
                dtypes=self.dtypes,
                **{**self.suite.settings(), "device_warmup_s": warmup},
                cache_flush_bytes=self.device.cache_flush_bytes() if self.options.flush else 0,
                confidence=CONFIDENCE,
                targets=tuple(self.options.target_names),
                selected=self._selected(),
            ),
            power=PowerInfo(
                spec=self.options.power,
                source=SourceInfo.from_dict(source) if source is not None else None,
                notes=tuple(self.power_notes),
                window_s=self._window_s if self.power else None,
                sample_hz=self.options.power_hz if self.power else None,
                trials=self._trials if self.power else None,
            ),
        )

    def _warmup_s(self) -> float:
        """The device warm-up: ``--warmup``, else the suite's for an accelerator or for the CPU."""
        if self.options.warmup_s is not None:
            return self.options.warmup_s
        return self.suite.accelerator_warmup_s if self.device.backend != "cpu" else self.suite.device_warmup_s

    def time_plan(self) -> dict[str, float]:
        """What the run may take, in seconds, by phase: the device warm-up (up to WARMUP_MAX_FACTOR times its
        time while the clock is still falling), the cases (the suite budget), the confirmations (one case target
        per dtype), the idle window and the energy windows (headline per dtype, sweep and per-kernel windows, with
        an external log's wait after each). ``total`` is their sum: an upper estimate, announced at the start."""
        on_accelerator = self.device.backend != "cpu"
        plan = {
            "warmup_s": self._warmup_s() * (WARMUP_MAX_FACTOR if on_accelerator else 1.0),
            "cases_s": self.suite.suite_budget_s,
            "confirmations_s": self.suite.case_target_s * len(self.dtypes),
            "idle_s": 0.0,
            "energy_s": 0.0,
        }
        if self.power is not None and self.power.quality != "Q0":
            plan["idle_s"] = self._idle_s
            wait = energy_windows.meter_wait_s(self.power)
            sweep_s, _ = energy_windows.sweep_window_s(self.power, self._window_s)
            windows = [self._window_s + wait * self._trials] * len(self.dtypes)  # a headline window per dtype
            if sweep_s is not None:
                sweep = [
                    c
                    for c in self.cases
                    if c.kernel == "gemm"
                    and c.dtype == energy_windows.SWEEP_DTYPE
                    and c.shape_set == energy_windows.SWEEP_SHAPE_SET
                ]
                kernels = {c.kernel for c in self.cases if c.kernel != "gemm" and c.dtype == energy_windows.SWEEP_DTYPE}
                windows += [sweep_s + wait] * (len(sweep) + len(kernels))
            if self.cap_plan is not None:
                windows += [self._window_s + wait * self._trials + self._cap_settle_s()] * len(self.cap_plan.caps)
            plan["energy_s"] = sum(windows)
        plan["total_s"] = sum(plan.values())
        return plan

    def _selected(self) -> dict[str, Any] | None:
        """What the user narrowed the suite to, or None for the whole suite."""
        kernels = self.kernels if self.options.kernels else None
        dtypes = self.dtypes if self.options.dtypes else None
        return {"kernels": kernels, "dtypes": dtypes} if kernels or dtypes else None

    def run(self) -> ResultProfile:
        if self.device.backend == "cpu":
            self._allocator = settle_malloc()  # before any kernel: CPU figures must not depend on malloc's history
        try:
            with full_fp32_precision():  # fp32 cases are true IEEE fp32: TF32 would pass as fp32 otherwise
                return self._run()
        finally:
            if self.power is not None:
                self.power.close()  # an NVML session must not outlive the run, whatever ended it

    def _run(self) -> ResultProfile:
        draft = self._start()
        for warning in getattr(self.power, "warnings", None) or ():  # what the source found when it opened
            draft.warnings.append(f"power: {warning}")
        precision = fp32_precision_state()
        draft.environment["fp32_precision"] = precision
        if "fp32" in self.dtypes and precision.get("reason"):
            draft.warnings.append(f"fp32 cases may not be true fp32: {precision['reason']}")
        started = self._clock()
        try:
            self._emit("phase", {"name": "checking for other load"})
            self._check_load_before(draft)
            self._measure_idle(draft)
            self._emit("phase", {"name": "probing dtypes"})
            unsupported = self._probe(draft)
            self._emit("phase", {"name": f"warming up the device ({self._device_warmup_s:g} s)"})
            self._warm_up_device(draft)
            flush = self.device.make_flush() if self.options.flush else (lambda: None)
            flush_s = self._time_flush(flush)
            self._emit("phase", {"name": "checking CNN/RNN/LSTM support in fp16"})
            support = check_support(self.device.torch_device, self.options.seed)
            draft.support = {family: SupportFamily.from_dict(entry) for family, entry in support.items()}
            self._run_cases(draft, unsupported, flush, flush_s)
            self._confirm_peaks(draft, flush, flush_s)
            self._energy_phase(draft)
            self._cap_phase(draft)
            stopping.hold()  # measuring is over: a signal from now on must not stop the profile being saved
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP through npucheck.signals (named in the warning)
            draft.interrupted = True
            draft.warnings.append(stopping.interrupted_warning(e))
        self._finish_warnings(draft)
        return draft.build(wall_s=self._clock() - started)

    # ----------------------------------------------------------------------------------------------- power
    def _measure_idle(self, draft: _Draft) -> None:
        if self.power is None or self._idle_s <= 0 or self.power.quality == "Q0":
            return  # a stated figure has no idle to measure
        self._emit("phase", {"name": f"measuring idle power ({self._idle_s:g} s)"})
        try:
            window = energy_windows.measure_idle(self.power, self._idle_s, self.device, self.options.power_hz)
            idle = Energy.from_dict({**window, "kind": "idle"})
        except Exception as e:  # noqa: BLE001 - nothing a power source does may end the run
            idle = replace(energy_windows.invalid_energy(self.power, _first_line(e)), kind="idle")
        draft.power = replace(draft.power, idle=idle)
        if idle.valid:
            self._idle_watts = idle.avg_watts
        else:
            draft.warnings.append(f"idle power not measured: {idle.reason}; no net TFLOPS/W")

    def _energy_phase(self, draft: _Draft) -> None:
        """Energy windows for the headline and sweep cases (see npucheck.measure.energy)."""
        if self.power is None:
            return
        sweep_s, why = energy_windows.sweep_window_s(self.power, self._window_s)
        draft.power = replace(draft.power, sweep_window_s=sweep_s)
        if why:
            draft.warnings.append(why)
        plan = energy_windows.window_plan(draft.measurements, sweep_s, self._window_s)
        position = {id(m): index for index, m in enumerate(draft.measurements)}
        self._emit("start", {"total": len(plan)})
        for index, (measurement, window_s, kind) in enumerate(plan):
            self._emit("phase", {"name": f"energy window {index + 1}/{len(plan)}: {measurement.id} ({window_s:g} s)"})
            energy = self._energy_window(measurement, window_s, kind)
            measurement = replace(
                measurement,
                energy=energy,
                warnings=measurement.warnings + tuple(f"energy window: {w}" for w in energy.warnings),
            )
            draft.measurements[position[id(plan[index][0])]] = measurement
            self._emit("case_done", {"index": index, "case": None, "measurement": measurement})

    def _cap_settle_s(self) -> float:
        settle = self.options.power_caps_settle_s
        return capsweep.SETTLE_S if settle is None else settle

    def _cap_phase(self, draft: _Draft) -> None:
        """The efficiency-vs-power-cap sweep (``--power-caps``): the headline window of fp16's peak GEMM (else the
        first dtype's) again at each cap; the original limit is restored whatever ends it (npucheck.measure.capsweep).
        The record is on the draft from the start, so an interrupted sweep keeps its caps and its restore."""
        if self.cap_plan is None or self.power is None:
            return
        peaks = peak_gemm_cases(draft.measurements)
        chosen = peaks.get(energy_windows.SWEEP_DTYPE) or next(iter(peaks.values()), None)
        record = capsweep.sweep_record(
            self.cap_plan,
            chosen.id if chosen else None,
            chosen.dtype if chosen else None,
            self._cap_settle_s(),
        )
        draft.power_caps = record
        if chosen is None:
            record["warnings"].append("no correct GEMM peak to run at each cap: the limit was never changed")
            return
        measurement = next(m for m in draft.measurements if m.id == chosen.id)
        self._emit("phase", {"name": f"power-cap sweep: {len(self.cap_plan.caps)} caps of {chosen.id}"})
        try:
            capsweep.run_sweep(
                self.cap_plan,
                lambda: self._energy_window(measurement, self._window_s, "headline"),
                record,
                on_step=lambda label, watts: self._emit("phase", {"name": f"power cap {label} ({watts:g} W)"}),
            )
        finally:  # a Ctrl-C mid-sweep still has its restore recorded, and a failed one warned of
            restore = record.get("restore")
            if restore is not None and not restore["verified"]:
                draft.warnings.append(capsweep.restore_failed_warning(restore))

    def _energy_window(self, measurement: Measurement, window_s: float, kind: EnergyKind) -> Energy:
        """The energy of ``measurement``'s case run back to back for ``window_s`` (in the source's trials); an
        invalid energy object, with the reason, when the window could not run."""
        assert self.power is not None  # energy windows run only when a power source is open
        try:
            trials = self._trials if kind == "headline" else 1
            case = KERNELS[measurement.kernel].case(measurement.dtype, measurement.shape, measurement.shape_set)
            too_big = self._memory_reason(case)
            if too_big:
                return replace(energy_windows.invalid_energy(self.power, too_big), kind=kind, case=measurement.id)
            batch = energy_windows.window_batch(measurement)
            energy = energy_windows.combine_trials(
                [self._trial(case, batch, window_s / trials, trial) for trial in range(trials)]
            )
            _compare_timed_and_sustained(measurement.tflops, energy)
            return Energy.from_dict({**energy, "kind": kind, "case": measurement.id})
        except torch.OutOfMemoryError as e:
            invalid = energy_windows.invalid_energy(self.power, f"out of memory: {_first_line(e)}")
        except Exception as e:  # noqa: BLE001 - a kernel or power source failing loses this window only
            invalid = energy_windows.invalid_energy(self.power, _first_line(e))
        finally:
            self._release_memory()
        return replace(invalid, kind=kind, case=measurement.id)

    def _trial(self, case: Case, batch: int, window_s: float, index: int) -> dict[str, Any]:
        """One energy window; trials after the first start a random fraction of the source's update period
        late, so that duty-cycled telemetry (NVML samples 25 ms of every 100 ms on A100/H100) sees other phases
        of the work."""
        assert self.power is not None  # energy windows run only when a power source is open
        if index:
            period = self.power.counter_update_s or self.power.power_update_s or 0.1
            time.sleep(self._phase_rng.uniform(0, period))
        return energy_windows.run_window(
            case,
            batch,
            window_s,
            self.device,
            self.power,
            self.options.power_hz,
            self.options.seed,
            self._idle_watts,
            clock=self._clock,
        )

    # ----------------------------------------------------------------------------------------------- phases
    def _check_load_before(self, draft: _Draft) -> None:
        siblings = (self.options.fleet or {}).get("siblings") or []
        busy = busy_processes(0.5, exclude=siblings)
        gpu = self.device.foreign_processes()  # None: the backend cannot tell
        if gpu is not None:
            gpu = [p for p in gpu if p.get("pid") not in siblings]
        draft.load_before = {"busy_processes": busy, "device_processes": gpu}
        if busy:
            draft.warnings.append(
                f"other load before the run: {describe_busy(busy)}; figures will be lower than the device can do"
            )
        if gpu:
            draft.warnings.append(
                f"{len(gpu)} other process(es) use {self.device.id}: " + ", ".join(str(p["pid"]) for p in gpu)
            )

    def _probe(self, draft: _Draft) -> dict[str, str]:
        """Estimate each dtype's GEMM rate (to size cases) and find the dtypes the device cannot run."""
        unsupported: dict[str, str] = {}
        for dtype in self.dtypes:
            if not any(case.dtype == dtype for case in self.cases):  # e.g. fp8 chosen, no fp8 entry in the suite
                continue
            reason = self.device.dtype_support(dtype)
            if reason:
                unsupported[dtype] = reason
                continue
            try:
                self._probe_dtype(dtype)
            except (RuntimeError, ValueError, TypeError, NotImplementedError) as e:
                unsupported[dtype] = f"the {dtype} GEMM probe failed: {_first_line(e)}"
            finally:
                self._release_memory()
        draft.settings = replace(
            draft.settings,
            probe_tflops=dict(self.planner.probe_tflops),
            probe_notes=dict(self._probe_notes) if self._probe_notes else None,
        )
        return unsupported

    def _probe_dtype(self, dtype: str) -> None:
        """Double a square GEMM until one call takes PROBE_MIN_CALL_S; its rate seeds the case predictions.

        A failure at a larger size (out of memory, a backend limit) keeps the rate of the last size that worked:
        only a failure at the smallest size means the dtype cannot run."""
        size = PROBE_START.get(dtype, 64)
        with torch.inference_mode():
            while True:
                layout = PROBE_LAYOUT.get(dtype, "NN")  # fp8: B column-major, the only layout _scaled_mm takes
                case = KERNELS["gemm"].case(dtype, {"m": size, "n": size, "k": size, "layout": layout}, "probe")
                too_big = self._memory_reason(case) if dtype in self.planner.probe_tflops else None
                if too_big:
                    self._probe_notes[dtype] = f"probe stopped at {size}^3 ({too_big}); rate of {size // 2}^3 kept"
                    return
                try:
                    workload = build_workload(case, self.device.torch_device, self.options.seed)
                    workload.run()
                    call_s = min(self.device.time_calls(workload.run, 1) for _ in range(3))
                    if not (math.isfinite(call_s) and call_s > 0):  # a broken timer must not become a rate
                        raise ValueError(f"timer returned {call_s!r} s for one call")
                except (RuntimeError, ValueError, TypeError, NotImplementedError) as e:
                    if dtype not in self.planner.probe_tflops:
                        raise
                    self._probe_notes[dtype] = (
                        f"probe stopped at {size}^3 ({_first_line(e)}); rate of {size // 2}^3 kept"
                    )
                    return
                self.planner.record_probe(case, case.flops / call_s / 1e12)
                if not hasattr(self, "_probe_case") or dtype in (
                    WARMUP_DTYPE,
                    getattr(self, "_probe_case_dtype", None),
                ):
                    # the device warm-up runs the largest probe of fp16 (of the first dtype when fp16 is not run)
                    self._probe_case, self._probe_case_dtype = workload, dtype
                del workload
                if call_s >= PROBE_MIN_CALL_S or size * 2 > PROBE_MAX_SIZE:
                    return
                size *= 2

    def _warm_up_device(self, draft: _Draft) -> None:
        """Run the fp16 probe GEMM for the suite's warm-up time and, where the power source reports the clock,
        on until the clock stops falling (a cold GPU boosts higher on its first shapes), at most
        WARMUP_MAX_FACTOR times as long. What happened is recorded in ``settings.device_warmup``."""
        if self._device_warmup_s <= 0 or not hasattr(self, "_probe_case"):
            return
        started = self._clock()
        end, limit = started + self._device_warmup_s, started + WARMUP_MAX_FACTOR * self._device_warmup_s
        clocks: list[tuple[float, float]] = []
        next_read = started
        settled = False
        with torch.inference_mode():
            while True:
                self.device.time_calls(self._probe_case.run, 1)
                now = self._clock()
                if now >= next_read:
                    mhz = self._device_state().get("sm_clock_mhz")
                    if isinstance(mhz, (int, float)):
                        clocks.append((now - started, float(mhz)))
                    next_read = now + WARMUP_CLOCK_EVERY_S
                settled = _clock_settled(clocks)
                if now >= limit or (now >= end and (settled or not clocks)):
                    break
        draft.settings = replace(
            draft.settings,
            device_warmup={
                "seconds": self._clock() - started,
                "dtype": getattr(self, "_probe_case_dtype", None),
                "clock_mhz_first": clocks[0][1] if clocks else None,
                "clock_mhz_last": clocks[-1][1] if clocks else None,
                "clock_settled": settled if clocks else None,
                "note": None if clocks else "no clock reading from the power source: warmed up for the time only",
            },
        )
        if clocks and not settled:
            draft.warnings.append(
                f"the device clock was still falling after {self._clock() - started:.0f} s "
                "of warm-up: early cases may be faster than sustained work"
            )
        del self._probe_case

    def _device_state(self) -> dict[str, Any]:
        """Clock, throttle reasons, temperature and power limit now, from the power source (NVML, amdsmi); empty
        where the source does not report them."""
        if self.power is None:
            return {}
        try:
            context = self.power.context()
        except Exception:  # noqa: BLE001 - evidence is optional; a failing read must not end the run
            return {}
        return {key: context[key] for key in DEVICE_STATE_KEYS if key in context}

    def _time_flush(self, flush: Callable[[], None]) -> float:
        flush()
        start = self._clock()
        flush()
        self.device.synchronize()
        return self._clock() - start

    # ----------------------------------------------------------------------------------------------- cases
    def _run_cases(self, draft: _Draft, unsupported: dict[str, str], flush: Callable[[], None], flush_s: float) -> None:
        deadline = self._clock() + self.suite.suite_budget_s
        self._emit("start", {"total": len(self.cases)})
        for index, case in enumerate(self.cases):
            self._emit("case_start", {"index": index, "case": case})
            reason = unsupported.get(case.dtype) or self._memory_reason(case)  # before its time: nothing to spend
            if reason is None and not self.planner.needs_pilot(case):
                reason = self.planner.skip_reason(case, flush_s, deadline - self._clock())
            if reason is not None:
                measurement = _measurement(case, status="skipped", reason=reason, wall_s=0.0)
            else:
                measurement = self._measure(case, flush, flush_s, deadline)
            draft.measurements.append(measurement)
            self._emit("case_done", {"index": index, "case": case, "measurement": measurement})

    def _pilot(self, case: Case, workload: Any) -> None:
        """Time one call (after an untimed first call, which pays for lazy initialisation) to seed the rate of
        this kernel and dtype."""
        workload.run()
        call_s = self.device.time_calls(workload.run, 1)
        self.planner.record_call_s(case, call_s)

    def _measure(
        self, case: Case, flush: Callable[[], None], flush_s: float, deadline: float, seed: int | None = None
    ) -> Measurement:
        """Check and time one case. What it found becomes one Measurement when the case ends; a value the model
        refuses (a runner bug) makes this case an error with the reason, never the loss of the run."""
        found: dict[str, Any] = {
            "status": "error",
            "cache_flush_bytes": self.device.cache_flush_bytes() if self.options.flush else 0,
            "warnings": [],
        }
        started = self._clock()
        before = self._monitor.snapshot()
        workload = None
        try:
            too_big = self._memory_reason(case)
            if too_big:
                raise _Skip(too_big)
            with torch.inference_mode():
                workload = build_workload(case, self.device.torch_device, self.options.seed if seed is None else seed)
                if workload.backend is not None:  # the library backend that runs it (attention: SDPA's choice)
                    found["backend"] = workload.backend
                if not self.planner.has_rate(case):
                    self._pilot(case, workload)
                    reason = self.planner.skip_reason(case, flush_s, deadline - self._clock())
                    if reason:
                        raise _Skip(f"{reason} (rate from one timed call)")
                found["predicted_s"] = self.planner.predict_s(case, flush_s)
                check = workload.verify()
                found.update(check=Check.from_dict(check.to_dict()), correct=check.ok)
                if check.ok is None:  # the host reference could not be computed: unchecked, never wrong
                    found["warnings"].append(f"unchecked: {check.reason}")
                elif not check.ok:
                    raise _Mismatch(
                        f"result differs from the {check.reference_dtype} reference: relative error "
                        f"{check.rel_error:.3g} > tolerance {check.tolerance:.0e}"
                    )
                left = self.suite.case_budget_s - (self._clock() - started)
                warmup_s = self.suite.case_target_s * WARMUP_FRACTION
                settings = TimingSettings(
                    budget_s=max(min(self.suite.case_target_s - warmup_s, left - warmup_s), 0.0),
                    min_samples=self.suite.min_samples,
                    max_samples=self.suite.max_samples,
                    min_sample_s=self.suite.min_sample_s,
                    warmup_s=warmup_s,
                    confidence=CONFIDENCE,
                )
                state_before = self._device_state()
                timing = time_kernel(workload.run, self.device, flush, settings, clock=self._clock)
                state_after = self._device_state()
        except (_Skip, FitsInCache, UnsupportedCase) as e:
            found.update(status="skipped", reason=str(e))
        except _Mismatch as e:
            found.update(status="error", error=str(e))
        except NonFiniteOutput as e:
            found.update(status="error", correct=False, error=f"non-finite output: {e}")
        except torch.OutOfMemoryError as e:
            found.update(status="error", error=f"out of memory: {_first_line(e)}")
        except (RuntimeError, ValueError, TypeError, NotImplementedError, AssertionError) as e:
            found.update(status="error", error=_first_line(e))
        else:
            stats = timing.stats
            found.update(
                status="ok",
                samples_s=timing.samples_s,
                calls_per_sample=timing.calls_per_sample,
                warmup_calls=timing.warmup_calls,
                timing_method=timing.timing_method,
                stats=Stats.from_dict(stats.to_dict()),
                tflops=case.flops / stats.median_s / 1e12,
                tflops_ci=(case.flops / stats.ci_high_s / 1e12, case.flops / stats.ci_low_s / 1e12),
                warnings=found["warnings"] + list(timing.warnings),
                cache_state=timing.cache_state(self.options.flush),
                timed_calls=timing.timed_calls,
                minor_faults=timing.minor_faults,
                device_state={"before": state_before, "after": state_after} if state_before or state_after else None,
            )
            _flag_faults_and_throttling(found, timing.minor_faults, timing.timed_calls)
            if case.family == "memory":  # GB/s: bytes read + written over the same median and interval
                found.update(bandwidth_figures(case.bytes, stats.median_s, stats.ci_low_s, stats.ci_high_s))
            reason = ceiling_reason(self._datasheet, case.dtype, found["tflops"]) or bandwidth_ceiling_reason(
                self._datasheet, found.get("gbps")
            )
            if reason:  # above the datasheet's ceiling: a timing or counting bug, never a result
                found.update(status="error", error=reason)
            else:
                self.planner.record_call_s(case, stats.median_s)
        finally:
            del workload
            self._release_memory()
        foreign = LoadMonitor.foreign_cores(before, self._monitor.snapshot())
        found["foreign_cpu_cores"] = foreign
        if foreign is not None and foreign > FOREIGN_CORES_WARNING:
            found["warnings"].append(f"other processes used {foreign:.2f} CPU cores during this case")
        found["wall_s"] = self._clock() - started
        try:
            return _measurement(case, **found)
        except (ValueError, TypeError) as e:
            return _measurement(
                case,
                status="error",
                error=f"npucheck bug: the measurement did not fit the result model ({_first_line(e)})",
                wall_s=found["wall_s"],
            )

    def _confirm_peaks(self, draft: _Draft, flush: Callable[[], None], flush_s: float) -> None:
        """Re-measure each dtype's best GEMM case from fresh inputs: the best of many cases is biased upward (the
        largest of ~30 intervals), so the targets judge this independent confirmation instead."""
        peaks = peak_gemm_cases(draft.measurements)
        if peaks:
            self._emit("phase", {"name": f"confirming the peak of {', '.join(peaks)}"})
        for dtype, best in peaks.items():
            case = KERNELS["gemm"].case(dtype, best.shape, best.shape_set)
            measured = self._measure(case, flush, flush_s, math.inf, seed=self.options.seed + CONFIRM_SEED_OFFSET)
            confirmation = replace(measured, role="confirmation", confirms=best.id)
            if confirmation.status == "ok" and self.device.per_call_events:
                confirmation = self._host_clock_check(case, confirmation)
            assert best.tflops_ci is not None  # a peak is an ok measurement, with its interval
            if confirmation.status == "ok" and confirmation.tflops_ci and confirmation.tflops_ci[1] < best.tflops_ci[0]:
                confirmation = _warn(
                    confirmation,
                    f"the confirmation ({confirmation.tflops:.4g} {'TOPS' if dtype == 'int8' else 'TFLOPS'}) is "
                    "below the interval of the selected "
                    f"case ({best.tflops_ci[0]:.4g}-{best.tflops_ci[1]:.4g}): the peak did not reproduce",
                )
            draft.confirmations.append(confirmation)

    def _host_clock_check(self, case: Case, confirmation: Measurement) -> Measurement:
        """Time the confirmed case once more with the host clock (synchronize, back-to-back calls, synchronize).
        That figure includes launch gaps, so it can only read low: device events reading more than
        HOST_CLOCK_TOLERANCE faster than it is a timer bug (events on the wrong stream, a clock error), and the
        judge will not pass the peak on it. The one check that needs no datasheet and no power source."""
        assert confirmation.stats is not None and confirmation.tflops is not None  # an ok measurement
        try:
            with torch.inference_mode():
                workload = build_workload(case, self.device.torch_device, self.options.seed + CONFIRM_SEED_OFFSET)
                workload.run()
                calls = max(1, min(HOST_CLOCK_MAX_CALLS, math.ceil(HOST_CLOCK_S / confirmation.stats.median_s)))
                seconds = Device.time_calls(self.device, workload.run, calls)  # the host-clock path, not events
                del workload
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as e:
            return _warn(confirmation, f"host-clock check failed: {_first_line(e)}")
        finally:
            self._release_memory()
        host_tflops = case.flops * calls / seconds / 1e12 if seconds > 0 else None
        ratio = confirmation.tflops / host_tflops if host_tflops else None
        checked = replace(confirmation, host_clock_tflops=host_tflops, events_vs_host_clock=ratio)
        if ratio is not None and host_tflops is not None and ratio > HOST_CLOCK_TOLERANCE:
            checked = _warn(
                checked,
                f"device events read {ratio:.2f}x the host clock's {host_tflops:.4g} TFLOPS for the same calls "
                "(the host clock can only read low): the event timing is suspect and the peak is not judged",
            )
        return checked

    def _memory_reason(self, case: Case) -> str | None:
        """Why ``case`` must not be built now (its tensors would not fit in the free memory), or None."""
        try:
            available = self._available_memory()
        except Exception:  # noqa: BLE001 - a reading that fails must not end the run: unknown, no check
            available = None
        return memory_skip_reason(case, available)

    def _release_memory(self) -> None:
        gc.collect()
        try:
            self.device.empty_cache()
        except Exception:  # noqa: BLE001, S110 - older torch or backends without the memory API
            pass

    def _finish_warnings(self, draft: _Draft) -> None:
        measured = draft.measurements
        loaded = [m for m in measured if (m.foreign_cpu_cores or 0) > FOREIGN_CORES_WARNING]
        foreign = [m.foreign_cpu_cores for m in measured if m.foreign_cpu_cores is not None]
        if loaded:
            draft.warnings.append(
                f"other load during {len(loaded)} of {len(measured)} cases "
                f"(up to {max(foreign):.2f} CPU cores used by other processes)"
            )
        unstable = [m for m in measured if m.stats is not None and is_unstable(m.stats.iqr_rel)]
        if unstable:
            draft.warnings.append(f"{len(unstable)} cases were unstable (IQR > 10% of the median)")
        skipped = [m for m in measured if m.status == "skipped"]
        if skipped:
            draft.warnings.append(f"{len(skipped)} of {len(measured)} cases were skipped (see each reason)")
        if self.device.backend != "cpu":
            draft.warnings.append(
                "the accelerator code path has not yet been validated on real hardware by "
                "the npucheck project; treat its figures with care"
            )


def available_memory_bytes(device: Device) -> int | None:
    """Bytes free where ``device``'s tensors live: the host's available memory (and its cgroup's) when they live
    on the host (the CPU, a fake accelerator), else the backend's ``mem_get_info`` (CUDA, ROCm, XPU, Ascend…), read
    after the runner has returned its cached blocks; None where the backend cannot tell (MPS): no check."""
    kind = device.torch_device.type
    if kind == "cpu":
        return host_available_bytes()
    try:
        free, _total = torch.get_device_module(kind).mem_get_info(device.torch_device)
    except Exception:  # noqa: BLE001 - no such API, or a backend that fails to answer: unknown
        return None
    return int(free)


def _measurement(case: Case, **found: Any) -> Measurement:
    """The Measurement of ``case`` with what was found (status, figures, evidence)."""
    return Measurement(
        id=case.id,
        kernel=case.kernel,
        family=case.family,
        kernel_version=case.kernel_version,
        shape_set=case.shape_set,
        dtype=case.dtype,
        shape=dict(case.shape),
        flops=case.flops,
        flop_convention=case.flop_convention,
        bytes=case.bytes,
        **found,
    )


def _warn(measurement: Measurement, warning: str) -> Measurement:
    return replace(measurement, warnings=(*measurement.warnings, warning))


def _flag_faults_and_throttling(found: dict[str, Any], faults: int | None, calls: int) -> None:
    if faults is not None and calls:
        found["minor_faults_per_call"] = faults / calls
        if faults / calls >= FAULTS_PER_CALL_WARNING:
            found["warnings"].append(
                f"page faults: {faults / calls:.3g} minor faults per timed call (the allocator mapped fresh "
                "memory while timing; the figure may be low)"
            )
    state = found.get("device_state") or {}
    reasons = sorted({r for edge in state.values() for r in (edge or {}).get("throttle_reasons") or []})
    found["throttled"] = bool(reasons) if state else None
    if reasons:
        found["warnings"].append(f"throttled: measured while the device reported {', '.join(reasons)}")


def _compare_timed_and_sustained(timed: float | None, energy: dict[str, Any]) -> None:
    """The energy window runs the timed case again, back to back: when its sustained TFLOPS and the timed median
    differ by more than TIMED_SUSTAINED_TOLERANCE, one of the two did not measure what it claims (throttling, a
    timing error, other load), so the window's TFLOPS/W must not decide a verdict."""
    sustained = energy.get("tflops")
    if not energy.get("valid") or not sustained or not timed:
        return
    ratio = sustained / timed
    energy["sustained_vs_timed"] = ratio
    if abs(ratio - 1) > TIMED_SUSTAINED_TOLERANCE:
        reason = (
            f"the energy window's sustained {sustained:.4g} TFLOPS is {ratio:.2f}x the timed median "
            f"{timed:.4g} TFLOPS (more than {TIMED_SUSTAINED_TOLERANCE:.0%} apart)"
        )
        energy["judgeable"] = False
        energy["not_judged_reason"] = reason
        energy.setdefault("warnings", []).append(reason + ": its TFLOPS/W is not judged")


def _clock_settled(clocks: list[tuple[float, float]]) -> bool:
    """True when the last few clock readings no longer fall (see WARMUP_SETTLED_DROP)."""
    if len(clocks) < WARMUP_SETTLED_READINGS:
        return False
    recent = [mhz for _, mhz in clocks[-WARMUP_SETTLED_READINGS:]]
    return min(recent) >= recent[0] * (1 - WARMUP_SETTLED_DROP)


class _Mismatch(Exception):
    pass


class _Skip(Exception):
    pass
