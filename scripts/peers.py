"""Peers: npucheck's GEMM figures beside torch.utils.benchmark and numpy, on the same shapes, in one run.

For each dtype (default fp32 and bf16) and each square size, three timings of C = A·B are taken back to back:

* **npucheck**: the ``run`` code path: the kernel catalog's GEMM workload (``build_workload``, ``torch.mm`` into a
  preallocated output), verified once against the float64 host reference, then timed by
  ``npucheck.measure.timing.time_kernel`` on ``CpuDevice`` with the suite's settings (warm-up 20% of the case
  target, calls batched to ``min_sample_s``, the cache flushed before every sample unless ``--no-flush``);
  TFLOPS from the median sample, as a result profile stores it.
* **torch.utils.benchmark**: ``Timer("torch.mm(a, b, out=c)").blocked_autorange`` on plain ``torch.randn``
  inputs, same thread count (no npucheck code).
* **numpy**: ``np.matmul(a, b, out=c)`` in float32 (numpy has no bfloat16), timed by its own loop: batches of at
  least ``min_sample_s``, median per call; its OpenBLAS is set to torch's thread count where the library can be
  found (``numpy_threads`` in the JSON; None: its default). The numpy column of a bf16 row is that float32
  figure: the ratio then says how npucheck's bf16 compares with what numpy offers, not a like-for-like timing.

Sizes are chosen by a time budget: a size whose single call (the fastest of three pilot calls) takes more than
``budget / min_samples`` is skipped with the reason, and so are the larger ones (the smallest size is always
measured, so every dtype has a figure); that keeps fp16, which has no fast path on many CPUs (~300x slower than
bf16 on the 2-vCPU CI machine), to the sizes it can finish. With
``--rounds N`` the three timers alternate N times per shape (with a pause between them, so that one library's
spinning threads do not steal the next one's cores) and each keeps its best round: other work on the machine
can only slow a timer down, and alternating compares the methods rather than the moments.

    python scripts/peers.py [--dtypes fp32,bf16] [--sizes 256,512,1024,2048] [--suite quick] [--budget-s S]
        [--rounds 3] [--threads N] [--no-flush] [--settle-s 0.3] [--json OUT.json]

Prints Markdown tables (per shape, and each dtype's peak: npucheck's best case with the peers' figures on that
same shape). Exit 0, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.utils.benchmark as torch_benchmark  # noqa: E402

from npucheck.kernels import KERNELS, build_workload  # noqa: E402
from npucheck.measure.devices import CpuDevice  # noqa: E402
from npucheck.measure.runner import CONFIDENCE, WARMUP_FRACTION  # noqa: E402
from npucheck.measure.suites import get_suite  # noqa: E402
from npucheck.measure.timing import TimingSettings, time_kernel  # noqa: E402

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
DEFAULT_SIZES = (256, 512, 1024, 2048)
DEFAULT_DTYPES = ("fp32", "bf16")
SETTLE_S = 0.3
"""Pause before each timer: torch's OpenMP workers and OpenBLAS's threads spin for a while after their last call
(up to 200 ms with Intel's OpenMP) and would steal the next library's cores on a 2-vCPU machine."""


def _tflops(size: int, seconds: float) -> float:
    return 2 * size**3 / seconds / 1e12


def npucheck_seconds(
    dtype: str, size: int, settings: dict[str, Any], device: CpuDevice, flush: Any, seed: int = 0
) -> float:
    """Median seconds per call through the code ``npucheck run`` uses (kernel catalog, verification, timing)."""
    case = KERNELS["gemm"].case(dtype, {"m": size, "n": size, "k": size, "layout": "NN"}, "square")
    target = settings["case_target_s"]
    warmup_s = target * WARMUP_FRACTION
    with torch.inference_mode():
        workload = build_workload(case, device.torch_device, seed)
        check = workload.verify()
        if check.ok is False:
            raise RuntimeError(f"{case.id}: result differs from the reference ({check.rel_error:.3g})")
        timing = time_kernel(
            workload.run,
            device,
            flush,
            TimingSettings(
                budget_s=max(target - warmup_s, 0.0),
                min_samples=settings["min_samples"],
                max_samples=settings["max_samples"],
                min_sample_s=settings["min_sample_s"],
                warmup_s=warmup_s,
                confidence=CONFIDENCE,
            ),
        )
    return timing.stats.median_s


def torch_benchmark_seconds(dtype: str, size: int, budget_s: float) -> float:
    """Median seconds per call from torch.utils.benchmark on plain torch.randn inputs."""
    a = torch.randn(size, size, dtype=DTYPES[dtype])
    b = torch.randn(size, size, dtype=DTYPES[dtype])
    c = torch.empty(size, size, dtype=DTYPES[dtype])
    timer = torch_benchmark.Timer(
        "torch.mm(a, b, out=c)", globals={"torch": torch, "a": a, "b": b, "c": c}, num_threads=torch.get_num_threads()
    )
    return float(timer.blocked_autorange(min_run_time=budget_s).median)


def numpy_seconds(size: int, budget_s: float, min_sample_s: float, min_samples: int) -> float:
    """Median seconds per call of float32 ``np.matmul``: batches of at least ``min_sample_s``, for ``budget_s``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=c)
    start = time.perf_counter()
    np.matmul(a, b, out=c)
    per_call = max(time.perf_counter() - start, 1e-9)
    calls = max(1, math.ceil(min_sample_s / per_call))
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < min_samples or time.perf_counter() - started < budget_s:
        t0 = time.perf_counter()
        for _ in range(calls):
            np.matmul(a, b, out=c)
        samples.append((time.perf_counter() - t0) / calls)
    return statistics.median(samples)


def pilot_seconds(dtype: str, size: int) -> float:
    """The fastest of three calls after one untimed call (which pays for lazy initialisation): what a call of
    this size costs."""
    a = torch.randn(size, size, dtype=DTYPES[dtype])
    b = torch.randn(size, size, dtype=DTYPES[dtype])
    torch.mm(a, b)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
        if times[-1] > 1.0:
            break
    return min(times)


def measure(
    dtypes: list[str],
    sizes: list[int],
    settings: dict[str, Any],
    rounds: int = 3,
    flush: bool = True,
    log: Any = None,
    settle_s: float = SETTLE_S,
) -> dict[str, Any]:
    """Rows per (dtype, size) with the three figures and the ratios, and each dtype's peak row."""
    sizes = sorted(sizes)
    blas_threads = numpy_threads(torch.get_num_threads())  # numpy with the same cores as torch, where it can
    device = CpuDevice()
    flush_fn = device.make_flush() if flush else (lambda: None)
    budget = settings["case_target_s"]
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    numpy_cache: dict[int, float] = {}
    for dtype in dtypes:
        too_slow: dict[str, Any] | None = None
        for size in sizes:
            if too_slow is None and size != sizes[0]:  # the smallest size is always measured
                call_s = pilot_seconds(dtype, size)
                if call_s > budget / settings["min_samples"]:
                    too_slow = {
                        "dtype": dtype,
                        "sizes": [],
                        "reason": f"one call of {size}³ took {call_s:.3g} s, over the budget's "
                        f"{budget:g} s / {settings['min_samples']} samples",
                    }
                    skipped.append(too_slow)
            if too_slow is not None:
                too_slow["sizes"].append(size)
                continue
            ours, theirs, numpys = [], [], []
            for _ in range(rounds):
                time.sleep(settle_s)
                ours.append(npucheck_seconds(dtype, size, settings, device, flush_fn))
                time.sleep(settle_s)
                theirs.append(torch_benchmark_seconds(dtype, size, budget))
                if size not in numpy_cache:
                    time.sleep(settle_s)
                    numpys.append(numpy_seconds(size, budget, settings["min_sample_s"], settings["min_samples"]))
            if size not in numpy_cache:
                numpy_cache[size] = min(numpys)
            row = {
                "dtype": dtype,
                "size": size,
                "npucheck_tflops": _tflops(size, min(ours)),
                "torch_benchmark_tflops": _tflops(size, min(theirs)),
                "numpy_fp32_tflops": _tflops(size, numpy_cache[size]),
            }
            row["vs_torch_benchmark"] = row["npucheck_tflops"] / row["torch_benchmark_tflops"]
            row["vs_numpy"] = row["npucheck_tflops"] / row["numpy_fp32_tflops"]
            rows.append(row)
            if log:
                log(
                    f"{dtype} {size}³: npucheck {row['npucheck_tflops']:.4g}, torch.utils.benchmark "
                    f"{row['torch_benchmark_tflops']:.4g}, numpy fp32 {row['numpy_fp32_tflops']:.4g} TFLOPS"
                )
    peaks = {}
    for dtype in dtypes:
        mine = [r for r in rows if r["dtype"] == dtype]
        if mine:
            peaks[dtype] = max(mine, key=lambda r: r["npucheck_tflops"])
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "numpy_blas": _numpy_blas(),
        "numpy_threads": blas_threads,
        "flush": flush,
        "rounds": rounds,
        "settings": settings,
        "rows": rows,
        "skipped": skipped,
        "peaks": peaks,
    }


_OPENBLAS_PREFIXES = ("scipy_openblas_", "openblas_")
_OPENBLAS_SUFFIXES = ("64_", "")


def _openblas_call(name: str, *args: int) -> int | None:
    """Call OpenBLAS's ``{get,set}_num_threads`` in the copy numpy loaded (found in /proc/self/maps; the
    symbol carries scipy-openblas's prefix and ILP64 suffix), or None where that is not possible."""
    import ctypes

    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and line.split()[-1].startswith("/")}
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _OPENBLAS_PREFIXES:
            for suffix in _OPENBLAS_SUFFIXES:
                fn = getattr(lib, f"{prefix}{name}{suffix}", None)
                if fn is not None:
                    result = fn(*args)
                    return int(result) if name.startswith("get") else 0
    return None


def numpy_threads(threads: int | None = None) -> int | None:
    """Set numpy's BLAS threads (when ``threads`` is given) and return how many it uses; None when unknown."""
    if threads is not None:
        _openblas_call("set_num_threads", threads)
    return _openblas_call("get_num_threads")


def _numpy_blas() -> str:
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]  # type: ignore[attr-defined]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError):
        return "unknown"


def markdown(result: dict[str, Any]) -> str:
    """The per-shape table, the peak table and the skipped sizes, as Markdown."""
    lines = [
        "| dtype | shape | npucheck TFLOPS | torch.utils.benchmark | numpy (fp32) | npucheck / torch.utils.benchmark "
        "| npucheck / numpy |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['dtype']} | {r['size']}³ | {r['npucheck_tflops']:.4g} | {r['torch_benchmark_tflops']:.4g} | "
            f"{r['numpy_fp32_tflops']:.4g} | {r['vs_torch_benchmark']:.3f} | {r['vs_numpy']:.3f} |"
        )
    lines += [
        "",
        "| dtype | npucheck peak (shape) | torch.utils.benchmark, same shape | numpy fp32, same shape "
        "| npucheck / torch.utils.benchmark | npucheck / numpy |",
        "|---|---|---|---|---|---|",
    ]
    for dtype, r in result["peaks"].items():
        lines.append(
            f"| {dtype} | {r['npucheck_tflops']:.4g} ({r['size']}³) | {r['torch_benchmark_tflops']:.4g} | "
            f"{r['numpy_fp32_tflops']:.4g} | {r['vs_torch_benchmark']:.3f} | {r['vs_numpy']:.3f} |"
        )
    if result["skipped"]:
        lines.append("")
    for s in result["skipped"]:
        lines.append(f"Skipped {s['dtype']} {', '.join(f'{n}³' for n in s['sizes'])}: {s['reason']}.  ")
    return "\n".join(lines)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default=",".join(DEFAULT_DTYPES), help="comma-separated: fp16, bf16, fp32")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="square sizes, comma-separated")
    parser.add_argument("--suite", default="quick", help="whose timing settings npucheck uses (default: quick)")
    parser.add_argument("--budget-s", type=float, default=None, help="seconds per timing (default: the suite's)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the three timers per shape")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-flush", action="store_true", help="npucheck without its cache flush (run --no-flush)")
    parser.add_argument("--settle-s", type=float, default=SETTLE_S, help="pause before each timer (default 0.3 s)")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    try:
        dtypes = _csv(args.dtypes)
        unknown = [d for d in dtypes if d not in DTYPES]
        if unknown or not dtypes:
            raise ValueError(f"unknown dtypes {unknown} (known: {', '.join(DTYPES)})")
        sizes = sorted({int(s) for s in _csv(args.sizes)})
        if not sizes or sizes[0] < 1:
            raise ValueError("sizes must be positive integers")
        if args.rounds < 1 or (args.budget_s is not None and not args.budget_s > 0):
            raise ValueError("--rounds must be >= 1 and --budget-s > 0")
        suite = get_suite(args.suite)
    except Exception as e:  # noqa: BLE001 - ValueError, UsageError: one line, exit 2
        print(f"peers: error: {e}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {
        "suite": suite.name,
        "case_target_s": args.budget_s if args.budget_s is not None else suite.case_target_s,
        "min_samples": suite.min_samples,
        "max_samples": suite.max_samples,
        "min_sample_s": suite.min_sample_s,
    }
    result = measure(
        dtypes,
        sizes,
        settings,
        rounds=args.rounds,
        flush=not args.no_flush,
        log=lambda s: print(s, file=sys.stderr),
        settle_s=max(args.settle_s, 0.0),
    )
    print(
        f"torch {result['torch_version']} ({result['torch_threads']} threads), numpy {result['numpy_version']} "
        f"({result['numpy_blas']}, {result['numpy_threads'] or 'default'} threads); "
        f"npucheck with the {suite.name} suite's settings, "
        f"{settings['case_target_s']:g} s per timing, {'flushed' if result['flush'] else 'no flush'}, "
        f"best of {args.rounds} alternation(s)\n"
    )
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
