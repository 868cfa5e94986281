"""Cross-check npucheck's GEMM figures with an independent timing of the same shapes on the same machine.

The independent path shares no code with npucheck's timing: plain torch.randn inputs, torch.mm, and
torch.utils.benchmark.Timer (its own warm-up, block sizing and median), with the same thread count the result
recorded. Usage:

    python scripts/crosscheck_gemm.py RESULT.json [--dtype fp16] [--tolerance 0.10] [--live]

By default the figures stored in RESULT are compared with a timing taken now. On a shared virtual machine the
speed drifts between runs by more than the tolerance (we saw 0.1175 and 0.1388 TFLOPS for the same fp32 128³
GEMM from two runs of the independent timer alone, minutes apart), so ``--live`` also re-times each shape with
npucheck's own timing code right beside the independent timer, alternating the two, which compares the methods
rather than the moments.

Only compute-bound shapes (every dimension >= 128) are compared. Matrix-vector shapes (n = 1) are bound by
memory and caches: npucheck flushes the cache before every sample and the independent timing does not, so the
two measure different things by design; they are listed as "not compared".

Exits 1 if any compared shape differs by more than the tolerance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
import torch.utils.benchmark as benchmark

MIN_DIM = 128
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
ROUNDS = 3
"""Alternations of the two timers per shape in --live mode."""


def independent_tflops(m: int, n: int, k: int, layout: str, dtype: torch.dtype, threads: int) -> float:
    a = torch.randn(k, m, dtype=dtype).t() if layout[0] == "T" else torch.randn(m, k, dtype=dtype)
    b = torch.randn(n, k, dtype=dtype).t() if layout[1] == "T" else torch.randn(k, n, dtype=dtype)
    timer = benchmark.Timer("torch.mm(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=threads)
    measurement = timer.adaptive_autorange(threshold=0.05, min_run_time=0.2, max_run_time=5)
    return 2 * m * n * k / measurement.median / 1e12


def npucheck_tflops(measurement: dict, profile: dict) -> float:
    """The same case timed now by npucheck's own code, with the settings the result recorded."""
    from npucheck.kernels import KERNELS, build_workload
    from npucheck.measure.devices import CpuDevice
    from npucheck.measure.timing import TimingSettings, time_kernel

    device = CpuDevice()
    case = KERNELS["gemm"].case(measurement["dtype"], measurement["shape"], measurement["shape_set"])
    settings = profile["settings"]
    flush = device.make_flush() if measurement.get("cache_flush_bytes") else (lambda: None)
    with torch.inference_mode():
        workload = build_workload(case, device.torch_device, settings.get("seed", 0))
        timing = time_kernel(
            workload.run,
            device,
            flush,
            TimingSettings(
                budget_s=settings.get("case_target_s", 0.3),
                min_samples=settings.get("min_samples", 6),
                max_samples=settings.get("max_samples", 50),
                min_sample_s=settings.get("min_sample_s", 0.002),
                warmup_s=0.05,
            ),
        )
    return case.flops / timing.stats.median_s / 1e12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result")
    parser.add_argument("--dtype", action="append", help="only these dtypes (default: all in the file)")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--limit", type=int, default=None, help="check at most this many shapes per dtype")
    parser.add_argument(
        "--live",
        action="store_true",
        help="also re-time each shape with npucheck's code, alternating with the independent timer",
    )
    args = parser.parse_args()
    with open(args.result, encoding="utf-8") as f:
        profile = json.load(f)
    threads = profile["environment"]["threads"]["intra_op"]
    torch.set_num_threads(threads)
    worst = 0.0
    header = f"{'case':40s} {'stored':>8s} {'independent':>12s} {'diff':>7s}"
    print(header + (f" {'npucheck now':>13s} {'diff':>7s}" if args.live else ""))
    counts: dict[str, int] = {}
    for m in profile["measurements"]:
        if m["kernel"] != "gemm" or m["status"] != "ok" or (args.dtype and m["dtype"] not in args.dtype):
            continue
        if args.limit is not None and counts.get(m["dtype"], 0) >= args.limit:
            continue
        shape = m["shape"]
        if min(shape["m"], shape["n"], shape["k"]) < MIN_DIM:
            print(f"{m['id']:40s} {m['tflops']:8.4f} {'not compared (memory-bound shape)':>34s}")
            continue
        counts[m["dtype"]] = counts.get(m["dtype"], 0) + 1
        args_ = (shape["m"], shape["n"], shape["k"], shape.get("layout", "NN"), DTYPES[m["dtype"]], threads)
        if args.live:
            pairs = [(independent_tflops(*args_), npucheck_tflops(m, profile)) for _ in range(ROUNDS)]
            other = statistics.median(p[0] for p in pairs)
            now = statistics.median(p[1] for p in pairs)
            stored_diff, live_diff = m["tflops"] / other - 1, now / other - 1
            worst = max(worst, abs(live_diff))
            print(f"{m['id']:40s} {m['tflops']:8.4f} {other:12.4f} {stored_diff:+7.1%} {now:13.4f} {live_diff:+7.1%}")
        else:
            other = independent_tflops(*args_)
            diff = m["tflops"] / other - 1
            worst = max(worst, abs(diff))
            print(f"{m['id']:40s} {m['tflops']:8.4f} {other:12.4f} {diff:+7.1%}")
    compared = "npucheck now vs independent" if args.live else "stored vs independent"
    print(f"largest difference ({compared}): {worst:.1%} (tolerance {args.tolerance:.0%}), threads {threads}")
    return 1 if worst > args.tolerance else 0


if __name__ == "__main__":
    sys.exit(main())
