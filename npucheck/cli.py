"""The command line. The only layer that prints or chooses exit codes.

Exit codes:
  0    success (``run``: the run completed, whatever the verdicts; ``check``: every verdict PASS)
  1    ``check``: at least one verdict FAIL; ``compare --fail-on-regression``: a regression was found, or a
       case right in the base is an error or a wrong answer;
       ``fleet --fail-on-outlier``: a device is an outlier, failed a target, or is missing or in error
  2    usage or bad input (unknown option value, bad target profile, missing or corrupt result file)
  3    ``check``: nothing FAILed but some verdict is INCONCLUSIVE or ERROR
  4    internal error (a bug: please report it)
  5    fleet run: a member is not ``ok`` (rank 0), or this rank's result could not reach rank 0
  6    ``run``: measured, but the result could not be saved where asked (folder vanished, disk full, file taken
       meanwhile); a copy was saved elsewhere and its path printed
  7    ``run``: measured, but no copy could be saved anywhere (the asked place and every fallback folder failed)
  8    ``run --power-caps``: the device's original power limit could not be restored (the result is saved and says
       what to set by hand)
  128+N  stopped by signal N: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP; ``run`` saves what it measured
       first, marked interrupted with the signal's name (a signal while saving is held until the file is written)

``check``, ``show``, ``targets``, ``results``, ``compare``, ``fleet``, ``plot`` and ``report`` read stored data only
and never import torch.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from npucheck import __version__
from npucheck.errors import NpucheckError, UsageError
from npucheck.model import ResultProfile, Verdict

__all__ = [
    "check",
    "cli",
    "compare_command",
    "env",
    "fleet_command",
    "keygen_command",
    "main",
    "NpucheckGroup",
    "plot_command",
    "report_command",
    "RESULT_SORTS",
    "results_command",
    "run",
    "show",
    "sign_command",
    "targets_command",
    "verify_command",
]


EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_NOT_SAVED = 6  # `run`: measured, but saved elsewhere than asked (the copy's path is printed)
EXIT_LOST = 7  # `run`: measured, but no copy could be written anywhere (every fallback folder failed)
EXIT_CAP_NOT_RESTORED = 8  # `run --power-caps`: the original power limit could not be restored


def _console(err: bool = False) -> Console:
    """The terminal's width (``$COLUMNS`` when piped) and plain text when piped: see npucheck.read.screen."""
    from npucheck.read.screen import make_console

    return make_console(err)


class NpucheckGroup(click.Group):
    """Maps npucheck's errors to one clear line and the documented exit code, never a traceback."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """As click's, but a bad option or argument is one line (``npucheck: error: …``), not a usage block."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()  # `npucheck` alone prints the help
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "npucheck"
            click.echo(f"npucheck: error: {e.format_message()} (see '{where} --help')", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as e:
            click.echo(f"npucheck: error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("npucheck: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            sys.stderr.close()  # `npucheck show R | head`: the reader left; nothing to report
            sys.exit(EXIT_FAIL)
        sys.exit(code if isinstance(code, int) else EXIT_OK)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NpucheckError as e:
            click.echo(f"npucheck: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP during `run` (npucheck.signals): 128 + N
            from npucheck import signals

            click.echo(f"npucheck: interrupted by {signals.signal_name(signals.signum_of(e))}", err=True)
            ctx.exit(signals.exit_code(signals.signum_of(e)))


@click.group(cls=NpucheckGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="npucheck")
def cli() -> None:
    """Measure an accelerator's FP16 throughput with evidence, and judge it against hardware targets."""


# --------------------------------------------------------------------------------------------------------- env
@cli.command()
def env() -> None:
    """Devices and power sources found here, and why others are not."""
    from npucheck.measure import power
    from npucheck.measure.devices import available_devices, resolve_device
    from npucheck.read.screen import print_wrapped

    console = _console()
    ids, notes = available_devices()
    console.print("[bold]Devices[/bold]")
    for device_id in ids:
        device = resolve_device(device_id)
        print_wrapped(console, [f"  {device_id:8s} {device.name}  (timing: {device.timing_method})"])
    print_wrapped(console, [f"  {note}" for note in notes])
    console.print("[bold]Power sources[/bold]")
    for status in power.probe_all():
        print_wrapped(console, [f"  {status.name:8s} {'found' if status.found else 'absent'}  {status.detail}"])
    print_wrapped(
        console,
        [
            "  meter    use --power meter:PATH for an external meter's log; constant:WATTS for a stated "
            "figure (Q0, never judged)"
        ],
    )


# --------------------------------------------------------------------------------------------------------- run
@cli.command()
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, xpu:0, mps, npu:0, …")
@click.option("--suite", default="standard", show_default=True, help="quick, standard or full")
@click.option(
    "--kernels",
    multiple=True,
    help="gemm, conv2d (cnn), rnn_tanh, rnn_relu (rnn), lstm, gru, attention; repeat or comma-separate. Default: all.",
)
@click.option(
    "--dtypes",
    multiple=True,
    help="fp16, bf16, fp32, int8 (TOPS), fp8_e4m3, fp8_e5m2; repeat or comma-separate. Default: all (int8 and fp8 "
    "run only where the suite lists them).",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="Built-in target name or a .toml file; repeatable. Default: every built-in target.",
)
@click.option("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@click.option(
    "--warmup",
    "warmup_s",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds of device warm-up before the suite (default: the suite's).",
)
@click.option("--no-flush", is_flag=True, help="Do not flush caches between samples (measures warm caches).")
@click.option(
    "--min-sample-time",
    "min_sample_s",
    type=float,
    default=None,
    help="Seconds each timed sample lasts at least (calls are batched; default: the suite's, 2-5 ms). Raise it "
    "on a host where other work time-slices the device, so each sample averages over the slices.",
)
@click.option(
    "--power",
    "power_spec",
    default="auto",
    show_default=True,
    help="Power source: auto, none, nvml[:N], rapl[:package|psys|dram], hwmon[:DRIVER[:LABEL]], "
    "amdsmi[:N], meter:PATH[,accuracy=0.01,sample=average|instant,period=1,scope=wall,offset=0], "
    "constant:WATTS.",
)
@click.option(
    "--power-window",
    "power_window_s",
    type=float,
    default=None,
    help="Seconds of sustained loop per headline energy window (default: the suite's: quick 5, standard 30, full 60).",
)
@click.option(
    "--idle-seconds",
    "idle_s",
    type=float,
    default=None,
    help="Seconds of idle power measured before the suite (default: the suite's).",
)
@click.option("--power-hz", type=float, default=10.0, show_default=True, help="Power sampling rate.")
@click.option(
    "--power-trials",
    type=click.IntRange(1, 20),
    default=None,
    help="Trials the headline window is split into (default: the suite's: quick 1, standard and full 3).",
)
@click.option(
    "--power-caps",
    default=None,
    help="Efficiency vs power cap: after the run, the headline energy window again at each cap, e.g. "
    "300,400,500,FULL (watts; FULL = the board's default limit). NVIDIA (NVML) or AMD (amdsmi) only, needs root; "
    "the original limit is restored at the end, whatever ends the run. Not in a fleet. See docs/power.md.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Result file to write (must not exist).",
)
@click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Where result files go when -o is not given.",
)
@click.option(
    "--fleet",
    "fleet_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Fleet directory: under torchrun, this rank's device is measured and rank 0 writes every device's "
    "profile and fleet.json here; with --device all, where the node's fleet goes (default: "
    "RESULTS_DIR/fleet-HOST-TIME). See docs/fleet.md.",
)
@click.option(
    "--nproc-per-node",
    type=click.IntRange(min=1),
    default=None,
    help="--device all: ranks to start (default: every local accelerator; on a CPU-only host 1, and N splits "
    "the cores into N slices).",
)
@click.option(
    "--fleet-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Fleet: seconds after the start until a rank still measuring is stopped and rank 0 stops waiting "
    "(default: 1.5 x the longest announced plan + 120 s).",
)
@click.option(
    "--fleet-join-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Fleet: seconds rank 0 waits for every rank to be ready before starting without the missing ones.",
)
@click.option(
    "--fleet-member", default=None, hidden=True, help="Internal: set by a fleet rank for its measuring process."
)
def run(
    device: str,
    suite: str,
    kernels: tuple[str, ...],
    dtypes: tuple[str, ...],
    targets: tuple[str, ...],
    threads: int | None,
    seed: int,
    warmup_s: float | None,
    no_flush: bool,
    min_sample_s: float | None,
    power_spec: str,
    power_window_s: float | None,
    idle_s: float | None,
    power_hz: float,
    power_trials: int | None,
    power_caps: str | None,
    output: Path | None,
    results_dir: Path,
    fleet_dir: Path | None,
    nproc_per_node: int | None,
    fleet_timeout: float | None,
    fleet_join_timeout: float,
    fleet_member: str | None,
) -> None:
    """Measure the device with a suite, judge it, and save a result profile.

    With --device all, or under torchrun with --fleet DIR, measure every device together (docs/fleet.md).
    """
    from npucheck import store
    from npucheck import targets as target_profiles
    from npucheck.read import judge as judging

    member = _fleet_member(fleet_member) if fleet_member is not None else None
    if power_caps is not None and (member is not None or device.strip().lower() == "all" or fleet_dir is not None):
        raise UsageError("--power-caps is refused in a fleet run: measure one device at a time")
    if member is None and (device.strip().lower() == "all" or fleet_dir is not None):
        shared = _shared_run_args(
            suite,
            kernels,
            dtypes,
            targets,
            seed,
            warmup_s,
            no_flush,
            power_spec,
            power_window_s,
            idle_s,
            power_hz,
            power_trials,
            min_sample_s,
        )
        target_profiles.load_targets(list(targets) or None)  # bad input is refused here, before any rank starts
        _fleet(
            device, fleet_dir, output, results_dir, shared, threads, nproc_per_node, fleet_timeout, fleet_join_timeout
        )
        return
    if member is None:
        from npucheck.measure.fleet import rank_env

        if rank_env() is not None:
            raise UsageError(
                "this process was started by torchrun (RANK and WORLD_SIZE are set): add --fleet DIR so that the "
                "ranks measure together and rank 0 gathers their profiles"
            )
    if member is not None:
        power_spec = _member_power(member, device, power_spec)
    if output is not None:
        store.output_path_available(output)
    chosen_targets = target_profiles.load_targets(list(targets) or None)
    store.check_output_folder(*((output.parent, "-o") if output is not None else (results_dir, "--results-dir")))
    from npucheck import signals  # SIGTERM and SIGHUP stop the run as Ctrl-C does: what was measured is saved

    guard = click.get_current_context().with_resource(signals.StopOnSignal()) if member is None else None
    from npucheck.measure.runner import Runner, RunOptions  # imports torch: only now that the input is known good

    options = RunOptions(
        device=device,
        suite=suite,
        kernels=list(kernels) or None,
        dtypes=list(dtypes) or None,
        threads=threads,
        seed=seed,
        flush=not no_flush,
        warmup_s=warmup_s,
        target_names=[t.name for t in chosen_targets],
        power=power_spec,
        power_window_s=power_window_s,
        idle_s=idle_s,
        power_hz=power_hz,
        power_trials=power_trials,
        min_sample_s=min_sample_s,
        power_caps=[power_caps] if power_caps is not None else None,
        fleet=_public_member(member) if member is not None else None,
    )
    console = _console()
    progress_display = _Progress(console)
    runner = Runner(options, on_event=progress_display.on_event)
    plan = runner.time_plan()
    if member is not None:  # one rank's measuring process: ready, then wait for the fleet's start
        from npucheck.measure.fleet import wait_for_go

        go = wait_for_go(member, plan["total_s"], runner.device.id)
        runner.join_fleet({**_public_member(member), "started_utc": go["started_utc"], "siblings": go["siblings"]})
    progress_display.expected_s = plan["total_s"]
    power_s = plan["idle_s"] + plan["energy_s"]
    from npucheck.read.screen import print_wrapped

    print_wrapped(
        console,
        [
            f"npucheck {__version__}: suite {suite} on {runner.device.name} ({runner.device.id}), "
            f"{len(runner.cases)} cases; up to about {plan['total_s']:.0f} s: cases {plan['cases_s']:g} s, "
            f"warm-up and confirmations {plan['warmup_s'] + plan['confirmations_s']:.0f} s"
            + (f", power {power_s:.0f} s (idle and energy windows)" if power_s else "")
        ],
    )
    if runner.power is not None:
        console.print(
            f"power: {runner.power.name} ({runner.power.detail}), quality {runner.power.quality}, "
            f"scope {runner.power.scope}"
        )
    else:
        console.print(
            "[yellow]power: none[/yellow] — "
            + ("; ".join(runner.power_notes) or "no source")
            + "; TFLOPS/W will be INCONCLUSIVE"
        )
    if runner.cap_plan is not None:
        _announce_caps(console, runner.cap_plan)
    with progress_display:
        profile = runner.run()
    try:
        verdicts = tuple(Verdict.from_dict(v) for v in judging.judge(profile, chosen_targets))
        profile = replace(profile, verdicts=verdicts)
    except NpucheckError as e:  # judging must never lose what was measured: save first, say why unjudged
        profile = replace(profile, warnings=(*profile.warnings, f"not judged: {e}"))
    if member is not None and member.get("power_note"):
        profile = replace(profile, warnings=(*profile.warnings, member["power_note"]))
    try:
        path, not_saved = _save(profile, output, results_dir, console)
    except (NpucheckError, OSError) as e:  # nothing saved: a limit not restored is still said, and still exit 8
        if _cap_not_restored(profile):
            click.echo(f"npucheck: {e}", err=True)
            _cap_restore_failed(profile)
        raise
    signum = guard.received if guard is not None else None
    try:
        _print_profile(console, profile)
        console.print(f"\nresult saved to [bold]{path}[/bold]")
    except OSError:  # a closed terminal (SIGHUP): the file is saved, the printout is lost
        if signum is None:
            raise
    if not_saved:
        click.echo(f"npucheck: not saved where asked ({not_saved}); the result's copy is at {path}", err=True)
    _cap_restore_failed(profile)  # exit 8 before a signal's code: a capped device matters more
    if profile.interrupted or signum is not None:
        name = signals.signal_name(signum) if signum is not None else None  # None: a fleet member, or Ctrl-C
        if profile.interrupted:
            by = f" by {name}" if name else ""
            click.echo(f"npucheck: interrupted{by}; partial result saved to {path}", err=True)
        else:
            click.echo(f"npucheck: {name} arrived while the complete result was saved; it is at {path}", err=True)
        sys.exit(signals.exit_code(signum))
    if not_saved:
        sys.exit(EXIT_NOT_SAVED)


def _announce_caps(console: Any, plan: Any) -> None:
    """Before the run: the caps of ``--power-caps`` and the limit that will be restored (so that it is on screen
    even if the process is killed outright)."""
    caps = ", ".join(f"{label} ({watts:g} W)" if label == "FULL" else f"{watts:g} W" for label, watts in plan.caps)
    console.print(
        f"power caps: {caps} through {plan.control.api}; the limit now, {plan.original_w:g} W, is restored at the "
        f"end (allowed {plan.min_w:g}-{plan.max_w:g} W, default {plan.default_w:g} W)"
    )


def _cap_not_restored(profile: Any) -> bool:
    """Whether a power-cap sweep ran and its original limit was not verified back."""
    caps = getattr(profile, "power_caps", None)
    restore = caps.restore if caps is not None else None
    return caps is not None and bool(caps.steps) and not (restore is not None and restore.verified)


def _cap_restore_failed(profile: Any) -> None:
    """After saving (or failing to): a power limit that was not restored is the loudest thing npucheck says (exit
    8)."""
    if not _cap_not_restored(profile):
        return
    caps = profile.power_caps
    restore = caps.restore
    target = restore.target_w if restore is not None else caps.original_w
    why = (restore.error if restore is not None else None) or "the restore did not run"
    click.echo(
        f"npucheck: WARNING: THE POWER LIMIT WAS NOT RESTORED to {target:g} W ({why}); set it by hand "
        "(nvidia-smi -pl WATTS, or amd-smi set --power-cap) before anyone else uses this device",
        err=True,
    )
    sys.exit(EXIT_CAP_NOT_RESTORED)


# --------------------------------------------------------------------------------------------------------- fleet
def _shared_run_args(
    suite: str,
    kernels: tuple[str, ...],
    dtypes: tuple[str, ...],
    targets: tuple[str, ...],
    seed: int,
    warmup_s: float | None,
    no_flush: bool,
    power_spec: str,
    power_window_s: float | None,
    idle_s: float | None,
    power_hz: float,
    power_trials: int | None,
    min_sample_s: float | None,
) -> list[str]:
    """The ``run`` options every rank of a fleet shares, as arguments for each rank's measuring process."""
    args = ["--suite", suite, "--seed", str(seed), "--power", power_spec, "--power-hz", repr(power_hz)]
    args += [arg for kernel in kernels for arg in ("--kernels", kernel)]
    args += [arg for dtype in dtypes for arg in ("--dtypes", dtype)]
    for target in targets:  # a target file by absolute path: ranks may start in another directory
        args += ["--target", str(Path(target).resolve()) if Path(target).is_file() else target]
    for flag, value in (
        ("--warmup", warmup_s),
        ("--power-window", power_window_s),
        ("--idle-seconds", idle_s),
        ("--power-trials", power_trials),
        ("--min-sample-time", min_sample_s),
    ):
        if value is not None:
            args += [flag, repr(value)]
    return args + (["--no-flush"] if no_flush else [])


def _fleet(
    device: str,
    fleet_dir: Path | None,
    output: Path | None,
    results_dir: Path,
    shared: list[str],
    threads: int | None,
    nproc_per_node: int | None,
    fleet_timeout: float | None,
    fleet_join_timeout: float,
) -> None:
    """``run --device all`` (this node, started through torch's elastic launch) or one rank under torchrun."""
    import socket

    from npucheck.measure import fleet
    from npucheck.store import check_output_folder, slug

    if output is not None:
        raise UsageError("-o names one result file; a fleet writes a directory: use --fleet DIR")
    spec = next((shared[i + 1] for i, arg in enumerate(shared) if arg == "--power"), "auto")
    kind, _, detail = spec.partition(":")
    if kind == "meter" or (kind in ("nvml", "amdsmi") and detail):
        raise UsageError(
            f"--power {spec}: in a fleet every rank finds its own device's source; give auto, nvml, amdsmi, rapl, "
            "hwmon, constant:WATTS or none (one meter log, or one GPU's index, cannot be every rank's)"
        )
    env = fleet.rank_env()
    if env is None and device.strip().lower() != "all":
        raise UsageError(
            "--fleet DIR is for ranks started by torchrun (RANK, WORLD_SIZE, … unset here): start with "
            "'torchrun --nproc-per-node N -m npucheck run --fleet DIR', or measure this node's devices with "
            "'npucheck run --device all'"
        )
    if env is None:  # --device all: this process starts the node's ranks
        if fleet_dir is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            fleet_dir = results_dir / f"fleet-{slug(socket.gethostname())}-{stamp}"
        if (fleet_dir / "fleet.json").exists():
            raise UsageError(f"{fleet_dir / 'fleet.json'}: already exists; choose a new --fleet DIR")
        check_output_folder(fleet_dir, "--fleet DIR")  # before any rank starts
        accelerator, count = fleet.local_devices()
        nproc = nproc_per_node or (count if accelerator is not None else 1)
        if accelerator is not None and nproc > count:
            raise UsageError(f"--nproc-per-node {nproc}: this host has {count} {accelerator} device(s)")
        rank_args = [*shared, "--device", "auto", "--fleet-join-timeout", repr(fleet_join_timeout)]
        rank_args += ["--fleet-timeout", repr(fleet_timeout)] if fleet_timeout is not None else []
        rank_args += ["--threads", str(threads)] if threads is not None else []
        what = f"{nproc} {accelerator} device(s)" if accelerator else f"the CPU in {nproc} slice(s)"
        click.echo(f"npucheck {__version__}: fleet of {what} on this node; results in {fleet_dir}")
        outcome = fleet.launch_node(fleet_dir, rank_args, nproc, lambda line: click.echo(line, err=True))
        _fleet_outcome(fleet_dir, outcome["failed"], outcome.get("signal") if outcome["interrupted"] else None)
        return
    if fleet_dir is None:
        raise UsageError("under torchrun, give the fleet directory: --fleet DIR")
    check_output_folder(fleet_dir, "--fleet DIR")
    echo = (lambda line: click.echo(line)) if env.rank == 0 else (lambda line: click.echo(line, err=True))
    rank = fleet.Rank(
        env,
        fleet_dir,
        shared,
        device,
        threads,
        fleet_timeout,
        fleet_join_timeout,
        echo,
        on_summary=_print_fleet_summary if env.rank == 0 else None,
    )
    try:
        code = rank.run()
    except Exception as e:  # noqa: BLE001 - a bug: one line, and never hang at exit on the store's threads
        click.echo(f"npucheck: internal error: {type(e).__name__}: {e} (please report it)", err=True)
        code = EXIT_INTERNAL
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # a gloo receive may still be pending on a helper thread: do not wait for it at exit


def _fleet_outcome(fleet_dir: Path, failed: dict[int, int], stopped_by: int | None) -> None:
    """After ``--device all``: rank 0 has written fleet.json and printed the table; say what the launcher saw.
    ``stopped_by``: the signal that stopped the launcher (exit 128 + its number, as a plain run does)."""
    import signal

    from npucheck.fleetfile import FLEET_FILE, load_summary

    for rank, code in sorted(failed.items()):
        click.echo(f"npucheck: rank {rank} ended with exit code {code}", err=True)
    summary_path = fleet_dir / FLEET_FILE
    if stopped_by is not None:
        name = signal.Signals(stopped_by).name if stopped_by in signal.Signals._value2member_map_ else stopped_by
        click.echo(f"npucheck: interrupted by {name}; what each rank measured is saved", err=True)
        sys.exit(128 + stopped_by)
    if not summary_path.exists():
        click.echo(
            f"npucheck: rank 0 wrote no fleet summary; the profiles saved are in {fleet_dir} "
            f"('npucheck fleet {fleet_dir}' reads them without it)",
            err=True,
        )
        sys.exit(5)
    members = load_summary(summary_path)["members"]
    if any(m["status"] != "ok" for m in members):
        sys.exit(5)


def _print_fleet_summary(path: Path) -> dict[str, Any] | None:
    """Rank 0, once fleet.json is written: the fleet table, as ``npucheck fleet DIR`` prints it; returns the
    analysis for the summary's record (None when the folder could not be analysed: the profiles are saved)."""
    from npucheck.read import fleet as fleets

    console = _console()
    record = None
    try:
        data = fleets.load_fleet(path.parent)
        analysed = fleets.analyse(data, fleets.DEFAULT_TOLERANCE)
        fleets.print_fleet(console, data, analysed, fleets.DEFAULT_TOLERANCE)
        record = fleets.analysis_record(analysed, fleets.DEFAULT_TOLERANCE)
    except NpucheckError as e:
        click.echo(f"npucheck: the fleet table could not be printed: {e}", err=True)
    console.print(f"\nfleet saved to [bold]{path.parent}[/bold] (summary: {path.name})")
    return record


def _fleet_member(text: str) -> dict[str, Any]:
    import json

    try:
        member = json.loads(text)
    except ValueError as e:
        raise UsageError(f"--fleet-member: not JSON: {e}") from e
    if not isinstance(member, dict) or not {"rank", "local_rank", "ready_file", "go_file"} <= set(member):
        raise UsageError("--fleet-member: not a fleet member description (it is set by a fleet rank)")
    from npucheck.measure.fleet import orphaned_with

    orphaned_with(member)
    cores = member.get("cpu_cores")
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)  # before torch starts its threads
    return member


def _public_member(member: dict[str, Any]) -> dict[str, Any]:
    """What a profile records of its rank (``environment.fleet``)."""
    keys = "rank local_rank world_size local_world_size launcher run_id cpu_cores cpu_cores_shared".split()
    return {key: member.get(key) for key in keys}


def _member_power(member: dict[str, Any], device: str, power_spec: str) -> str:
    """CPU ranks sharing a host share its power domains (RAPL package, psys): no per-rank power unless asked."""
    if device == "cpu" and int(member.get("local_world_size") or 1) > 1 and power_spec == "auto":
        member["power_note"] = (
            f"power: not measured: {member['local_world_size']} ranks share this host's CPU power domains, so no "
            "source can attribute power to one rank's cores (name a source with --power to measure anyway)"
        )
        return "none"
    return power_spec


class _NotSavedAnywhere(NpucheckError):
    exit_code = EXIT_LOST


def _save(profile: ResultProfile, output: Path | None, results_dir: Path, console: Console) -> tuple[Path, str | None]:
    """Save; if the chosen place fails, save beside it or to a temporary directory rather than lose the
    measurements. Returns the path written and, when it is not where asked, why (``run`` then exits 6).

    The folder was created and written to before measuring (store.check_output_folder), so one missing now
    vanished during the run and is not made again. A folder that cannot take the file (vanished, disk full,
    read-only now) gets nothing, not even a partial file (npucheck.atomic); the copy goes to the first of the
    temporary folder, /dev/shm (memory, when the disk itself is full) and the home folder that takes it."""
    from npucheck import store

    folder = output.parent if output is not None else results_dir
    try:
        return store.save_result(profile, output, results_dir, create_folder=False), None
    except NpucheckError as e:
        if output is None:
            raise
        console.print(f"[yellow]warning:[/yellow] {e}; saving beside it under a new name instead")
        try:
            return store.save_result(profile, None, folder if str(folder) else Path("."), create_folder=False), str(e)
        except OSError as again:
            return _save_elsewhere(profile, f"{e}; and beside it: {_unwritable(again, folder)}", console)
    except OSError as e:
        return _save_elsewhere(profile, _unwritable(e, folder), console)


def _unwritable(e: OSError, folder: Path) -> str:
    """Why a result could not be written in ``folder``, in words."""
    import errno

    if e.errno == errno.ENOENT and not folder.exists():
        return f"{folder}: the folder vanished during the run"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{folder}: no space left ({e.strerror})"
    return f"{folder}: {e.strerror or e}"


def _save_elsewhere(profile: ResultProfile, why: str, console: Console) -> tuple[Path, str]:
    import tempfile

    from npucheck import store

    console.print(f"[red]could not write the result ({escape(why)}); saving a copy elsewhere[/red]")
    failed: list[str] = []
    for base in (tempfile.gettempdir(), "/dev/shm", str(Path.home())):
        fallback: Path | None = None
        try:
            fallback = Path(tempfile.mkdtemp(prefix="npucheck-", dir=base))
            return store.save_result(profile, None, fallback), why
        except OSError as e:
            failed.append(f"{base}: {e.strerror or e}")
            if fallback is not None:
                try:
                    fallback.rmdir()
                except OSError:
                    pass
    raise _NotSavedAnywhere(f"result not saved ({why}), and no copy could be written ({'; '.join(failed)})")


class _Progress:
    """A rich progress bar fed by the runner's events."""

    def __init__(self, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=console,
            transient=True,
        )
        self._task: Any = None
        self.expected_s: float | None = None
        """The run's announced upper estimate: the bar shows what is left of it."""
        self._started = time.monotonic()

    def __enter__(self) -> _Progress:
        self._progress.__enter__()
        self._started = time.monotonic()
        self._task = self._progress.add_task("starting", total=None, left=self._left())
        return self

    def _left(self) -> str:
        if self.expected_s is None:
            return ""
        left = self.expected_s - (time.monotonic() - self._started)
        return f"~{left:.0f} s left" if left > 0 else "over the estimate"

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        if self._task is None:
            return
        self._progress.update(self._task, left=self._left())
        if kind == "phase":
            self._progress.update(self._task, description=data["name"])
        elif kind == "start":
            self._progress.update(self._task, total=data["total"], completed=0)
        elif kind == "case_start":
            self._progress.update(self._task, description=data["case"].id)
        elif kind == "case_done":
            self._progress.advance(self._task)


# --------------------------------------------------------------------------------------------------------- check
@cli.command()
@click.argument("result", type=click.Path(path_type=Path))
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="Built-in target name or .toml file; repeatable. Default: every built-in target.",
)
def check(result: Path, targets: tuple[str, ...]) -> None:
    """Judge a stored result against targets. Exit 0 all PASS, 1 any FAIL, 3 otherwise.

    RESULT may be a directory (a fleet directory or any folder of profiles): every profile is judged, one line per
    device; exit 3 also when a fleet member is in error or missing."""
    from npucheck import store
    from npucheck import targets as target_profiles
    from npucheck.read import judge as judging

    if result.is_dir():
        from npucheck.read.fleetlines import check_directory
        from npucheck.read.screen import print_wrapped

        checked = check_directory(result, target_profiles.load_targets(list(targets) or None))
        print_wrapped(_console(), [checked.bottom, *checked.device_lines, *checked.member_lines, checked.bottom])
        for line in checked.unreadable:
            click.echo(f"npucheck: skipped {line}", err=True)
        sys.exit(checked.exit_code)
    profile = store.load_result(result)
    verdicts = judging.judge(profile, target_profiles.load_targets(list(targets) or None))
    console = _console()
    from npucheck.read.screen import print_verdicts, print_wrapped
    from npucheck.read.text import bottom_line, bottom_lines, header_lines

    print_wrapped(console, header_lines(profile))
    print_wrapped(console, _evidence_lines(profile))
    print_verdicts(console, verdicts)
    print_wrapped(console, [bottom_line(*line) for line in bottom_lines(verdicts)])
    sys.exit(judging.exit_code_for(verdicts))


# --------------------------------------------------------------------------------------------------------- show
@cli.command()
@click.argument("result", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table", show_default=True)
@click.option("--all-cases", is_flag=True, help="List every skipped case with its reason (folded by default).")
def show(result: Path, fmt: str, all_cases: bool) -> None:
    """Print a stored result profile."""
    from npucheck import store
    from npucheck.read.text import to_json, to_markdown

    profile = store.load_result(result)
    if fmt == "json":  # the file as stored: the raw evidence, for another tool to check
        click.echo(to_json(profile))
        return
    from npucheck.read.verified import verified

    # figures, summary and verdicts as the raw evidence gives them; what disagreed is listed with the warnings
    shown = verified(profile).shown
    if fmt == "markdown":
        click.echo(to_markdown(shown), nl=False)
    else:
        _print_profile(_console(), shown, all_cases=all_cases)


def _print_profile(console: Console, document: ResultProfile | dict[str, Any], all_cases: bool = False) -> None:
    from npucheck.model import as_profile
    from npucheck.read.screen import print_profile

    print_profile(console, as_profile(document), all_cases=all_cases)


# --------------------------------------------------------------------------------------------------------- targets
@cli.command("targets")
@click.argument("name", required=False)
@click.option(
    "--template",
    is_flag=True,
    help="Print a commented starting target file (every key explained) to stdout; see docs/targets.md.",
)
def targets_command(name: str | None, template: bool) -> None:
    """List the built-in targets, or show one (a name or a .toml file) in full."""
    from rich.table import Table

    from npucheck import targets as target_profiles
    from npucheck.read.screen import house_style

    if template:
        if name:
            raise click.UsageError("--template takes no NAME: npucheck targets --template > my-target.toml")
        click.echo(target_profiles.TEMPLATE, nl=False)
        return
    console = _console()
    chosen = [target_profiles.load_target(name)] if name else target_profiles.load_targets(None)
    for target in chosen:
        table = Table(title=f"{target.name}: {target.title}", title_justify="left")
        for header in ("criterion", "op", "threshold", "unit", "note"):
            table.add_column(header)
        for c in target.criteria:
            table.add_row(c.label, c.op, f"{c.threshold:g}", c.unit, c.note or "")
        console.print(house_style(console, table))
        if name:
            console.print(f"source: {target.source}")
            if target.description:
                console.print(target.description)
            console.print(f"file: {target.path}")


# --------------------------------------------------------------------------------------------------------- results
RESULT_SORTS = {
    "date": ("date", False),
    "device": ("device", True),
    "suite": ("suite", True),
    "peak": ("peak_fp16_tflops", False),
    "efficiency": ("fp16_tflops_per_watt", False),
    "file": ("file", True),
}


@cli.command("results")
@click.argument("directory", required=False, default="results", type=click.Path(path_type=Path))
@click.option(
    "--sort",
    "sort_by",
    type=click.Choice(list(RESULT_SORTS)),
    default="date",
    show_default=True,
    help="Column to sort by (dates, peaks and efficiencies: highest first).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def results_command(directory: Path, sort_by: str, fmt: str) -> None:
    """List the stored result profiles in DIRECTORY (default: results/)."""
    import json

    from npucheck import store
    from npucheck.read.compare import results_frame

    entries, unreadable = [], []
    for path, loaded in store.iter_results(directory):
        if isinstance(loaded, NpucheckError):
            unreadable.append(str(loaded))
        else:
            entries.append((path, loaded))
    column, ascending = RESULT_SORTS[sort_by]
    frame = results_frame(entries).sort_values(column, ascending=ascending, na_position="last", kind="stable")
    if fmt == "table":  # full paths stay in csv/json; the table names files relative to the directory
        frame = frame.assign(file=[Path(f).name for f in frame["file"]])
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(json.loads(frame.to_json(orient="records")), indent=1))  # pandas escapes "/"
    else:
        from npucheck.read.screen import print_wrapped, results_table

        console = _console()
        if frame.empty:
            click.echo(f"no result profiles in {directory} (no readable *.json file)", err=True)
        else:
            print_wrapped(console, results_table(console, frame, f"{len(frame)} result profile(s) in {directory}"))
    from npucheck.read.fleetlines import fleet_subfolders, summary_line

    fleet_lines = []  # the table's reader sees them on stdout; csv and json stay machine-readable
    try:
        fleet_lines += [line for line in [summary_line(directory)] if line]
    except NpucheckError as e:
        unreadable.append(f"fleet summary {e}")
    fleet_lines += [
        f"fleet directory: {sub} (`npucheck results {sub}`, `npucheck fleet {sub}`)"
        for sub in fleet_subfolders(directory)
    ]
    for line in fleet_lines:
        click.echo(line, err=fmt != "table")
    for line in unreadable:
        click.echo(f"npucheck: skipped {line}", err=True)


# --------------------------------------------------------------------------------------------------------- compare
@cli.command("compare")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("others", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Smallest relative change that counts as a regression or improvement.",
)
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 when any case regressed, or a case right in BASE is an error or a wrong answer (for CI).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json"]), default="table", show_default=True
)
def compare_command(base: Path, others: tuple[Path, ...], threshold: float, fail_on_regression: bool, fmt: str) -> None:
    """Compare OTHER result profiles with BASE, case by case, with statistical significance.

    BASE and OTHER may be two fleet directories: compared device by device (which devices got slower)."""
    import json

    from npucheck import store
    from npucheck.read import compare as comparing
    from npucheck.read.fleetlines import require_same_kind
    from npucheck.read.screen import print_table
    from npucheck.read.text import compare_display, comparison_summary_lines, frame_table

    if require_same_kind(base, others):
        from npucheck.read.fleet import load_fleet
        from npucheck.read.fleetlines import fleet_comparison

        fleets = fleet_comparison(load_fleet(base), load_fleet(others[0]), threshold)
        if fmt == "csv":
            click.echo(fleets.frame.to_csv(index=False), nl=False)
        elif fmt == "json":
            devices = json.loads(fleets.frame.to_json(orient="records"))
            document = {"base": str(base), "other": str(others[0]), "threshold": threshold, "summary": fleets.summary}
            click.echo(json.dumps({**document, "devices": devices}, indent=1))
        elif fmt == "markdown":
            click.echo(f"# Fleet {others[0]} compared with {base}\n\n- {fleets.summary}\n")
            click.echo(comparing.to_markdown(fleets.display) if not fleets.display.empty else "no devices")
        else:
            console = _console()
            console.print(
                f"base: fleet {escape(str(base))}; other: fleet {escape(str(others[0]))}; threshold {threshold:.0%}; "
                "ratio = other speed / base speed of each dtype's peak (> 1 faster), 95% bootstrap interval"
            )
            print_table(console, frame_table(fleets.display, "Devices"))
            console.print(escape(fleets.summary))
        if fail_on_regression and fleets.regressed:
            click.echo(f"npucheck: {len(fleets.regressed)} device(s) slower beyond {threshold:.0%}", err=True)
            sys.exit(EXIT_FAIL)
        return
    from npucheck.read.verified import verified

    # each file verified once: its figures and verdicts as its raw evidence gives them, what disagreed as notes
    base_doc = store.load_result(base)
    base_seen = verified(base_doc)
    base_profile = base_seen.profile
    seen = [(comparing.label(path, doc), verified(doc)) for path in others for doc in [store.load_result(path)]]
    loaded = [(label, checked.profile) for label, checked in seen]
    evidence_notes = [
        f"{label}: {note}"
        for label, checked in [(comparing.label(base, base_doc), base_seen), *seen]
        for note in checked.notes
    ]
    frame = comparing.compare_frames(base_profile, loaded, threshold)
    summary = comparing.summary(frame, base_profile, loaded)
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(
            json.dumps(
                {
                    "base": comparing.label(base, base_profile),
                    "threshold": threshold,
                    "summary": summary,
                    "evidence": evidence_notes,
                    "cases": json.loads(frame.to_json(orient="records")),
                },
                indent=1,
            )
        )
    elif fmt == "markdown":
        click.echo(f"# Comparison with {comparing.label(base, base_profile)}\n")
        lines = comparison_summary_lines(summary) + [f"evidence: {note}" for note in evidence_notes]
        click.echo("\n".join(f"- {line}" for line in lines) + "\n")
        click.echo(comparing.to_markdown(frame) if not frame.empty else "no cases")
    else:
        console = _console()
        console.print(
            f"base: {escape(comparing.label(base, base_profile))}; threshold {threshold:.0%}; "
            "ratio = other speed / base speed (> 1 faster), 95% bootstrap interval from the raw samples"
        )
        print_table(console, frame_table(compare_display(frame, len(loaded)), "Cases"))
        for line in comparison_summary_lines(summary) + [f"evidence: {note}" for note in evidence_notes]:
            console.print(escape(line))
    if fmt == "csv":  # the table on stdout stays a table
        for note in evidence_notes:
            click.echo(f"npucheck: evidence: {note}", err=True)
    regressions = int((frame["verdict"] == comparing.REGRESSION).sum()) if not frame.empty else 0
    broken = sum(len(cases) for cases in summary.get("broken", {}).values())
    if fail_on_regression and (regressions or broken):
        what = [f"{regressions} regression(s) beyond {threshold:.0%}"] if regressions else []
        what += [f"{broken} case(s) right in the base now an error or a wrong answer"] if broken else []
        click.echo(f"npucheck: {'; '.join(what)}", err=True)
        sys.exit(EXIT_FAIL)


# --------------------------------------------------------------------------------------------------------- plot
def _per_watt_thresholds(targets: tuple[str, ...]) -> list[tuple[str, float]]:
    from npucheck import targets as target_profiles

    found: dict[float, list[str]] = {}
    for target in target_profiles.load_targets(list(targets) or None):
        for criterion in target.criteria:
            if criterion.metric == "tflops_per_watt":
                found.setdefault(criterion.threshold, []).append(target.name)
    return [(", ".join(names), value) for value, names in sorted(found.items())]


@cli.command("plot")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["sweep", "efficiency", "trace", "compare", "fleet", "roofline", "power-caps"]),
    default="sweep",
    show_default=True,
    help="fleet: each device of a fleet DIRECTORY against its group; roofline: one or more RESULTs; "
    "power-caps: one RESULT of run --power-caps.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Image file: .png, .svg or .pdf.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="Targets whose TFLOPS/W thresholds are drawn (efficiency); default: every built-in target.",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="fleet: how far below its group's median (of the others) a device is flagged [default: 0.1].",
)
def plot_command(
    results: tuple[Path, ...], kind: str, output: Path, targets: tuple[str, ...], tolerance: float | None
) -> None:
    """Plot stored results: sweep, efficiency curves, power trace, several profiles compared, or a fleet.

    sweep, efficiency and trace take exactly one RESULT; compare takes two or more; fleet one fleet DIRECTORY;
    roofline (intensity vs TFLOPS under the measured compute and bandwidth ceilings) one or more RESULTs.
    """
    from npucheck import store
    from npucheck.read import plot as plotting
    from npucheck.read.text import profile_label

    plotting.check_count(kind, len(results))
    if output.suffix.lower().lstrip(".") not in plotting.FORMATS:
        raise UsageError(f"{output}: the plot format comes from the extension: .png, .svg or .pdf")
    if tolerance is not None and kind != "fleet":
        raise UsageError("--tolerance applies to --kind fleet only")
    if kind == "fleet":
        from npucheck.read import fleet as fleets

        if results[0].exists() and not results[0].is_dir():
            raise UsageError(f"{results[0]}: --kind fleet takes a fleet directory, not a file")
        tolerance = fleets.DEFAULT_TOLERANCE if tolerance is None else tolerance
        analysed = fleets.analyse(fleets.load_fleet(results[0]), tolerance)
        figure = plotting.build(kind, [], [], analysed=analysed, tolerance=tolerance)
        click.echo(f"plot written to {plotting.save(figure, output)}")
        return
    folders = [str(path) for path in results if path.is_dir()]
    if folders:
        raise UsageError(f"{folders[0]}: is a directory; --kind {kind} takes result files (a fleet: --kind fleet)")
    profiles = [store.load_result(path) for path in results]
    labels = [profile_label(path, profile) for path, profile in zip(results, profiles)]
    thresholds = _per_watt_thresholds(targets) if kind == "efficiency" else []
    figure = plotting.build(kind, profiles, labels, thresholds)
    click.echo(f"plot written to {plotting.save(figure, output)}")


# --------------------------------------------------------------------------------------------------------- report
@cli.command("report")
@click.argument("result", type=click.Path(path_type=Path))
@click.argument("base", required=False, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="report.html (plots embedded) or report.md (plots in a folder beside it).",
)
@click.option("--target", "targets", multiple=True, help="Targets whose TFLOPS/W thresholds are drawn.")
@click.option(
    "--tolerance",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Fleet reports: how far below its group's median (of the others) a device is flagged [default: 0.1].",
)
def report_command(
    result: Path, base: Path | None, output: Path, targets: tuple[str, ...], tolerance: float | None
) -> None:
    """A self-contained report of RESULT, compared with BASE when given.

    RESULT may be a fleet directory (BASE then a fleet directory too: which devices got slower)."""
    from npucheck import store
    from npucheck.read import report as reporting

    suffix = output.suffix.lower()
    if suffix not in (".html", ".htm", ".md"):
        raise UsageError(f"{output}: a report is .html or .md")
    if result.is_dir() or (base is not None and base.is_dir()):
        from npucheck.read import fleet as fleets

        if not result.is_dir() or (base is not None and not base.is_dir()):
            raise UsageError("report of a fleet takes fleet directories only: RESULT and BASE both directories")
        if tolerance is None:
            tolerance = fleets.DEFAULT_TOLERANCE
        text, files = reporting.build_fleet(
            fleets.load_fleet(result),
            fleets.load_fleet(base) if base is not None else None,
            "markdown" if suffix == ".md" else "html",
            tolerance,
            plot_dir_name=f"{output.stem}_files",
        )
        reporting.write(output, text, files)
        click.echo(
            f"report written to {output}" + (f" (plot in {output.parent / (output.stem + '_files')})" if files else "")
        )
        return
    if tolerance is not None:
        raise UsageError("--tolerance applies to a fleet report only (RESULT a fleet directory)")
    profile = store.load_result(result)
    base_profile = store.load_result(base) if base is not None else None
    fmt = "markdown" if suffix == ".md" else "html"
    text, files = reporting.build(
        profile, base_profile, fmt, _per_watt_thresholds(targets), plot_dir_name=f"{output.stem}_files"
    )
    reporting.write(output, text, files)
    click.echo(
        f"report written to {output}" + (f" (plots in {output.parent / (output.stem + '_files')})" if files else "")
    )


# --------------------------------------------------------------------------------------------------------- fleet
@cli.command("fleet")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--tolerance",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.10,
    show_default=True,
    help="A device is an outlier when it is more than this fraction below the median of its group's other "
    "devices (and significantly so from the raw samples).",
)
@click.option(
    "--fail-on-outlier",
    is_flag=True,
    help="Exit 1 when any device is an outlier, failed a target, or is missing or in error (for CI).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table", show_default=True
)
def fleet_command(directory: Path, tolerance: float, fail_on_outlier: bool, fmt: str) -> None:
    """Read a fleet directory (npucheck run --fleet DIR): every device, grouped, and the outliers with evidence."""
    from npucheck.read import fleet as fleets

    data = fleets.load_fleet(directory)
    analysed = fleets.analyse(data, tolerance)
    if fmt == "csv":
        click.echo(analysed.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(fleets.to_json(data, analysed, tolerance))
    elif fmt == "markdown":
        click.echo(fleets.to_markdown(data, analysed, tolerance), nl=False)
    else:
        fleets.print_fleet(_console(), data, analysed, tolerance)
    for line in data.unreadable:
        click.echo(f"npucheck: skipped {line}", err=True)
    code = fleets.exit_code(analysed, fail_on_outlier)
    if code:
        sys.exit(code)


# --------------------------------------------------------------------------------------------------- evidence
def _evidence_lines(profile: dict[str, Any]) -> list[str]:
    """What ``check`` and ``show`` say about the file's evidence: "modified since measured" (or "not sealed") and
    each case whose stored figures disagree with its raw samples (npucheck.evidence)."""
    from npucheck.evidence import audit

    return [f"evidence: {line}" for line in audit(profile).lines()]


@cli.command("sign")
@click.argument("result", type=click.Path(path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path), help="Ed25519 private key (PEM).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Signature file (default: RESULT.sig).")
def sign_command(result: Path, key_path: Path, output: Path | None) -> None:
    """Sign a sealed result with the lab's Ed25519 key: a detached RESULT.sig (needs npucheck[sign]).

    Exit 1 when the file was modified since it was measured (it is not signed), 2 on bad input."""
    import json

    from npucheck import evidence, store
    from npucheck.atomic import write_atomic

    key = evidence.load_private_key(key_path)
    profile = store.load_result(result)
    state = evidence.digest_status(profile)
    if state.state in ("modified", "unknown"):
        click.echo(f"npucheck: {result}: not signed: {state.message}", err=True)
        sys.exit(EXIT_FAIL)
    signature = evidence.sign(profile, key)
    target = output if output is not None else result.with_name(result.name + evidence.SIGNATURE_SUFFIX)
    write_atomic(target, (json.dumps(signature, indent=1) + "\n").encode("ascii"))
    click.echo(
        f"{target}: signed {result} (content sha256:{signature['digest']['sha256'][:12]}…) "
        f"with key {signature['key_id']}"
    )


@cli.command("verify")
@click.argument("result", type=click.Path(path_type=Path))
@click.option("--public-key", type=click.Path(path_type=Path), help="The lab's Ed25519 public key (PEM) to trust.")
@click.option("--signature", "signature_path", type=click.Path(path_type=Path), help="Default: RESULT.sig.")
def verify_command(result: Path, public_key: Path | None, signature_path: Path | None) -> None:
    """Check a result's content digest and, where there is one, its signature.

    Exit 0 verified (the digest matches; a signature, when present or required by --public-key, is valid), 1 not
    verified (modified since measured, not sealed, not signed, bad signature), 2 bad input. Without --public-key a
    signature is checked against the key it names, which proves only that file and signature agree."""
    import json

    from npucheck import evidence, store
    from npucheck.errors import UsageError

    profile = store.load_result(result)
    trusted = evidence.load_public_key(public_key) if public_key is not None else None
    state = evidence.digest_status(profile)
    lines, ok = [f"{result}: {state.message}"], state.state == "sealed"
    sig_path = signature_path or result.with_name(result.name + evidence.SIGNATURE_SUFFIX)
    if sig_path.exists() or signature_path is not None or trusted is not None:
        if not sig_path.exists():
            lines.append(f"{result}: not signed: no {sig_path}")
            ok = False
        else:
            try:
                signature = json.loads(evidence.read_small(sig_path, "an npucheck signature"))
            except (ValueError, RecursionError) as e:
                raise UsageError(f"{sig_path}: not an npucheck signature (invalid JSON)") from e
            valid, message = evidence.verify_signature(profile, signature, trusted)
            lines.append(f"{result}: {message}")
            # a file from before the digest, signed since, is verified by its signature alone
            ok = valid and (ok or state.state == "not sealed")
    for line in lines:
        click.echo(line)
    sys.exit(EXIT_OK if ok else EXIT_FAIL)


@cli.command("keygen")
@click.argument("key", type=click.Path(path_type=Path))
def keygen_command(key: Path) -> None:
    """Make an Ed25519 key pair for signing: KEY (private, mode 0600; encrypted with $NPUCHECK_KEY_PASSPHRASE when
    set) and KEY's name with .pub.pem (public, to hand to whoever verifies). Never overwrites."""
    from npucheck import evidence

    public_path = key.with_name(key.stem + ".pub.pem")
    for path in (key, public_path):
        if os.path.lexists(path):
            raise UsageError(f"{path}: already exists; npucheck keygen never overwrites a key")
    private, public = evidence.generate_key()
    try:
        fd = os.open(key, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        public_path.write_bytes(public)
    except OSError as e:
        raise UsageError(f"{key}: cannot write the key: {e.strerror or e}") from e
    click.echo(f"{key}: private key (keep it secret); {public_path}: public key")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: expected failures exit with their code; bugs exit 4 with one line."""
    try:
        cli.main(args=argv, prog_name="npucheck", standalone_mode=True)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - the last line of defence against a traceback
        if os.environ.get("NPUCHECK_DEBUG"):
            raise
        click.echo(
            f"npucheck: internal error: {type(e).__name__}: {e} (set NPUCHECK_DEBUG=1 for a traceback; "
            "please report it)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
