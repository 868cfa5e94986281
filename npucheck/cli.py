"""The command line. The only layer that prints or chooses exit codes.

Exit codes:
  0    success (``run``: the run completed, whatever the verdicts; ``check``: every verdict PASS)
  1    ``check``: at least one verdict FAIL; ``compare --fail-on-regression``: a regression was found
  2    usage or bad input (unknown option value, bad target profile, missing or corrupt result file)
  3    ``check``: nothing FAILed but some verdict is INCONCLUSIVE or ERROR
  4    internal error (a bug: please report it)
  130  interrupted (Ctrl-C); ``run`` saves what it measured first

``check``, ``show``, ``targets``, ``results``, ``compare``, ``plot`` and ``report`` read stored data only and never
import torch.
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
    "main",
    "NpucheckGroup",
    "plot_command",
    "report_command",
    "RESULT_SORTS",
    "results_command",
    "run",
    "show",
    "targets_command",
]


EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


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
        except KeyboardInterrupt:
            click.echo("npucheck: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


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
    help="gemm, conv2d (cnn), rnn_tanh, rnn_relu (rnn), lstm, gru; repeat or comma-separate. Default: all.",
)
@click.option("--dtypes", multiple=True, help="fp16, bf16, fp32; repeat or comma-separate. Default: all.")
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
    power_spec: str,
    power_window_s: float | None,
    idle_s: float | None,
    power_hz: float,
    power_trials: int | None,
    output: Path | None,
    results_dir: Path,
) -> None:
    """Measure the device with a suite, judge it, and save a result profile."""
    from npucheck import store
    from npucheck import targets as target_profiles
    from npucheck.read import judge as judging

    if output is not None:
        store.output_path_available(output)
    chosen_targets = target_profiles.load_targets(list(targets) or None)
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
    )
    console = _console()
    progress_display = _Progress(console)
    runner = Runner(options, on_event=progress_display.on_event)
    plan = runner.time_plan()
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
    with progress_display:
        profile = runner.run()
    try:
        verdicts = tuple(Verdict.from_dict(v) for v in judging.judge(profile, chosen_targets))
        profile = replace(profile, verdicts=verdicts)
    except NpucheckError as e:  # judging must never lose what was measured: save first, say why unjudged
        profile = replace(profile, warnings=(*profile.warnings, f"not judged: {e}"))
    path = _save(profile, output, results_dir, console)
    _print_profile(console, profile)
    console.print(f"\nresult saved to [bold]{path}[/bold]")
    if profile.interrupted:
        click.echo("npucheck: interrupted; partial result saved", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _save(profile: ResultProfile, output: Path | None, results_dir: Path, console: Console) -> Path:
    """Save; if the chosen place fails, save to a temporary directory rather than lose the measurements."""
    import tempfile

    from npucheck import store

    try:
        return store.save_result(profile, output, results_dir)
    except NpucheckError as e:
        if output is None:
            raise
        console.print(f"[yellow]warning:[/yellow] {e}; saving beside it under a new name instead")
        return store.save_result(profile, None, output.parent if str(output.parent) else Path("."))
    except OSError as e:
        fallback = Path(tempfile.mkdtemp(prefix="npucheck-"))
        console.print(f"[red]could not write the result ({e}); saving to {fallback} instead[/red]")
        return store.save_result(profile, None, fallback)


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
    """Judge a stored result against targets. Exit 0 all PASS, 1 any FAIL, 3 otherwise."""
    from npucheck import store
    from npucheck import targets as target_profiles
    from npucheck.read import judge as judging

    profile = store.load_result(result)
    verdicts = judging.judge(profile, target_profiles.load_targets(list(targets) or None))
    console = _console()
    from npucheck.read.screen import print_verdicts, print_wrapped
    from npucheck.read.text import bottom_line, bottom_lines, header_lines

    print_wrapped(console, header_lines(profile))
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
    if fmt == "json":
        click.echo(to_json(profile))
    elif fmt == "markdown":
        click.echo(to_markdown(profile), nl=False)
    else:
        _print_profile(_console(), profile, all_cases=all_cases)


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
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when any case regressed (for CI).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json"]), default="table", show_default=True
)
def compare_command(base: Path, others: tuple[Path, ...], threshold: float, fail_on_regression: bool, fmt: str) -> None:
    """Compare OTHER result profiles with BASE, case by case, with statistical significance."""
    import json

    from npucheck import store
    from npucheck.read import compare as comparing
    from npucheck.read.screen import print_table
    from npucheck.read.text import compare_display, comparison_summary_lines, frame_table

    base_profile = store.load_result(base)
    loaded = [(comparing.label(path, profile), profile) for path in others for profile in [store.load_result(path)]]
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
                    "cases": json.loads(frame.to_json(orient="records")),
                },
                indent=1,
            )
        )
    elif fmt == "markdown":
        click.echo(f"# Comparison with {comparing.label(base, base_profile)}\n")
        click.echo("\n".join(f"- {line}" for line in comparison_summary_lines(summary)) + "\n")
        click.echo(comparing.to_markdown(frame) if not frame.empty else "no cases")
    else:
        console = _console()
        console.print(
            f"base: {escape(comparing.label(base, base_profile))}; threshold {threshold:.0%}; "
            "ratio = other speed / base speed (> 1 faster), 95% bootstrap interval from the raw samples"
        )
        print_table(console, frame_table(compare_display(frame, len(loaded)), "Cases"))
        for line in comparison_summary_lines(summary):
            console.print(escape(line))
    regressions = int((frame["verdict"] == comparing.REGRESSION).sum()) if not frame.empty else 0
    if fail_on_regression and regressions:
        click.echo(f"npucheck: {regressions} regression(s) beyond {threshold:.0%}", err=True)
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
    "--kind", type=click.Choice(["sweep", "efficiency", "trace", "compare"]), default="sweep", show_default=True
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
def plot_command(results: tuple[Path, ...], kind: str, output: Path, targets: tuple[str, ...]) -> None:
    """Plot stored results: sweep, efficiency curves, power trace, or several profiles compared.

    sweep, efficiency and trace take exactly one RESULT; compare takes two or more.
    """
    from npucheck import store
    from npucheck.read import plot as plotting
    from npucheck.read.text import profile_label

    plotting.check_count(kind, len(results))
    if output.suffix.lower().lstrip(".") not in plotting.FORMATS:
        raise UsageError(f"{output}: the plot format comes from the extension: .png, .svg or .pdf")
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
def report_command(result: Path, base: Path | None, output: Path, targets: tuple[str, ...]) -> None:
    """A self-contained report of RESULT, compared with BASE when given."""
    from npucheck import store
    from npucheck.read import report as reporting

    suffix = output.suffix.lower()
    if suffix not in (".html", ".htm", ".md"):
        raise UsageError(f"{output}: a report is .html or .md")
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
