"""Benchmarks of npucheck itself, printed as the Markdown document docs/benchmarks.md.

    python scripts/selfbench.py [--out docs/benchmarks.md] [--skip-standard] [--skip-runs] [--fast]
        [--peer-threads 1,2] [--note "conditions"]

Six measurements, each a table:

1. the timing harness's overhead per sample (``time_kernel`` around a no-op and a tiny torch op, against a bare
   loop of the same calls);
2. the power sampler thread's CPU cost at several ``--power-hz`` rates, on the fake sources of ``tests/fakes.py``;
3. start-up of the read-only commands: a fresh process on a stored profile (and a small fleet);
4. wall time of ``npucheck run --device cpu --suite quick`` and ``--suite standard`` (``--skip-standard`` leaves
   out the ~80 s standard run, ``--skip-runs`` both);
5. peers: npucheck's GEMM figures beside torch.utils.benchmark and numpy on the same shapes (``scripts/peers.py``);
6. the machine, its load before and after, and the command.

``--fast`` shrinks every repeat count and window (a smoke test of the script, not numbers to keep).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT), str(ROOT / "tests")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

HZ = (10, 50, 100, 1000)
READ_COMMANDS = ("show", "check", "results", "compare", "plot", "report", "fleet")
FLEET_MEMBERS = 8


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _log(text: str) -> None:
    print(f"selfbench: {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ 1. harness
def harness_overhead(samples: int = 2000, repeats: int = 5) -> list[dict[str, Any]]:
    """Per kernel: the bare loop's cost per call, time_kernel's wall time per sample (one call per sample, no
    flush; warm-up and statistics amortized over ``samples``), their difference, and the median sample time_kernel
    reads against a bare ``perf_counter`` pair around the same call (what the harness adds *inside* a sample).
    Each figure is the median of ``repeats``."""
    import torch

    from npucheck.measure.devices import CpuDevice
    from npucheck.measure.timing import TimingSettings, time_kernel
    from npucheck.stats import summarize

    device = CpuDevice()
    x, y = torch.ones(8), torch.empty(8)
    kernels: dict[str, Callable[[], object]] = {
        "no-op (`lambda: None`)": lambda: None,
        "tiny torch op (`torch.add` of 8 floats, `out=`)": lambda: torch.add(x, x, out=y),
    }
    settings = TimingSettings(budget_s=0.0, min_samples=samples, max_samples=samples, min_sample_s=0.0)
    rows = []
    for name, fn in kernels.items():
        bare, harness, bare_reading, harness_reading, stats_s = [], [], [], [], []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(samples):
                fn()
            bare.append((time.perf_counter() - start) / samples)
            readings = []
            for _ in range(samples):
                t0 = time.perf_counter()
                fn()
                readings.append(time.perf_counter() - t0)
            bare_reading.append(statistics.median(readings))
            start = time.perf_counter()
            timing = time_kernel(fn, device, lambda: None, settings)
            harness.append((time.perf_counter() - start) / samples)
            assert timing.calls_per_sample == 1 and len(timing.samples_s) == samples
            harness_reading.append(timing.stats.median_s)
            start = time.perf_counter()
            summarize(timing.samples_s, 0.95)
            stats_s.append(time.perf_counter() - start)
        rows.append(
            {
                "kernel": name,
                "samples": samples,
                "bare_call_us": statistics.median(bare) * 1e6,
                "harness_per_sample_us": statistics.median(harness) * 1e6,
                "overhead_per_sample_us": (statistics.median(harness) - statistics.median(bare)) * 1e6,
                "bare_reading_us": statistics.median(bare_reading) * 1e6,
                "harness_reading_us": statistics.median(harness_reading) * 1e6,
                "in_sample_overhead_us": (statistics.median(harness_reading) - statistics.median(bare_reading)) * 1e6,
                "stats_ms": statistics.median(stats_s) * 1e3,
                "loop_overhead_per_sample_us": (
                    statistics.median(harness) - statistics.median(bare) - statistics.median(stats_s) / samples
                )
                * 1e6,
            }
        )
    flush = device.make_flush()
    flush()
    times = []
    for _ in range(repeats * 2):
        start = time.perf_counter()
        flush()
        times.append(time.perf_counter() - start)
    rows.append({"flush_bytes": device.cache_flush_bytes(), "flush_ms": statistics.median(times) * 1e3})
    return rows


def harness_markdown(rows: list[dict[str, Any]]) -> str:
    kernel_rows = [r for r in rows if "kernel" in r]
    flush = next(r for r in rows if "flush_ms" in r)
    table = _table(
        [
            "kernel",
            "bare loop, per call",
            "`time_kernel`, per sample",
            "overhead per sample",
            "of it, without the statistics",
            "bare `perf_counter` pair reads",
            "`time_kernel`'s median sample reads",
            "added inside a sample",
        ],
        [
            [
                r["kernel"],
                f"{r['bare_call_us']:.2f} µs",
                f"{r['harness_per_sample_us']:.2f} µs",
                f"{r['overhead_per_sample_us']:.2f} µs",
                f"{r['loop_overhead_per_sample_us']:.2f} µs",
                f"{r['bare_reading_us']:.3f} µs",
                f"{r['harness_reading_us']:.3f} µs",
                f"{r['in_sample_overhead_us']:.3f} µs",
            ]
            for r in kernel_rows
        ],
    )
    samples = kernel_rows[0]["samples"]
    stats_ms = max(r["stats_ms"] for r in kernel_rows)
    worst = max(r["overhead_per_sample_us"] for r in kernel_rows)
    return (
        f"{table}\n\n"
        f"One call per sample (`min_sample_s=0`), {samples} samples, no flush; the per-sample figures include the "
        f"warm-up calls and the statistics of the {samples} samples ({stats_ms:.2f} ms, i.e. "
        f"{stats_ms * 1e3 / samples:.2f} µs a sample) spread over the samples. In a real run each sample "
        f"batches calls to at least `min_sample_s` (2 ms), so {worst:.2f} µs a sample is {worst / 2000:.3%} of "
        "the sample's time, and the part added inside a sample (two `synchronize()` calls, a `range` loop, the "
        "`perf_counter` pair) is divided by the calls in the batch. What a CPU run pays per sample besides is the "
        f"cache flush outside the timed region: zeroing {flush['flush_bytes'] / 2**20:.0f} MiB took "
        f"{flush['flush_ms']:.2f} ms here."
    )


# ------------------------------------------------------------------------------------------------ 2. sampler
def _sources(tmp: Path) -> dict[str, Callable[[], Any]]:
    from fakes import FakeNvml, make_zone

    from npucheck.measure.power.meter import ConstantSource
    from npucheck.measure.power.nvml import NvmlSource
    from npucheck.measure.power.rapl import RaplSource

    make_zone(tmp, "intel-rapl:0", "package-0", 1000)
    make_zone(tmp, "intel-rapl:1", "package-1", 1000)
    return {
        "RAPL fake (2 sysfs zones, counter)": lambda: RaplSource(tmp),
        "NVML fake (`FakeNvml`: power + counter)": lambda: NvmlSource(FakeNvml(), uuid="GPU-1234"),
        "constant:300 (the loop alone)": lambda: ConstantSource(300.0),
    }


def _ticks(trace: Any) -> int:
    """Samples the sampler took: its counts where the trace keeps a bounded series, else the series' lengths."""
    counts = [getattr(trace, name, None) for name in ("power_samples", "energy_samples")]
    if all(isinstance(c, int) for c in counts):
        return max(counts)  # type: ignore[type-var]
    return max(len(trace.power), len(trace.energy))


def sampler_cost(hz_list: tuple[int, ...] = HZ, seconds: float = 2.0) -> list[dict[str, Any]]:
    """Process CPU time while only the sampler thread works (the main thread sleeps ``seconds``), less the same
    sleep's CPU time without a sampler; per second of wall time and per sample taken."""
    from npucheck.measure.power.window import PowerSampler

    def idle_cpu() -> float:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return (time.process_time() - cpu0) / (time.perf_counter() - wall0)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in _sources(Path(tmp)).items():
            for hz in hz_list:
                baseline = idle_cpu()
                sampler = PowerSampler(make(), hz=hz)
                cpu0, wall0 = time.process_time(), time.perf_counter()
                sampler.start()
                time.sleep(seconds)
                sampler.stop()
                wall = time.perf_counter() - wall0
                cpu = time.process_time() - cpu0 - baseline * wall
                ticks = _ticks(sampler.trace)
                assert sampler.trace.dropped == 0, sampler.trace.errors
                rows.append(
                    {
                        "source": name,
                        "hz": hz,
                        "achieved_hz": ticks / wall,
                        "cpu_ms_per_s": cpu / wall * 1e3,
                        "cpu_us_per_sample": cpu / ticks * 1e6 if ticks else float("nan"),
                        "core_share": cpu / wall,
                    }
                )
                _log(f"sampler {name} {hz} Hz: {rows[-1]['cpu_ms_per_s']:.2f} CPU-ms/s")
    return rows


def sampler_markdown(rows: list[dict[str, Any]], seconds: float) -> str:
    return (
        _table(
            ["source", "`--power-hz`", "samples/s reached", "CPU-ms per s", "CPU-µs per sample", "share of one core"],
            [
                [
                    r["source"],
                    r["hz"],
                    f"{r['achieved_hz']:.0f}",
                    f"{r['cpu_ms_per_s']:.2f}",
                    f"{r['cpu_us_per_sample']:.0f}",
                    f"{r['core_share']:.2%}",
                ]
                for r in rows
            ],
        )
        + f"\n\n`PowerSampler` started on the source, the main thread asleep for {seconds:g} s, process CPU time "
        "(`time.process_time`, every thread) less that of the same sleep without a sampler. The sampler also reads "
        "the source's context (clocks, temperature) once a second. Rates above 1000 Hz are capped "
        "(`MIN_POLL_S` = 1 ms)."
    )


# ------------------------------------------------------------------------------------------------ 3. start-up
def _stored(directory: Path) -> tuple[Path, Path]:
    from conftest import make_profile

    from npucheck.store import save_result

    result = save_result(make_profile(), directory / "results" / "r.json")
    fleet = directory / "fleet"
    _script("fleet_scale").write_fleet(FLEET_MEMBERS, fleet)
    return result, fleet


def _timed(argv: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False, env={**os.environ, "COLUMNS": "120"})
    return time.perf_counter() - start, done.returncode


def startup(rounds: int = 5) -> list[dict[str, Any]]:
    """Wall time of a fresh process for each read-only command (median and best of ``rounds``), with the bare
    interpreter and ``import torch`` as yardsticks."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        result, fleet = _stored(Path(tmp))
        cli = [sys.executable, "-m", "npucheck.cli"]
        out = Path(tmp) / "out"
        out.mkdir()
        commands: dict[str, Callable[[int], list[str]]] = {
            "`python -c pass` (the interpreter alone)": lambda i: [sys.executable, "-c", "pass"],
            "`python -c 'import torch'` (what `show` avoids)": lambda i: [sys.executable, "-c", "import torch"],
            "`npucheck --help`": lambda i: [*cli, "--help"],
            "`npucheck show RESULT`": lambda i: [*cli, "show", str(result)],
            "`npucheck check RESULT`": lambda i: [*cli, "check", str(result)],
            "`npucheck results DIR`": lambda i: [*cli, "results", str(result.parent)],
            "`npucheck compare A B`": lambda i: [*cli, "compare", str(result), str(result)],
            "`npucheck plot RESULT -o p.png`": lambda i: [*cli, "plot", str(result), "-o", str(out / f"p{i}.png")],
            "`npucheck report RESULT -o r.html`": lambda i: [
                *cli,
                "report",
                str(result),
                "-o",
                str(out / f"r{i}.html"),
            ],
            f"`npucheck fleet DIR` ({FLEET_MEMBERS} profiles)": lambda i: [*cli, "fleet", str(fleet)],
        }
        for name, argv in commands.items():
            walls, codes = [], set()
            for i in range(rounds):
                wall, code = _timed(argv(i))
                walls.append(wall)
                codes.add(code)
            rows.append(
                {"command": name, "median_ms": statistics.median(walls) * 1e3, "best_ms": min(walls) * 1e3, "rc": codes}
            )
            _log(f"start-up {name}: {rows[-1]['median_ms']:.0f} ms")
    return rows


def startup_markdown(rows: list[dict[str, Any]], rounds: int) -> str:
    return (
        _table(
            ["command (whole process)", f"median of {rounds}", "best", "exit code"],
            [
                [
                    r["command"],
                    f"{r['median_ms']:.0f} ms",
                    f"{r['best_ms']:.0f} ms",
                    ", ".join(map(str, sorted(r["rc"]))),
                ]
                for r in rows
            ],
        )
        + "\n\nThe profile is `tests/conftest.py`'s `make_profile()` saved with `npucheck.store.save_result` "
        "(`check` exits 1: its verdict FAILs); the fleet is `scripts/fleet_scale.py`'s H200-like profiles. "
        "`tests/benchmarks/test_bench_speed.py` times the same commands under pytest-benchmark."
    )


# ------------------------------------------------------------------------------------------------ 4. runs
def suite_run(suite: str) -> dict[str, Any]:
    """``npucheck run --device cpu --suite SUITE`` in a fresh process; its wall time and what the result says."""
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / f"{suite}.json"
        argv = [sys.executable, "-m", "npucheck.cli", "run", "--device", "cpu", "--suite", suite, "-o", str(output)]
        _log(f"running {' '.join(argv[3:])}")
        wall, code = _timed(argv)
        row: dict[str, Any] = {"suite": suite, "wall_s": wall, "rc": code}
        if output.exists():
            profile = json.loads(output.read_text(encoding="utf-8"))
            statuses = [m.get("status") for m in profile.get("measurements", [])]
            row.update(ok=statuses.count("ok"), skipped=statuses.count("skipped"), errors=statuses.count("error"))
            reasons: dict[str, int] = {}
            for m in profile.get("measurements", []):
                if m.get("status") == "skipped":
                    reason = str(m.get("reason") or "").split(":")[0].split(" (")[0]
                    reasons[reason] = reasons.get(reason, 0) + 1
            row["skip_reasons"] = reasons
            peaks = (profile.get("summary") or {}).get("peak") or {}
            row["peaks"] = {
                dtype: (peak.get("tflops"), peak.get("confirmed_tflops"), peak.get("case"))
                for dtype, peak in peaks.items()
            }
            row["power"] = ((profile.get("power") or {}).get("source")) or "none"
        _log(f"{suite}: {wall:.1f} s, exit {code}")
    return row


def runs_markdown(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        peaks = "; ".join(
            f"{d} {t:.4g} ({c:.4g}), {str(case).split('/')[-1]}" if c is not None else f"{d} {t:.4g}, {case}"
            for d, (t, c, case) in (r.get("peaks") or {}).items()
            if t is not None
        )
        body.append(
            [
                f"`npucheck run --device cpu --suite {r['suite']}`",
                f"{r['wall_s']:.1f} s",
                r["rc"],
                f"{r.get('ok', '?')} / {r.get('skipped', '?')} / {r.get('errors', '?')}",
                peaks or "-",
            ]
        )
    table = _table(
        ["command", "wall time", "exit code", "cases ok / skipped / error", "peak GEMM TFLOPS (confirmed), case"], body
    )
    notes = [
        f"- {r['suite']}: {n} x {reason!r}"
        for r in rows
        for reason, n in sorted((r.get("skip_reasons") or {}).items(), key=lambda item: -item[1])[:3]
    ]
    if not notes:
        return table
    return table + "\n\nWhy cases were skipped (each reason's start, most frequent first):\n\n" + "\n".join(notes)


# ------------------------------------------------------------------------------------------------ 6. machine
def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def machine() -> dict[str, Any]:
    import numpy
    import torch

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = float("nan")
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "kernel": platform.release(),
        "hypervisor": "yes" if "hypervisor" in Path("/proc/cpuinfo").read_text() else "no",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown document here")
    parser.add_argument("--skip-standard", action="store_true", help="leave out the ~80 s standard-suite run")
    parser.add_argument("--skip-runs", action="store_true", help="leave out both suite runs")
    parser.add_argument("--fast", action="store_true", help="tiny repeat counts and windows (a smoke test)")
    parser.add_argument(
        "--peer-threads",
        type=lambda text: [int(part) for part in text.split(",")],
        default=None,
        help="peers: torch (and numpy) thread counts, comma-separated, one table each (default: torch's default)",
    )
    parser.add_argument("--note", default=None, help="a sentence about the conditions, printed under the machine")
    args = parser.parse_args(argv)
    fast = args.fast
    started = time.perf_counter()
    load_before = _load()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    sampler_s = 0.3 if fast else 2.0
    sampler_rows = sampler_cost(HZ, sampler_s)  # first: before torch has spinning worker threads
    harness_rows = harness_overhead(samples=200 if fast else 2000, repeats=2 if fast else 5)
    _log("harness done")
    rounds = 2 if fast else 5
    startup_rows = startup(rounds)
    run_rows = []
    if not args.skip_runs:
        run_rows.append(suite_run("quick"))
        if not args.skip_standard:
            run_rows.append(suite_run("standard"))
    peers = _script("peers")
    from npucheck.measure.suites import get_suite

    suite = get_suite("quick")
    peer_settings = {
        "suite": "quick",
        "case_target_s": 0.05 if fast else suite.case_target_s,
        "min_samples": suite.min_samples,
        "max_samples": suite.max_samples,
        "min_sample_s": suite.min_sample_s,
    }
    peer_rounds = 1 if fast else 3
    peer_sizes = [128, 256] if fast else list(peers.DEFAULT_SIZES)
    import torch

    default_threads = torch.get_num_threads()
    peer_results = []
    for threads in args.peer_threads or [default_threads]:
        torch.set_num_threads(threads)
        _log(f"peers with {threads} thread(s)")
        peer_results.append(
            peers.measure(list(peers.DEFAULT_DTYPES), peer_sizes, peer_settings, rounds=peer_rounds, log=_log)
        )
    torch.set_num_threads(default_threads)
    peers.numpy_threads(default_threads)
    load_after = _load()
    total = time.perf_counter() - started
    shown = list(argv if argv is not None else sys.argv[1:])
    for i, arg in enumerate(shown[:-1]):
        if arg == "--note":
            shown[i + 1] = "…"  # the note is printed below
    command = "python scripts/selfbench.py" + "".join(f" {a if a == '…' else shlex.quote(a)}" for a in shown)

    rusage = resource.getrusage(resource.RUSAGE_CHILDREN)
    doc = [
        "# Benchmarks of npucheck itself",
        "",
        "How much npucheck costs beside the kernels it times: the timing harness per sample, the power sampler "
        "thread per `--power-hz`, start-up of the read-only commands, the wall time of the CPU suites, and how "
        "its GEMM figures compare with `torch.utils.benchmark` and numpy on the same shapes. "
        "Regenerate on a quiet machine with:",
        "",
        "```sh",
        "python scripts/selfbench.py --out docs/benchmarks.md            # everything: ~5 min on 2 vCPUs",
        "python scripts/selfbench.py --skip-standard                     # without the ~80 s standard run",
        "python scripts/selfbench.py --peer-threads 1,2                  # peers at 1 and 2 threads",
        "python scripts/peers.py                                         # the peers table alone",
        "python -m pytest tests/benchmarks --benchmark-enable            # the pytest-benchmark versions",
        "```",
        "",
        "## Machine and conditions",
        "",
        f"- Generated by `{command}` on {date}, in {total:.0f} s.",
        f"- CPU: {host['cpu']}, {host['cpus']} logical CPUs (`nproc`), {host['memory_gib']:.0f} GiB, "
        f"virtual machine: {host['hypervisor']}; Linux {host['kernel']}.",
        f"- Python {host['python']}, torch {host['torch']} ({host['torch_threads']} threads), numpy {host['numpy']} "
        f"({peer_results[0]['numpy_blas']}).",
        f"- Load average (1, 5, 15 min) before: {load_before}; after: {load_after}.",
    ]
    if args.note:
        doc.append(f"- {args.note}")
    doc += [
        "",
        "## 1. Timing harness overhead per sample",
        "",
        harness_markdown(harness_rows),
        "",
        "## 2. Power sampler cost per `--power-hz`",
        "",
        sampler_markdown(sampler_rows, sampler_s),
        "",
        "## 3. Start-up of the read-only commands",
        "",
        startup_markdown(startup_rows, rounds),
        "",
        "## 4. Suite runs on the CPU",
        "",
        runs_markdown(run_rows) if run_rows else "Not run (`--skip-runs`).",
        "",
        "Whole command in a fresh process, `--power auto` (no power source on a VM without RAPL), result written "
        "to a temporary file. The suite budgets (`kernels/suites.toml`) bound the cases; the device warm-up, "
        "support probes and the confirmation of each dtype's peak come on top.",
        "",
        "## 5. Peers: npucheck's GEMM figures beside torch.utils.benchmark and numpy",
        "",
        f"`scripts/peers.py` (here with the quick suite's settings, {peer_settings['case_target_s']:g} s per timing, "
        f"the cache flushed as `run` does, best of {peer_rounds} alternations of the three timers, numpy's OpenBLAS "
        "set to torch's thread count). numpy has no bfloat16: its column is float32 in every row, so on bf16 rows "
        "the ratio compares npucheck's bf16 with numpy's best dtype, not two timings of the same computation.",
        "",
    ]
    for result in peer_results:
        doc += [
            f"### {result['torch_threads']} thread(s): torch {result['torch_threads']}, "
            f"numpy {result['numpy_threads'] or 'default'}",
            "",
            peers.markdown(result),
            "",
        ]
    doc += [
        f"Children's peak RSS over the whole benchmark: {rusage.ru_maxrss / 1024:.0f} MiB.",
        "",
    ]
    text = "\n".join(doc)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
